/**
 * Health state machine with Kubernetes probe semantics: `success_threshold` consecutive
 * successes make a backend healthy, `failure_threshold` consecutive failures make it unhealthy,
 * and either kind of result breaks the other kind's streak. Pure: time only from `now`.
 */
import type { HealthCheckConfig } from '../config/types.js';
import type { HealthStatus } from '../model.js';

/** One backend's health state. Plain JSON data so it can be persisted across restarts. */
export interface HealthState {
  status: HealthStatus;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
}

/** The part of a backend's HealthCheckConfig this machine reads. */
export type ThresholdConfig = Pick<HealthCheckConfig, 'success_threshold' | 'failure_threshold'>;

/** One probe verdict; `detail` (e.g. `connect ECONNREFUSED 127.0.0.1:8002`) goes into reasons. */
export interface HealthEvent {
  ok: boolean;
  detail?: string;
  /** False: a failure counts but may not make the backend unhealthy yet (the count stops one short). */
  mayTrip?: boolean;
}

/** A change of status, before the registry names the backend it belongs to. */
export interface HealthChange {
  from: HealthStatus;
  to: HealthStatus;
  at: number;
  reason: string;
}

/** A backend nobody has probed yet. */
export function initialHealth(): HealthState {
  return { status: 'unknown', consecutiveSuccesses: 0, consecutiveFailures: 0 };
}

/** Applies one probe verdict. `>=` rather than `===` so a threshold lowered mid-streak still trips. */
export function step(
  state: HealthState,
  event: HealthEvent,
  cfg: ThresholdConfig,
  now: number,
): { state: HealthState; transition?: HealthChange } {
  if (event.ok) {
    const successes = state.consecutiveSuccesses + 1;
    const next: HealthState = { status: state.status, consecutiveSuccesses: successes, consecutiveFailures: 0 };
    if (state.status === 'healthy' || successes < cfg.success_threshold) return { state: next };
    next.status = 'healthy';
    const reason = `${successes} consecutive ${successes === 1 ? 'success' : 'successes'}`;
    return { state: next, transition: { from: state.status, to: 'healthy', at: now, reason } };
  }
  const held = event.mayTrip === false && state.status !== 'unhealthy';
  const failures = held ? Math.min(state.consecutiveFailures + 1, cfg.failure_threshold - 1) : state.consecutiveFailures + 1;
  const next: HealthState = { status: state.status, consecutiveSuccesses: 0, consecutiveFailures: failures };
  if (held || state.status === 'unhealthy' || failures < cfg.failure_threshold) return { state: next };
  next.status = 'unhealthy';
  const reason =
    `${failures} consecutive ${failures === 1 ? 'failure' : 'failures'}` +
    (event.detail ? `: ${event.detail}` : '');
  return { state: next, transition: { from: state.status, to: 'unhealthy', at: now, reason } };
}

/** Validates a health state read from untrusted JSON (e.g. the store); null when malformed. */
export function restoreHealth(json: unknown): HealthState | null {
  if (typeof json !== 'object' || json === null) return null;
  const o = json as Record<string, unknown>;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (o.status !== 'unknown' && o.status !== 'healthy' && o.status !== 'unhealthy') return null;
  if (!count(o.consecutiveSuccesses) || !count(o.consecutiveFailures)) return null;
  return { status: o.status, consecutiveSuccesses: o.consecutiveSuccesses as number, consecutiveFailures: o.consecutiveFailures as number };
}
