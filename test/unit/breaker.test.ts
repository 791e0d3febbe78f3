import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BREAKER_CONFIG,
  NO_TICKET,
  admit,
  initialBreaker,
  isBreakerState,
  record,
  restore,
  type BreakerState,
} from '../../src/health/breaker.js';
import type { BreakerConfig } from '../../src/config/types.js';

const cfg: BreakerConfig = { ...DEFAULT_BREAKER_CONFIG };
const TIMEOUT_MS = cfg.recovery_timeout_seconds * 1000;

/** Admits and records one probe result; fails the test if the probe is not admitted. */
function probe(state: BreakerState, ok: boolean, now: number, c: BreakerConfig = cfg) {
  const a = admit(state, c, now);
  expect(a.admit).toBe(true);
  const r = record(a.state, { ok, ticket: a.ticket }, c, now);
  return { state: r.state, transitions: [a.transition, r.transition].filter((t) => t !== undefined) };
}

function failTimes(state: BreakerState, n: number, now: number, c: BreakerConfig = cfg): BreakerState {
  for (let i = 0; i < n; i++) state = probe(state, false, now, c).state;
  return state;
}

const OPENED_AT = 10_000;
/** Open since OPENED_AT, epoch 1. */
const opened = (): BreakerState => failTimes(initialBreaker(), 5, OPENED_AT);

