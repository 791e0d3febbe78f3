/**
 * Per-backend health, breaker and failure state, kept in step with discovery snapshots. Feeds
 * each probe result through the pure reducers and hands back only what changed. No timers and no
 * I/O; time comes from the injected clock.
 */
import type { Clock } from '../clock.js';
import type { BreakerConfig, FailureDetectionConfig } from '../config/types.js';
import type { Backend, ProbeResult } from '../model.js';
import * as breaker from './breaker.js';
import type { BreakerChange, BreakerState } from './breaker.js';
import { describeProbeFailure, isLocalError, restoreProbeCounts, stepFailures } from './classify.js';
import type { FailureHistory } from './classify.js';
import * as thresholds from './thresholds.js';
import type { HealthChange, HealthState } from './thresholds.js';
import { FAILURE_TYPES, type BackendView, type FailureEvent, type FailureType, type Transition } from './types.js';

export interface HealthRegistryOptions {
  clock: Clock;
  breaker: BreakerConfig;
  detection: FailureDetectionConfig;
  /**
   * How long a backend whose probes time out stays routed after its first timed-out probe began
   * (nginx.proxy_read_timeout_seconds in DNS mode, 0 otherwise; read on every probe). Until then
   * timeouts count but do not eject: nginx fails a retry once the upstream changed, so its own
   * retries of the requests the hang caught must come first.
   */
  timeoutHoldMs?: (app: string) => number;
}

/** Health, breaker and failure tracking for every known backend. */
export interface HealthRegistry {
  /** Reconciles with the full set of backends: new ones start unknown/closed, missing ones go. */
  sync(backends: Backend[]): { added: string[]; removed: string[] };
  /**
   * Lets time act on the backend's breaker (a hold that ran out while the probes pass, a slow
   * start that completed); call before each probe. Unknown ids give nothing.
   */
  tick(backendId: string): Transition[];
  /** Applies one probe result; results for unknown ids are ignored. */
  record(result: ProbeResult): { transitions: Transition[]; failures: FailureEvent[] };
  /** One real request's outcome from nginx's log: a readmitted backend is judged by them. */
  outcome(backendId: string, ok: boolean, detail?: string): Transition[];
  /**
   * Ejects a backend for a reason found elsewhere (nginx's own traffic: an outlier rule), held
   * at least `holdMs` (passing probes do not prove real requests stop failing).
   */
  eject(backendId: string, reason: string, holdMs?: number, cause?: breaker.EjectionCause): Transition[];
  /**
   * What nginx did with the backend's latest 5xx answer in its log: passed it on to another
   * server (`retried`) or sent it to the client (`served`). True when that changes where the
   * backend is routed (it is out, and reload mode may leave retried 5xx to nginx).
   */
  note5xx(backendId: string, what: 'retried' | 'served'): boolean;
  /** New breaker and detection settings apply from the next tick/record; states are kept. */
  updateConfig(breaker: BreakerConfig, detection: FailureDetectionConfig): void;
  /** Every backend, by app name, then in the order the last sync gave them. */
  views(): BackendView[];
  /** The backends of one app, in the order the last sync gave them (no scan of the others). */
  viewsOf(app: string): BackendView[];
  view(backendId: string): BackendView | undefined;
  /** The backend as discovery last gave it. */
  backend(backendId: string): Backend | undefined;
  /** Whether the backend is out of nginx (unhealthy, breaker open, draining); cheap, no view built. */
  isEjected(backendId: string): boolean;
  /**
   * How often the backend wants probing now, read straight from its state (the probe loop asks
   * after every result): 'ejected' (out of rotation), 'deciding' (routed and failed its last
   * probe, or out, hold served, and passed its last probe) or 'steady'.
   */
  probePace(backendId: string): 'ejected' | 'deciding' | 'steady';
  /** One backend's state as plain JSON data, for the store. */
  exportState(backendId: string): PersistedBackendState | undefined;
  /**
   * States saved by a previous process. Each is validated (untrusted JSON) and used when `sync`
   * first adds its backend, so a restart neither forgets an ejection nor resets a breaker.
   */
  restore(states: ReadonlyMap<string, unknown>): { restored: number; rejected: string[] };
  /** Backends whose persisted state changed since the last call (or that were removed). */
  takeDirty(): string[];
}

