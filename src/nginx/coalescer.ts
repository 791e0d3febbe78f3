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
  /** Quiet time after the last push before running. */
  minWaitMs: number;
  /** Longest time the first pending push waits, however busy. */
  maxWaitMs: number;
  /** Should not reject; if it does, onError gets the reason and later values still run. */
  run(value: T): Promise<void>;
  onError?(err: unknown): void;
}

/**
 * Runs the latest pushed value `minWaitMs` after the last push, but no later than `maxWaitMs`
 * after the first push it replaced. Runs never overlap: values pushed during a run wait for it,
 * under the same timing rules (run at once if their time has already come).
 */
export function createCoalescer<T>(opts: CoalescerOptions<T>): Coalescer<T> {
  const { clock } = opts;
  let value: { v: T } | null = null;
  let firstPushAt = 0;
  let lastPushAt = 0;
  let timer: TimerHandle | null = null;
  let inFlight: Promise<void> | null = null;
  let stopped = false;

  const clearTimer = () => {
    if (timer) clock.clearTimeout(timer);
    timer = null;
  };

  const schedule = () => {
    clearTimer();
    const due = Math.min(lastPushAt + opts.minWaitMs, firstPushAt + opts.maxWaitMs);
    const wait = due - clock.now();
    if (wait <= 0) fire();
    else timer = clock.setTimeout(fire, wait);
  };

  const fire = () => {
    clearTimer();
    if (!value || inFlight || stopped) return;
    const { v } = value;
    value = null;
    inFlight = (async () => {
      try {
        await opts.run(v);
      } catch (err) {
        opts.onError?.(err);
      }
    })().finally(() => {
      inFlight = null;
      if (value && !stopped) schedule();
    });
  };

  return {
    push(v) {
      if (stopped) return;
      const now = clock.now();
      if (!value) firstPushAt = now;
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
