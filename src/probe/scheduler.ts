/**
 * Probe scheduler: when each backend is probed, and how many probes run at once.
 *
 * Each backend is due first at initial_delay_seconds plus a random jitter, then every
 * period_seconds at a fixed rate (a slow probe does not push the schedule back). Due times live
 * in a binary min-heap served by ONE timer armed for the earliest of them, so thousands of
 * backends cost O(log n) per probe and no timer each. Due probes beyond maxConcurrency wait in
 * a FIFO queue.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { HealthCheckConfig } from '../config/types.js';
import type { Backend, ProbeResult } from '../model.js';
import type { Prober } from './types.js';

/**
 * The timer fires at most once per TICK_MS and starts everything due by then. Due times are
 * spread out by jitter, so without this the process would wake once per probe; batching them
 * costs up to TICK_MS of lateness and saves wake-ups: the probes of a batch go out together and
 * their answers come back together, handled in fewer event-loop rounds. bench/probe-scale.mjs at
 * 2,000 probes/s: 10 ms ticks 26-31.5 % CPU (7 runs, mean 29.6 %), 25 ms ticks 24.6-27.7 %
 * (3 runs, mean 26.3 %), for start lateness p50/p99 of 13/25 ms instead of 5/11 ms.
 */
export const TICK_MS = 25;

export type SkipReason = 'in_flight' | 'not_admitted';

export interface ProbeSchedulerOptions {
  clock: Clock;
  /** Most probes in flight at once (probes.max_concurrency). */
  maxConcurrency: number;
  /** First-probe spread as a fraction of the period (probes.jitter_fraction). */
  jitterFraction: number;
  /** Uniform in [0, 1); Math.random by default. */
  random?: () => number;
  proberFor(backend: Backend): Prober;
  /** False skips this tick (the backend's breaker is open). */
  admit?(backend: Backend): boolean;
  /** A result for a backend still scheduled with the config it was probed with. */
  onResult(result: ProbeResult, backend: Backend): void;
  onSkip?(backend: Backend, reason: SkipReason): void;
  /** Called as each probe starts, with how late it starts relative to its due time. */
  onProbeStart?(backend: Backend, latenessMs: number): void;
}

export interface ProbeSchedulerStats {
  /** Backends scheduled (enabled health checks). */
  targets: number;
  inFlight: number;
  /** Due probes waiting for a concurrency slot. */
  queued: number;
  started: number;
  completed: number;
  skipped: number;
}

export interface ProbeScheduler {
  /** Reconciles the scheduled set with these backends (the full set, not a delta). */
  setTargets(backends: Backend[]): void;
  start(): void;
  /**
   * Cancels the timer and queued probes, then waits for probes in flight, whose results are
   * dropped: no callback runs after stop() is called. Final: start() does nothing afterwards.
   */
  stop(): Promise<void>;
  stats(): ProbeSchedulerStats;
}

interface Entry {
  backend: Backend;
  /** Next due time, epoch ms. */
  due: number;
  periodMs: number;
  /** When this backend was (re)added; the initial delay counts from here. */
  addedAt: number;
  /** Creation order; breaks ties between equal due times so order is deterministic. */
  seq: number;
  /** Position in the heap, -1 when not scheduled. */
  pos: number;
  /** Bumped when the backend is removed or its config changes; stale results are dropped. */
  gen: number;
  active: boolean;
  pending: boolean;
  inFlight: boolean;
  /** The backend object and gen the probe in flight started with. */
  probing: Backend | null;
  probeGen: number;
  /** The probe's fulfilment and rejection handlers, made once per entry rather than per probe. */
  onProbed: (result: ProbeResult) => void;
  onProbeRejected: () => void;
}

