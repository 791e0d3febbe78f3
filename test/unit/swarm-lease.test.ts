import { describe, expect, it } from 'vitest';
import { initialLeaseState, leaseFromLabels, leaseHeld, leaseLost, leaseStatus, leaseStep, leaseToLabels, leaseWritten, type LeaseRecord, type LeaseState } from '../../src/recovery/lease.js';

const TTL = 15_000;

/** One read-decide-write round of `state` at `now`, the write accepted when `accepted`. */
function round(state: LeaseState, record: LeaseRecord | null, now: number, accepted = true) {
  const step = leaseStep(state, record, now, TTL);
  if (step.kind === 'follow') return { state: step.state, written: null };
  return { state: leaseWritten(step.state, step.write, accepted, now, now + 5), written: step.write };
}

describe('Swarm lease decisions', () => {
  it('takes a lease nobody holds, at the next term, and holds it for the TTL from the start of its write', () => {
    const a = round(initialLeaseState('a'), null, 1000);
    expect(a.written).toEqual({ holder: 'a', term: 1, renewals: 0, ttlMs: TTL, renewedAt: 1000 });
    expect(leaseHeld(a.state, 1000 + TTL - 1)).toBe(true);
    expect(leaseHeld(a.state, 1000 + TTL)).toBe(false);
  });

  it('renews its own lease: same term, one more renewal, held a TTL from the renewal', () => {
    const a1 = round(initialLeaseState('a'), null, 0);
    const a2 = round(a1.state, a1.written, 5000);
    expect(a2.written).toMatchObject({ holder: 'a', term: 1, renewals: 1, renewedAt: 5000 });
    expect(leaseHeld(a2.state, 5000 + TTL - 1)).toBe(true);
  });

  it('of two sidecars racing on the same read, the one whose write the engine refused does not hold it', () => {
    const a = round(initialLeaseState('a'), null, 0, true);
    const b = round(initialLeaseState('b'), null, 0, false);
    expect(leaseHeld(a.state, 1)).toBe(true);
    expect(leaseHeld(b.state, 1)).toBe(false);
    // b reads a's record next: a live holder, so b follows.
    expect(leaseStep(b.state, a.written, 100, TTL).kind).toBe('follow');
  });

  it("a follower takes a holder's lease only a full TTL after it last saw the record change, on its own clock", () => {
    const record: LeaseRecord = { holder: 'a', term: 3, renewals: 9, ttlMs: TTL, renewedAt: 999_999_999 };
    let b = leaseStep(initialLeaseState('b'), record, 50_000, TTL).state;
    // The holder's clock (renewedAt) is ignored: only when b saw it counts.
    expect(leaseStep(b, record, 50_000 + TTL - 1, TTL).kind).toBe('follow');
    // A renewal seen restarts the wait.
    const renewed = { ...record, renewals: 10 };
    b = leaseStep(b, renewed, 60_000, TTL).state;
    expect(leaseStep(b, renewed, 50_000 + TTL, TTL).kind).toBe('follow');
    const take = leaseStep(b, renewed, 60_000 + TTL, TTL);
    expect(take).toMatchObject({ kind: 'acquire', write: { holder: 'b', term: 4, renewals: 0 } });
  });

  it("the holder's own hold ends before any follower may take the lease", () => {
    const t0 = 10_000;
    const a = round(initialLeaseState('a'), null, t0);
    // b sees the record only after a's write started (here, 30 ms later).
    const b = leaseStep(initialLeaseState('b'), a.written, t0 + 30, TTL).state;
    const bTakes = (now: number) => leaseStep(b, a.written, now, TTL).kind === 'acquire';
    for (let now = t0; now < t0 + 2 * TTL; now += 7) {
      expect(leaseHeld(a.state, now) && bTakes(now), `both at ${now}`).toBe(false);
    }
  });

  it('a read that names another holder, a refused renewal, or a failed read ends the hold at once', () => {
    const a = round(initialLeaseState('a'), null, 0);
    expect(leaseHeld(a.state, 1)).toBe(true);
    const other: LeaseRecord = { holder: 'b', term: 2, renewals: 0, ttlMs: TTL, renewedAt: 0 };
    expect(leaseHeld(leaseStep(a.state, other, 10, TTL).state, 11)).toBe(false);
    expect(leaseHeld(round(a.state, a.written, 10, false).state, 11)).toBe(false);
    expect(leaseHeld(leaseLost(a.state), 11)).toBe(false);
  });

  it('a released lease (no holder) is taken at once', () => {
    const freed: LeaseRecord = { holder: '', term: 5, renewals: 3, ttlMs: TTL, renewedAt: 0 };
    expect(leaseStep(initialLeaseState('b'), freed, 1, TTL)).toMatchObject({ kind: 'acquire', write: { holder: 'b', term: 6 } });
  });

  it('a sidecar whose recovery is off never takes the lease, and frees it when it holds it', () => {
    expect(leaseStep(initialLeaseState('a'), null, 0, TTL, false).kind).toBe('follow');
    const a = round(initialLeaseState('a'), null, 0);
    const step = leaseStep(a.state, a.written, 100, TTL, false);
    expect(step).toMatchObject({ kind: 'release', write: { holder: '', term: 1 } });
    expect(leaseHeld(step.state, 101)).toBe(false);
    if (step.kind !== 'release') throw new Error('release expected');
    expect(leaseHeld(leaseWritten(step.state, step.write, true, 100, 105), 106)).toBe(false);
  });

  it('reports the holder, term, expiry and whether this sidecar holds it', () => {
    const a = round(initialLeaseState('a'), null, 1000);
    expect(leaseStatus(a.state, 2000)).toEqual({ holder: 'a', term: 1, expiresAt: 1000 + TTL, held: true });
    const b = leaseStep(initialLeaseState('b'), a.written, 1200, TTL).state;
    expect(leaseStatus(b, 2000)).toEqual({ holder: 'a', term: 1, expiresAt: 1200 + TTL, held: false });
    expect(leaseStatus(initialLeaseState('c'), 0)).toEqual({ holder: null, term: 0, expiresAt: null, held: false });
  });
});

describe('Swarm lease labels', () => {
  it('round-trips a record through labels', () => {
    const r: LeaseRecord = { holder: 'node-1:42', term: 7, renewals: 12, ttlMs: TTL, renewedAt: Date.UTC(2026, 0, 1) };
    expect(leaseToLabels(r)).toEqual({
      'orchestry.lease.holder': 'node-1:42',
      'orchestry.lease.term': '7',
      'orchestry.lease.renewals': '12',
      'orchestry.lease.ttl_ms': '15000',
      'orchestry.lease.renewed_at': '2026-01-01T00:00:00.000Z',
    });
    expect(leaseFromLabels(leaseToLabels(r))).toEqual(r);
  });

  it('reads no labels as no record, and edited nonsense as a free lease keeping its term', () => {
    expect(leaseFromLabels({})).toBeNull();
    expect(leaseFromLabels(undefined)).toBeNull();
    const bad = { 'orchestry.lease.holder': 'x', 'orchestry.lease.term': '4', 'orchestry.lease.renewals': 'many', 'orchestry.lease.ttl_ms': '15000' };
    expect(leaseFromLabels(bad)).toEqual({ holder: '', term: 4, renewals: 0, ttlMs: 0, renewedAt: 0 });
  });
});
