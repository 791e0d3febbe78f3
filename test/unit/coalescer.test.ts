import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { createCoalescer } from '../../src/nginx/coalescer.js';

/** A run() whose calls are recorded and, when `manual`, finish only when released. */
function recorder(manual = false) {
  const calls: Array<{ value: number; at: number }> = [];
  const releases: Array<() => void> = [];
  let active = 0;
  let maxActive = 0;
  return {
    calls,
    maxActive: () => maxActive,
    release() {
      releases.shift()?.();
    },
    make(clock: { now(): number }) {
      return async (value: number) => {
        calls.push({ value, at: clock.now() });
        active++;
        maxActive = Math.max(maxActive, active);
        if (manual) await new Promise<void>((r) => releases.push(r));
        active--;
      };
    },
  };
}

/** A coalescer on a manual clock (from `start`, default 0) whose runs a recorder records. */
function rig(opts: { minWaitMs: number; maxWaitMs: number; manual?: boolean; start?: number }) {
  const clock = createManualClock(opts.start ?? 0);
  const rec = recorder(opts.manual);
  const c = createCoalescer({ clock, minWaitMs: opts.minWaitMs, maxWaitMs: opts.maxWaitMs, run: rec.make(clock) });
  return { clock, rec, c };
}

/** Lets promise callbacks (run completion) settle. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('createCoalescer', () => {
  it('collapses a burst into one run with the latest value, minWait after the last push', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 200, maxWaitMs: 2000, start: 1000 });
    c.push(1);
    clock.advance(100);
    c.push(2);
    clock.advance(100);
    c.push(3);
    clock.advance(199);
    expect(rec.calls).toEqual([]);
    expect(c.pending()).toBe(true);
    clock.advance(1);
    await settle();
    expect(rec.calls).toEqual([{ value: 3, at: 1400 }]);
    expect(c.pending()).toBe(false);
  });

  it('runs no later than maxWait after the first push of a continuous stream', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 200, maxWaitMs: 1000 });
    for (let i = 1; i <= 25; i++) {
      c.push(i);
      clock.advance(100);
      await settle();
    }
    // Pushes every 100 ms (value i at (i-1)*100) never leave 200 ms of quiet: the cap fires at
    // 1000 with value 10 and at 2000 (1000 after value 11) with value 20; values 21..25
    // (2000..2400) then wait for the quiet after the last one.
    expect(rec.calls).toEqual([
      { value: 10, at: 1000 },
      { value: 20, at: 2000 },
    ]);
    clock.advance(1000);
    await settle();
    expect(rec.calls.slice(2)).toEqual([{ value: 25, at: 2600 }]);
  });

  it('never runs twice at once: a push during a run waits for it, then for a quiet as long as that run', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 100, maxWaitMs: 500, manual: true });
    c.push(1);
    clock.advance(100);
    expect(rec.calls.map((x) => x.value)).toEqual([1]);
    c.push(2);
    clock.advance(50);
    c.push(3);
    clock.advance(1000); // well past both waits, but run 1 is still going
    await settle();
    expect(rec.calls.map((x) => x.value)).toEqual([1]);
    expect(c.pending()).toBe(true);
    rec.release();
    await settle();
    expect(rec.calls.map((x) => x.value)).toEqual([1]);
    // Run 1 took 1050 ms: value 3 waits for 1050 ms of quiet after its push (150 -> 1200), not
    // for maxWait, which counts from run 1's end (1150 -> 1650).
    clock.advance(50);
    await settle();
    expect(rec.calls).toEqual([
      { value: 1, at: 100 },
      { value: 3, at: 1200 },
    ]);
    rec.release();
    await settle();
    expect(rec.maxActive()).toBe(1);
  });

  it('waits minWait after a run when the held push is recent', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 100, maxWaitMs: 500, manual: true });
    c.push(1);
    clock.advance(100);
    c.push(2);
    rec.release();
    await settle();
    expect(rec.calls.map((x) => x.value)).toEqual([1]);
    clock.advance(100);
    expect(rec.calls).toEqual([
      { value: 1, at: 100 },
      { value: 2, at: 200 },
    ]);
    rec.release();
  });

  it('holds a burst that goes on during a run until a quiet as long as that run (or maxWait), not its first lull', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 100, maxWaitMs: 2000, manual: true });
    c.push(1);
    clock.advance(100); // run 1 starts at 100
    let v = 1;
    const pushAt = async (at: number) => {
      clock.advance(at - clock.now());
      c.push(++v);
      await settle();
    };
    for (let at = 200; at <= 1000; at += 100) await pushAt(at);
    rec.release(); // run 1 took 900 ms (100 -> 1000)
    await settle();
    await pushAt(1100);
    await pushAt(1200);
    await pushAt(1450); // a 250 ms lull: past minWait, but the burst is not over
    await pushAt(1500);
    clock.advance(2399 - clock.now());
    await settle();
    expect(rec.calls).toEqual([{ value: 1, at: 100 }]);
    // A quiet of 900 ms after the last push (1500 -> 2400); maxWait counts from run 1's end (3000).
    clock.advance(1);
    await settle();
    expect(rec.calls).toEqual([
      { value: 1, at: 100 },
      { value: v, at: 2400 },
    ]);
    rec.release();
  });

  it('counts maxWait of a value that waited behind a run from that run\'s end', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 100, maxWaitMs: 1000, manual: true });
    c.push(1);
    clock.advance(100); // run 1: 100 -> 600
    let v = 1;
    const push = async () => {
      clock.advance(100);
      c.push(++v);
      await settle();
    };
    while (clock.now() < 600) await push();
    rec.release();
    await settle();
    // A push every 100 ms never leaves 500 ms of quiet; maxWait counts from 600 (not from the
    // first push at 200), so the next run is at 1600, with the value pushed at 1500.
    while (clock.now() < 1600) await push();
    expect(rec.calls).toEqual([
      { value: 1, at: 100 },
      { value: 15, at: 1600 },
    ]);
    rec.release();
  });

  it('waits only minWait for a push that comes longer than the last run after it', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 100, maxWaitMs: 2000, manual: true });
    c.push(1);
    clock.advance(100);
    clock.advance(900);
    rec.release(); // run 1 took 900 ms
    await settle();
    clock.advance(901);
    c.push(2);
    clock.advance(100);
    await settle();
    expect(rec.calls).toEqual([
      { value: 1, at: 100 },
      { value: 2, at: 2001 },
    ]);
    rec.release();
  });

  it('flush runs a pending value now and waits for it', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 200, maxWaitMs: 2000 });
    c.push(1);
    c.push(2);
    await c.flush();
    expect(rec.calls).toEqual([{ value: 2, at: 0 }]);
    expect(c.pending()).toBe(false);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('flush waits for the run in flight and then runs the value held behind it', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 100, maxWaitMs: 500, manual: true });
    c.push(1);
    clock.advance(100);
    c.push(2);
    let flushed = false;
    const flushing = c.flush().then(() => (flushed = true));
    await settle();
    expect(flushed).toBe(false);
    rec.release();
    await settle();
    expect(rec.calls.map((x) => x.value)).toEqual([1, 2]);
    expect(flushed).toBe(false);
    rec.release();
    await flushing;
    expect(rec.maxActive()).toBe(1);
  });

  it('stop drops the pending value and ignores later pushes', async () => {
    const { clock, rec, c } = rig({ minWaitMs: 100, maxWaitMs: 500 });
    c.push(1);
    c.stop();
    c.push(2);
    clock.advance(1000);
    await c.flush();
    expect(rec.calls).toEqual([]);
    expect(c.pending()).toBe(false);
  });

  it('keeps going after a run rejects, reporting the error', async () => {
    const clock = createManualClock(0);
    const errors: unknown[] = [];
    const seen: number[] = [];
    const c = createCoalescer<number>({
      clock,
      minWaitMs: 10,
      maxWaitMs: 100,
      run: async (v) => {
        seen.push(v);
        if (v === 1) throw new Error('boom');
      },
      onError: (err) => errors.push(err),
    });
    c.push(1);
    await c.flush();
    c.push(2);
    await c.flush();
    expect(seen).toEqual([1, 2]);
    expect(errors.map((e) => (e as Error).message)).toEqual(['boom']);
  });
});
