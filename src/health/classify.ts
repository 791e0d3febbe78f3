/**
 * The seed's FailureDetector for probe results: classification, severity, criticality, and a
 * per-backend tracker of consecutive and windowed counts, plus high_error_rate from those
 * counts. Runs on every probe of every backend, so the common case (a healthy, fast probe with
 * nothing in the window) allocates nothing and costs O(1).
 *
 * Where each of the seed's 15 FailureType values comes from (all are detected):
 *
 * | failure type               | detector                                   | signal                                                                 |
 * |----------------------------|--------------------------------------------|------------------------------------------------------------------------|
 * | health_check_failed        | stepFailures (this file)                   | probe answered, wrong status/body/TCP reply                             |
 * | health_check_timeout       | stepFailures                               | probe got no answer within timeout_seconds                             |
 * | health_check_error         | stepFailures                               | TLS or any other probe error                                           |
 * | high_response_time         | stepFailures                               | probe slower than max_response_time_ms (healthy or not)                |
 * | high_error_rate            | stepFailures                               | > max_error_rate_percent of a backend's probes failed in the window    |
 * |                            |                                            | (at least min_error_rate_samples probes); once per crossing            |
 * | network_unreachable        | stepFailures                               | connection reset, EHOSTUNREACH/ENETUNREACH                              |
 * | port_not_listening         | stepFailures                               | connection refused                                                     |
 * | dns_resolution_failed      | stepFailures                               | ENOTFOUND / EAI_AGAIN                                                  |
 * | container_stopped          | detectContainerFailures (docker-events.ts) | `die` with no graceful stop asked for                                  |
 * | container_oom_killed       | detectContainerFailures                    | Docker's `oom` event or State.OOMKilled at `die`                       |
 * | container_restart_loop     | detectContainerFailures                    | RestartCount rose 3 times within recovery.restart_window_seconds       |
 * | application_startup_failed | detectContainerFailures                    | HEALTHCHECK never healthy within docker.startup_grace_seconds          |
 * | high_resource_usage        | stepResources (resource-detector.ts)       | Docker stats: CPU % of the container's CPU limit or memory % of its    |
 * |                            |                                            | memory limit above max_cpu/memory_percent for resource_samples samples |
 * | application_memory_leak    | stepResources                              | least-squares memory trend over memory_leak_window_minutes reaches the |
 * |                            |                                            | limit within memory_leak_horizon_minutes (R² >= 0.8)                   |
 * | application_deadlock       | detectDeadlock (resource-detector.ts)      | deadlock_timeouts HTTP timeouts in a row while the port accepts TCP    |
 * |                            |                                            | and the container's CPU is under deadlock_cpu_percent                  |
 *
 * Limits: the last three need Docker stats, so they exist only for container-backed backends
 * (and never with failure_detection.stats_interval_seconds 0); high_error_rate counts active
 * probes, not client traffic (nginx's outcomes feed the breaker instead).
 */
import type { FailureDetectionConfig } from '../config/types.js';
import type { ProbeErrorClass, ProbeResult } from '../model.js';
import type { FailureEvent, FailureType, Severity } from './types.js';

