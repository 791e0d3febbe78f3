/**
 * Failures that Docker stats reveal, as pure functions of samples (the seed's
 * analyze_container_metrics, plus the memory-leak and deadlock types the seed names but never
 * detects). One ResourceState per container; samples come from src/discovery/docker-stats.ts.
 *
 * - high_resource_usage: CPU (of the container's CPU limit) or memory (of its memory limit)
 *   above max_cpu_percent / max_memory_percent for resource_samples samples in a row; then an
 *   event per sample while it stays above, consecutiveCount 1 on the first.
 * - application_memory_leak: a least-squares line through the working set over
 *   memory_leak_window_minutes climbs steadily enough (R² >= LEAK_MIN_R_SQUARED) to reach the
 *   limit within memory_leak_horizon_minutes; an event per sample while that holds.
 * - application_deadlock: see detectDeadlock.
 */
import type { FailureDetectionConfig } from '../config/types.js';
import type { StatsSample, TcpAccept } from '../discovery/docker-stats.js';
import { addOccurrence, failureEvent, severityOf, type FailureSubject, type TypeHistory } from './classify.js';
import type { FailureEvent, Severity } from './types.js';

/**
 * A memory trend counts as a leak only if the fitted line explains at least this share of the
 * variance. A steady leak scores above 0.95; flat memory with noise, or a GC sawtooth around a
 * level, scores far lower, so a chance upward slope in noise is not taken for a trend. With at
 * least LEAK_MIN_SAMPLES points it also bounds the slope's standard error to under 20% of the
 * slope: SE/slope = sqrt((1 - R²) / (R² (n - 2))) = sqrt(0.2 / (0.8 * 6)) = 0.20 at n = 8.
 */
export const LEAK_MIN_R_SQUARED = 0.8;
/** Fewer points than this are not fitted at all. */
export const LEAK_MIN_SAMPLES = 8;
/** Points kept for the fit at most (a tiny stats interval must not grow the state unbounded). */
export const LEAK_MAX_SAMPLES = 1000;
/** A CPU sample older than this many stats intervals does not tell whether a container is idle now. */
export const DEADLOCK_SAMPLE_MAX_AGE_INTERVALS = 3;

/** Severity of high memory use from this percent on (the seed's analyze_container_metrics). */
const HIGH_MEMORY_PERCENT = 95;

/** What the resource detectors remember of one container. Plain JSON data. */
export interface ResourceState {
  /** Samples in a row above the threshold. */
  cpuAbove: number;
  memoryAbove: number;
  /** [epoch ms, working-set bytes] within memory_leak_window_minutes, oldest first. */
  memory: Array<[number, number]>;
  /** Occurrences per kind of event, for consecutive and windowed counts. */
  cpuEvents?: TypeHistory;
  memoryEvents?: TypeHistory;
  leakEvents?: TypeHistory;
  deadlockEvents?: TypeHistory;
}

/** A container nothing has been sampled of yet. */
export function initialResourceState(): ResourceState {
  return { cpuAbove: 0, memoryAbove: 0, memory: [] };
}

/** A least-squares line through (seconds, bytes) points. */
export interface MemoryTrend {
  /** Bytes per second. */
  slope: number;
  /** Share of the variance the line explains, 0..1 (0 for perfectly flat memory). */
  rSquared: number;
  points: number;
  /** Seconds from the first point to the last. */
  spanSeconds: number;
}

/** Fits a line through [epoch ms, bytes] points; null for fewer than two distinct times. */
export function fitMemoryTrend(points: ReadonlyArray<readonly [number, number]>): MemoryTrend | null {
  const n = points.length;
  if (n < 2) return null;
  // Centred sums: raw epoch milliseconds squared would lose every digit that matters.
  const t0 = points[0]![0];
  let meanX = 0;
  let meanY = 0;
  for (const [t, y] of points) {
    meanX += (t - t0) / 1000;
    meanY += y;
  }
  meanX /= n;
  meanY /= n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const [t, y] of points) {
    const dx = (t - t0) / 1000 - meanX;
    const dy = y - meanY;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (sxx === 0) return null;
  const slope = sxy / sxx;
  const rSquared = syy === 0 ? 0 : (sxy * sxy) / (sxx * syy);
  return { slope, rSquared, points: n, spanSeconds: (points[n - 1]![0] - t0) / 1000 };
}

/** Folds one stats sample of the container behind `subject` into its state. */
export function stepResources(
  state: ResourceState,
  sample: StatsSample,
  subject: FailureSubject,
  cfg: FailureDetectionConfig,
): { state: ResourceState; events: FailureEvent[] } {
  const now = sample.at;
  const step: Step = {
    state,
    next: { ...state },
    events: [],
    sample,
    subject,
    cfg,
    now,
    cutoff: now - cfg.failure_rate_window_minutes * 60_000,
  };
  stepCpu(step);
  stepMemory(step);
  stepLeak(step);
  return { state: step.next, events: step.events };
}