/** What the store keeps per backend; `v` versions the shape. */
export interface PersistedBackendState {
  v: 1;
  health: HealthState;
  breaker: BreakerState;
  failures: FailureHistory;
  lastFailure: FailureEvent | null;
  since: number;
}

interface Entry {
  backend: Backend;
  health: HealthState;
  breaker: BreakerState;
  failures: FailureHistory;
  /**
   * The latest probe: its verdict, replaced only when it differs (healthy backends with the same
   * status share one, see verdictOf), and its times, updated in place. Keeping each result made
   * ~200 bytes a probe that lived a whole period: promoted by the young generation's collector,
   * then old-space garbage, at 10,000 probes a second (bench:scale's GC trace).
   */
  probe: ProbeVerdict | null;
  probeStartedAt: number;
  probeFinishedAt: number;
  probeMs: number;
  lastFailure: FailureEvent | null;
  since: number;
  /** When the first probe of the current run of timeouts began; null outside one. */
  timeoutSince: number | null;
  /** What nginx did with this backend's latest 5xx answer, as its log tells; absent before one. */
  nginx5xx?: 'retried' | 'served';
}

interface RegistryState {
  clock: Clock;
  breakerCfg: BreakerConfig;
  detectionCfg: FailureDetectionConfig;
  entries: Map<string, Entry>;
  order: string[];
  /** Backend ids per app, in snapshot order: recovery asks for one app's replicas per failure. */
  byApp: Map<string, string[]>;
  /** Restored states not yet claimed by a backend of a snapshot. */
  pending: Map<string, PersistedBackendState>;
  dirty: Set<string>;
  timeoutHoldMs: (app: string) => number;
}

/** Creates an empty registry; call `sync` with the first snapshot. */
export function createHealthRegistry(opts: HealthRegistryOptions): HealthRegistry {
  const s: RegistryState = {
    clock: opts.clock,
    breakerCfg: opts.breaker,
    detectionCfg: opts.detection,
    entries: new Map(),
    order: [],
    byApp: new Map(),
    pending: new Map(),
    dirty: new Set(),
    timeoutHoldMs: opts.timeoutHoldMs ?? (() => 0),
  };
  return {
    sync: (backends) => sync(s, backends),
    tick: (backendId) => stepBreaker(s, backendId, (e) => ({ kind: 'tick', healthy: e.health.status === 'healthy' })),
    record: (result) => record(s, result),
    outcome: (backendId, ok, detail) => stepBreaker(s, backendId, () => ({ kind: 'outcome', ok, ...(detail ? { detail } : {}) })),
    note5xx(backendId, what) {
      const e = s.entries.get(backendId);
      if (!e || e.nginx5xx === what) return false;
      e.nginx5xx = what;
      return isOut(e);
    },
    eject: (backendId, reason, holdMs, cause) => stepBreaker(s, backendId, () => ({ kind: 'eject', reason, ...(holdMs ? { holdMs } : {}), ...(cause ? { cause } : {}) })),
    updateConfig(nextBreaker, nextDetection) {
      s.breakerCfg = nextBreaker;
      s.detectionCfg = nextDetection;
    },
    views: () => s.order.map((id) => toView(s, s.entries.get(id)!)),
    viewsOf: (app) => (s.byApp.get(app) ?? []).map((id) => toView(s, s.entries.get(id)!)),
    view(backendId) {
      const entry = s.entries.get(backendId);
      return entry ? toView(s, entry) : undefined;
    },
    backend: (backendId) => s.entries.get(backendId)?.backend,
    isEjected(backendId) {
      const e = s.entries.get(backendId);
      return e !== undefined && isOut(e);
    },
    probePace(backendId) {
      const e = s.entries.get(backendId);
      if (e === undefined) return 'steady';
      // HAProxy's fastinter applies both ways: an unhealthy backend that passed its last probe is
      // on its way back, and the probes that readmit it come at the fast period too.
      if (isOut(e)) return isRecovering(e, s.clock.now()) ? 'deciding' : 'ejected';
      return e.health.consecutiveFailures > 0 ? 'deciding' : 'steady';
    },
    exportState(backendId) {
      const e = s.entries.get(backendId);
      if (!e) return undefined;
      return { v: 1, health: e.health, breaker: e.breaker, failures: e.failures, lastFailure: e.lastFailure, since: e.since };
    },
    restore: (states) => restore(s, states),
    takeDirty() {
      const ids = [...s.dirty];
      s.dirty.clear();
      return ids;
    },
  };
}

