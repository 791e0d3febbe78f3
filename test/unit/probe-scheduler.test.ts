import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { initialHealth, step } from '../../src/health/thresholds.js';
import type { HealthCheckConfig } from '../../src/config/types.js';
import type { Backend, ProbeResult } from '../../src/model.js';
import { createProbeScheduler, TICK_MS, type ProbeSchedulerOptions, type SkipReason } from '../../src/probe/scheduler.js';
import type { Prober } from '../../src/probe/types.js';
import { probeBackend, seededRandom } from '../helpers/fixtures.js';

/** A prober whose probes finish only when the test says so, healthy or (a timeout) not. */
function fakeProber(now: () => number, healthy = true) {
  const calls: { backend: Backend; at: number; finish(): void }[] = [];
  const prober: Prober = {
    probe: (backend) =>
      new Promise<ProbeResult>((resolve) => {
        const at = now();
        calls.push({
          backend,
          at,
          finish: () =>
            resolve({
              backendId: backend.id,
              app: backend.app,
              checkType: 'http',
              healthy,
              responseTimeMs: 1,
              statusCode: healthy ? 200 : null,
              body: '',
              errorClass: healthy ? null : 'timeout',
              error: healthy ? null : 'timeout',
              startedAt: at,
              finishedAt: now(),
              attempts: 1,
            }),
        });
      }),
  };
  return { prober, calls };
}

/** Lets promise callbacks (probe completions) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const target = (port: number, health: Partial<HealthCheckConfig> = {}) =>
  probeBackend(port, { initial_delay_seconds: 0, period_seconds: 10, ...health });

function setup(over: Partial<ProbeSchedulerOptions> = {}, healthy = true) {
  const clock = createManualClock(1_000_000);
  const t0 = clock.now();
  const fake = fakeProber(() => clock.now() - t0, healthy);
  const results: { id: string; backend: Backend }[] = [];
  const skips: { id: string; reason: SkipReason; at: number }[] = [];
  const lateness: number[] = [];
  const scheduler = createProbeScheduler({
    clock,
    maxConcurrency: 100,
    jitterFraction: 0,
    random: () => 0,
    proberFor: () => fake.prober,
    onResult: (r, backend) => results.push({ id: r.backendId, backend }),
    onSkip: (b, reason) => skips.push({ id: b.id, reason, at: clock.now() - t0 }),
    onProbeStart: (_b, late) => lateness.push(late),
    ...over,
  });
  /** Lets finished probes report, moves to `ms` after the start, and lets timers' work settle. */
  const at = async (ms: number) => {
    await settle();
    clock.set(t0 + ms);
    await settle();
  };
  const startTimes = (id?: string) => fake.calls.filter((c) => !id || c.backend.id === id).map((c) => c.at);
  return { clock, scheduler, calls: fake.calls, results, skips, lateness, at, startTimes };
}

