import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { failure, runAttempts, success, timeoutOutcome } from '../../src/probe/outcome.js';
import { createProbeScheduler } from '../../src/probe/scheduler.js';
import { armDeadline, createOverloadGauge, createStallLog, MAX_EXTENSIONS, type DeadlineVerdict } from '../../src/probe/stalls.js';
import { probeBackend, probeResult } from '../helpers/fixtures.js';

function deadline(timeoutMs = 2000) {
  const clock = createManualClock(1_000_000);
  const stalls = createStallLog();
  const verdicts: { verdict: DeadlineVerdict; at: number }[] = [];
  const t0 = clock.now();
  const d = armDeadline({ clock, timeoutMs, stalls, onExpire: (verdict) => verdicts.push({ verdict, at: clock.now() - t0 }) });
  return { clock, stalls, verdicts, d, t0 };
}

describe('stall log', () => {
  it('ignores timer noise and measures the stalled part of a window', () => {
    const log = createStallLog();
    log.note(100, 110);
    expect(log.stalledWithin(0, 1000)).toBe(0);
    log.note(200, 700);
    expect(log.stalledWithin(0, 1000)).toBe(500);
    expect(log.stalledWithin(600, 1000)).toBe(100);
    expect(log.stalledWithin(800, 1000)).toBe(0);
  });

  it('counts timers that were late together as one stall', () => {
    const log = createStallLog();
    log.note(200, 700);
    log.note(300, 700);
    log.note(150, 710);
    expect(log.stalledWithin(0, 1000)).toBe(560);
  });
});

describe('overload gauge', () => {
  it('says overloaded while the loop stalled 250 ms or more of the last second, looking again every 100 ms', () => {
    const clock = createManualClock(10_000);
    const log = createStallLog();
    const overloaded = createOverloadGauge(log, clock);
    log.note(9_500, 9_700); // 200 ms
    expect(overloaded()).toBe(false);
    log.note(9_800, 9_860); // 260 ms in all
    clock.advance(50);
    expect(overloaded()).toBe(false); // the last look stands for 100 ms
    clock.advance(50);
    expect(overloaded()).toBe(true);
    // 10,600: only 9,860 - 9,600 = 160 ms of the window [9,600, 10,600] was stalled.
    clock.advance(500);
    expect(overloaded()).toBe(false);
  });
});

describe('probe deadline', () => {
  it('expires as the backend timing out when its timer fires on time', () => {
    const t = deadline();
    t.clock.advance(1999);
    expect(t.verdicts).toEqual([]);
    t.clock.advance(1);
    expect(t.verdicts).toEqual([{ verdict: 'timeout', at: 2000 }]);
  });

  it('gives the backend back the time its timer was late, so an answer read meanwhile wins', () => {
    const t = deadline();
    // The event loop was busy from 1.5 s to 2.6 s: the timer fires 600 ms late.
    t.clock.set(t.t0 + 2600);
    expect(t.verdicts).toEqual([]);
    // The answer that was waiting in the socket is read in the same turn: no timeout at all.
    t.d.cancel();
    t.clock.advance(5000);
    expect(t.verdicts).toEqual([]);
  });

  it('still times out a silent backend once it had its whole timeout of the sidecar’s attention', () => {
    const t = deadline();
    t.clock.set(t.t0 + 2600);
    t.clock.advance(599);
    expect(t.verdicts).toEqual([]);
    t.clock.advance(1);
    expect(t.verdicts).toEqual([{ verdict: 'timeout', at: 3200 }]);
  });

  it('gives back a stall that another timer saw earlier in the window, though its own timer is on time', () => {
    const t = deadline();
    // The scheduler's timer, due at 100 ms, ran at 1,900 ms: the request could hardly go out.
    t.clock.advance(1900);
    t.stalls.note(t.t0 + 100, t.t0 + 1900);
    t.clock.advance(100);
    expect(t.verdicts).toEqual([]);
    t.clock.advance(1800);
    expect(t.verdicts).toEqual([{ verdict: 'timeout', at: 3800 }]);
  });

  it('gives up as sidecar_late, not as a timeout, when every extension stalls too', () => {
    const t = deadline(1000);
    let at = 1000;
    for (let i = 0; i <= MAX_EXTENSIONS; i++) {
      at += 5000;
      t.clock.set(t.t0 + at);
    }
    expect(t.verdicts).toEqual([{ verdict: 'sidecar_late', at }]);
  });
});

describe('probes the sidecar stalled through', () => {
  it('are attempted once more for free, and the verdict of that attempt counts', async () => {
    const outcomes = [timeoutOutcome('sidecar_late', 'timeout after 2000 ms'), success(200)];
    const r = await runAttempts(probeBackend(1, { max_retries: 0 }), 'http', createManualClock(), async () => outcomes.shift()!);
    expect(r).toMatchObject({ healthy: true, attempts: 1 });
    expect(r.sidecarLate).toBeUndefined();
  });

  it('come out marked when the sidecar stalls through the retry as well', async () => {
    const late = timeoutOutcome('sidecar_late', 'timeout after 2000 ms');
    const r = await runAttempts(probeBackend(1, { max_retries: 0 }), 'http', createManualClock(), async () => late);
    expect(r).toMatchObject({ healthy: false, sidecarLate: true, errorClass: 'timeout' });
    expect(r.error).toMatch(/not judged/);
  });

  it('a real timeout is still a failure of the backend', async () => {
    const r = await runAttempts(probeBackend(1, { max_retries: 0 }), 'http', createManualClock(), async () => timeoutOutcome('timeout', 'timeout after 2000 ms'));
    expect(r).toMatchObject({ healthy: false, errorClass: 'timeout' });
    expect(r.sidecarLate).toBeUndefined();
    expect(failure('timeout', 'x').sidecarLate).toBeUndefined();
  });

  it('are discarded by the scheduler: never handed on as a result, reported as a sidecar_late skip', async () => {
    const clock = createManualClock(0);
    const results: unknown[] = [];
    const skips: string[] = [];
    const b = probeBackend(1, { initial_delay_seconds: 0, period_seconds: 10 });
    const scheduler = createProbeScheduler({
      clock,
      maxConcurrency: 10,
      jitterFraction: 0,
      proberFor: () => ({ probe: async () => probeResult({ backendId: b.id, healthy: false, errorClass: 'timeout', sidecarLate: true }) }),
      onResult: (r) => results.push(r),
      onSkip: (_b, reason) => skips.push(reason),
    });
    scheduler.setTargets([b]);
    scheduler.start();
    clock.advance(0);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(results).toEqual([]);
    expect(skips).toEqual(['sidecar_late']);
    await scheduler.stop();
  });

  it('the scheduler logs its own late firings as stalls', () => {
    const clock = createManualClock(0);
    const stalls = createStallLog();
    const scheduler = createProbeScheduler({
      clock,
      maxConcurrency: 10,
      jitterFraction: 0,
      stalls,
      proberFor: () => ({ probe: () => new Promise(() => {}) }),
      onResult: () => {},
    });
    scheduler.setTargets([probeBackend(1, { initial_delay_seconds: 1, period_seconds: 10 })]);
    scheduler.start();
    clock.set(1700);
    expect(stalls.stalledWithin(0, 2000)).toBe(700);
  });
});
