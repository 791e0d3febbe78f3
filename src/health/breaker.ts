/**
 * The circuit breaker as a pure reducer, with Envoy's outlier-ejection timing and HAProxy's
 * readmission by probes. Each state holds only its own data (cockatiel's shape).
 *
 *   closed ──(failure_threshold failed probes, the health check going unhealthy, or a passive
 *            ejection from nginx's own traffic)──> open
 *   open ──(held for its ejection time, and the probes say healthy)──> half_open
 *   half_open ──(any failure: probe, request outcome or ejection)──> open, held longer
 *   half_open ──(slow_start_seconds without a failure)──> closed
 *
 * Differences from the seed's breaker, on purpose (issue 10):
 * - probes never stop while the breaker is open: they are how a backend earns its way back, so a
 *   recovered backend is readmitted after its hold instead of a fixed 60 s recovery timeout;
 * - the hold grows with the times the backend was ejected recently (Envoy: base ejection time x
 *   times ejected, capped at max_ejection_seconds), so a flapping backend stays out longer; the
 *   count falls by one for each max_ejection_seconds spent closed;
 * - half_open is routed, at a weight that ramps up over slow_start_seconds (the router reads
 *   `since`), and judged by every probe and every request outcome: one failure reopens it.
 */
import { DEFAULT_BREAKER } from '../config/defaults.js';
import type { BreakerConfig } from '../config/types.js';
import type { BreakerStatus } from '../model.js';

/** Plain JSON data; persist with JSON.stringify, read back with `restore`. */
export type BreakerState =
  | {
      status: 'closed';
      consecutiveFailures: number;
      /** Recent ejections, for the next hold; decays while closed. */
      timesEjected: number;
      /** Epoch ms the decay of timesEjected counts from. */
      decayFrom: number;
    }
  | { status: 'open'; openedAt: number; holdMs: number; timesEjected: number; reason: string; cause?: EjectionCause }
  | { status: 'half_open'; since: number; timesEjected: number };

/**
 * What an ejection from nginx's own traffic showed: connections refused or reset (`refused`),
 * 5xx answers (`status`), timeouts, or slowness. nginx retries the first two by itself.
 */
export type EjectionCause = 'refused' | 'status' | 'timeout' | 'slow';

/** A change of status, before the registry names the backend it belongs to. */
export interface BreakerChange {
  from: BreakerStatus;
  to: BreakerStatus;
  at: number;
  reason: string;
}

/**
 * What the breaker hears: a probe result (with the health verdict after it), a request outcome
 * from nginx's log, an ejection decided elsewhere (health unhealthy, passive outlier rule), or
 * only that time passed (`healthy`: the health verdict now).
 */
export type BreakerEvent =
  | { kind: 'probe'; ok: boolean; healthy: boolean; detail?: string; /** False: a failure counts, one short of opening at most. */ mayTrip?: boolean }
  | { kind: 'outcome'; ok: boolean; detail?: string }
  | { kind: 'eject'; reason: string; holdMs?: number; cause?: EjectionCause }
  | { kind: 'tick'; healthy: boolean };

export type BreakerSettings = Pick<BreakerConfig, 'failure_threshold' | 'recovery_timeout_seconds' | 'max_ejection_seconds' | 'slow_start_seconds'>;

/** The breaker defaults: the config's `breaker` defaults, defined there once. */
export const DEFAULT_BREAKER_CONFIG: Readonly<BreakerConfig> = DEFAULT_BREAKER;

/** A breaker that has seen nothing yet. */
export function initialBreaker(now = 0): BreakerState {
  return { status: 'closed', consecutiveFailures: 0, timesEjected: 0, decayFrom: now };
}

/** How long an ejection holds: base x times ejected (this one included), capped. */
export function holdMs(timesEjected: number, cfg: BreakerSettings): number {
  return Math.min(cfg.recovery_timeout_seconds * 1000 * Math.max(1, timesEjected), Math.max(cfg.max_ejection_seconds, cfg.recovery_timeout_seconds) * 1000);
}

/** Applies one event. */
export function step(state: BreakerState, event: BreakerEvent, cfg: BreakerSettings, now: number): { state: BreakerState; transition?: BreakerChange } {
  switch (state.status) {
    case 'closed':
      return stepClosed(state, event, cfg, now);
    case 'open':
      return stepOpen(state, event, cfg, now);
    case 'half_open':
      return stepHalfOpen(state, event, cfg, now);
  }
}

function stepClosed(state: Extract<BreakerState, { status: 'closed' }>, event: BreakerEvent, cfg: BreakerSettings, now: number) {
  const decayed = decay(state, cfg, now);
  if (event.kind === 'eject') return open(decayed, now, event.reason, cfg, event.holdMs, event.cause);
  if (event.kind !== 'probe') return { state: decayed };
  if (event.ok) return { state: decayed.consecutiveFailures === 0 ? decayed : { ...decayed, consecutiveFailures: 0 } };
  const failures = decayed.consecutiveFailures + 1;
  if (event.mayTrip === false) return { state: { ...decayed, consecutiveFailures: Math.min(failures, cfg.failure_threshold - 1) } };
  if (failures < cfg.failure_threshold) return { state: { ...decayed, consecutiveFailures: failures } };
  return open(decayed, now, `${failures} consecutive failures${suffix(event.detail)}`, cfg);
}