describe('probe scheduler', () => {
  it('probes a new backend first after initial_delay_seconds', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1, { initial_delay_seconds: 30 })]);
    s.scheduler.start();
    await s.at(29_999);
    expect(s.calls).toHaveLength(0);
    await s.at(30_000);
    expect(s.startTimes()).toEqual([30_000]);
  });

  it('adds a first-probe jitter in [0, jitterFraction × period)', async () => {
    const randoms = [0, 0.5, 0.999];
    const s = setup({ jitterFraction: 0.2, random: () => randoms.shift()! });
    const backends = [target(1, { initial_delay_seconds: 5 }), target(2, { initial_delay_seconds: 5 }), target(3, { initial_delay_seconds: 5 })];
    s.scheduler.setTargets(backends);
    s.scheduler.start();
    for (let ms = 0; ms <= 8_000; ms += 10) await s.at(ms);
    // 0.2 × 10 s period = up to 2 s after the 5 s initial delay.
    expect(backends.map((b) => s.startTimes(b.id)[0])).toEqual([5_000, 6_000, 7_000]);
  });

  it('keeps a fixed rate when probes are slow (no drift from probe duration)', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    for (let ms = 0; ms <= 40_000; ms += 1_000) {
      await s.at(ms);
      // Each probe takes 3 s.
      for (const c of s.calls) if (ms === c.at + 3_000) c.finish();
    }
    expect(s.startTimes()).toEqual([0, 10_000, 20_000, 30_000, 40_000]);
    expect(s.lateness.every((l) => l === 0)).toBe(true);
  });

  it('batches probes due within one tick into one timer wake-up', async () => {
    // Due at 0, 0.3 and 1.2 ticks (jitter × the 10 s period).
    const randoms = [0, (0.3 * TICK_MS) / 10_000, (1.2 * TICK_MS) / 10_000];
    const s = setup({ jitterFraction: 1, random: () => randoms.shift()! });
    s.scheduler.setTargets([target(1), target(2), target(3)]);
    s.scheduler.start();
    for (let ms = 0; ms <= 3 * TICK_MS; ms++) await s.at(ms);
    expect(s.startTimes()).toEqual([0, TICK_MS, 2 * TICK_MS]);
    expect(s.lateness.map((l) => Math.round(l * 10) / 10)).toEqual([0, 0.7 * TICK_MS, 0.8 * TICK_MS]);
  });

  it('never runs two probes of one backend at once: the probe due during one starts when it ends, later ones are skipped', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    await s.at(0);
    await s.at(10_000);
    await s.at(20_000);
    expect(s.calls).toHaveLength(1);
    // Due at 10 s: waits for the probe in flight. Due at 20 s: one is already waiting, skipped.
    expect(s.skips.map((k) => [k.reason, k.at])).toEqual([['in_flight', 20_000]]);
    await s.at(25_000);
    s.calls[0]!.finish();
    await s.at(25_000);
    expect(s.startTimes()).toEqual([0, 25_000]);
    // The fixed rate goes on from the probe that caught up: 35 s, not 30 s.
    s.calls[1]!.finish();
    await s.at(30_000);
    await s.at(34_999);
    expect(s.startTimes()).toEqual([0, 25_000]);
    await s.at(35_000);
    expect(s.startTimes()).toEqual([0, 25_000, 35_000]);
    expect(s.lateness).toEqual([0, 0, 0]);
    expect(s.scheduler.stats()).toMatchObject({ started: 3, completed: 2, skipped: 1, inFlight: 1 });
  });

  it('runs at most maxConcurrency probes and starts waiting ones in due order', async () => {
    // Due at 3000, 2000, 1000 and 0 ms: the reverse of the order they were added in.
    const randoms = [0.3, 0.2, 0.1, 0];
    const s = setup({ maxConcurrency: 2, jitterFraction: 1, random: () => randoms.shift()! });
    s.scheduler.setTargets([target(1), target(2), target(3), target(4)]);
    s.scheduler.start();
    await s.at(3_000);
    const ports = () => s.calls.map((c) => c.backend.port);
    expect(ports()).toEqual([4, 3]);
    expect(s.scheduler.stats()).toMatchObject({ inFlight: 2, queued: 2 });
    await s.at(3_500);
    s.calls[1]!.finish();
    await s.at(3_500);
    expect(ports()).toEqual([4, 3, 2]);
    await s.at(4_000);
    s.calls[0]!.finish();
    await s.at(4_000);
    expect(ports()).toEqual([4, 3, 2, 1]);
    // Waiting for a slot counts as lateness.
    expect(s.lateness).toEqual([3_000, 2_000, 1_500, 1_000]);
  });

  it('frees the slot of a probe whose prober rejects (a bug) and keeps probing that backend', async () => {
    const s = setup({ maxConcurrency: 1 });
    const fake = fakeProber(() => s.clock.now() - 1_000_000);
    let rejectNext = true;
    const rejecting: Prober = {
      probe: (backend) => {
        if (backend.port !== 1 || !rejectNext) return fake.prober.probe(backend);
        rejectNext = false;
        return Promise.reject(new Error('prober bug'));
      },
    };
    const scheduler = createProbeScheduler({
      clock: s.clock,
      maxConcurrency: 1,
      jitterFraction: 0,
      random: () => 0,
      proberFor: () => rejecting,
      onResult: (r) => s.results.push({ id: r.backendId, backend: fake.calls.find((c) => c.backend.id === r.backendId)!.backend }),
    });
    scheduler.setTargets([target(1), target(2)]);
    scheduler.start();
    await s.at(0);
    // Backend 1's probe rejected at once; backend 2 got the one slot.
    expect(fake.calls.map((c) => c.backend.port)).toEqual([2]);
    expect(scheduler.stats()).toMatchObject({ inFlight: 1, completed: 1 });
    fake.calls[0]!.finish();
    await s.at(10_000);
    expect(s.results.map((r) => r.id)).toEqual(['web/127.0.0.1:2']);
    expect(fake.calls.map((c) => c.backend.port)).toEqual([2, 1]);
    fake.calls[1]!.finish();
    await s.at(10_000);
    expect(s.results.map((r) => r.id)).toEqual(['web/127.0.0.1:2', 'web/127.0.0.1:1']);
    // Backend 2, due at 10 s too, waited for the slot.
    expect(fake.calls.map((c) => c.backend.port)).toEqual([2, 1, 2]);
    fake.calls[2]!.finish();
    await scheduler.stop();
  });

  it('skips a tick when admit() refuses the backend (breaker open)', async () => {
    let open = true;
    const s = setup({ admit: () => !open });
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    await s.at(0);
    await s.at(10_000);
    expect(s.calls).toHaveLength(0);
    expect(s.skips.map((k) => k.reason)).toEqual(['not_admitted', 'not_admitted']);
    open = false;
    await s.at(20_000);
    expect(s.startTimes()).toEqual([20_000]);
  });

  it('cancels a removed backend and drops its late result', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1), target(2)]);
    s.scheduler.start();
    await s.at(0);
    expect(s.calls).toHaveLength(2);
    s.scheduler.setTargets([target(2)]);
    for (const c of s.calls) c.finish();
    await s.at(10_000);
    expect(s.results.map((r) => r.id)).toEqual(['web/127.0.0.1:2']);
    expect(s.calls.map((c) => c.backend.port)).toEqual([1, 2, 2]);
    expect(s.scheduler.stats().targets).toBe(1);
  });

  it('does not overlap a backend removed and re-added while its probe still runs', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    await s.at(0);
    s.scheduler.setTargets([]);
    s.scheduler.setTargets([target(1)]);
    await s.at(1_000);
    expect(s.calls).toHaveLength(1);
    expect(s.skips).toEqual([]);
    s.calls[0]!.finish();
    await s.at(10_000);
    expect(s.results).toHaveLength(0);
    // Its first probe under the new schedule waited for the old one, then started at once.
    expect(s.startTimes()).toEqual([0, 1_000]);
    s.calls[1]!.finish();
    await s.at(11_000);
    expect(s.startTimes()).toEqual([0, 1_000, 11_000]);
  });

  it('keeps the schedule of a backend whose health config is unchanged, and reports the newest backend object', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    await s.at(0);
    s.calls[0]!.finish();
    await s.at(3_000);
    const updated = { ...target(1), weight: 5 };
    s.scheduler.setTargets([updated]);
    await s.at(9_999);
    expect(s.calls).toHaveLength(1);
    await s.at(10_000);
    s.calls[1]!.finish();
    await s.at(10_000);
    expect(s.startTimes()).toEqual([0, 10_000]);
    expect(s.results[1]!.backend).toBe(updated);
  });

  it('reschedules a backend whose health config changed and drops the result probed with the old one', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    await s.at(0);
    await s.at(3_000);
    s.scheduler.setTargets([target(1, { period_seconds: 5, path: '/ready' })]);
    s.calls[0]!.finish();
    await settle();
    expect(s.results).toHaveLength(0);
    for (let ms = 3_000; ms <= 13_000; ms += 1_000) {
      await s.at(ms);
      for (const c of s.calls) c.finish();
    }
    expect(s.startTimes()).toEqual([0, 3_000, 8_000, 13_000]);
    expect(s.calls[1]!.backend.health.path).toBe('/ready');
  });

  it('does not probe a backend whose health check is disabled', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1, { enabled: false }), target(2)]);
    s.scheduler.start();
    await s.at(0);
    expect(s.calls.map((c) => c.backend.port)).toEqual([2]);
    s.scheduler.setTargets([target(1, { enabled: false }), target(2, { enabled: false })]);
    s.calls[0]!.finish();
    await s.at(30_000);
    expect(s.calls).toHaveLength(1);
    expect(s.scheduler.stats().targets).toBe(0);
  });

  it('serves thousands of backends with one timer', async () => {
    const s = setup({ jitterFraction: 1, random: Math.random });
    s.scheduler.setTargets(Array.from({ length: 5_000 }, (_, i) => target(i + 1)));
    s.scheduler.start();
    expect(s.clock.pendingTimers()).toBe(1);
    await s.at(9_999);
    expect(s.clock.pendingTimers()).toBe(1);
    expect(s.calls.length).toBeGreaterThan(0);
  });

  it('keeps every backend on its own period with hundreds of targets coming and going', async () => {
    const starts = new Map<number, number[]>();
    let seed = 42;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const s = setup({ jitterFraction: 1, random });
    const all = Array.from({ length: 300 }, (_, i) => target(i + 1, { period_seconds: 1 + (i % 5) }));
    s.scheduler.setTargets(all.slice(0, 200));
    s.scheduler.start();
    for (let ms = 0; ms <= 30_000; ms += 5) {
      if (ms === 10_000) s.scheduler.setTargets(all.slice(100, 300));
      await s.at(ms);
      for (const c of s.calls.splice(0)) {
        c.finish();
        starts.set(c.backend.port, [...(starts.get(c.backend.port) ?? []), c.at]);
      }
    }
    expect(s.lateness.every((l) => l >= 0 && l <= TICK_MS)).toBe(true);
    for (const b of all) {
      const times = starts.get(b.port) ?? [];
      const periodMs = b.health.period_seconds * 1000;
      // Removed at 10 s, present throughout, or added at 10 s: each probed about every period.
      const span = b.port <= 100 ? 10_000 : b.port <= 200 ? 30_000 : 20_000;
      expect(Math.abs(times.length - span / periodMs)).toBeLessThanOrEqual(1);
      for (let i = 1; i < times.length; i++) expect(Math.abs(times[i]! - times[i - 1]! - periodMs)).toBeLessThanOrEqual(TICK_MS);
    }
  });

  it('stop() cancels the timer and waits for probes in flight, whose results are dropped', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    await s.at(0);
    let stopped = false;
    const stopping = s.scheduler.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    expect(s.clock.pendingTimers()).toBe(0);
    s.calls[0]!.finish();
    await stopping;
    expect(stopped).toBe(true);
    expect(s.results).toHaveLength(0);
    await s.at(60_000);
    expect(s.calls).toHaveLength(1);
  });
});