describe('circuit breaker', () => {
  it('has the seed defaults', () => {
    expect(DEFAULT_BREAKER_CONFIG).toEqual({
      failure_threshold: 5,
      success_threshold: 3,
      recovery_timeout_seconds: 60,
      max_test_requests: 3,
    });
  });

  it('starts closed at epoch 0 and admits every probe with the epoch as ticket', () => {
    const s = initialBreaker();
    expect(s).toEqual({ status: 'closed', epoch: 0, consecutiveFailures: 0 });
    const a = admit(s, cfg, 0);
    expect(a).toEqual({ admit: true, ticket: 0, state: s });
  });

  it('stays closed through failure_threshold - 1 failures', () => {
    const s = failTimes(initialBreaker(), 4, 0);
    expect(s).toEqual({ status: 'closed', epoch: 0, consecutiveFailures: 4 });
  });

  it('opens at exactly failure_threshold consecutive failures', () => {
    const s = failTimes(initialBreaker(), 4, 0);
    const a = admit(s, cfg, 7000);
    const r = record(a.state, { ok: false, ticket: a.ticket, detail: 'timeout after 5000ms' }, cfg, 7000);
    expect(r.state).toEqual({ status: 'open', epoch: 1, openedAt: 7000, lastFailureAt: 7000 });
    expect(r.transition).toEqual({ from: 'closed', to: 'open', at: 7000, reason: '5 consecutive failures: timeout after 5000ms' });
  });

  it('resets the failure count on a success while closed', () => {
    let s = failTimes(initialBreaker(), 4, 0);
    s = probe(s, true, 0).state;
    expect(s).toEqual({ status: 'closed', epoch: 0, consecutiveFailures: 0 });
    s = failTimes(s, 4, 0);
    expect(s.status).toBe('closed');
  });

  it('refuses probes while open until recovery_timeout has passed since the last failure', () => {
    const s = opened();
    const a = admit(s, cfg, OPENED_AT + TIMEOUT_MS - 1);
    expect(a).toEqual({ admit: false, ticket: NO_TICKET, state: s });
    expect(a.transition).toBeUndefined();
  });

  it('moves to half_open and admits the first trial exactly at the recovery_timeout boundary', () => {
    const a = admit(opened(), cfg, OPENED_AT + TIMEOUT_MS);
    expect(a.admit).toBe(true);
    expect(a.state).toEqual({ status: 'half_open', epoch: 2, trialsAdmitted: 1, successes: 0 });
    expect(a.ticket).toBe(2);
    expect(a.transition).toEqual({
      from: 'open',
      to: 'half_open',
      at: OPENED_AT + TIMEOUT_MS,
      reason: 'recovery timeout of 60s elapsed',
    });
  });

  it('admits at most max_test_requests trials in half_open', () => {
    const t = OPENED_AT + TIMEOUT_MS;
    const first = admit(opened(), cfg, t);
    const second = admit(first.state, cfg, t);
    const third = admit(second.state, cfg, t);
    const fourth = admit(third.state, cfg, t);
    expect([first.admit, second.admit, third.admit, fourth.admit]).toEqual([true, true, true, false]);
    expect([second.ticket, third.ticket]).toEqual([2, 2]);
    expect(fourth.ticket).toBe(NO_TICKET);
    expect(fourth.state).toEqual({ status: 'half_open', epoch: 2, trialsAdmitted: 3, successes: 0 });
  });

  it('closes after success_threshold trial successes', () => {
    const t = OPENED_AT + TIMEOUT_MS;
    let s = probe(opened(), true, t).state;
    s = probe(s, true, t + 1).state;
    expect(s).toEqual({ status: 'half_open', epoch: 2, trialsAdmitted: 2, successes: 2 });
    const last = probe(s, true, t + 2);
    expect(last.state).toEqual({ status: 'closed', epoch: 3, consecutiveFailures: 0 });
    expect(last.transitions).toEqual([{ from: 'half_open', to: 'closed', at: t + 2, reason: '3 trial successes' }]);
  });

  it('reopens with a new openedAt on any failed trial', () => {
    const t = OPENED_AT + TIMEOUT_MS;
    const s = probe(opened(), true, t).state;
    const r = probe(s, false, t + 500);
    expect(r.state).toEqual({ status: 'open', epoch: 3, openedAt: t + 500, lastFailureAt: t + 500 });
    expect(r.transitions).toEqual([{ from: 'half_open', to: 'open', at: t + 500, reason: 'trial failed' }]);
    expect(admit(r.state, cfg, t + 500 + TIMEOUT_MS - 1).admit).toBe(false);
    expect(admit(r.state, cfg, t + 500 + TIMEOUT_MS).admit).toBe(true);
  });

  it('reopens when every admitted trial passed but success_threshold exceeds max_test_requests', () => {
    const c = { ...cfg, success_threshold: 4 };
    const t = OPENED_AT + TIMEOUT_MS;
    let s = failTimes(initialBreaker(), 5, OPENED_AT, c);
    s = probe(s, true, t, c).state;
    s = probe(s, true, t, c).state;
    const r = probe(s, true, t + 1, c);
    expect(r.state).toEqual({ status: 'open', epoch: 3, openedAt: t + 1, lastFailureAt: t + 1 });
    expect(r.transitions[0]?.reason).toBe('3 of 3 trials passed, 4 needed');
  });

  it('stays half_open while admitted trials are still out', () => {
    const c = { ...cfg, success_threshold: 4 };
    const t = OPENED_AT + TIMEOUT_MS;
    const a1 = admit(failTimes(initialBreaker(), 5, OPENED_AT, c), c, t);
    const a2 = admit(a1.state, c, t);
    const r = record(a2.state, { ok: true, ticket: a1.ticket }, c, t);
    expect(r.state).toEqual({ status: 'half_open', epoch: 2, trialsAdmitted: 2, successes: 1 });
    expect(r.transition).toBeUndefined();
  });

  it('increments the epoch on every transition and only then', () => {
    const t = OPENED_AT + TIMEOUT_MS;
    const epochs: number[] = [];
    let s = initialBreaker();
    epochs.push(s.epoch);
    s = failTimes(s, 4, 0);
    epochs.push(s.epoch);
    s = failTimes(s, 1, OPENED_AT);
    epochs.push(s.epoch);
    s = admit(s, cfg, t).state;
    epochs.push(s.epoch);
    s = admit(s, cfg, t).state;
    epochs.push(s.epoch);
    expect(epochs).toEqual([0, 0, 1, 2, 2]);
  });

  describe('stale tickets', () => {
    it('drops a result admitted while closed that arrives after the breaker opened', () => {
      let s = failTimes(initialBreaker(), 4, 0);
      const late = admit(s, cfg, 0);
      s = failTimes(s, 1, OPENED_AT);
      const r = record(s, { ok: false, ticket: late.ticket }, cfg, OPENED_AT + 1);
      expect(r.state).toBe(s);
      expect(r.transition).toBeUndefined();
    });

    it('drops a stale result in closed state', () => {
      const s: BreakerState = { status: 'closed', epoch: 3, consecutiveFailures: 4 };
      const r = record(s, { ok: false, ticket: 2 }, cfg, 0);
      expect(r.state).toBe(s);
      expect(r.transition).toBeUndefined();
    });

    it('drops a result admitted before the breaker moved to half_open', () => {
      const late = admit(failTimes(initialBreaker(), 4, 0), cfg, 0);
      const half = admit(opened(), cfg, OPENED_AT + TIMEOUT_MS).state;
      const r = record(half, { ok: false, ticket: late.ticket }, cfg, OPENED_AT + TIMEOUT_MS);
      expect(r.state).toBe(half);
      expect(r.transition).toBeUndefined();
    });

    it('drops a trial result that arrives after half_open already closed', () => {
      const t = OPENED_AT + TIMEOUT_MS;
      const c = { ...cfg, success_threshold: 1 };
      const a1 = admit(failTimes(initialBreaker(), 5, OPENED_AT, c), c, t);
      const a2 = admit(a1.state, c, t);
      const closed = record(a2.state, { ok: true, ticket: a1.ticket }, c, t).state;
      expect(closed.status).toBe('closed');
      const r = record(closed, { ok: false, ticket: a2.ticket }, c, t);
      expect(r.state).toBe(closed);
    });

    it('ignores results in open state, stale or not', () => {
      const s = opened();
      expect(record(s, { ok: true, ticket: 0 }, cfg, OPENED_AT + 1).state).toBe(s);
      expect(record(s, { ok: true, ticket: s.epoch }, cfg, OPENED_AT + 1).state).toBe(s);
    });

    it('never matches the ticket of a refused probe', () => {
      const s = opened();
      const refused = admit(s, cfg, OPENED_AT);
      expect(refused.admit).toBe(false);
      const half = admit(s, cfg, OPENED_AT + TIMEOUT_MS).state;
      expect(record(half, { ok: true, ticket: refused.ticket }, cfg, OPENED_AT + TIMEOUT_MS).state).toBe(half);
    });
  });

  describe('persistence', () => {
    it('survives a JSON round trip in every state', () => {
      const t = OPENED_AT + TIMEOUT_MS;
      const states: BreakerState[] = [
        failTimes(initialBreaker(), 2, 0),
        opened(),
        probe(opened(), true, t).state,
      ];
      for (const s of states) {
        const back: unknown = JSON.parse(JSON.stringify(s));
        expect(isBreakerState(back)).toBe(true);
        expect(back).toEqual(s);
      }
    });

    it('rejects malformed states', () => {
      const bad: unknown[] = [
        null,
        'closed',
        {},
        { status: 'closed', epoch: 0 },
        { status: 'closed', epoch: -1, consecutiveFailures: 0 },
        { status: 'closed', epoch: 0.5, consecutiveFailures: 0 },
        { status: 'open', epoch: 1, openedAt: '0', lastFailureAt: 0 },
        { status: 'open', epoch: 1, openedAt: 0, lastFailureAt: Number.NaN },
        { status: 'half_open', epoch: 2, trialsAdmitted: 1, successes: 2 },
        { status: 'ajar', epoch: 0 },
      ];
      for (const x of bad) {
        expect(isBreakerState(x), JSON.stringify(x)).toBe(false);
        expect(restore(x)).toBeNull();
      }
    });

    it('forgets half_open trials that were in flight when the previous process stopped', () => {
      const saved = JSON.parse(JSON.stringify({ status: 'half_open', epoch: 2, trialsAdmitted: 3, successes: 1 }));
      const s = restore(saved)!;
      expect(s).toEqual({ status: 'half_open', epoch: 2, trialsAdmitted: 1, successes: 1 });
      expect(admit(s, cfg, 0).admit).toBe(true);
    });

    it('restores closed and open states unchanged', () => {
      const o = opened();
      expect(restore(JSON.parse(JSON.stringify(o)))).toEqual(o);
      const c = failTimes(initialBreaker(), 3, 0);
      expect(restore(JSON.parse(JSON.stringify(c)))).toEqual(c);
    });
  });
});
