/**
 * The planner's memory, as plain JSON data so it persists across restarts: per instance its
 * recent actions and backoff, per app its budget, the action in flight, replicas recovery added
 * and a rolling restart under way, and the traffic holds. Here too are the accessors every rule
 * shares, restoring a saved state, and the operator's summary of it.
 */
import type { BackendView, FailureType } from '../health/types.js';
import type { AppSnapshot, PlannedAction, PlannerConfig, SpawnSpec, Strategy, TaskTarget } from './types.js';

/** One container (by name), or an app's dependencies: what recovery did to it and when it may act again. */
export interface InstanceRecord {
  app: string;
  /** Disruptive actions planned on this instance within restart_window_seconds, oldest first. */
  actions: { strategy: Strategy; at: number }[];
  /** Backoff applied after the latest disruptive action; 0 = none yet (the next one may go now). */
  backoffMs: number;
  /** No disruptive action on this instance before this epoch ms. */
  notBefore: number;
  /** Healthy without a break since (epoch ms); resets the backoff after 2 x backoff_max_seconds. */
  healthySince: number | null;
  /** A disruptive action succeeded and the instance has not been healthy since. */
  recoveringSince: number | null;
  /** The remove_from_lb no-op was recorded for the current ejection. */
  lbNoted: boolean;
}

/** The one disruptive action of an app whose result has not come back yet. */
export interface InFlight {
  actionId: string;
  strategy: Strategy;
  instance: string;
  spawnName: string | null;
  dryRun: boolean;
  at: number;
}

/** A rolling restart under way: one replica at a time, each healthy again before the next. */
export interface RollingRecord {
  failureType: FailureType;
  /** The failure that started it, for every step's reason. */
  cause: string;
  startedAt: number;
  /** Container names still to restart, in order. */
  pending: string[];
  /** The replica being restarted; restartedAt null while its restart is in flight. */
  current: { name: string; actionId: string; restartedAt: number | null } | null;
  /** Container names restarted and healthy again (or gone). */
  done: string[];
}

/** One app: its disruptive budget, the action in flight, replicas recovery added, a rolling restart. */
export interface AppRecord {
  inFlight: InFlight | null;
  /** Disruptive actions within budget_window_seconds (epoch ms). */
  disruptive: number[];
  /** scale_out actions within restart_window_seconds (epoch ms). */
  scaleOuts: number[];
  /** Replicas recovery added, oldest first; scaled in again once the app is healthy. */
  added: { name: string; at: number }[];
  /** Every original replica healthy, its latest probe without failure, since (epoch ms). */
  healthySince: number | null;
  rolling: RollingRecord | null;
  /** When the latest rolling restart began: at most one per restart_window_seconds. */
  lastRollingAt: number | null;
}

/** redirect_traffic: a backend running at a share of its configured weight. */
export interface RedirectRecord {
  app: string;
  factor: number;
  at: number;
  /** The latest failure of a redirecting type; restored scale_in_after_seconds after it. */
  lastSeenAt: number;
  /** Ejected since: once readmitted it starts over from its configured weight. */
  wasEjected: boolean;
  /** Recorded in dry-run: never applied to nginx. */
  dryRun: boolean;
}

/** drain_instance: a container held out of nginx while it is not stable. */
export interface DrainRecord {
  app: string;
  backendId: string;
  containerId: string;
  at: number;
  /** Docker's restart count when last seen; a change restarts the stability clock. */
  restartCount: number;
  /** Running and healthy without a restart since (epoch ms). */
  stableSince: number | null;
  dryRun: boolean;
}

/** Plain JSON data: persist it as is. */
export interface PlannerState {
  seq: number;
  instances: Record<string, InstanceRecord>;
  apps: Record<string, AppRecord>;
  /** By backend id. */
  redirects: Record<string, RedirectRecord>;
  /** By container name. */
  drains: Record<string, DrainRecord>;
}

/** The state of a planner that has done nothing yet. */
export function createPlannerState(): PlannerState {
  return { seq: 0, instances: {}, apps: {}, redirects: {}, drains: {} };
}

/** What recovery is holding to now, for `GET /api/v1/recovery` (JSON-ready, ISO times). */
export interface RecoverySummary {
  apps: Array<{
    app: string;
    budget_used: number;
    budget: number;
    in_flight: { strategy: Strategy; since: string } | null;
    added_replicas: string[];
    rolling_restart: { pending: string[]; current: string | null; done: string[] } | null;
  }>;
  instances: Array<{
    instance: string;
    app: string;
    actions_in_window: number;
    backoff_seconds: number;
    not_before: string | null;
  }>;
  redirects: Array<{ backend: string; app: string; weight_factor: number; since: string; dry_run: boolean }>;
  drains: Array<{ container: string; backend: string; app: string; since: string; dry_run: boolean }>;
}

