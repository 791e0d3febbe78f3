/**
 * What the stages publish on the sidecar's event bus, by event name. Emitters: the health
 * monitor (probe, transition, failure), the resource monitor and the container-failure
 * translator (failure), the router (routing, condition), the nginx sync (apply), the recovery
 * controller (action-started, action), discovery (backends, container, docker), the config
 * watcher (config, config-rejected). Listeners: metrics, store, event log, logger, alerting,
 * and the stages that react to others (router on transitions, recovery on failures).
 */
import type { Clock } from '../clock.js';
import type { SidecarConfig } from '../config/types.js';
import type { MergedSnapshot } from '../discovery/aggregator.js';
import type { ContainerEvent } from '../discovery/docker-events.js';
import type { RejectedContainer } from '../discovery/docker-labels.js';
import type { DockerStatus } from '../discovery/docker-source.js';
import type { HealthRegistry } from '../health/registry.js';
import type { BackendView, FailureEvent, Transition } from '../health/types.js';
import type { ProbeResult } from '../model.js';
import type { ApplyOutcome } from '../nginx/applier.js';
import type { ActionRecord, PlannedAction } from '../recovery/types.js';
import type { HeldApp } from '../upstream/settle.js';
import type { DesiredSet } from '../upstream/types.js';
import { createEventBus, type EventBus } from './bus.js';

/** A failure, with the backend as it stood when the failure was seen (undefined if unknown). */
export interface FailureNotice {
  event: FailureEvent;
  view: BackendView | undefined;
}

/** A panic (every backend ejected, all routed anyway) or failover that began or ended. */
export interface ConditionChange {
  kind: 'panic' | 'failover';
  app: string;
  active: boolean;
  /** failover: the app whose servers take the traffic. */
  backupApp?: string | null;
  at: number;
}

/** One decision of what nginx should route to. */
export interface RoutingDecision {
  set: DesiredSet;
  /** The apps whose upstreams were recomputed for it. */
  changed: string[];
  /** Apps routing to every backend (all ejected, no backup). */
  panics: string[];
}

export interface SidecarEvents {
  /** Every probe result (the hot path: listeners must be cheap). */
  probe: ProbeResult;
  /** A backend's health or breaker state changed. */
  transition: Transition;
  /**
   * Evidence against a routed backend that is not a verdict yet (nginx's log shows it failing real
   * requests): the health stage probes it at once and then at its fast period.
   */
  suspect: { backendId: string; app: string; reason: string; at: number };
  failure: FailureNotice;
  /**
   * nginx's log changed what is known of how nginx itself handles an ejected backend's 5xx
   * (retried elsewhere, or sent to clients): reload mode's routing of it may change.
   */
  'nginx-evidence': { app: string; backendId: string };
  /** Discovery's merged view changed (apps, backends, refused containers, awaited sources). */
  discovery: MergedSnapshot;
  /** The registry's backends changed. */
  backends: { added: string[]; removed: string[] };
  /** The containers Docker discovery refuses now (bad labels), after each of its snapshots. */
  rejected: RejectedContainer[];
  /** A Docker container event (not a periodic resync). */
  container: ContainerEvent;
  /** The Docker Engine connection came or went. */
  docker: DockerStatus;
  routing: RoutingDecision;
  condition: ConditionChange;
  /** The apps held at their last good upstream changed (an empty list: none any more). */
  held: { apps: HeldApp[]; at: number };
  /** What one attempt to bring nginx in line did (`unchanged` included). */
  apply: ApplyOutcome;
  'action-started': PlannedAction;
  action: ActionRecord;
  /** A new configuration took effect. */
  config: { prev: SidecarConfig; next: SidecarConfig };
  /** An edited configuration was refused; the running one stays. */
  'config-rejected': { error: string };
}

export type SidecarBus = EventBus<SidecarEvents>;

/** What every stage that reacts to backends' health is built with: time, the bus, the registry. */
export interface HealthStageOptions {
  clock: Clock;
  bus: SidecarBus;
  registry: HealthRegistry;
}

/** The sidecar's bus; listener errors go to `report` (the logger). */
export function createSidecarBus(report: (name: string, err: unknown) => void): SidecarBus {
  return createEventBus<SidecarEvents>({ onListenerError: report });
}
