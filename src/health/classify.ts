/**
 * The seed's FailureDetector for probe results: classification, severity, criticality, and a
 * pure per-backend tracker of consecutive and windowed counts. Runs on every probe of every
 * backend, so the common case (a healthy, fast probe with nothing in the window) allocates
 * nothing.
 */
import type { FailureDetectionConfig } from '../config/types.js';
import type { ProbeErrorClass, ProbeResult } from '../model.js';
import type { FailureEvent, FailureType, Severity } from './types.js';

// The seed classifies by substrings of the error text ('timeout', 'connection', 'dns'), which
// misfiles e.g. "connection timed out" and cannot tell a refused port from an unreachable host.
// The prober hands us a typed class, so the mapping is exact.
const FAILURE_TYPE_BY_CLASS: Record<ProbeErrorClass, FailureType> = {
  unexpected_status: 'health_check_failed',
  unexpected_body: 'health_check_failed',
  unexpected_response: 'health_check_failed',
  timeout: 'health_check_timeout',
  connection_refused: 'port_not_listening',
  connection_reset: 'network_unreachable',
  network_unreachable: 'network_unreachable',
  dns: 'dns_resolution_failed',
  tls: 'health_check_error',
  error: 'health_check_error',
};

const CRITICAL_TYPES: ReadonlySet<FailureType> = new Set([
  'container_stopped',
  'container_oom_killed',
  'application_startup_failed',
]);

/** The seed's `consecutive_count >= 5` rule in FailureEvent.is_critical. */
export const CRITICAL_CONSECUTIVE_COUNT = 5;

/** Most timestamps kept per failure type; totalCount saturates here. */
export const MAX_HISTORY_PER_TYPE = 1000;

/** The failure type of an unhealthy probe, or null for a healthy one. */
export function failureTypeOf(result: ProbeResult): FailureType | null {
  if (result.healthy) return null;
  // The seed's rule: a failure without an error is a check that ran and did not pass.
  return result.errorClass === null ? 'health_check_failed' : FAILURE_TYPE_BY_CLASS[result.errorClass];
}

/** The seed's _determine_severity. */
export function severityOf(type: FailureType): Severity {
  switch (type) {
    case 'container_stopped':
    case 'container_oom_killed':
      return 'critical';
    case 'application_startup_failed':
    case 'container_restart_loop':
      return 'high';
    case 'health_check_timeout':
    case 'high_response_time':
      return 'medium';
    default:
      return 'low';
  }
}

/** The seed's FailureEvent.is_critical: needs immediate action. */
export function isCritical(type: FailureType, severity: Severity, consecutiveCount: number): boolean {
  return CRITICAL_TYPES.has(type) || severity === 'critical' || consecutiveCount >= CRITICAL_CONSECUTIVE_COUNT;
}

/** Short text for why a probe failed, for messages and transition reasons. */
export function describeProbeFailure(result: ProbeResult): string {
  if (result.error) return result.error;
  if (result.statusCode !== null) return `HTTP ${result.statusCode}`;
  return result.errorClass ?? 'unhealthy';
}

/** Occurrences of one failure type within the window, and the current unbroken streak. */
export interface TypeHistory {
  /** Epoch ms, oldest first, all within the window, at most MAX_HISTORY_PER_TYPE. */
  times: number[];
  /** Consecutive probes that had this type; 0 once a probe without it broke the streak. */
  consecutive: number;
}

/** One backend's failure history. Plain JSON data; starts as `{}`. */
export type FailureHistory = Partial<Record<FailureType, TypeHistory>>;

/**
 * The seed's analyze_health_result: an unhealthy probe yields one event of its type, and a probe
 * slower than max_response_time_ms yields high_response_time even when it was healthy.
 *
 * The seed resets a type's streak only when a different failure type arrives, because it never
 * sees successes. Here any probe without that type ends its streak, healthy ones included: "3
 * consecutive timeouts" should mean three probes in a row. A streak also restarts once its
 * previous occurrence has left the window, as in the seed. Event times come from `now`, the same
 * clock the window is measured on.
 */
export function stepFailures(
  history: FailureHistory,
  result: ProbeResult,
  cfg: FailureDetectionConfig,
  now: number,
): { history: FailureHistory; events: FailureEvent[] } {
  const healthType = failureTypeOf(result);
  const slow = result.responseTimeMs > cfg.max_response_time_ms;
  const types = Object.keys(history) as FailureType[];
  if (healthType === null && !slow && types.length === 0) return { history, events: [] };

  const cutoff = now - cfg.failure_rate_window_minutes * 60_000;
  const next: FailureHistory = {};
  // Streaks of types this probe did not have are broken; types with nothing left in the window go.
  for (const type of types) {
    const h = history[type]!;
    const times = withinWindow(h.times, cutoff);
    if (times.length > 0) next[type] = times === h.times && h.consecutive === 0 ? h : { times, consecutive: 0 };
  }

  const events: FailureEvent[] = [];
  const track = (type: FailureType, severity: Severity, message: string, details: Record<string, unknown>) => {
    const prev = next[type];
    const consecutive = prev ? (history[type]?.consecutive ?? 0) + 1 : 1;
    const times = prev ? [...prev.times, now] : [now];
    if (times.length > MAX_HISTORY_PER_TYPE) times.splice(0, times.length - MAX_HISTORY_PER_TYPE);
    next[type] = { times, consecutive };
    events.push({
      failureType: type,
      backendId: result.backendId,
      app: result.app,
      severity,
      message,
      details,
      timestamp: now,
      consecutiveCount: consecutive,
      totalCount: times.length,
      firstOccurrence: times[0]!,
      critical: isCritical(type, severity, consecutive),
    });
  };

  if (healthType !== null) {
    track(healthType, severityOf(healthType), `${healthType}: ${describeProbeFailure(result)}`, {
      response_time_ms: result.responseTimeMs,
      status_code: result.statusCode,
      error: result.error,
      error_class: result.errorClass,
      check_type: result.checkType,
    });
  }
  if (slow) {
    const ms = Math.round(result.responseTimeMs);
    track('high_response_time', severityOf('high_response_time'), `high_response_time: ${ms}ms > ${cfg.max_response_time_ms}ms`, {
      response_time_ms: result.responseTimeMs,
      threshold: cfg.max_response_time_ms,
    });
  }
  return { history: next, events };
}

/** The seed keeps occurrences strictly newer than the cutoff. Returns `times` itself if all stay. */
function withinWindow(times: number[], cutoff: number): number[] {
  const first = times.findIndex((t) => t > cutoff);
  if (first === 0) return times;
  return first === -1 ? [] : times.slice(first);
}