/** The planner's state as an operator reads it: budgets used, backoffs, holds, work under way. */
export function summarize(state: PlannerState, cfg: PlannerConfig, now: number): RecoverySummary {
  const s = normalize(structuredClone(state));
  prune(s, cfg, now);
  const iso = (t: number) => new Date(t).toISOString();
  return {
    apps: Object.entries(s.apps).map(([app, r]) => ({
      app,
      budget_used: r.disruptive.length,
      budget: cfg.budget_per_app,
      in_flight: r.inFlight && { strategy: r.inFlight.strategy, since: iso(r.inFlight.at) },
      added_replicas: r.added.map((a) => a.name),
      rolling_restart: r.rolling && { pending: r.rolling.pending, current: r.rolling.current?.name ?? null, done: r.rolling.done },
    })),
    instances: Object.entries(s.instances).map(([instance, r]) => ({
      instance,
      app: r.app,
      actions_in_window: r.actions.length,
      backoff_seconds: r.backoffMs / 1000,
      not_before: r.notBefore > now ? iso(r.notBefore) : null,
    })),
    redirects: Object.entries(s.redirects).map(([backend, r]) => ({ backend, app: r.app, weight_factor: r.factor, since: iso(r.at), dry_run: r.dryRun })),
    drains: Object.values(s.drains).map((d) => ({ container: d.containerId.slice(0, 12), backend: d.backendId, app: d.app, since: iso(d.at), dry_run: d.dryRun })),
  };
}

/**
 * A planner state saved by a previous process (untrusted JSON from the store): the budgets,
 * backoffs, replicas recovery added, holds and a rolling restart under way carry over, so a
 * sidecar restart resets none of them. Returns null when the shape is wrong; the caller then
 * starts from createPlannerState() and says so. An action in flight when the old process
 * stopped never reports back: the in-flight timeout releases its app as for any lost result.
 */