describe('probe scheduler: a probe that runs long does not cost the next one', () => {
  /**
   * One backend whose every probe takes `durationMs` (a hung one: its timeout, plus the few ms a
   * timeout fires late), health failure_threshold 3. The clock moves 1 ms at a time.
   */
  async function run(opts: { periodSeconds: number; durationMs: number; untilMs: number; healthy?: boolean }) {
    let health = initialHealth();
    let verdictAt: number | undefined;
    const s = setup({
      onResult: (r) => {
        const next = step(health, { ok: r.healthy }, { failure_threshold: 3, success_threshold: 2 }, r.finishedAt);
        health = next.state;
        if (next.transition?.to === 'unhealthy') verdictAt ??= next.transition.at;
      },
    }, opts.healthy ?? false);
    s.scheduler.setTargets([target(1, { period_seconds: opts.periodSeconds, timeout_seconds: 1 })]);
    s.scheduler.start();
    const finished = new Set<number>();
    for (let ms = 0; ms <= opts.untilMs; ms++) {
      await s.at(ms);
      s.calls.forEach((c, i) => {
        if (!finished.has(i) && ms >= c.at + opts.durationMs) {
          finished.add(i);
          c.finish();
        }
      });
    }
    await s.at(opts.untilMs);
    return { ...s, verdictAt };
  }

  const gaps = (times: number[]) => times.slice(1).map((t, i) => t - times[i]!);

  it('probes a hung backend back to back when the period is just above the timeout (period 1.001 s, timeout 1 s)', async () => {
    const s = await run({ periodSeconds: 1.001, durationMs: 1_005, untilMs: 5_000 });
    // Each probe starts as the previous one times out: every ~1 s, not every other period (~2 s).
    expect(s.startTimes()).toEqual([0, 1_005, 2_010, 3_015, 4_020]);
    expect(s.skips).toEqual([]);
    expect(s.lateness.every((l) => l === 0)).toBe(true);
    // failure_threshold 3: unhealthy as the third probe times out, ~3 x the timeout.
    expect(s.verdictAt).toBe(3_015);
  });

  it('gives a verdict no later with a period just above the timeout than with a longer one', async () => {
    const tight = await run({ periodSeconds: 1.001, durationMs: 1_005, untilMs: 4_000 });
    const loose = await run({ periodSeconds: 1.1, durationMs: 1_005, untilMs: 4_000 });
    expect(loose.startTimes()).toEqual([0, 1_100, 2_200, 3_300]);
    expect(loose.verdictAt).toBe(3_205);
    expect(tight.verdictAt).toBeLessThan(loose.verdictAt!);
  });

  it('probes back to back when the timeout fires exactly on time', async () => {
    const s = await run({ periodSeconds: 1.001, durationMs: 1_000, untilMs: 4_500 });
    expect(gaps(s.startTimes()).every((g) => g >= 1_000 && g <= 1_001)).toBe(true);
    expect(s.startTimes()).toHaveLength(5);
    expect(s.verdictAt).toBeLessThanOrEqual(3_002);
  });

  it('keeps the fixed rate of a backend that answers quickly', async () => {
    const s = await run({ periodSeconds: 1.001, durationMs: 10, untilMs: 5_000, healthy: true });
    expect(s.startTimes()).toEqual([0, 1_001, 2_002, 3_003, 4_004]);
    expect(s.lateness.every((l) => l === 0)).toBe(true);
  });

  it('starts the next probe at once when one ends within a tick of its due time', async () => {
    // Ends 10 ms before the next is due: waiting for the timer could cost up to a tick more.
    const s = await run({ periodSeconds: 1, durationMs: 990, untilMs: 3_000, healthy: true });
    expect(s.startTimes()).toEqual([0, 990, 1_980, 2_970]);
    // 30 ms before: the fixed rate.
    const t = await run({ periodSeconds: 1, durationMs: 970, untilMs: 3_000, healthy: true });
    expect(t.startTimes()).toEqual([0, 1_000, 2_000, 3_000]);
  });

  it('skips the owed probe when admit() refuses the backend by then', async () => {
    let open = false;
    const s = setup({ admit: () => !open });
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    await s.at(0);
    await s.at(10_000);
    open = true;
    s.calls[0]!.finish();
    await s.at(12_000);
    expect(s.startTimes()).toEqual([0]);
    expect(s.skips.map((k) => [k.reason, k.at])).toEqual([['not_admitted', 10_000]]);
  });

  it('does not start the probe owed to a backend removed while its probe ran', async () => {
    const s = setup();
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    await s.at(0);
    await s.at(10_000);
    s.scheduler.setTargets([]);
    s.calls[0]!.finish();
    await s.at(30_000);
    expect(s.startTimes()).toEqual([0]);
    expect(s.scheduler.stats()).toMatchObject({ targets: 0, inFlight: 0 });
  });
});

