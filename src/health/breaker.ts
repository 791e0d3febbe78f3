/**
 * The seed's circuit breaker as a pure reducer. Each state holds only its own data (cockatiel's
 * shape), and `epoch` counts transitions: a probe is admitted with the current epoch as its
 * ticket, and a result whose ticket no longer matches was admitted under a state that has since
 * moved on, so it is dropped instead of being counted against the new state.
 *
 * Differences from the seed, on purpose:
 * - the seed never increments its half-open test counter, so it admits without limit; here each
 *   admission counts against `max_test_requests`;
 * - when every admitted trial came back successful but `success_threshold` was not reached (only
 *   possible with success_threshold > max_test_requests), the breaker reopens and waits another
 *   recovery timeout instead of sitting in half_open with nothing left to admit. With such a
 *   configuration the breaker can never close, so config validation should forbid it.
 */
import { DEFAULT_BREAKER } from '../config/defaults.js';
import type { BreakerConfig } from '../config/types.js';
import type { BreakerStatus } from '../model.js';

/** Plain JSON data; persist with JSON.stringify, read back with `restore`. */
export type BreakerState =
  | { status: 'closed'; epoch: number; consecutiveFailures: number }
  | {
      status: 'open';
      epoch: number;
      openedAt: number;
      /** Epoch ms the recovery timeout counts from. A reopen for exhausted trials resets it too. */
      lastFailureAt: number;
    }
  | { status: 'half_open'; epoch: number; trialsAdmitted: number; successes: number };

/** A change of status, before the registry names the backend it belongs to. */
export interface BreakerChange {
  from: BreakerStatus;
  to: BreakerStatus;
  at: number;
  reason: string;
}

/** One admitted probe's result; `detail` goes into transition reasons. */
export interface BreakerResult {
  ok: boolean;
  ticket: number;
  detail?: string;
}

/** The seed's CircuitBreaker defaults: the config's `breaker` defaults, defined there once. */
export const DEFAULT_BREAKER_CONFIG: Readonly<BreakerConfig> = DEFAULT_BREAKER;

/** Ticket given when a probe is not admitted; epochs start at 0, so it never matches one. */
export const NO_TICKET = -1;

/** A breaker that has seen nothing yet. */
export function initialBreaker(): BreakerState {
  return { status: 'closed', epoch: 0, consecutiveFailures: 0 };
}

/** Decides whether a probe may run now. Call before every probe; pass the ticket to `record`. */
export function admit(
  state: BreakerState,
  cfg: BreakerConfig,
  now: number,
): { admit: boolean; ticket: number; state: BreakerState; transition?: BreakerChange } {
  switch (state.status) {
    case 'closed':
      return { admit: true, ticket: state.epoch, state };
    case 'open': {
      if (now - state.lastFailureAt < cfg.recovery_timeout_seconds * 1000) {
        return { admit: false, ticket: NO_TICKET, state };
      }
      const next: BreakerState = { status: 'half_open', epoch: state.epoch + 1, trialsAdmitted: 1, successes: 0 };
      const reason = `recovery timeout of ${cfg.recovery_timeout_seconds}s elapsed`;
      return { admit: true, ticket: next.epoch, state: next, transition: change('open', 'half_open', now, reason) };
    }
    case 'half_open':
      if (state.trialsAdmitted >= cfg.max_test_requests) return { admit: false, ticket: NO_TICKET, state };
      return { admit: true, ticket: state.epoch, state: { ...state, trialsAdmitted: state.trialsAdmitted + 1 } };
  }
}

/** Counts one admitted probe's result; results with a stale ticket are dropped unchanged. */
export function record(
  state: BreakerState,
  result: BreakerResult,
  cfg: BreakerConfig,
  now: number,
): { state: BreakerState; transition?: BreakerChange } {
  if (result.ticket !== state.epoch) return { state };
  const suffix = result.detail ? `: ${result.detail}` : '';
  switch (state.status) {
    case 'closed': {
      if (result.ok) {
        return state.consecutiveFailures === 0 ? { state } : { state: { ...state, consecutiveFailures: 0 } };
      }
      const failures = state.consecutiveFailures + 1;
      if (failures < cfg.failure_threshold) return { state: { ...state, consecutiveFailures: failures } };
      return open(state, now, `${failures} consecutive failures${suffix}`);
    }
    case 'half_open': {
      if (!result.ok) return open(state, now, `trial failed${suffix}`);
      const successes = state.successes + 1;
      if (successes >= cfg.success_threshold) {
        const next: BreakerState = { status: 'closed', epoch: state.epoch + 1, consecutiveFailures: 0 };
        return { state: next, transition: change('half_open', 'closed', now, `${successes} trial successes`) };
      }
      // Any failed trial reopens at once, so every trial that came back was a success.
      if (successes >= state.trialsAdmitted && state.trialsAdmitted >= cfg.max_test_requests) {
        return open(state, now, `${successes} of ${cfg.max_test_requests} trials passed, ${cfg.success_threshold} needed`);
      }
      return { state: { ...state, successes } };
    }
    case 'open':
      // Nothing is admitted while open, so no result can carry this epoch.
      return { state };
  }
}

/**
 * Validates untrusted JSON (e.g. a persisted state) and returns a usable state, or null.
 * Trials admitted by the previous process will never report back, so a half_open state forgets
 * them; otherwise it could sit with no admissions left forever.
 */
export function restore(json: unknown): BreakerState | null {
  if (!isBreakerState(json)) return null;
  if (json.status === 'half_open') return { ...json, trialsAdmitted: json.successes };
  return json;
}

/** Type guard for a breaker state read from untrusted JSON. */
export function isBreakerState(x: unknown): x is BreakerState {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Record<string, unknown>;
  if (!isCount(o.epoch)) return false;
  switch (o.status) {
    case 'closed':
      return isCount(o.consecutiveFailures);
    case 'open':
      return isTime(o.openedAt) && isTime(o.lastFailureAt);
    case 'half_open':
      return isCount(o.trialsAdmitted) && isCount(o.successes) && o.successes <= o.trialsAdmitted;
    default:
      return false;
  }
}

function open(state: BreakerState, now: number, reason: string): { state: BreakerState; transition: BreakerChange } {
  return {
    state: { status: 'open', epoch: state.epoch + 1, openedAt: now, lastFailureAt: now },
    transition: change(state.status, 'open', now, reason),
  };
}

function change(from: BreakerStatus, to: BreakerStatus, at: number, reason: string): BreakerChange {
  return { from, to, at, reason };
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}