export function restorePlannerState(json: unknown): PlannerState | null {
  if (!isObj(json) || !isNum(json.seq) || !isObj(json.instances) || !isObj(json.apps)) return null;
  if (json.redirects !== undefined && !isObj(json.redirects)) return null;
  if (json.drains !== undefined && !isObj(json.drains)) return null;
  for (const r of Object.values(json.instances)) {
    if (!isObj(r) || typeof r.app !== 'string' || !Array.isArray(r.actions) || !isNum(r.backoffMs) || !isNum(r.notBefore)) return null;
    if (!r.actions.every((a) => isObj(a) && typeof a.strategy === 'string' && isNum(a.at))) return null;
  }
  for (const r of Object.values(json.apps)) {
    if (!isObj(r) || !isNumList(r.disruptive) || !isNumList(r.scaleOuts) || !Array.isArray(r.added)) return null;
    if (!r.added.every((a) => isObj(a) && typeof a.name === 'string' && isNum(a.at))) return null;
    if (r.inFlight !== null && !(isObj(r.inFlight) && typeof r.inFlight.actionId === 'string' && isNum(r.inFlight.at))) return null;
    if (r.rolling != null && !(isObj(r.rolling) && Array.isArray(r.rolling.pending) && Array.isArray(r.rolling.done))) return null;
  }
  for (const r of Object.values((json.redirects ?? {}) as Record<string, unknown>)) {
    if (!isObj(r) || !isNum(r.factor) || !(r.factor > 0 && r.factor <= 1) || typeof r.app !== 'string') return null;
  }
  for (const r of Object.values((json.drains ?? {}) as Record<string, unknown>)) {
    if (!isObj(r) || typeof r.containerId !== 'string' || typeof r.backendId !== 'string') return null;
  }
  return normalize(structuredClone(json) as unknown as PlannerState);
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isNum(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

function isNumList(x: unknown): x is number[] {
  return Array.isArray(x) && x.every(isNum);
}

/** A state persisted by an older version lacks the newer fields. */
export function normalize(s: PlannerState): PlannerState {
  s.redirects ??= {};
  s.drains ??= {};
  for (const rec of Object.values(s.apps)) {
    rec.rolling ??= null;
    rec.lastRollingAt ??= null;
  }
  return s;
}

/** Healthy and routed: the health stage has not ejected it. */
export function isHealthy(v: BackendView): boolean {
  return v.health === 'healthy' && !v.ejected;
}

/**
 * Healthy, and its latest probe raised no failure. A replica that passes its checks too slowly
 * (high_response_time) stays healthy and routed, but the incident that scaled its app out is not
 * over: scale-in waits for this.
 */
export function isSteady(v: BackendView): boolean {
  const failedLast = v.lastFailure !== null && v.lastProbe !== null && v.lastFailure.timestamp >= v.lastProbe.finishedAt;
  return isHealthy(v) && !failedLast;
}

/**
 * The name of the instance behind a backend: its container's, or its Swarm task's
 * (`<service>.<slot>`, which the task Swarm starts in its place keeps); null for neither.
 */
export function instanceName(v: BackendView): string | null {
  return v.container?.name ?? v.task?.name ?? null;
}

/** Instances are keyed by container or task name (restart, recreate, replacement keep it), else by backend id. */
export function instanceKey(v: BackendView): string {
  return instanceName(v) ?? v.backendId;
}

/** The Swarm task an action on `v` names, when it is one. */
export function taskTarget(v: BackendView): TaskTarget | null {
  const t = v.task;
  if (!t) return null;
  return { id: t.id, name: t.name, serviceId: t.serviceId, serviceName: t.serviceName, serviceVersion: t.serviceVersion, nodeId: t.nodeId, containerId: t.containerId };
}

/** The dependencies of an app are one instance for backoff and restart counts. */
export function dependenciesKey(app: string): string {
  return `${app} dependencies`;
}

/** The instance's record, created empty on first use. */
export function instanceOf(s: PlannerState, key: string, app: string): InstanceRecord {
  return (s.instances[key] ??= {
    app,
    actions: [],
    backoffMs: 0,
    notBefore: 0,
    healthySince: null,
    recoveringSince: null,
    lbNoted: false,
  });
}

/** The app's record, created empty on first use. */
export function appOf(s: PlannerState, name: string): AppRecord {
  return (s.apps[name] ??= {
    inFlight: null,
    disruptive: [],
    scaleOuts: [],
    added: [],
    healthySince: null,
    rolling: null,
    lastRollingAt: null,
  });
}

/** Forgets actions older than their windows: restart counts, budgets and scale-outs count only recent ones. */
export function prune(s: PlannerState, cfg: PlannerConfig, now: number): void {
  const restartCut = now - cfg.restart_window_seconds * 1000;
  const budgetCut = now - cfg.budget_window_seconds * 1000;
  for (const rec of Object.values(s.instances)) {
    if (rec.actions.length && rec.actions[0]!.at <= restartCut) rec.actions = rec.actions.filter((a) => a.at > restartCut);
    // A recovery that never led to health stops counting against max_unavailable after a window.
    if (rec.recoveringSince !== null && rec.recoveringSince <= restartCut) rec.recoveringSince = null;
  }
  for (const rec of Object.values(s.apps)) {
    rec.disruptive = rec.disruptive.filter((t) => t > budgetCut);
    rec.scaleOuts = rec.scaleOuts.filter((t) => t > restartCut);
  }
}

/** The new replica that replace_instance or scale_out is about to create; named after the next action. */
export function spawnSpec(s: PlannerState, app: AppSnapshot, strategy: Strategy): SpawnSpec {
  const replicas = strategy === 'scale_out'
    ? app.replicas.flatMap((v) => (v.container?.replica != null ? [v.container.replica] : []))
    : [];
  // Docker names start with a letter or digit; app names may start with '_'.
  const base = /^[A-Za-z0-9]/.test(app.name) ? app.name : `app${app.name}`;
  return {
    // The sequence number of the action about to be planned, which names it too.
    name: `${base}-recovery-${s.seq + 1}`,
    replica: replicas.length ? Math.max(...replicas) + 1 : null,
    portRange: app.portRange,
    portEnv: app.portEnv,
    usedPorts: app.replicas.map((v) => v.port),
  };
}

/**
 * scale_out of a Swarm service: the task its new replica count adds is named for the next slot
 * (`<service>.<highest slot + 1>`), so the planner knows it as added when it shows up, and
 * scales in again by the replica count once the app is healthy.
 */
export function taskSpawnSpec(app: AppSnapshot, task: TaskTarget): SpawnSpec {
  const slots = app.replicas.flatMap((v) => (v.task?.serviceId === task.serviceId && v.task.slot !== null ? [v.task.slot] : []));
  return {
    name: `${task.serviceName}.${slots.length ? Math.max(...slots) + 1 : 1}`,
    replica: null,
    portRange: null,
    portEnv: app.portEnv,
    usedPorts: app.replicas.map((v) => v.port),
  };
}

/** A PlannedAction with the fields most strategies leave empty. */
export function action(
  s: PlannerState,
  fields: Pick<PlannedAction, 'strategy' | 'failureType' | 'app' | 'backendId' | 'reason' | 'disruptive'> &
    Partial<Pick<PlannedAction, 'containerId' | 'containerName' | 'task' | 'drainFirst' | 'spawn' | 'dependencies' | 'call'>>,
  cfg: PlannerConfig,
  now: number,
): PlannedAction {
  return {
    id: `${now}-${++s.seq}`,
    containerId: null,
    containerName: null,
    task: null,
    dryRun: cfg.mode === 'dry-run',
    drainFirst: false,
    spawn: null,
    dependencies: null,
    call: null,
    at: now,
    ...fields,
  };
}


/** The backend an action is about, with its container or Swarm task when it has one. */
export function targetOf(v: BackendView): Pick<PlannedAction, 'backendId' | 'containerId' | 'containerName' | 'task'> {
  return { backendId: v.backendId, containerId: v.container?.id ?? null, containerName: instanceName(v), task: taskTarget(v) };
}