describe('probe scheduler: faster while ejected, and at once when asked', () => {
  it('uses the period periodFor gives from the result that asked for it, and the usual one when it gives none', async () => {
    let ejected = false;
    const s = setup({ periodFor: () => (ejected ? 500 : undefined) });
    s.scheduler.setTargets([target(1)]);
    s.scheduler.start();
    for (let ms = 0; ms <= 25_000; ms += 250) {
      await s.at(ms);
      // The probe at 10 s ejects the backend; from 11 s it is routed again (the probe already
      // under way then was scheduled while it was out, the one after it is not).
      if (ms === 10_000) ejected = true;
      if (ms === 11_000) ejected = false;
      for (const c of s.calls) if (ms === c.at) c.finish();
    }
    expect(s.startTimes()).toEqual([0, 10_000, 10_500, 11_000, 11_500, 21_500]);
  });

  it('probes a backend at the next tick when asked, then keeps its period from there', async () => {
    const s = setup();
    const b = target(1);
    s.scheduler.setTargets([b]);
    s.scheduler.start();
    await s.at(0);
    s.calls[0]!.finish();
    await s.at(3_000);
    s.scheduler.probeNow(b.id);
    await s.at(3_000 + TICK_MS);
    const now = s.startTimes()[1]!;
    expect(now).toBeGreaterThanOrEqual(3_000);
    expect(now).toBeLessThanOrEqual(3_000 + TICK_MS);
    s.calls[1]!.finish();
    // Fixed rate from the time it was asked for (3 s), as from any due time.
    await s.at(3_000 + 10_000 - TICK_MS - 1);
    expect(s.startTimes()).toHaveLength(2);
    await s.at(3_000 + 10_000 + TICK_MS);
    expect(s.startTimes()[2]).toBeGreaterThanOrEqual(13_000 - TICK_MS);
    expect(s.startTimes()[2]).toBeLessThanOrEqual(13_000 + TICK_MS);
  });
});

