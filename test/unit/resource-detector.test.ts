import { describe, expect, it } from 'vitest';
import { DEFAULT_FAILURE_DETECTION } from '../../src/config/schema.js';
import type { FailureDetectionConfig } from '../../src/config/types.js';
import type { StatsSample } from '../../src/discovery/docker-stats.js';
import {
  LEAK_MIN_SAMPLES,
  detectDeadlock,
  fitMemoryTrend,
  initialResourceState,
  stepResources,
  type DeadlockInput,
  type ResourceState,
} from '../../src/health/resource-detector.js';
import type { FailureEvent } from '../../src/health/types.js';

const MiB = 1024 * 1024;
const LIMIT = 512 * MiB;
const subject = { backendId: 'web/127.0.0.1:8001', app: 'web' };
const cfg: FailureDetectionConfig = {
  ...DEFAULT_FAILURE_DETECTION,
  max_cpu_percent: 90,
  max_memory_percent: 90,
  resource_samples: 3,
  stats_interval_seconds: 10,
  memory_leak_window_minutes: 10,
  memory_leak_horizon_minutes: 60,
  deadlock_timeouts: 3,
  deadlock_cpu_percent: 5,
};

function sample(at: number, over: Partial<StatsSample> = {}): StatsSample {
  const memoryBytes = over.memoryBytes ?? 100 * MiB;
  return {
    at,
    cpuPercent: 10,
    memoryBytes,
    memoryLimitBytes: LIMIT,
    memoryPercent: (memoryBytes / (over.memoryLimitBytes ?? LIMIT)) * 100,
    ...over,
  };
}

/** Feeds samples in order; returns the final state and the events of each step. */
function feed(samples: StatsSample[], from: ResourceState = initialResourceState(), c = cfg) {
  let state = from;
  const events: FailureEvent[][] = [];
  for (const s of samples) {
    const out = stepResources(state, s, subject, c);
    state = out.state;
    events.push(out.events);
  }
  return { state, events };
}

/** One sample every 10 s for `minutes`, memory from `memory(seconds)`. */
function memorySeries(minutes: number, memory: (seconds: number) => number, start = 0): StatsSample[] {
  const out: StatsSample[] = [];
  for (let s = 0; s <= minutes * 60; s += 10) out.push(sample(start + s * 1000, { memoryBytes: Math.round(memory(s)) }));
  return out;
}

/** A deterministic pseudo-random sequence in [-1, 1), so "noise" is the same on every run. */
function noise(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return (x / 2147483648) * 2 - 1;
  };
}

describe('high_resource_usage', () => {
  it('reports CPU once it stays above max_cpu_percent for resource_samples samples in a row', () => {
    const { events } = feed([95, 96, 97, 98].map((cpu, i) => sample(i * 10_000, { cpuPercent: cpu })));
    expect(events.map((e) => e.length)).toEqual([0, 0, 1, 1]);
    expect(events[2]![0]).toMatchObject({
      failureType: 'high_resource_usage',
      backendId: subject.backendId,
      app: 'web',
      severity: 'medium',
      message: 'high_resource_usage: CPU 97.0% > 90%',
      details: { cpu_percent: 97, threshold: 90, metric: 'cpu', samples_above: 3 },
      consecutiveCount: 1,
      timestamp: 20_000,
      critical: false,
    });
    expect(events[3]![0]).toMatchObject({ consecutiveCount: 2, totalCount: 2, firstOccurrence: 20_000 });
  });

  it('does not report a short CPU spike', () => {
    const { events } = feed([95, 99, 50, 95, 99, 40].map((cpu, i) => sample(i * 10_000, { cpuPercent: cpu })));
    expect(events.flat()).toEqual([]);
  });

  it('does not report CPU at exactly the threshold', () => {
    const { events } = feed([90, 90, 90, 90].map((cpu, i) => sample(i * 10_000, { cpuPercent: cpu })));
    expect(events.flat()).toEqual([]);
  });

  it('neither extends nor breaks the CPU streak with a sample that has no CPU rate', () => {
    const cpus = [95, null, 95, 95];
    const { events } = feed(cpus.map((cpu, i) => sample(i * 10_000, { cpuPercent: cpu })));
    expect(events.map((e) => e.length)).toEqual([0, 0, 0, 1]);
  });

  it('starts the event streak over after the CPU has come down', () => {
    const cpus = [95, 95, 95, 95, 10, 95, 95, 95];
    const { events } = feed(cpus.map((cpu, i) => sample(i * 10_000, { cpuPercent: cpu })));
    expect(events.map((e) => e[0]?.consecutiveCount ?? 0)).toEqual([0, 0, 1, 2, 0, 0, 0, 1]);
    expect(events[7]![0]!.totalCount).toBe(3);
  });

  it('rates memory above 95% high and memory above the threshold but not 95% medium, like the seed', () => {
    const at = (p: number) => (p / 100) * LIMIT;
    const { events } = feed([92, 93, 94, 96].map((p, i) => sample(i * 10_000, { memoryBytes: at(p) })));
    expect(events.map((e) => e.map((x) => x.severity))).toEqual([[], [], ['medium'], ['high']]);
    expect(events[3]![0]).toMatchObject({
      message: 'high_resource_usage: memory 96.0% > 90%',
      details: { memory_bytes: at(96), memory_limit_bytes: LIMIT, threshold: 90, metric: 'memory' },
    });
    expect(events[3]![0]!.details.memory_percent).toBeCloseTo(96, 6);
  });

  it('tracks CPU and memory streaks separately and reports both when both are high', () => {
    const s = (i: number) => sample(i * 10_000, { cpuPercent: 99, memoryBytes: 0.95 * LIMIT });
    const { events } = feed([s(0), s(1), s(2)]);
    expect(events[2]!.map((e) => e.details.metric)).toEqual(['cpu', 'memory']);
  });
});

