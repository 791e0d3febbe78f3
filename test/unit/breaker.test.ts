import { describe, expect, it } from 'vitest';
import { DEFAULT_BREAKER } from '../../src/config/defaults.js';
import {
  holdMs,
  initialBreaker,
  restore,
  slowStartFactor,
  step,
  type BreakerEvent,
  type BreakerSettings,
  type BreakerState,
} from '../../src/health/breaker.js';

const cfg: BreakerSettings = { failure_threshold: 3, recovery_timeout_seconds: 2, max_ejection_seconds: 60, slow_start_seconds: 10 };
const fail: BreakerEvent = { kind: 'probe', ok: false, healthy: false, detail: 'HTTP 500' };
const pass: BreakerEvent = { kind: 'probe', ok: true, healthy: true };

/** Feeds events in order at the given times; returns the last state and every transition. */
function run(state: BreakerState, events: Array<[number, BreakerEvent]>, c: BreakerSettings = cfg) {
  const transitions: string[] = [];
  for (const [at, e] of events) {
    const r = step(state, e, c, at);
    state = r.state;
    if (r.transition) transitions.push(`${r.transition.from}->${r.transition.to}@${at}`);
  }
  return { state, transitions };
}

const opened = (at = 1000) => run(initialBreaker(0), [[at, { kind: 'eject', reason: 'test' }]]).state;