/** Creates a scheduler; nothing is probed before start(). */
export function createProbeScheduler(opts: ProbeSchedulerOptions): ProbeScheduler {
  const { clock } = opts;
  const random = opts.random ?? Math.random;
  const entries = new Map<string, Entry>();
  const heap: Entry[] = [];
  // The FIFO of due probes as parallel arrays (entry, its gen and due time when queued): no
  // object per probe. An entry can be in it twice when its config changed while queued; the
  // stale copy is dropped by gen.
  const queue: (Entry | undefined)[] = [];
  const queueGen: number[] = [];
  const queueDue: number[] = [];
  let queueHead = 0;
  /** Resolves stop()'s wait once the last probe in flight has settled. */
  let whenIdle: (() => void) | null = null;
  let timer: TimerHandle | undefined;
  let armedFor = Infinity;
  let lastFiredAt = -Infinity;
  let live = false;
  let stopped = false;
  let seq = 0;
  let targets = 0;
  let inFlight = 0;
  let started = 0;
  let completed = 0;
  let skipped = 0;

  // --- binary min-heap on (due, seq), with positions kept in the entries for O(log n) removal.
  const before = (a: Entry, b: Entry): boolean => a.due < b.due || (a.due === b.due && a.seq < b.seq);
  const place = (e: Entry, i: number): void => {
    heap[i] = e;
    e.pos = i;
  };
  const siftUp = (i: number): void => {
    const e = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(e, heap[parent]!)) break;
      place(heap[parent]!, i);
      i = parent;
    }
    place(e, i);
  };
  const siftDown = (i: number): void => {
    const e = heap[i]!;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
      if (!before(heap[c]!, e)) break;
      place(heap[c]!, i);
      i = c;
    }
    place(e, i);
  };
  const heapPush = (e: Entry): void => {
    heap.push(e);
    siftUp(heap.length - 1);
  };
  const heapRemove = (e: Entry): void => {
    const i = e.pos;
    if (i < 0) return;
    e.pos = -1;
    const last = heap.pop()!;
    if (last === e) return;
    place(last, i);
    siftUp(i);
    siftDown(last.pos);
  };
  const heapFix = (e: Entry): void => {
    siftUp(e.pos);
    siftDown(e.pos);
  };

  const periodOf = (h: HealthCheckConfig): number => Math.max(1, h.period_seconds * 1000);
  const firstDue = (e: Entry, now: number): number =>
    Math.max(e.addedAt + e.backend.health.initial_delay_seconds * 1000, now) + random() * opts.jitterFraction * e.periodMs;

  const arm = (): void => {
    const top = heap[0];
    const at = live && top ? Math.max(top.due, lastFiredAt + TICK_MS) : Infinity;
    if (at === armedFor) return;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    armedFor = at;
    if (at !== Infinity) timer = clock.setTimeout(onTimer, Math.max(0, at - clock.now()));
  };

  const onTimer = (): void => {
    timer = undefined;
    armedFor = Infinity;
    const now = clock.now();
    lastFiredAt = now;
    for (let top = heap[0]; top && top.due <= now; top = heap[0]) tick(top);
    drain(now);
    arm();
  };

  const skip = (e: Entry, reason: SkipReason): void => {
    skipped++;
    opts.onSkip?.(e.backend, reason);
  };

  const tick = (e: Entry): void => {
    const due = e.due;
    // Fixed rate: the next due time follows from this one, not from when the probe ends.
    e.due = due + e.periodMs;
    heapFix(e);
    if (e.inFlight || e.pending) return skip(e, 'in_flight');
    if (opts.admit && !opts.admit(e.backend)) return skip(e, 'not_admitted');
    e.pending = true;
    queue.push(e);
    queueGen.push(e.gen);
    queueDue.push(due);
  };

  const drain = (now: number): void => {
    while (inFlight < opts.maxConcurrency && queueHead < queue.length) {
      const e = queue[queueHead]!;
      const gen = queueGen[queueHead]!;
      const due = queueDue[queueHead]!;
      queue[queueHead++] = undefined;
      if (gen === e.gen) launch(e, gen, due, now);
    }
    if (queueHead === queue.length) {
      // Only when there is something to drop: emptying an array frees its storage, which the
      // next push then allocates again.
      if (queueHead > 0) clearQueue();
    } else if (queueHead > 1024 && queueHead * 2 > queue.length) {
      queue.splice(0, queueHead);
      queueGen.splice(0, queueHead);
      queueDue.splice(0, queueHead);
      queueHead = 0;
    }
  };

  const clearQueue = (): void => {
    queue.length = 0;
    queueGen.length = 0;
    queueDue.length = 0;
    queueHead = 0;
  };

  const launch = (e: Entry, gen: number, due: number, now: number): void => {
    const backend = e.backend;
    e.pending = false;
    e.inFlight = true;
    e.probing = backend;
    e.probeGen = gen;
    inFlight++;
    started++;
    opts.onProbeStart?.(backend, now - due);
    // Probers never reject; a bug that makes one reject must still free the slot.
    opts.proberFor(backend).probe(backend).then(e.onProbed, e.onProbeRejected);
  };

  const settle = (e: Entry, result: ProbeResult | undefined): void => {
    const backend = e.probing!;
    e.probing = null;
    e.inFlight = false;
    inFlight--;
    completed++;
    if (!e.active) {
      if (entries.get(backend.id) === e) entries.delete(backend.id);
    } else if (result && e.gen === e.probeGen) {
      opts.onResult(result, backend);
    }
    if (!stopped) drain(clock.now());
    else if (inFlight === 0 && whenIdle) whenIdle();
  };

  const deactivate = (e: Entry): void => {
    e.active = false;
    e.pending = false;
    e.gen++;
    targets--;
    heapRemove(e);
    if (!e.inFlight) entries.delete(e.backend.id);
  };

  return {
    setTargets(backends) {
      if (stopped) return;
      const now = clock.now();
      const seen = new Set<string>();
      for (const backend of backends) {
        if (!backend.health.enabled) continue;
        seen.add(backend.id);
        const e = entries.get(backend.id);
        if (!e) {
          const fresh: Entry = {
            backend,
            due: 0,
            periodMs: periodOf(backend.health),
            addedAt: now,
            seq: seq++,
            pos: -1,
            gen: 0,
            active: true,
            pending: false,
            inFlight: false,
            probing: null,
            probeGen: 0,
            onProbed: (result) => settle(fresh, result),
            onProbeRejected: () => settle(fresh, undefined),
          };
          fresh.due = firstDue(fresh, now);
          entries.set(backend.id, fresh);
          targets++;
          heapPush(fresh);
        } else if (!e.active) {
          // Came back while its last probe is still running: a new schedule, same no-overlap guard.
          e.backend = backend;
          e.active = true;
          e.addedAt = now;
          e.periodMs = periodOf(backend.health);
          e.due = firstDue(e, now);
          targets++;
          heapPush(e);
        } else if (sameConfig(e.backend.health, backend.health)) {
          e.backend = backend;
        } else {
          // New config, new schedule. The initial delay still counts from when the backend was
          // first seen, so a running backend is not held back again; a result probed with the
          // old config is dropped (gen).
          e.backend = backend;
          e.gen++;
          e.pending = false;
          e.periodMs = periodOf(backend.health);
          e.due = firstDue(e, now);
          heapFix(e);
        }
      }
      for (const e of entries.values()) if (e.active && !seen.has(e.backend.id)) deactivate(e);
      arm();
    },
    start() {
      if (stopped || live) return;
      live = true;
      arm();
    },
    async stop() {
      stopped = true;
      live = false;
      arm();
      for (const e of entries.values()) if (e.active) deactivate(e);
      clearQueue();
      if (inFlight > 0) await new Promise<void>((resolve) => (whenIdle = resolve));
    },
    stats: () => ({
      targets,
      inFlight,
      queued: queue.length - queueHead,
      started,
      completed,
      skipped,
    }),
  };
}

/** Structural equality of two health configs (plain JSON-like data). */
function sameConfig(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!sameConfig((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
