/**
 * When the sidecar itself was late: a log of event-loop stalls and a probe deadline that does
 * not blame a backend for them.
 *
 * A probe's timeout timer that fires late fires before the poll phase that would have read an
 * answer already waiting in the socket, and a stall earlier in the window may have held the
 * request itself: the loop was busy (a start-up storm, a big render, a GC pause), not the
 * backend. So a stall is recorded whenever a timer runs noticeably after its due time, and a
 * deadline that expires checks how much of its window the loop spent stalled. That time is given
 * back to the backend (the deadline is extended by it, and an answer read in the meantime wins);
 * a deadline whose extensions keep stalling ends as `sidecar_late`, which the prober retries and
 * the scheduler discards rather than counting as the backend's timeout. Pure: time comes from
 * the injected clock.
 */
import type { Clock, TimerHandle } from '../clock.js';

/** A timer this late or less is ordinary timer noise, not a stall. */
export const STALL_NOISE_MS = 20;
/** Stalled time within a deadline's window up to this much is not given back. */
export const LATE_TOLERANCE_MS = 50;
/** Extensions at most before a deadline gives up as `sidecar_late`. */
export const MAX_EXTENSIONS = 3;
/** Stalls remembered (the most recent); older ones are beyond any probe's window. */
const STALLS_KEPT = 256;

/**
 * Over the last OVERLOAD_WINDOW_MS, the loop stalled at least OVERLOAD_STALLED_MS: the sidecar
 * cannot keep up with its probes, so probing faster than a backend's own period makes it worse.
 */
export const OVERLOAD_WINDOW_MS = 1000;
export const OVERLOAD_STALLED_MS = 250;
/** How long a look at the stall log stands before it is taken again. */
const OVERLOAD_CHECK_MS = 100;

/** Intervals during which the event loop ran no timers. */
export interface StallLog {
  /** A timer due at `due` ran at `ran`: between the two the loop was busy with something else. */
  note(due: number, ran: number): void;
  /** Milliseconds of [from, to] during which the loop was stalled. */
  stalledWithin(from: number, to: number): number;
}

/** An empty log; keeps the last STALLS_KEPT stalls in two fixed arrays. */
export function createStallLog(): StallLog {
  const starts = new Float64Array(STALLS_KEPT);
  const ends = new Float64Array(STALLS_KEPT);
  let count = 0;
  let last = -1;
  return {
    note(due, ran) {
      if (ran - due <= STALL_NOISE_MS) return;
      // Timers that were late together describe one stall: merge it with the last one.
      if (last >= 0 && due <= ends[last]! && ran >= starts[last]!) {
        starts[last] = Math.min(starts[last]!, due);
        ends[last] = Math.max(ends[last]!, ran);
        return;
      }
      last = (last + 1) % STALLS_KEPT;
      starts[last] = due;
      ends[last] = ran;
      if (count < STALLS_KEPT) count++;
    },
    stalledWithin(from, to) {
      let total = 0;
      for (let i = 0; i < count; i++) {
        const overlap = Math.min(ends[i]!, to) - Math.max(starts[i]!, from);
        if (overlap > 0) total += overlap;
      }
      return total;
    },
  };
}

/**
 * Whether the loop is overloaded now (see OVERLOAD_STALLED_MS), read from `stalls` at most every
 * OVERLOAD_CHECK_MS: callers ask once per probe, and a look goes over every kept stall.
 */
export function createOverloadGauge(stalls: StallLog, clock: Clock): () => boolean {
  let checkedAt = -Infinity;
  let overloaded = false;
  return () => {
    const now = clock.now();
    if (now - checkedAt >= OVERLOAD_CHECK_MS) {
      checkedAt = now;
      overloaded = stalls.stalledWithin(now - OVERLOAD_WINDOW_MS, now) >= OVERLOAD_STALLED_MS;
    }
    return overloaded;
  };
}

/** How a deadline ended: the backend's time ran out, or the sidecar kept being too late to tell. */
export type DeadlineVerdict = 'timeout' | 'sidecar_late';

export interface DeadlineOptions {
  clock: Clock;
  timeoutMs: number;
  /** Shared with the other deadlines and the scheduler; a private one when omitted. */
  stalls?: StallLog;
  /** `givenBackMs`: how much longer than `timeoutMs` the backend was given (stalled time returned). */
  onExpire(verdict: DeadlineVerdict, givenBackMs: number): void;
}

export interface Deadline {
  /** The answer came: the deadline will not expire. */
  cancel(): void;
}

/**
 * Arms a probe deadline of `timeoutMs` from now. The one place a probe's timeout is decided (HTTP
 * and TCP): stalled time within the window is given back (at most MAX_EXTENSIONS times, each at
 * most `timeoutMs`), so the backend is judged on `timeoutMs` of the sidecar's attention, and a
 * backend that never answers still times out as soon as the sidecar gives it that much.
 */
export function armDeadline(opts: DeadlineOptions): Deadline {
  const { clock } = opts;
  const stalls = opts.stalls ?? createStallLog();
  let windowStart = clock.now();
  let due = windowStart + opts.timeoutMs;
  let extensions = 0;
  let givenBack = 0;
  let timer: TimerHandle | undefined;
  const fire = (): void => {
    timer = undefined;
    const now = clock.now();
    stalls.note(due, now);
    const owed = stalls.stalledWithin(windowStart, now);
    if (owed <= LATE_TOLERANCE_MS) return opts.onExpire('timeout', givenBack);
    if (extensions === MAX_EXTENSIONS) return opts.onExpire('sidecar_late', givenBack);
    // Give the stalled time back (at least one turn, so the poll phase reads what is waiting).
    extensions++;
    windowStart = now;
    const extra = Math.max(1, Math.min(owed, opts.timeoutMs));
    givenBack += extra;
    due = now + extra;
    timer = clock.setTimeout(fire, extra);
  };
  timer = clock.setTimeout(fire, opts.timeoutMs);
  return {
    cancel() {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** ` (…)` naming the time a deadline gave back, for a timeout's text; empty when it gave none. */
export function lateNote(givenBackMs: number): string {
  return givenBackMs <= 0 ? '' : ` (given ${Math.round(givenBackMs)} ms more: the sidecar's event loop was held within the probe's window)`;
}