describe('circuit breaker', () => {
  it('defaults to a short base hold, a five-minute cap and a ten-second slow start', () => {
    expect(DEFAULT_BREAKER).toEqual({ failure_threshold: 5, recovery_timeout_seconds: 2, max_ejection_seconds: 300, slow_start_seconds: 10 });
  });

  it('opens at exactly failure_threshold consecutive failed probes, and a success resets the count', () => {
    expect(run(initialBreaker(), [[1, fail], [2, fail]]).state.status).toBe('closed');
    expect(run(initialBreaker(), [[1, fail], [2, fail], [3, pass], [4, fail], [5, fail]]).state.status).toBe('closed');
    const r = run(initialBreaker(), [[1, fail], [2, fail], [3, fail]]);
    expect(r.transitions).toEqual(['closed->open@3']);
    expect(r.state).toMatchObject({ status: 'open', openedAt: 3, holdMs: 2000, timesEjected: 1 });
  });

  it('opens at once on an ejection decided elsewhere, naming its reason', () => {
    const r = step(initialBreaker(), { kind: 'eject', reason: 'passive: 5 consecutive 5xx' }, cfg, 50);
    expect(r.transition).toEqual({ from: 'closed', to: 'open', at: 50, reason: 'passive: 5 consecutive 5xx' });
  });

  it('holds an open breaker for its ejection time even when probes pass, then readmits it half-open', () => {
    const s = opened(1000);
    expect(step(s, pass, cfg, 2999).state.status).toBe('open');
    const r = step(s, pass, cfg, 3000);
    expect(r.transition).toMatchObject({ from: 'open', to: 'half_open', at: 3000 });
    expect(r.state).toEqual({ status: 'half_open', since: 3000, timesEjected: 1 });
  });

  it('keeps a breaker open after its hold while the probes still say unhealthy; time alone readmits a healthy one', () => {
    const s = opened(1000);
    expect(step(s, { kind: 'tick', healthy: false }, cfg, 60_000).state.status).toBe('open');
    expect(step(s, fail, cfg, 60_000).state.status).toBe('open');
    expect(step(s, { kind: 'tick', healthy: true }, cfg, 3000).state.status).toBe('half_open');
  });

  it('closes a half-open breaker after slow_start_seconds without a failure', () => {
    const half = step(opened(0), pass, cfg, 2000).state;
    expect(step(half, pass, cfg, 11_999).state.status).toBe('half_open');
    const r = step(half, { kind: 'tick', healthy: true }, cfg, 12_000);
    expect(r.transition).toMatchObject({ from: 'half_open', to: 'closed' });
    expect(r.state).toMatchObject({ status: 'closed', timesEjected: 1, decayFrom: 12_000 });
  });

  it('closes at once instead of going half-open when slow start is off', () => {
    const r = step(opened(0), pass, { ...cfg, slow_start_seconds: 0 }, 2000);
    expect(r.transition).toMatchObject({ from: 'open', to: 'closed' });
  });

  it('reopens a half-open breaker on any failure, probe or request, and holds it longer each time (flap damping)', () => {
    const half = step(opened(0), pass, cfg, 2000).state;
    const byRequest = step(half, { kind: 'outcome', ok: false, detail: '502' }, cfg, 2500);
    expect(byRequest.transition?.reason).toBe('request failed while readmitted: 502 (ejection 2, held 4s)');
    expect(byRequest.state).toMatchObject({ status: 'open', holdMs: 4000, timesEjected: 2 });
    const byProbe = step(half, fail, cfg, 2500);
    expect(byProbe.state).toMatchObject({ status: 'open', holdMs: 4000, timesEjected: 2 });
    expect(step(half, { kind: 'outcome', ok: true }, cfg, 2500).state.status).toBe('half_open');
  });

  it('caps the hold at max_ejection_seconds', () => {
    expect([1, 2, 10, 30, 31, 1000].map((n) => holdMs(n, cfg))).toEqual([2000, 4000, 20_000, 60_000, 60_000, 60_000]);
  });

  it('forgets one ejection for each max_ejection_seconds spent closed', () => {
    let s: BreakerState = { status: 'closed', consecutiveFailures: 0, timesEjected: 3, decayFrom: 0 };
    s = step(s, pass, cfg, 59_999).state;
    expect(s).toMatchObject({ timesEjected: 3 });
    s = step(s, pass, cfg, 125_000).state;
    expect(s).toMatchObject({ timesEjected: 1, decayFrom: 120_000 });
    const reopened = step(s, { kind: 'eject', reason: 'x' }, cfg, 130_000).state;
    expect(reopened).toMatchObject({ timesEjected: 2, holdMs: 4000 });
  });

  it("holds a passive ejection at least its own duration, and remembers what nginx's traffic showed", () => {
    const r = step(initialBreaker(), { kind: 'eject', reason: 'passive: 5 consecutive 5xx', holdMs: 30_000, cause: 'status' }, cfg, 0);
    expect(r.state).toMatchObject({ status: 'open', holdMs: 30_000, cause: 'status' });
    expect(step(r.state, pass, cfg, 29_999).state.status).toBe('open');
    expect(step(r.state, pass, cfg, 30_000).state.status).toBe('half_open');
    expect(restore(JSON.parse(JSON.stringify(r.state)))).toEqual(r.state);
  });

  it('ignores failures while open: the hold counts from the ejection', () => {
    const s = opened(1000);
    expect(step(s, { kind: 'eject', reason: 'again' }, cfg, 2000)).toEqual({ state: s });
    expect(step(s, { kind: 'outcome', ok: false }, cfg, 2000)).toEqual({ state: s });
  });

  it('ramps a half-open weight share from 10 % to full over slow_start_seconds', () => {
    const half: BreakerState = { status: 'half_open', since: 0, timesEjected: 1 };
    expect([0, 5000, 10_000, 20_000].map((t) => slowStartFactor(half, cfg, t))).toEqual([0.1, 0.55, 1, 1]);
    expect(slowStartFactor(initialBreaker(), cfg, 0)).toBe(1);
    expect(slowStartFactor(half, { slow_start_seconds: 0 }, 0)).toBe(1);
  });

  describe('persistence', () => {
    it('survives a JSON round trip in every state', () => {
      const states: BreakerState[] = [
        { status: 'closed', consecutiveFailures: 2, timesEjected: 1, decayFrom: 5 },
        { status: 'open', openedAt: 10, holdMs: 4000, timesEjected: 2, reason: 'x' },
        { status: 'half_open', since: 20, timesEjected: 1 },
      ];
      for (const s of states) expect(restore(JSON.parse(JSON.stringify(s)))).toEqual(s);
    });

    it('reads states saved by the earlier breaker (epochs, trial counts) as the nearest state', () => {
      expect(restore({ status: 'closed', epoch: 4, consecutiveFailures: 1 })).toEqual({ status: 'closed', consecutiveFailures: 1, timesEjected: 0, decayFrom: 0 });
      expect(restore({ status: 'open', epoch: 5, openedAt: 100, lastFailureAt: 100 })).toEqual({ status: 'open', openedAt: 100, holdMs: 0, timesEjected: 1, reason: 'restored' });
      expect(restore({ status: 'half_open', epoch: 6, trialsAdmitted: 2, successes: 1 })).toEqual({ status: 'half_open', since: 0, timesEjected: 1 });
    });

    it('rejects malformed states', () => {
      for (const bad of [null, 'closed', 42, {}, { status: 'closed' }, { status: 'closed', consecutiveFailures: -1 }, { status: 'open' }, { status: 'open', openedAt: 'x' }, { status: 'weird' }]) {
        expect(restore(bad)).toBeNull();
      }
    });
  });
});