// The seed classifies by substrings of the error text ('timeout', 'connection', 'dns'), which
// misfiles e.g. "connection timed out" and cannot tell a refused port from an unreachable host.
// The prober hands us a typed class, so the mapping is exact.
const FAILURE_TYPE_BY_CLASS: Record<Exclude<ProbeErrorClass, 'local_error'>, FailureType> = {
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

/**
 * Whether a probe could not be run for a reason of the sidecar's own (no file descriptors,
 * buffers or local ports, its body matcher): it says nothing about the backend, so it counts in
 * no health threshold, breaker or failure window.
 */
export function isLocalError(result: ProbeResult): boolean {
  return !result.healthy && result.errorClass === 'local_error';
}

/** The failure type of an unhealthy probe, or null for a healthy one or a local error. */
export function failureTypeOf(result: ProbeResult): FailureType | null {
  if (result.healthy || result.errorClass === 'local_error') return null;
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
  /** Consecutive occurrences; 0 once something broke the streak. */
  consecutive: number;
}

/** Slices of the high_error_rate window; the rate covers the last RATE_SLICES of them. */
export const RATE_SLICES = 10;

/**
 * Probes per slice of the window (slice = window / RATE_SLICES): a ring indexed by
 * `floor(now / sliceMs) % RATE_SLICES`, with running sums, so counting a probe costs O(1) and
 * no allocation. The rate covers the current slice and the RATE_SLICES - 1 before it: between
 * 90% and 100% of failure_rate_window_minutes.
 */
export interface ProbeCounts {
  sliceMs: number;
  /** floor(now / sliceMs) of the newest slice counted. */
  head: number;
  /** All probes, per ring slot. */
  total: number[];
  /**
   * Unhealthy probes, per ring slot; absent while the window holds none (most backends, most of
   * the time: 128 bytes a backend, 1.3 MB at 10,000). Saved states without it restore as zeros.
   */
  failed?: number[] | undefined;
  sumTotal: number;
  sumFailed: number;
  /** In an episode: above max_error_rate_percent since it last crossed, not yet down to half. */
  above: boolean;
}

/**
 * One backend's failure history: occurrences per failure type (a type with none left in the
 * window is dropped) and the probe counts for high_error_rate. Plain JSON data; starts as `{}`.
 * Owned by one caller, which passes the history the previous step returned and keeps only the
 * new one: the probe counts are updated in place so that a healthy probe allocates nothing.
 */
export type FailureHistory = Partial<Record<FailureType, TypeHistory>> & {
  probes?: ProbeCounts;
};

/**
 * Probe counts saved by a previous process, checked; undefined when malformed (the rate then
 * starts over, which only delays high_error_rate by up to one window).
 */
export function restoreProbeCounts(json: unknown): ProbeCounts | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const c = json as Record<string, unknown>;
  const count = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  const ring = (x: unknown) => Array.isArray(x) && x.length === RATE_SLICES && x.every(count);
  if (typeof c.sliceMs !== 'number' || !(c.sliceMs > 0) || !Number.isSafeInteger(c.head)) return undefined;
  if (!ring(c.total) || (c.failed !== undefined && !ring(c.failed)) || typeof c.above !== 'boolean') return undefined;
  const total = c.total as number[];
  const failed = c.failed as number[] | undefined;
  if (failed?.some((f, i) => f > total[i]!)) return undefined;
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const sumFailed = failed ? sum(failed) : 0;
  const counts: ProbeCounts = { sliceMs: c.sliceMs, head: c.head as number, total: [...total], sumTotal: sum(total), sumFailed, above: c.above };
  if (failed && sumFailed > 0) counts.failed = [...failed];
  return counts;
}

/** What a failure is about. */
export interface FailureSubject {
  backendId: string;
  app: string;
}

/**
 * Adds an occurrence at `now` to a type's history: the streak goes on if the previous
 * occurrence is still in the window (after `cutoff`), and restarts otherwise, as in the seed.
 */
export function addOccurrence(prev: TypeHistory | undefined, now: number, cutoff: number): TypeHistory {
  const kept = prev ? withinWindow(prev.times, cutoff) : [];
  const consecutive = kept.length > 0 ? prev!.consecutive + 1 : 1;
  // concat sizes the copy exactly; `[...kept, now]` reserves 17 slots (208 bytes against 72).
  const times = kept.concat(now);
  if (times.length > MAX_HISTORY_PER_TYPE) times.splice(0, times.length - MAX_HISTORY_PER_TYPE);
  return { times, consecutive };
}