function sync(s: RegistryState, backends: Backend[]): { added: string[]; removed: string[] } {
  const now = s.clock.now();
  const next = new Map<string, Entry>();
  const added: string[] = [];
  for (const backend of backends) {
    const existing = s.entries.get(backend.id) ?? next.get(backend.id);
    if (existing) {
      // Weight, backup and health settings may have changed; the verdicts so far still hold.
      next.set(backend.id, { ...existing, backend });
      continue;
    }
    added.push(backend.id);
    const saved = s.pending.get(backend.id);
    s.pending.delete(backend.id);
    next.set(backend.id, {
      backend,
      health: saved?.health ?? thresholds.initialHealth(),
      breaker: saved?.breaker ?? breaker.initialBreaker(now),
      failures: saved?.failures ?? {},
      probe: null,
      probeStartedAt: 0,
      probeFinishedAt: 0,
      probeMs: 0,
      lastFailure: saved?.lastFailure ?? null,
      since: saved?.since ?? now,
      timeoutSince: null,
    });
  }
  const removed = [...s.entries.keys()].filter((id) => !next.has(id));
  for (const id of removed) s.dirty.add(id);
  s.entries = next;
  // Map keeps first-insertion order, so a stable sort groups by app and keeps the given order.
  s.order = [...next.values()]
    .sort((a, b) => (a.backend.app < b.backend.app ? -1 : a.backend.app > b.backend.app ? 1 : 0))
    .map((e) => e.backend.id);
  s.byApp = new Map();
  for (const id of s.order) {
    const app = next.get(id)!.backend.app;
    const ids = s.byApp.get(app);
    if (ids) ids.push(id);
    else s.byApp.set(app, [id]);
  }
  return { added, removed };
}

/** Feeds one event to a backend's breaker; its transition, if any. */
function stepBreaker(s: RegistryState, backendId: string, event: (e: Entry) => breaker.BreakerEvent): Transition[] {
  const entry = s.entries.get(backendId);
  if (!entry) return [];
  const now = s.clock.now();
  const r = breaker.step(entry.breaker, event(entry), s.breakerCfg, now);
  entry.breaker = r.state;
  if (!r.transition) return [];
  entry.since = now;
  s.dirty.add(backendId);
  return [breakerTransition(entry.backend, r.transition)];
}

type ProbeVerdict = Pick<ProbeResult, 'healthy' | 'statusCode' | 'errorClass' | 'error'>;

/** One verdict object per status of a passing probe, shared by every backend (a few at most). */
const PASSED = new Map<number | null, ProbeVerdict>();

/** `prev` when `r` says the same; else the shared verdict of a pass, or a new one. */
function verdictOf(prev: ProbeVerdict | null, r: ProbeResult): ProbeVerdict {
  if (prev && prev.healthy === r.healthy && prev.statusCode === r.statusCode && prev.errorClass === r.errorClass && prev.error === r.error) return prev;
  const verdict = { healthy: r.healthy, statusCode: r.statusCode, errorClass: r.errorClass, error: r.error };
  if (!r.healthy || r.errorClass !== null || r.error !== null) return verdict;
  let passed = PASSED.get(r.statusCode);
  if (!passed) PASSED.set(r.statusCode, (passed = Object.freeze(verdict)));
  return passed;
}