describe('probe scheduler at start with the default jitter', () => {
  it('spreads thousands of first probes over the whole period instead of bunching them', async () => {
    const { DEFAULT_PROBES } = await import('../../src/config/defaults.js');
    const clock = createManualClock(0);
    const starts: number[] = [];
    const scheduler = createProbeScheduler({
      clock,
      maxConcurrency: 10_000,
      jitterFraction: DEFAULT_PROBES.jitter_fraction,
      random: seededRandom(12),
      proberFor: () => ({ probe: () => { starts.push(clock.now()); return new Promise(() => {}); } }),
      onResult: () => {},
    });
    scheduler.setTargets(Array.from({ length: 2000 }, (_, i) => target(10_000 + i, { period_seconds: 1 })));
    scheduler.start();
    // The last due ones start at the next tick.
    clock.advance(1000 + TICK_MS);
    expect(starts).toHaveLength(2000);
    // Per 100 ms window: about a tenth of them each, no window bunched and none silent.
    const perWindow = Array.from({ length: 10 }, (_, w) => starts.filter((t) => t >= w * 100 && t < (w + 1) * 100).length);
    expect(Math.max(...perWindow)).toBeLessThan(2000 * 0.15);
    expect(Math.min(...perWindow)).toBeGreaterThan(2000 * 0.05);
  });
});
