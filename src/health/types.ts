/**
 * Shapes of the health stage. The reducers (thresholds.ts, breaker.ts, classify.ts) are pure:
 * `step(state, event, now) -> { state, transition? }`; registry.ts holds one of each per backend.
 */
import type { SEVERITIES } from '../config/defaults.js';
import type { BreakerStatus, ContainerRef, HealthStatus, ProbeResult, TaskRef } from '../model.js';

/** What a view tells of a backend's latest probe: the fields routing, recovery, alerts and the API read. */
export type LastProbe = Pick<ProbeResult, 'healthy' | 'statusCode' | 'errorClass' | 'error' | 'startedAt' | 'finishedAt' | 'responseTimeMs'>;

/**
 * The seed's FailureType values, listed once: the type, the set below and the config's
 * `alerting.routes[].failure_types` check all come from this list.
 */
export const FAILURE_TYPE_NAMES = [
  'health_check_failed',
  'health_check_timeout',
  'health_check_error',
  'high_response_time',
  'high_error_rate',
  'high_resource_usage',
  'container_stopped',
  'container_restart_loop',
  'container_oom_killed',
  'network_unreachable',
  'port_not_listening',
  'dns_resolution_failed',
  'application_startup_failed',
  'application_deadlock',
  'application_memory_leak',
] as const;

export type FailureType = (typeof FAILURE_TYPE_NAMES)[number];

/** Every FailureType, for validating names from config, labels or the store. */
export const FAILURE_TYPES: ReadonlySet<FailureType> = new Set<FailureType>(FAILURE_TYPE_NAMES);

export type Severity = (typeof SEVERITIES)[number];

/** The seed's FailureEvent. */
export interface FailureEvent {
  failureType: FailureType;
  backendId: string;
  app: string;
  severity: Severity;
  message: string;
  details: Record<string, unknown>;
  timestamp: number;
  consecutiveCount: number;
  totalCount: number;
  firstOccurrence: number;
  critical: boolean;
}

/** A change of one backend's health state or breaker state. Only these flow downstream. */
export type Transition =
  | {
      kind: 'health';
      backendId: string;
      app: string;
      from: HealthStatus;
      to: HealthStatus;
      at: number;
      reason: string;
    }
  | {
      kind: 'breaker';
      backendId: string;
      app: string;
      from: BreakerStatus;
      to: BreakerStatus;
      at: number;
      reason: string;
    };

/** Read-only view of one backend for the upstream builder, API and metrics. */
export interface BackendView {
  backendId: string;
  app: string;
  host: string;
  port: number;
  weight: number;
  backup: boolean;
  health: HealthStatus;
  breaker: BreakerStatus;
  /** Unhealthy, breaker open, or draining. */
  ejected: boolean;
  /**
   * Share of its weight a readmitted (half-open) backend gets now, ramping from 0.1 to 1 over
   * breaker.slow_start_seconds; 1 (or absent) otherwise.
   */
  slowStart?: number;
  /** What nginx's own traffic showed when it ejected the backend (its breaker is open); absent otherwise. */
  passiveCause?: 'refused' | 'status' | 'timeout' | 'slow';
  /**
   * What nginx did with the backend's latest 5xx answer, from its access log: passed it on to
   * another server (`retried`: proxy_next_upstream http_500 ...) or sent it to the client
   * (`served`). Absent when nginx has logged none.
   */
  nginx5xx?: 'retried' | 'served';
  /** Its container is being stopped. */
  draining: boolean;
  /** The container behind it, when discovered from Docker. */
  container: ContainerRef | null;
  /** The Swarm task behind it, when discovered from a Swarm manager. */
  task?: TaskRef;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  lastProbe: LastProbe | null;
  lastFailure: FailureEvent | null;
  /** Epoch ms of the last health or breaker change. */
  since: number;
}