/** One stepResources call in progress: the state before, the state being built, its events. */
interface Step {
  readonly state: ResourceState;
  readonly next: ResourceState;
  readonly events: FailureEvent[];
  readonly sample: StatsSample;
  readonly subject: FailureSubject;
  readonly cfg: FailureDetectionConfig;
  readonly now: number;
  /** Occurrences before this fall out of the windowed counts. */
  readonly cutoff: number;
}

type EventKey = 'cpuEvents' | 'memoryEvents' | 'leakEvents';

function emit(
  step: Step,
  key: EventKey,
  type: FailureEvent['failureType'],
  severity: Severity,
  message: string,
  details: Record<string, unknown>,
): void {
  const h = addOccurrence(step.state[key], step.now, step.cutoff);
  step.next[key] = h;
  step.events.push(failureEvent(type, step.subject, severity, message, details, h, step.now));
}

function endStreak(step: Step, key: EventKey): void {
  const h = step.state[key];
  if (h && h.consecutive !== 0) step.next[key] = { times: h.times, consecutive: 0 };
}

/**
 * Counts samples in a row above `threshold` into `next[above]`; true once the streak is long
 * enough to report, else the event streak ends.
 */
function streak(step: Step, above: 'cpuAbove' | 'memoryAbove', key: EventKey, percent: number, threshold: number): boolean {
  step.next[above] = percent > threshold ? step.state[above] + 1 : 0;
  if (step.next[above] >= step.cfg.resource_samples) return true;
  endStreak(step, key);
  return false;
}

function stepCpu(step: Step): void {
  const { next, sample, cfg } = step;
  // A sample without a CPU rate (the first of a container) neither extends nor breaks the streak.
  if (sample.cpuPercent === null) return;
  if (!streak(step, 'cpuAbove', 'cpuEvents', sample.cpuPercent, cfg.max_cpu_percent)) return;
  emit(step, 'cpuEvents', 'high_resource_usage', 'medium', `high_resource_usage: CPU ${sample.cpuPercent.toFixed(1)}% > ${cfg.max_cpu_percent}%`, {
    cpu_percent: sample.cpuPercent,
    threshold: cfg.max_cpu_percent,
    metric: 'cpu',
    samples_above: next.cpuAbove,
  });
}

function stepMemory(step: Step): void {
  const { next, sample, cfg } = step;
  if (!streak(step, 'memoryAbove', 'memoryEvents', sample.memoryPercent, cfg.max_memory_percent)) return;
  const severity: Severity = sample.memoryPercent > HIGH_MEMORY_PERCENT ? 'high' : 'medium';
  emit(step, 'memoryEvents', 'high_resource_usage', severity, `high_resource_usage: memory ${sample.memoryPercent.toFixed(1)}% > ${cfg.max_memory_percent}%`, {
    memory_percent: sample.memoryPercent,
    memory_bytes: sample.memoryBytes,
    memory_limit_bytes: sample.memoryLimitBytes,
    threshold: cfg.max_memory_percent,
    metric: 'memory',
    samples_above: next.memoryAbove,
  });
}

function stepLeak(step: Step): void {
  const { state, next, sample, cfg } = step;
  next.memory = leakWindow(state.memory, sample, cfg);
  const leak = leakOf(next.memory, sample, cfg);
  if (!leak) {
    endStreak(step, 'leakEvents');
    return;
  }
  const minutes = leak.secondsToLimit / 60;
  emit(
    step,
    'leakEvents',
    'application_memory_leak',
    severityOf('application_memory_leak'),
    `application_memory_leak: +${formatBytes(leak.trend.slope * 60)}/min, ` +
      `${formatBytes(sample.memoryBytes)} of ${formatBytes(sample.memoryLimitBytes)}, limit in ${minutes.toFixed(1)} min`,
    {
      slope_bytes_per_second: leak.trend.slope,
      r_squared: leak.trend.rSquared,
      seconds_to_limit: leak.secondsToLimit,
      memory_bytes: sample.memoryBytes,
      memory_limit_bytes: sample.memoryLimitBytes,
      memory_percent: sample.memoryPercent,
      samples: leak.trend.points,
      window_minutes: cfg.memory_leak_window_minutes,
      horizon_minutes: cfg.memory_leak_horizon_minutes,
    },
  );
}

/** The fit's points after this sample: those within the window, at most LEAK_MAX_SAMPLES. */
function leakWindow(points: Array<[number, number]>, sample: StatsSample, cfg: FailureDetectionConfig): Array<[number, number]> {
  const last = points[points.length - 1];
  // Out-of-order or repeated samples would bend the fit; the sampler never sends them, but be sure.
  if (last && sample.at <= last[0]) return points;
  const cutoff = sample.at - cfg.memory_leak_window_minutes * 60_000;
  let first = 0;
  while (first < points.length && points[first]![0] <= cutoff) first++;
  first = Math.max(first, points.length + 1 - LEAK_MAX_SAMPLES);
  const kept = points.slice(first);
  kept.push([sample.at, sample.memoryBytes]);
  return kept;
}