function record(s: RegistryState, result: ProbeResult): { transitions: Transition[]; failures: FailureEvent[] } {
  const entry = s.entries.get(result.backendId);
  if (!entry) return { transitions: [], failures: [] };
  // The sidecar's own problem (e.g. out of file descriptors): no evidence for or against the
  // backend, so nothing about it moves, not even its last probe (routing reads its error class).
  // The health monitor logs and counts it, and readiness reports it.
  if (isLocalError(result)) return { transitions: [], failures: [] };
  const now = s.clock.now();
  const detail = result.healthy ? undefined : describeProbeFailure(result);
  const transitions: Transition[] = [];

  entry.timeoutSince = result.errorClass === 'timeout' ? (entry.timeoutSince ?? result.startedAt) : null;
  // A run of timeouts ejects once nginx has given up on the requests the hang caught.
  const mayTrip = entry.timeoutSince === null || now - entry.timeoutSince >= s.timeoutHoldMs(entry.backend.app);
  const h = thresholds.step(entry.health, { ok: result.healthy, detail, mayTrip }, entry.backend.health, now);
  entry.health = h.state;
  if (h.transition) transitions.push(healthTransition(entry.backend, h.transition));

  const healthy = h.state.status === 'healthy';
  let b = breaker.step(entry.breaker, { kind: 'probe', ok: result.healthy, healthy, mayTrip, ...(detail ? { detail } : {}) }, s.breakerCfg, now);
  // An unhealthy verdict ejects through the breaker too: its hold and its count of ejections
  // (flap damping) apply to probe ejections as to passive ones.
  if (h.transition?.to === 'unhealthy' && b.state.status !== 'open') {
    b = breaker.step(b.state, { kind: 'eject', reason: `health check: ${h.transition.reason}` }, s.breakerCfg, now);
  }
  entry.breaker = b.state;
  if (b.transition) transitions.push(breakerTransition(entry.backend, b.transition));

  // A draining backend's container is being stopped on purpose (docker stop, kill, rm -f): its
  // probe failing from now on is that stop, not a failure to recover from.
  const f = entry.backend.draining === true ? { history: entry.failures, events: [] } : stepFailures(entry.failures, result, s.detectionCfg, now);
  // Worth saving: counts that matter after a restart moved. A run of healthy probes only
  // grows consecutiveSuccesses past the threshold, which nothing reads, so it is not saved
  // on every probe (at 2,000 probes/s that would be 2,000 rewrites a second).
  if (transitions.length > 0 || !result.healthy || entry.probe?.healthy === false || f.history !== entry.failures) {
    s.dirty.add(result.backendId);
  }
  entry.failures = f.history;
  entry.probe = verdictOf(entry.probe, result);
  entry.probeStartedAt = result.startedAt;
  entry.probeFinishedAt = result.finishedAt;
  entry.probeMs = result.responseTimeMs;
  if (f.events.length > 0) entry.lastFailure = f.events[0]!;
  if (transitions.length > 0) entry.since = now;
  return { transitions, failures: f.events };
}

function restore(s: RegistryState, states: ReadonlyMap<string, unknown>): { restored: number; rejected: string[] } {
  const rejected: string[] = [];
  const next = new Map<string, PersistedBackendState>();
  for (const [id, json] of states) {
    const state = restoreState(json);
    if (state) next.set(id, state);
    else rejected.push(id);
  }
  s.pending = next;
  // Backends a snapshot already added (restore is meant to come first) take their state now.
  for (const [id, state] of next) {
    const e = s.entries.get(id);
    if (!e) continue;
    Object.assign(e, { health: state.health, breaker: state.breaker, failures: state.failures, lastFailure: state.lastFailure, since: state.since });
    s.pending.delete(id);
  }
  return { restored: next.size, rejected };
}

function healthTransition(b: Backend, c: HealthChange): Transition {
  return { kind: 'health', backendId: b.id, app: b.app, ...c };
}

function breakerTransition(b: Backend, c: BreakerChange): Transition {
  return { kind: 'breaker', backendId: b.id, app: b.app, ...c };
}

