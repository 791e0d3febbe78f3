/**
 * Time as a dependency. Health, breaker and scheduling logic read time only through a Clock so
 * tests can drive them with a manual clock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface TimerHandle {
  /** Lets the process exit while this timer is pending (no-op on manual clocks). */
  unref?(): void;
}

/** The real clock. */
export function createSystemClock(): Clock {
  return {
    now: () => Date.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
}

export interface ManualClock extends Clock {
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void;
  set(ms: number): void;
  pendingTimers(): number;
}

/** A clock that only moves when told to; for tests of timer-driven logic. */
export function createManualClock(start = 0): ManualClock {
  let now = start;
  let nextId = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const fireDue = () => {
    for (;;) {
      let dueId: number | undefined;
      let dueAt = Infinity;
      for (const [id, t] of timers) {
        if (t.at <= now && t.at < dueAt) {
          dueAt = t.at;
          dueId = id;
        }
      }
      if (dueId === undefined) return;
      const t = timers.get(dueId)!;
      timers.delete(dueId);
      t.fn();
    }
  };
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return { id } as unknown as TimerHandle;
    },
    clearTimeout(handle) {
      timers.delete((handle as unknown as { id: number }).id);
    },
    advance(ms) {
      const target = now + ms;
      // Step through each timer's due time so timers scheduled by timers fire in order.
      for (;;) {
        let next = Infinity;
        for (const t of timers.values()) if (t.at < next) next = t.at;
        if (next > target) break;
        now = Math.max(now, next);
        fireDue();
      }
      now = target;
    },
    set(ms) {
      now = ms;
      fireDue();
    },
    pendingTimers: () => timers.size,
  };
}