describe('application_memory_leak', () => {
  it('fits a straight line exactly', () => {
    const trend = fitMemoryTrend([0, 1, 2, 3].map((s) => [1_700_000_000_000 + s * 1000, 100 + 5 * s] as [number, number]));
    expect(trend!.slope).toBeCloseTo(5, 9);
    expect(trend!.rSquared).toBeCloseTo(1, 9);
    expect(trend!.spanSeconds).toBe(3);
  });

  it('reports a steady climb that reaches the limit within the horizon, with slope and time to limit', () => {
    // 100 MiB, +0.2 MiB/s: 412 MiB of headroom lasts about 34 minutes, inside the 60-minute horizon.
    const { events } = feed(memorySeries(6, (s) => 100 * MiB + 0.2 * MiB * s));
    const leaks = events.map((e) => e.filter((x) => x.failureType === 'application_memory_leak'));
    // Nothing until the samples span half the window (5 minutes = sample 30).
    expect(leaks.slice(0, 30).flat()).toEqual([]);
    expect(leaks[30]).toHaveLength(1);
    const leak = leaks[30]![0]!;
    expect(leak).toMatchObject({ severity: 'low', consecutiveCount: 1, critical: false, details: { samples: 31, window_minutes: 10, horizon_minutes: 60 } });
    expect(leak.details.slope_bytes_per_second).toBeCloseTo(0.2 * MiB, 0);
    expect(leak.details.r_squared).toBeCloseTo(1, 6);
    // At 300 s usage is 160 MiB: 352 MiB left at 0.2 MiB/s = 1760 s.
    expect(leak.details.seconds_to_limit).toBeCloseTo(1760, 3);
    expect(leak.message).toBe('application_memory_leak: +12.0 MiB/min, 160.0 MiB of 512.0 MiB, limit in 29.3 min');
    // It keeps reporting while the trend holds, counting on.
    expect(leaks.at(-1)![0]!.consecutiveCount).toBe(leaks.length - 30);
  });

  it('does not report a climb too slow to reach the limit within the horizon', () => {
    // +0.05 MiB/s from 100 MiB: 412 MiB takes about 137 minutes.
    const { events } = feed(memorySeries(10, (s) => 100 * MiB + 0.05 * MiB * s));
    expect(events.flat()).toEqual([]);
  });

  it('does not report flat memory', () => {
    expect(feed(memorySeries(10, () => 300 * MiB)).events.flat()).toEqual([]);
  });

  it('does not report noisy memory with no trend, even close to the limit', () => {
    // 420 MiB +- 30 MiB of noise: a chance slope of a few KiB/s would reach 512 MiB within the hour.
    const r = noise(42);
    const { events, state } = feed(memorySeries(10, () => 420 * MiB + 30 * MiB * r()));
    expect(events.flat().filter((e) => e.failureType === 'application_memory_leak')).toEqual([]);
    expect(fitMemoryTrend(state.memory)!.rSquared).toBeLessThan(0.8);
  });

  it('does not report a garbage-collection sawtooth around a level', () => {
    // Climbs 40 MiB over a minute, drops back, again and again.
    const { events } = feed(memorySeries(10, (s) => 300 * MiB + (s % 60) * (40 / 60) * MiB));
    expect(events.flat()).toEqual([]);
  });

  it('reports a leak under noise when the trend dominates', () => {
    const r = noise(7);
    const { events } = feed(memorySeries(8, (s) => 100 * MiB + 0.3 * MiB * s + 5 * MiB * r()));
    const leaks = events.flat().filter((e) => e.failureType === 'application_memory_leak');
    expect(leaks.length).toBeGreaterThan(0);
    expect(leaks[0]!.details.r_squared as number).toBeGreaterThan(0.8);
  });

  it('waits for enough samples even when they span half the window', () => {
    // A 1-minute window sampled every 10 s: 7 points span it, fewer than LEAK_MIN_SAMPLES.
    const short = { ...cfg, memory_leak_window_minutes: 1, memory_leak_horizon_minutes: 600 };
    const series = memorySeries(1, (s) => 100 * MiB + MiB * s);
    expect(series.length).toBeLessThan(LEAK_MIN_SAMPLES);
    expect(feed(series, initialResourceState(), short).events.flat()).toEqual([]);
  });

  it('fits only the samples within the window', () => {
    // Flat for 20 minutes, then climbing: the flat part leaves the window and the climb shows.
    const series = memorySeries(30, (s) => (s < 1200 ? 100 * MiB : 100 * MiB + 0.5 * MiB * (s - 1200)));
    const { state, events } = feed(series);
    expect(state.memory[0]![0]).toBeGreaterThan(series.at(-1)!.at - 10 * 60_000);
    expect(events.at(-1)!.some((e) => e.failureType === 'application_memory_leak')).toBe(true);
  });

  it('ignores a sample that is not newer than the last one for the fit', () => {
    const first = feed([sample(10_000)]).state;
    const out = stepResources(first, sample(10_000, { memoryBytes: 1 }), subject, cfg);
    expect(out.state.memory).toEqual([[10_000, 100 * MiB]]);
  });
});

