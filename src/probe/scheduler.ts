/**
 * Probe scheduler: when each backend is probed, and how many probes run at once.
 *
 * Each backend is due first at initial_delay_seconds plus a random jitter, then every
 * period_seconds at a fixed rate (a slow probe does not push the schedule back). Due times live
 * in a binary min-heap served by ONE timer armed for the earliest of them, so thousands of
 * backends cost O(log n) per probe and no timer each. Due probes beyond maxConcurrency wait in
 * a FIFO queue.
 *
 * Never two probes of one backend at once. A probe still running when the next one is due does
 * not cost that one: it starts the moment the running one ends, and the fixed rate continues
 * from there (catchUp). So a hung backend whose timeout is about its period is probed back to
 * back and reaches failure_threshold in about threshold x timeout; only due times that pass
 * while one is already owed are skipped (`in_flight`).
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { HealthCheckConfig } from '../config/types.js';
import type { Backend, ProbeResult } from '../model.js';
import { heapFix, heapPush, heapRemove, type HeapItem } from './due-heap.js';
import type { StallLog } from './stalls.js';
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

/**
 * A probe that ends this close to its backend's next due time (or after it) is followed at once
 * rather than when the timer comes round: the timer could come up to a tick late, and the next
 * probe would then start a tick after the previous one ended for no reason.
 */
const CATCH_UP_MS = TICK_MS;

/** `sidecar_late`: the probe's result was discarded because the sidecar stalled through its deadline. */
export type SkipReason = 'in_flight' | 'not_admitted' | 'sidecar_late';

export interface ProbeSchedulerOptions {
  clock: Clock;
  /** Most probes in flight at once (probes.max_concurrency). */
  maxConcurrency: number;
  /** First-probe spread as a fraction of the period (probes.jitter_fraction). */
  jitterFraction: number;
  /** Uniform in [0, 1); Math.random by default. */
  random?: () => number;
  proberFor(backend: Backend): Prober;
  /** Told how late each firing of the scheduler's timer was (the probers' deadlines read it). */
  stalls?: StallLog;
  /** False skips this tick (the backend's breaker is open). */
  admit?(backend: Backend): boolean;
  /** A result for a backend still scheduled with the config it was probed with. */
  onResult(result: ProbeResult, backend: Backend): void;
  onSkip?(backend: Backend, reason: SkipReason): void;
  /** Called as each probe starts, with how late it starts relative to its due time. */
  onProbeStart?(backend: Backend, latenessMs: number): void;
  /**
   * The backend's period from now on, ms, when it differs from its health check's (an ejected
   * backend is probed faster so it is readmitted soon after it recovers); undefined keeps it.
   */
  periodFor?(backend: Backend): number | undefined;
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
  /** Probes this backend at the next tick (e.g. its container just started), then on schedule. */
  probeNow(backendId: string): void;
}

interface Entry extends HeapItem {
  backend: Backend;
  periodMs: number;
  /** When this backend was (re)added; the initial delay counts from here. */
  addedAt: number;
  /** Bumped when the backend is removed or its config changes; stale results are dropped. */
  gen: number;
  active: boolean;
  pending: boolean;
  inFlight: boolean;
  /** A due time passed while its probe was in flight: the next probe starts when that one ends. */
  owed: boolean;
  /** The backend object and gen the probe in flight started with. */
  probing: Backend | null;
  probeGen: number;
}

/** One scheduler's state; the functions below work on it (no closure per call). */
interface SchedulerState {
  readonly opts: ProbeSchedulerOptions;
  readonly clock: Clock;
  readonly random: () => number;
  readonly entries: Map<string, Entry>;
  readonly heap: Entry[];
  // The FIFO of due probes as parallel arrays (entry, its gen and due time when queued): no
  // object per probe. An entry can be in it twice when its config changed while queued; the
  // stale copy is dropped by gen.
  readonly queue: (Entry | undefined)[];
  readonly queueGen: number[];
  readonly queueDue: number[];
  queueHead: number;
  /** Resolves stop()'s wait once the last probe in flight has settled. */
  whenIdle: (() => void) | null;
  timer: TimerHandle | undefined;
  armedFor: number;
  lastFiredAt: number;
  live: boolean;
  stopped: boolean;
  seq: number;
  targets: number;
  inFlight: number;
  started: number;
  completed: number;
  skipped: number;
  /** The timer's callback, made once per scheduler rather than per arming. */
  readonly onTimer: () => void;
  /**
   * Every probe's fulfilment handler, finding the entry by backend id (it stays while in flight):
   * two closures per entry were 1.5 MB at 10,000 backends. */
  readonly onProbed: (result: ProbeResult) => void;
}

