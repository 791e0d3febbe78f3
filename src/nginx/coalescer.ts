/**
 * Debounce with a ceiling, keeping only the latest value (docker-gen's min/max wait): a burst
 * of health changes becomes one nginx reload, and a continuous stream still gets through.
 */
import type { Clock, TimerHandle } from '../clock.js';

export interface Coalescer<T> {
  /** Replaces any pending value; schedules a run. */
  push(value: T): void;
  /** Runs a pending value now and waits for it and any run in flight. */
  flush(): Promise<void>;
  /** Drops the pending value and timer; a run in flight finishes, nothing runs after it. */
  stop(): void;
  /** A value is waiting to run. */
  pending(): boolean;
}

export interface CoalescerOptions<T> {
  clock: Clock;
  /**
   * Quiet time after the last push before running. A value first pushed while a run was going,
   * or within that run's duration after it, waits for a quiet as long as that run took (if longer).
   */
  minWaitMs: number;
  /**
   * Longest time the first pending push waits, however busy; counted from the end of the run in
   * flight when it came, since until then it could not run anyway.
   */
  maxWaitMs: number;
  /** Should not reject; if it does, onError gets the reason and later values still run. */
  run(value: T): Promise<void>;
  onError?(err: unknown): void;
}

/**
 * Runs the latest pushed value `minWaitMs` after the last push, but no later than `maxWaitMs`
 * after the first push it replaced. Runs never overlap: values pushed during a run wait for it,
 * under the same timing rules (run at once if their time has already come).
 *
 * Pushes that come during a run (or soon after) are most likely the same burst going on: at
 * 10,000 backends a mass failure ejects for ~3 s and an apply (nginx -t, reload) takes ~0.9 s, so
 * running at each 0.1 s lull reloaded nginx 3-4 times for one burst (bench:scale). Those values
 * wait for a quiet as long as the last run took, and their maxWaitMs counts from that run's end:
 * the burst then costs one run at its start and one after its end (or at maxWaitMs). Small
 * setups, whose runs take less than minWaitMs, are not affected.
 */
export function createCoalescer<T>(opts: CoalescerOptions<T>): Coalescer<T> {
  const { clock } = opts;
  let value: { v: T } | null = null;
  let firstPushAt = 0;
  let lastPushAt = 0;
  let timer: TimerHandle | null = null;
  let inFlight: Promise<void> | null = null;
  let stopped = false;
  let lastRunMs = 0;
  let lastRunEnd = -Infinity;
  /** The pending value came during or just after a run: it waits for a quiet of lastRunMs. */
  let longQuiet = false;

  const clearTimer = () => {
    if (timer) clock.clearTimeout(timer);
    timer = null;
  };

  const schedule = () => {
    clearTimer();
    const quiet = longQuiet ? Math.max(opts.minWaitMs, lastRunMs) : opts.minWaitMs;
    const due = Math.min(lastPushAt + quiet, firstPushAt + opts.maxWaitMs);
    const wait = due - clock.now();
    if (wait <= 0) fire();
    else timer = clock.setTimeout(fire, wait);
  };

  const fire = () => {
    clearTimer();
    if (!value || inFlight || stopped) return;
    const { v } = value;
    value = null;
    const startedAt = clock.now();
    inFlight = (async () => {
      try {
        await opts.run(v);
      } catch (err) {
        opts.onError?.(err);
      }
    })().finally(() => {
      lastRunEnd = clock.now();
      lastRunMs = lastRunEnd - startedAt;
      // A value that waited behind this run waits its longest from now.
      if (value) firstPushAt = Math.max(firstPushAt, lastRunEnd);
      inFlight = null;
      if (value && !stopped) schedule();
    });
  };

  return {
    push(v) {
      if (stopped) return;
      const now = clock.now();
      if (!value) {
        firstPushAt = now;
        longQuiet = inFlight !== null || now - lastRunEnd < lastRunMs;
      }
      lastPushAt = now;
      value = { v };
      if (!inFlight) schedule();
    },
    async flush() {
      while (inFlight || (value && !stopped)) {
        if (!inFlight) fire();
        await inFlight;
      }
    },
    stop() {
      stopped = true;
      value = null;
      clearTimer();
    },
    pending: () => value !== null,
  };
}