/** The FailureEvent of the occurrence `h` has just recorded (see addOccurrence). */
export function failureEvent(
  type: FailureType,
  subject: FailureSubject,
  severity: Severity,
  message: string,
  details: Record<string, unknown>,
  h: TypeHistory,
  now: number,
): FailureEvent {
  return {
    failureType: type,
    backendId: subject.backendId,
    app: subject.app,
    severity,
    message,
    details,
    timestamp: now,
    consecutiveCount: h.consecutive,
    totalCount: h.times.length,
    firstOccurrence: h.times[0]!,
    critical: isCritical(type, severity, h.consecutive),
  };
}

/**
 * The seed's analyze_health_result: an unhealthy probe yields one event of its type, and a probe
 * slower than max_response_time_ms yields high_response_time even when it was healthy.
 *
 * The seed resets a type's streak only when a different failure type arrives, because it never
 * sees successes. Here any probe without that type ends its streak, healthy ones included: "3
 * consecutive timeouts" should mean three probes in a row. A streak also restarts once its
 * previous occurrence has left the window, as in the seed. Event times come from `now`, the same
 * clock the window is measured on.
 *
 * high_error_rate fires once, on the probe that takes the share of failed probes in the window
 * above max_error_rate_percent (with at least min_error_rate_samples probes counted). That episode
 * ends when the rate falls to half the threshold (or too few probes are left in the window), so a
 * rate hovering around the threshold is one event, not one every few probes; the next crossing
 * fires again. Its streak counts crossings and ends only when the window holds no failed probe: a
 * backend that keeps going over its error budget without ever running clean becomes critical at
 * the fifth crossing.
 *
 * `history` is consumed (see FailureHistory).
 */
export function stepFailures(
  history: FailureHistory,
  result: ProbeResult,
  cfg: FailureDetectionConfig,
  now: number,
): { history: FailureHistory; events: FailureEvent[] } {
  // Neither a failure nor a success of the backend: the windows and streaks stay as they were.
  if (isLocalError(result)) return { history, events: [] };
  const healthType = failureTypeOf(result);
  const slow = result.responseTimeMs > cfg.max_response_time_ms;
  const counts = countProbe(history, !result.healthy, cfg, now);
  const enough = counts.sumTotal >= cfg.min_error_rate_samples;
  const failedTimes100 = counts.sumFailed * 100;
  const overRate = enough && failedTimes100 > cfg.max_error_rate_percent * counts.sumTotal;
  const crossed = overRate && !counts.above;
  if (overRate) counts.above = true;
  else if (!enough || failedTimes100 * 2 <= cfg.max_error_rate_percent * counts.sumTotal) counts.above = false;
  if (healthType === null && !slow && !crossed && !hasTypes(history)) return { history, events: [] };

  const cutoff = now - cfg.failure_rate_window_minutes * 60_000;
  const next: FailureHistory = { probes: counts };
  // Streaks of types this probe did not have are broken; types with nothing left in the window go.
  for (const key of Object.keys(history)) {
    if (key === 'probes') continue;
    const type = key as FailureType;
    const h = history[type]!;
    const times = withinWindow(h.times, cutoff);
    if (times.length === 0) continue;
    const consecutive = type === 'high_error_rate' && counts.sumFailed > 0 ? h.consecutive : 0;
    next[type] = times === h.times && h.consecutive === consecutive ? h : { times, consecutive };
  }

  const events: FailureEvent[] = [];
  const track = (type: FailureType, message: string, details: Record<string, unknown>) => {
    const h = addOccurrence(history[type], now, cutoff);
    next[type] = h;
    events.push(failureEvent(type, result, severityOf(type), message, details, h, now));
  };

  if (healthType !== null) {
    track(healthType, `${healthType}: ${describeProbeFailure(result)}`, {
      response_time_ms: result.responseTimeMs,
      status_code: result.statusCode,
      error: result.error,
      error_class: result.errorClass,
      check_type: result.checkType,
    });
  }
  if (slow) {
    const ms = Math.round(result.responseTimeMs);
    track('high_response_time', `high_response_time: ${ms}ms > ${cfg.max_response_time_ms}ms`, {
      response_time_ms: result.responseTimeMs,
      threshold: cfg.max_response_time_ms,
    });
  }
  if (crossed) {
    const percent = (counts.sumFailed * 100) / counts.sumTotal;
    track(
      'high_error_rate',
      `high_error_rate: ${counts.sumFailed} of ${counts.sumTotal} probes failed (${percent.toFixed(1)}%) ` +
        `in ${cfg.failure_rate_window_minutes} min > ${cfg.max_error_rate_percent}%`,
      {
        error_rate_percent: percent,
        failed_probes: counts.sumFailed,
        total_probes: counts.sumTotal,
        threshold: cfg.max_error_rate_percent,
        window_minutes: cfg.failure_rate_window_minutes,
      },
    );
  }
  return { history: next, events };
}