/** Creates a scheduler; nothing is probed before start(). */
export function createProbeScheduler(opts: ProbeSchedulerOptions): ProbeScheduler {
  const s: SchedulerState = {
    opts,
    clock: opts.clock,
    random: opts.random ?? Math.random,
    entries: new Map(),
    heap: [],
    queue: [],
    queueGen: [],
    queueDue: [],
    queueHead: 0,
    whenIdle: null,
    timer: undefined,
    armedFor: Infinity,
    lastFiredAt: -Infinity,
    live: false,
    stopped: false,
    seq: 0,
    targets: 0,
    inFlight: 0,
    started: 0,
    completed: 0,
    skipped: 0,
    onTimer: () => onTimer(s),
    onProbed: (result) => {
      const e = s.entries.get(result.backendId);
      if (e?.inFlight) settle(s, e, result);
    },
  };
  return {
    setTargets: (backends) => setTargets(s, backends),
    start() {
      if (s.stopped || s.live) return;
      s.live = true;
      arm(s);
    },
    stop: () => stop(s),
    probeNow: (id) => probeNow(s, id),
    stats: () => ({
      targets: s.targets,
      inFlight: s.inFlight,
      queued: s.queue.length - s.queueHead,
      started: s.started,
      completed: s.completed,
      skipped: s.skipped,
    }),
  };
}

const periodOf = (h: HealthCheckConfig): number => Math.max(1, h.period_seconds * 1000);

function firstDue(s: SchedulerState, e: Entry, now: number): number {
  return Math.max(e.addedAt + e.backend.health.initial_delay_seconds * 1000, now) + s.random() * s.opts.jitterFraction * e.periodMs;
}

function arm(s: SchedulerState): void {
  const top = s.heap[0];
  const at = s.live && top ? Math.max(top.due, s.lastFiredAt + TICK_MS) : Infinity;
  if (at === s.armedFor) return;
  if (s.timer !== undefined) s.clock.clearTimeout(s.timer);
  s.timer = undefined;
  s.armedFor = at;
  if (at !== Infinity) s.timer = s.clock.setTimeout(s.onTimer, Math.max(0, at - s.clock.now()));
}

function onTimer(s: SchedulerState): void {
  s.timer = undefined;
  const now = s.clock.now();
  s.opts.stalls?.note(s.armedFor, now);
  s.armedFor = Infinity;
  s.lastFiredAt = now;
  const heap = s.heap;
  for (let top = heap[0]; top && top.due <= now; top = heap[0]) tick(s, top);
  drain(s, now);
  arm(s);
}

function skip(s: SchedulerState, e: Entry, reason: SkipReason): void {
  s.skipped++;
  s.opts.onSkip?.(e.backend, reason);
}

function tick(s: SchedulerState, e: Entry): void {
  const due = e.due;
  // Fixed rate: the next due time follows from this one, not from when the probe ends.
  e.due = due + periodNow(s, e);
  heapFix(s.heap, e);
  if (e.pending || (e.inFlight && e.owed)) return skip(s, e, 'in_flight');
  if (e.inFlight) {
    // Deferred, not skipped: settle() starts it as soon as the probe in flight ends.
    e.owed = true;
    return;
  }
  if (s.opts.admit && !s.opts.admit(e.backend)) return skip(s, e, 'not_admitted');
  enqueue(s, e, due);
}

function periodNow(s: SchedulerState, e: Entry): number {
  return s.opts.periodFor?.(e.backend) ?? e.periodMs;
}

/** Due at once (at the next tick), unless a probe of it is already queued or running. */
function probeNow(s: SchedulerState, id: string): void {
  const e = s.entries.get(id);
  if (!e || e.pos < 0 || e.pending || e.inFlight) return;
  const now = s.clock.now();
  if (e.due <= now) return;
  e.due = now;
  heapFix(s.heap, e);
  arm(s);
}

function enqueue(s: SchedulerState, e: Entry, due: number): void {
  e.pending = true;
  s.queue.push(e);
  s.queueGen.push(e.gen);
  s.queueDue.push(due);
}

/**
 * The probe that just ended ran into (or up to a tick before) its backend's next due time: that
 * probe starts now instead of being skipped or waiting for the timer, and the fixed-rate schedule
 * restarts from now. Its lateness counts from now, when it could first start: the backend's slow
 * answer is not the scheduler's delay.
 */
function catchUp(s: SchedulerState, e: Entry, now: number): void {
  e.owed = false;
  e.due = now + periodNow(s, e);
  heapFix(s.heap, e);
  arm(s);
  if (s.opts.admit && !s.opts.admit(e.backend)) return skip(s, e, 'not_admitted');
  enqueue(s, e, now);
}

function drain(s: SchedulerState, now: number): void {
  const { queue, queueGen, queueDue } = s;
  while (s.inFlight < s.opts.maxConcurrency && s.queueHead < queue.length) {
    const head = s.queueHead++;
    const e = queue[head]!;
    const gen = queueGen[head]!;
    const due = queueDue[head]!;
    queue[head] = undefined;
    if (gen === e.gen) launch(s, e, gen, due, now);
  }
  if (s.queueHead === queue.length) {
    // Only when there is something to drop: emptying an array frees its storage, which the
    // next push then allocates again.
    if (s.queueHead > 0) clearQueue(s);
  } else if (s.queueHead > 1024 && s.queueHead * 2 > queue.length) {
    queue.splice(0, s.queueHead);
    queueGen.splice(0, s.queueHead);
    queueDue.splice(0, s.queueHead);
    s.queueHead = 0;
  }
}

