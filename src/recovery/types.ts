/**
 * Recovery's data: what the planner reads (config, app snapshots, inputs), what it emits
 * (actions, decisions) and what the executor records. Types only; the planner's own state is
 * planner-state.ts's.
 */
import type { AppRecoveryOptions, ClearCacheCall, RecoveryConfig } from '../config/types.js';
import type { BackendView, FailureEvent, FailureType } from '../health/types.js';
import type { TaskRef } from '../model.js';
import type { PlannerState } from './planner-state.js';

/** A recovery strategy: the seed's, plus the reverses of the traffic ones (undrain, restore) and scale_in. */
export type Strategy =
  | 'remove_from_lb'
  | 'restart_container'
  | 'recreate_container'
  | 'replace_instance'
  | 'scale_out'
  | 'scale_in'
  | 'drain_instance'
  | 'undrain_instance'
  | 'rolling_restart'
  | 'redirect_traffic'
  | 'restore_traffic'
  | 'clear_cache'
  | 'restart_dependencies';

/** RecoveryConfig plus the two settings the planner needs from elsewhere. */
export interface PlannerConfig extends RecoveryConfig {
  /**
   * No restart, recreate or replace of a running container this soon after its start; also how
   * long a drained instance must run healthy without a restart before it is readmitted.
   */
  startup_grace_seconds: number;
  /** An action with no result after this long is taken as failed, so its app is not locked forever. */
  action_timeout_seconds: number;
}

/** One app as the planner needs to see it; the caller resolves config and label overrides. */
export interface AppSnapshot {
  name: string;
  /** AppDockerOptions.max_replicas ?? recovery.max_replicas, after label overrides. */
  maxReplicas: number;
  /** Host networking: ports a new replica may take (AppDockerOptions.port_range). */
  portRange: [number, number] | null;
  /** Environment variable that tells a new replica its port (AppDockerOptions.port_env). */
  portEnv: string;
  /** AppConfig.recovery: dependencies for restart_dependencies, the call for clear_cache. */
  recovery: AppRecoveryOptions;
  /** Every backend of the app, with its container when Docker discovered it. */
  replicas: BackendView[];
}

/** What the planner is told: a failure, an action's outcome, or a periodic look at every app. */
export type PlannerInput =
  | { kind: 'failure'; event: FailureEvent; backend: BackendView; app: AppSnapshot }
  | {
      kind: 'action_result';
      actionId: string;
      app: string;
      ok: boolean;
      error?: string | null;
      newContainerId?: string | null;
    }
  /**
   * Periodic, with every app: scale-in, the next step of rolling restarts, readmitting drained
   * instances and restoring weights, in-flight timeouts and forgetting vanished containers.
   */
  | { kind: 'tick'; apps: AppSnapshot[] };

/** A new replica that replace_instance or scale_out creates. */
export interface SpawnSpec {
  /** Container name; unique because the planner's sequence number persists with its state. */
  name: string;
  /**
   * scale_out: `orchestry.replica` for the new container, one above the app's highest (null if
   * none has one). replace_instance: null, the new replica keeps the old one's labels.
   */
  replica: number | null;
  /** Host networking: pick the new replica's port from here (null: the app has no range). */
  portRange: [number, number] | null;
  portEnv: string;
  /** Ports the app's replicas use now; never given to the new one. */
  usedPorts: number[];
}

/** clear_cache: the app's declared call, sent to the backend's own address. */
export interface BackendCall extends ClearCacheCall {
  host: string;
  port: number;
}

/**
 * The Swarm task an action is about, and its service: Swarm owns it, so a restart removes the
 * task's container (Swarm starts a replacement) and a scale is a service update carrying
 * `serviceVersion` (swarm-actions.ts).
 */
export type TaskTarget = Pick<TaskRef, 'id' | 'name' | 'serviceId' | 'serviceName' | 'serviceVersion' | 'nodeId' | 'containerId'>;

/** One action for the executor. */
export interface PlannedAction {
  /** Unique across restarts: `${at}-${sequence}`. */
  id: string;
  strategy: Strategy;
  /** null for the actions no failure triggers (scale_in, undrain_instance, restore_traffic). */
  failureType: FailureType | null;
  app: string;
  /** The backend whose failure triggered it (scale_in: the backend being removed). */
  backendId: string;
  /**
   * The container acted on; for scale_out the healthy replica to clone. null: no container, or
   * restart_dependencies (which acts on `dependencies`).
   */
  containerId: string | null;
  containerName: string | null;
  /** The Swarm task acted on (scale_out: one of the service's healthy tasks); null for a container. */
  task: TaskTarget | null;
  reason: string;
  /** Record only; act on nothing. */
  dryRun: boolean;
  disruptive: boolean;
  /** The container still receives traffic: take it out of nginx before stopping it. */
  drainFirst: boolean;
  spawn: SpawnSpec | null;
  /** restart_dependencies: the containers to restart, by name. */
  dependencies: string[] | null;
  /** clear_cache: the HTTP call to make. */
  call: BackendCall | null;
  at: number;
}

/** Why a strategy was taken or skipped: for logs (debug) and the dry-run record. */
export interface Decision {
  at: number;
  app: string;
  backendId: string | null;
  failureType: FailureType | null;
  strategy: Strategy | null;
  /** planned: an action was emitted; skipped: a rule refused it; noted: bookkeeping worth a log line. */
  outcome: 'planned' | 'skipped' | 'noted';
  reason: string;
}

/** One input's outcome: the next state, the actions to run, and why each strategy was or was not taken. */
export interface PlanResult {
  state: PlannerState;
  actions: PlannedAction[];
  decisions: Decision[];
}

/** One action taken (or, in dry-run, one that would have been): the action's own fields and its outcome. */
export interface ActionRecord
  extends Pick<PlannedAction, 'id' | 'strategy' | 'failureType' | 'app' | 'backendId' | 'containerId' | 'dryRun' | 'reason'> {
  newContainerId?: string;
  /** A Swarm task's action: the service and the task (`<service>.<slot>`) it was about. */
  service?: string;
  task?: string;
  ok: boolean;
  error?: string;
  /** Epoch ms. */
  startedAt: number;
  durationMs: number;
}

/** Which ActionRecords to list, newest first. */
export interface HistoryFilter {
  app?: string;
  backendId?: string;
  strategy?: Strategy;
  /** Only records started at or after this epoch ms. */
  since?: number;
  /** At most this many, newest first. */
  limit?: number;
}