/** Validates a state saved by a previous process; null when any part is not what it should be. */
function restoreState(json: unknown): PersistedBackendState | null {
  if (typeof json !== 'object' || json === null) return null;
  const o = json as Record<string, unknown>;
  if (o.v !== 1 || typeof o.since !== 'number' || !Number.isFinite(o.since)) return null;
  const health = thresholds.restoreHealth(o.health);
  const br = breaker.restore(o.breaker);
  const failures = restoreFailureHistory(o.failures);
  if (!health || !br || !failures) return null;
  const lastFailure = isFailureEvent(o.lastFailure) ? o.lastFailure : null;
  return { v: 1, health, breaker: br, failures, lastFailure, since: o.since };
}

function isFailureEvent(x: unknown): x is FailureEvent {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Record<string, unknown>;
  return typeof o.failureType === 'string' && typeof o.backendId === 'string' && typeof o.timestamp === 'number' && typeof o.message === 'string';
}

function isOut(e: Entry): boolean {
  return e.health.status === 'unhealthy' || e.breaker.status === 'open' || e.backend.draining === true;
}

/**
 * Out, passing probes, and free to come back once they reach success_threshold: not draining, and
 * any breaker hold served (a backend held for flap damping or for nginx's evidence stays at the
 * ejected pace through its hold, however well its probes go).
 */
function isRecovering(e: Entry, now: number): boolean {
  if (e.backend.draining === true || e.health.consecutiveSuccesses === 0) return false;
  const b = e.breaker;
  return b.status !== 'open' || now - b.openedAt >= b.holdMs;
}

function toView(s: RegistryState, e: Entry): BackendView {
  return {
    backendId: e.backend.id,
    app: e.backend.app,
    host: e.backend.host,
    port: e.backend.port,
    weight: e.backend.weight,
    backup: e.backend.backup,
    health: e.health.status,
    breaker: e.breaker.status,
    // 'unknown' is routed, like HAProxy's default initial state: before the first verdict we have
    // no evidence against a backend, and a sidecar restart must not eject every backend at once.
    // A draining backend (its container is being stopped) goes at once, whatever its probes say.
    // half_open is routed: readmitted on probation, at a weight that ramps up (slowStart).
    ejected: isOut(e),
    slowStart: breaker.slowStartFactor(e.breaker, s.breakerCfg, s.clock.now()),
    ...(e.breaker.status === 'open' && e.breaker.cause ? { passiveCause: e.breaker.cause } : {}),
    ...(e.nginx5xx ? { nginx5xx: e.nginx5xx } : {}),
    draining: e.backend.draining === true,
    container: e.backend.container ?? null,
    ...(e.backend.task ? { task: e.backend.task } : {}),
    consecutiveFailures: e.health.consecutiveFailures,
    consecutiveSuccesses: e.health.consecutiveSuccesses,
    lastProbe: e.probe && { ...e.probe, startedAt: e.probeStartedAt, finishedAt: e.probeFinishedAt, responseTimeMs: e.probeMs },
    lastFailure: e.lastFailure,
    since: e.since,
  };
}

/** A failure history from untrusted JSON: known types, each with times and a streak count. */
function restoreFailureHistory(json: unknown): FailureHistory | null {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return null;
  const out: FailureHistory = {};
  for (const [type, h] of Object.entries(json as Record<string, unknown>)) {
    if (type === 'probes') {
      // high_error_rate's probe counts over the window.
      const probes = restoreProbeCounts(h);
      if (!probes) return null;
      out.probes = probes;
      continue;
    }
    if (!FAILURE_TYPES.has(type as FailureType) || typeof h !== 'object' || h === null) return null;
    const { times, consecutive } = h as Record<string, unknown>;
    if (!Array.isArray(times) || !times.every((t) => typeof t === 'number' && Number.isFinite(t))) return null;
    if (!Number.isSafeInteger(consecutive) || (consecutive as number) < 0) return null;
    out[type as FailureType] = { times: times as number[], consecutive: consecutive as number };
  }
  return out;
}