function stepOpen(state: Extract<BreakerState, { status: 'open' }>, event: BreakerEvent, cfg: BreakerSettings, now: number) {
  // Failures while open change nothing: the hold already counts from the ejection.
  if (event.kind === 'eject' || event.kind === 'outcome') return { state };
  if (!event.healthy || now - state.openedAt < state.holdMs) return { state };
  const reason = `held ${Math.round(state.holdMs / 100) / 10}s and probes pass`;
  if (cfg.slow_start_seconds <= 0) {
    return { state: { status: 'closed', consecutiveFailures: 0, timesEjected: state.timesEjected, decayFrom: now } as BreakerState, transition: change('open', 'closed', now, reason) };
  }
  return { state: { status: 'half_open', since: now, timesEjected: state.timesEjected } as BreakerState, transition: change('open', 'half_open', now, reason) };
}

function stepHalfOpen(state: Extract<BreakerState, { status: 'half_open' }>, event: BreakerEvent, cfg: BreakerSettings, now: number) {
  if (event.kind === 'eject') return open(state, now, event.reason, cfg, event.holdMs, event.cause);
  if ((event.kind === 'probe' || event.kind === 'outcome') && !event.ok) {
    return open(state, now, `${event.kind === 'probe' ? 'probe' : 'request'} failed while readmitted${suffix(event.detail)}`, cfg);
  }
  if (now - state.since < cfg.slow_start_seconds * 1000) return { state };
  const next: BreakerState = { status: 'closed', consecutiveFailures: 0, timesEjected: state.timesEjected, decayFrom: now };
  return { state: next, transition: change('half_open', 'closed', now, `${cfg.slow_start_seconds}s readmitted without a failure`) };
}

/** One ejection fewer remembered for each max_ejection_seconds spent closed. */
function decay(state: Extract<BreakerState, { status: 'closed' }>, cfg: BreakerSettings, now: number) {
  if (state.timesEjected === 0) return state;
  const period = Math.max(cfg.max_ejection_seconds, cfg.recovery_timeout_seconds) * 1000;
  const steps = Math.floor((now - state.decayFrom) / period);
  if (steps <= 0) return state;
  const timesEjected = Math.max(0, state.timesEjected - steps);
  return { ...state, timesEjected, decayFrom: timesEjected === 0 ? now : state.decayFrom + steps * period };
}

/** Opens the breaker; `atLeastMs` lengthens the hold (a passive ejection's own duration). */
function open(state: BreakerState, now: number, reason: string, cfg: BreakerSettings, atLeastMs = 0, cause?: EjectionCause): { state: BreakerState; transition: BreakerChange } {
  const timesEjected = state.timesEjected + 1;
  const hold = Math.max(holdMs(timesEjected, cfg), atLeastMs);
  const held = timesEjected > 1 ? ` (ejection ${timesEjected}, held ${Math.round(hold / 100) / 10}s)` : '';
  return {
    state: { status: 'open', openedAt: now, holdMs: hold, timesEjected, reason, ...(cause ? { cause } : {}) },
    transition: change(state.status, 'open', now, `${reason}${held}`),
  };
}

/** The slow-start share of a half-open backend's weight at `now`: from 10 % up to 100 %. */
export function slowStartFactor(state: BreakerState, cfg: Pick<BreakerConfig, 'slow_start_seconds'>, now: number): number {
  if (state.status !== 'half_open' || cfg.slow_start_seconds <= 0) return 1;
  const done = Math.min(1, Math.max(0, (now - state.since) / (cfg.slow_start_seconds * 1000)));
  return 0.1 + 0.9 * done;
}

/**
 * Validates untrusted JSON (a persisted state) and returns a usable state, or null. States saved
 * by earlier versions (trial counts, no hold) are read as the nearest state of this shape.
 */
export function restore(json: unknown): BreakerState | null {
  if (typeof json !== 'object' || json === null) return null;
  const o = json as Record<string, unknown>;
  const times = isCount(o.timesEjected) ? o.timesEjected : 0;
  switch (o.status) {
    case 'closed':
      return isCount(o.consecutiveFailures) ? { status: 'closed', consecutiveFailures: o.consecutiveFailures, timesEjected: times, decayFrom: isTime(o.decayFrom) ? o.decayFrom : 0 } : null;
    case 'open':
      if (!isTime(o.openedAt)) return null;
      return {
        status: 'open',
        openedAt: o.openedAt,
        holdMs: isTime(o.holdMs) && o.holdMs >= 0 ? o.holdMs : 0,
        timesEjected: Math.max(1, times),
        reason: typeof o.reason === 'string' ? o.reason : 'restored',
        ...(CAUSES.has(o.cause as EjectionCause) ? { cause: o.cause as EjectionCause } : {}),
      };
    case 'half_open':
      // An earlier version's half_open (no `since`) starts its probation over now it is read.
      return { status: 'half_open', since: isTime(o.since) ? o.since : 0, timesEjected: Math.max(1, times) };
    default:
      return null;
  }
}

function change(from: BreakerStatus, to: BreakerStatus, at: number, reason: string): BreakerChange {
  return { from, to, at, reason };
}

const CAUSES: ReadonlySet<EjectionCause> = new Set(['refused', 'status', 'timeout', 'slow']);

const suffix = (detail: string | undefined) => (detail ? `: ${detail}` : '');

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}