/**
 * Counts one probe into `history.probes` in place (creating it, or starting over when the window
 * setting changed) and returns it. Slices that fell out of the window are emptied on the way:
 * at most RATE_SLICES of them, however long the gap.
 */
function countProbe(history: FailureHistory, failed: boolean, cfg: FailureDetectionConfig, now: number): ProbeCounts {
  const sliceMs = (cfg.failure_rate_window_minutes * 60_000) / RATE_SLICES;
  const index = Math.floor(now / sliceMs);
  let c = history.probes;
  if (c === undefined || c.sliceMs !== sliceMs) {
    c = { sliceMs, head: index, total: new Array<number>(RATE_SLICES).fill(0), sumTotal: 0, sumFailed: 0, above: false };
    history.probes = c;
  } else if (index > c.head) {
    const end = Math.min(index, c.head + RATE_SLICES);
    for (let i = c.head + 1; i <= end; i++) {
      const slot = i % RATE_SLICES;
      c.sumTotal -= c.total[slot]!;
      c.total[slot] = 0;
      if (c.failed) {
        c.sumFailed -= c.failed[slot]!;
        c.failed[slot] = 0;
      }
    }
    // Assigned, not deleted: the object keeps its shape; JSON leaves an undefined field out.
    if (c.sumFailed === 0) c.failed = undefined;
    c.head = index;
  }
  // A clock that stepped back counts into the newest slice rather than rewriting older ones.
  const slot = c.head % RATE_SLICES;
  c.total[slot]! += 1;
  c.sumTotal += 1;
  if (failed) {
    c.failed ??= new Array<number>(RATE_SLICES).fill(0);
    c.failed[slot]! += 1;
    c.sumFailed += 1;
  }
  return c;
}

/** Whether any failure type has occurrences recorded (without allocating). */
function hasTypes(history: FailureHistory): boolean {
  for (const key in history) if (key !== 'probes') return true;
  return false;
}

/** The seed keeps occurrences strictly newer than the cutoff. Returns `times` itself if all stay. */
function withinWindow(times: number[], cutoff: number): number[] {
  const first = times.findIndex((t) => t > cutoff);
  if (first === 0) return times;
  return first === -1 ? [] : times.slice(first);
}

/**
 * A failure Docker itself reported (exited, OOM-killed, restart loop, never healthy) as the
 * seed's FailureEvent for the backend its container served: severity from the seed's table, a
 * streak of one (each Docker event is news on its own).
 */
export function containerFailureEvent(
  failure: { failureType: FailureType; app: string; details: Record<string, unknown> },
  backendId: string,
  containerName: string,
  now: number,
): FailureEvent {
  const severity = severityOf(failure.failureType);
  return {
    failureType: failure.failureType,
    backendId,
    app: failure.app,
    severity,
    message: `${failure.failureType}: container ${containerName}`,
    details: failure.details,
    timestamp: now,
    consecutiveCount: 1,
    totalCount: 1,
    firstOccurrence: now,
    critical: isCritical(failure.failureType, severity, 1),
  };
}