function clearQueue(s: SchedulerState): void {
  s.queue.length = 0;
  s.queueGen.length = 0;
  s.queueDue.length = 0;
  s.queueHead = 0;
}

function launch(s: SchedulerState, e: Entry, gen: number, due: number, now: number): void {
  const backend = e.backend;
  e.pending = false;
  e.inFlight = true;
  e.probing = backend;
  e.probeGen = gen;
  s.inFlight++;
  s.started++;
  s.opts.onProbeStart?.(backend, now - due);
  // Probers never reject; a bug that makes one reject must still free the slot (the one handler
  // made per probe, as it cannot tell whose probe failed otherwise).
  s.opts.proberFor(backend).probe(backend).then(s.onProbed, () => settle(s, e, undefined));
}

function settle(s: SchedulerState, e: Entry, result: ProbeResult | undefined): void {
  const backend = e.probing!;
  e.probing = null;
  e.inFlight = false;
  s.inFlight--;
  s.completed++;
  if (!e.active) {
    if (s.entries.get(backend.id) === e) s.entries.delete(backend.id);
  } else if (result && e.gen === e.probeGen) {
    // A deadline the sidecar stalled through says nothing about the backend.
    if (result.sidecarLate) skip(s, e, 'sidecar_late');
    else s.opts.onResult(result, backend);
  }
  if (s.stopped) {
    if (s.inFlight === 0 && s.whenIdle) s.whenIdle();
    return;
  }
  const now = s.clock.now();
  // This result may have ejected the backend: its shorter period applies from now, not from
  // after the next regular probe.
  const period = e.active && !e.owed ? s.opts.periodFor?.(e.backend) : undefined;
  if (period !== undefined && e.due > now + period) {
    e.due = now + period;
    heapFix(s.heap, e);
    arm(s);
  }
  // Checked after onResult, which may have removed or rescheduled the backend.
  if (e.active && !e.inFlight && !e.pending && (e.owed || e.due <= now + CATCH_UP_MS)) catchUp(s, e, now);
  drain(s, now);
}

function deactivate(s: SchedulerState, e: Entry): void {
  e.active = false;
  e.pending = false;
  e.owed = false;
  e.gen++;
  s.targets--;
  heapRemove(s.heap, e);
  if (!e.inFlight) s.entries.delete(e.backend.id);
}

function setTargets(s: SchedulerState, backends: Backend[]): void {
  if (s.stopped) return;
  const now = s.clock.now();
  const seen = new Set<string>();
  for (const backend of backends) {
    if (!backend.health.enabled) continue;
    seen.add(backend.id);
    const e = s.entries.get(backend.id);
    if (!e) addEntry(s, backend, now);
    else if (!e.active) reactivate(s, e, backend, now);
    else if (sameConfig(e.backend.health, backend.health)) e.backend = backend;
    else reschedule(s, e, backend, now);
  }
  for (const e of s.entries.values()) if (e.active && !seen.has(e.backend.id)) deactivate(s, e);
  arm(s);
}

function addEntry(s: SchedulerState, backend: Backend, now: number): void {
  const fresh: Entry = {
    backend,
    due: 0,
    periodMs: periodOf(backend.health),
    addedAt: now,
    seq: s.seq++,
    pos: -1,
    gen: 0,
    active: true,
    pending: false,
    inFlight: false,
    owed: false,
    probing: null,
    probeGen: 0,
  };
  fresh.due = firstDue(s, fresh, now);
  s.entries.set(backend.id, fresh);
  s.targets++;
  heapPush(s.heap, fresh);
}

/** Came back while its last probe is still running: a new schedule, same no-overlap guard. */
function reactivate(s: SchedulerState, e: Entry, backend: Backend, now: number): void {
  e.backend = backend;
  e.active = true;
  e.addedAt = now;
  e.periodMs = periodOf(backend.health);
  e.due = firstDue(s, e, now);
  s.targets++;
  heapPush(s.heap, e);
}

/**
 * New config, new schedule. The initial delay still counts from when the backend was first
 * seen, so a running backend is not held back again; a result probed with the old config is
 * dropped (gen).
 */
function reschedule(s: SchedulerState, e: Entry, backend: Backend, now: number): void {
  e.backend = backend;
  e.gen++;
  e.pending = false;
  e.owed = false;
  e.periodMs = periodOf(backend.health);
  e.due = firstDue(s, e, now);
  heapFix(s.heap, e);
}

async function stop(s: SchedulerState): Promise<void> {
  s.stopped = true;
  s.live = false;
  arm(s);
  for (const e of s.entries.values()) if (e.active) deactivate(s, e);
  clearQueue(s);
  if (s.inFlight > 0) await new Promise<void>((resolve) => (s.whenIdle = resolve));
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