describe('application_deadlock', () => {
  const now = 1_000_000;
  function input(over: Partial<DeadlockInput> = {}): DeadlockInput {
    return {
      subject,
      consecutiveTimeouts: 3,
      containerState: 'running',
      tcp: 'accepted',
      sample: sample(now - 4000, { cpuPercent: 0.4 }),
      ...over,
    };
  }

  it('reports a deadlock: timeouts in a row, the port accepts, the CPU is idle', () => {
    const out = detectDeadlock(initialResourceState(), input(), cfg, now);
    expect(out.verdict).toBe('deadlock');
    expect(out.event).toMatchObject({
      failureType: 'application_deadlock',
      severity: 'low',
      consecutiveCount: 1,
      totalCount: 1,
      timestamp: now,
      message: 'application_deadlock: 3 health checks timed out in a row while the port accepts connections and CPU is 0.4% (< 5%)',
      details: { consecutive_timeouts: 3, cpu_percent: 0.4, threshold: 5, tcp: 'accepted', sample_age_ms: 4000 },
    });
  });

  it('counts on with further timeouts and becomes critical at the fifth report', () => {
    let state = initialResourceState();
    const counts: Array<[number, boolean]> = [];
    for (let t = 3; t <= 7; t++) {
      const out = detectDeadlock(state, input({ consecutiveTimeouts: t }), cfg, now + t * 1000);
      state = out.state;
      counts.push([out.event!.consecutiveCount, out.event!.critical]);
    }
    expect(counts).toEqual([[1, false], [2, false], [3, false], [4, false], [5, true]]);
  });

  it('calls a container that times out with busy CPU overloaded, not deadlocked', () => {
    const out = detectDeadlock(initialResourceState(), input({ sample: sample(now - 1000, { cpuPercent: 98 }) }), cfg, now);
    expect(out).toMatchObject({ verdict: 'busy', event: null });
  });

  it('does not call a closed port a deadlock', () => {
    expect(detectDeadlock(initialResourceState(), input({ tcp: 'refused' }), cfg, now).verdict).toBe('port_closed');
    expect(detectDeadlock(initialResourceState(), input({ tcp: 'timeout' }), cfg, now).verdict).toBe('unreachable');
  });

  it('waits for deadlock_timeouts timeouts in a row', () => {
    expect(detectDeadlock(initialResourceState(), input({ consecutiveTimeouts: 2 }), cfg, now).verdict).toBe('too_few_timeouts');
  });

  it('does not call a paused container deadlocked', () => {
    expect(detectDeadlock(initialResourceState(), input({ containerState: 'paused' }), cfg, now).verdict).toBe('not_running');
  });

  it('needs a recent CPU reading', () => {
    const stale = sample(now - 31_000, { cpuPercent: 0 });
    expect(detectDeadlock(initialResourceState(), input({ sample: stale }), cfg, now).verdict).toBe('no_cpu_sample');
    expect(detectDeadlock(initialResourceState(), input({ sample: null }), cfg, now).verdict).toBe('no_cpu_sample');
    const noRate = sample(now, { cpuPercent: null });
    expect(detectDeadlock(initialResourceState(), input({ sample: noRate }), cfg, now).verdict).toBe('no_cpu_sample');
  });

  it('leaves the state alone when it is not a deadlock', () => {
    const state = initialResourceState();
    expect(detectDeadlock(state, input({ tcp: 'refused' }), cfg, now).state).toBe(state);
  });
});
