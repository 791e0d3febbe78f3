/**
 * The latency outlier rule's arithmetic: a backend's window of recent successful response
 * times, its mean, and the comparison with the median of its app's other backends. Pure.
 *
 * Why mean against median: the backend's own mean moves with every slow answer, so a backend
 * that turns slow is caught within a few requests; the others' median ignores one odd neighbour,
 * so one slow backend cannot make a second one look normal (or a fast one look slow).
 */
import type { PassiveLatencyConfig } from './config.js';

/** [receivedAt epoch ms, response time ms], oldest first. */
export type LatencySample = [number, number];

/** `samples` plus one new sample, trimmed to the window's count and age. */
export function addSample(samples: readonly LatencySample[], at: number, ms: number, cfg: PassiveLatencyConfig): LatencySample[] {
  const kept = inWindow(samples, at, cfg);
  const next = kept.length >= cfg.window_samples ? kept.slice(kept.length - cfg.window_samples + 1) : kept.slice();
  next.push([at, ms]);
  return next;
}

/** The samples still inside the window at `now` (by age; the count is kept by addSample). */
export function inWindow(samples: readonly LatencySample[], now: number, cfg: PassiveLatencyConfig): readonly LatencySample[] {
  const oldest = now - cfg.window_seconds * 1000;
  let i = 0;
  while (i < samples.length && samples[i]![0] < oldest) i++;
  return i === 0 ? samples : samples.slice(i);
}

/** Mean response time over the window at `now`, with its sample count; null below min_samples. */
export function windowMean(
  samples: readonly LatencySample[],
  now: number,
  cfg: PassiveLatencyConfig,
): { mean: number; count: number } | null {
  const window = inWindow(samples, now, cfg);
  if (window.length < cfg.min_samples) return null;
  let sum = 0;
  for (const [, ms] of window) sum += ms;
  return { mean: sum / window.length, count: window.length };
}

/** Ascending means of every backend with enough recent samples; computed once per step. */
export function sortedMeans(means: Iterable<number>): number[] {
  return [...means].sort((a, b) => a - b);
}

/** The median of `sorted` with one occurrence of `value` left out; null when nothing is left. */
export function medianWithout(sorted: readonly number[], value: number): number | null {
  const skip = indexOf(sorted, value);
  const n = skip < 0 ? sorted.length : sorted.length - 1;
  if (n === 0) return null;
  const at = (k: number) => sorted[skip >= 0 && k >= skip ? k + 1 : k]!;
  return n % 2 === 1 ? at((n - 1) / 2) : (at(n / 2 - 1) + at(n / 2)) / 2;
}

/** Binary search for `value` in ascending `sorted`; -1 when absent. */
function indexOf(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v === value) return mid;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/**
 * The rule: null when `mean` is no outlier, else the human text naming its numbers.
 * `sorted` holds the means of every comparable backend, the candidate's own included.
 */
export function latencyVerdict(
  own: { mean: number; count: number },
  sorted: readonly number[],
  cfg: PassiveLatencyConfig,
): string | null {
  if (own.mean <= cfg.min_ms) return null;
  const median = medianWithout(sorted, own.mean);
  if (median === null || own.mean <= cfg.factor * median) return null;
  const others = sorted.length - (indexOf(sorted, own.mean) >= 0 ? 1 : 0);
  return (
    `latency outlier: mean ${Math.round(own.mean)} ms over ${own.count} requests > ${cfg.factor} x ` +
    `${Math.round(median)} ms (median of ${others} other backend${others === 1 ? '' : 's'}) and > ${cfg.min_ms} ms`
  );
}