/**
 * A leak: enough points spanning at least half the window, a rising line that explains the
 * points (R²), and usage that reaches the limit within the horizon at that slope.
 */
function leakOf(
  points: Array<[number, number]>,
  sample: StatsSample,
  cfg: FailureDetectionConfig,
): { trend: MemoryTrend; secondsToLimit: number } | null {
  if (points.length < LEAK_MIN_SAMPLES) return null;
  const trend = fitMemoryTrend(points);
  if (!trend || trend.spanSeconds * 2 < cfg.memory_leak_window_minutes * 60) return null;
  if (trend.slope <= 0 || trend.rSquared < LEAK_MIN_R_SQUARED) return null;
  const headroom = Math.max(0, sample.memoryLimitBytes - sample.memoryBytes);
  const secondsToLimit = headroom / trend.slope;
  if (secondsToLimit > cfg.memory_leak_horizon_minutes * 60) return null;
  return { trend, secondsToLimit };
}

/** What a deadlock check is given; the caller gathers it when HTTP probes keep timing out. */
export interface DeadlockInput {
  subject: FailureSubject;
  /** health_check_timeout probes in a row (the consecutiveCount of the latest such event). */
  consecutiveTimeouts: number;
  /** The container's state (ContainerRef.state): a paused container also accepts and idles. */
  containerState: string;
  /** A bare TCP connect to the backend's port just now (checkTcpAccept). */
  tcp: TcpAccept;
  /** The container's latest stats sample, if any. */
  sample: StatsSample | null;
}

/** Why a check is or is not a deadlock. */
export type DeadlockVerdict =
  | 'deadlock'
  /** Fewer than deadlock_timeouts timeouts in a row. */
  | 'too_few_timeouts'
  /** Paused, restarting, exited: not a hung process. */
  | 'not_running'
  /** Nothing listens: port_not_listening, not a hang. */
  | 'port_closed'
  /** The connect itself failed or timed out: a network problem. */
  | 'unreachable'
  /** No CPU reading, or one too old to describe the container now. */
  | 'no_cpu_sample'
  /** CPU at or above deadlock_cpu_percent: overloaded or spinning, not waiting forever. */
  | 'busy';

/**
 * application_deadlock: HTTP probes time out deadlock_timeouts times in a row, yet the container
 * runs, its port accepts connections (the process is alive and listening) and its CPU is below
 * deadlock_cpu_percent (it is not working on anything): it waits on something that never comes.
 * Call it on each timeout from the deadlock_timeouts-th on; the event's consecutiveCount is 1 at
 * the deadlock_timeouts-th timeout and counts on from there.
 */
export function detectDeadlock(
  state: ResourceState,
  input: DeadlockInput,
  cfg: FailureDetectionConfig,
  now: number,
): { state: ResourceState; verdict: DeadlockVerdict; event: FailureEvent | null } {
  const verdict = deadlockVerdict(input, cfg, now);
  if (verdict !== 'deadlock') return { state, verdict, event: null };
  const cpu = input.sample!.cpuPercent!;
  const added = addOccurrence(state.deadlockEvents, now, now - cfg.failure_rate_window_minutes * 60_000);
  const h: TypeHistory = { times: added.times, consecutive: input.consecutiveTimeouts - cfg.deadlock_timeouts + 1 };
  const event = failureEvent(
    'application_deadlock',
    input.subject,
    severityOf('application_deadlock'),
    `application_deadlock: ${input.consecutiveTimeouts} health checks timed out in a row while the port ` +
      `accepts connections and CPU is ${cpu.toFixed(1)}% (< ${cfg.deadlock_cpu_percent}%)`,
    {
      consecutive_timeouts: input.consecutiveTimeouts,
      cpu_percent: cpu,
      threshold: cfg.deadlock_cpu_percent,
      tcp: input.tcp,
      sample_age_ms: now - input.sample!.at,
    },
    h,
    now,
  );
  return { state: { ...state, deadlockEvents: h }, verdict, event };
}

function deadlockVerdict(input: DeadlockInput, cfg: FailureDetectionConfig, now: number): DeadlockVerdict {
  if (input.consecutiveTimeouts < cfg.deadlock_timeouts) return 'too_few_timeouts';
  if (input.containerState !== 'running') return 'not_running';
  if (input.tcp === 'refused') return 'port_closed';
  if (input.tcp !== 'accepted') return 'unreachable';
  const s = input.sample;
  const maxAgeMs = DEADLOCK_SAMPLE_MAX_AGE_INTERVALS * cfg.stats_interval_seconds * 1000;
  if (!s || s.cpuPercent === null || now - s.at > maxAgeMs) return 'no_cpu_sample';
  return s.cpuPercent < cfg.deadlock_cpu_percent ? 'deadlock' : 'busy';
}

function formatBytes(n: number): string {
  const mib = n / (1024 * 1024);
  return mib >= 1 || mib <= -1 ? `${mib.toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}
