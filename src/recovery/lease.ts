/**
 * A leader lease, as pure decisions: what a sidecar writes after reading the lease record, and
 * whether it may act now. The record lives in cluster state and every write carries the version
 * it was read at (swarm-lease.ts), so of two sidecars racing for it the engine accepts one.
 *
 * Time, as in Kubernetes' client-go leaderelection: no clock is compared across machines. A
 * follower measures a holder's TTL from the moment *it* saw the record change, on its own clock;
 * the holder counts its TTL from the moment it *started* its last successful write. A follower
 * sees the write only after it was made, so the holder's own deadline always passes first: the
 * holder has stopped acting before any other sidecar may take the lease.
 */

/** What the lease says (the labels of the lease object). */
export interface LeaseRecord {
  /** The holder's instance id; '' when free (released). */
  holder: string;
  /** Increases each time the lease changes hands. */
  term: number;
  /** Increases with every renewal: how followers see that the holder is alive. */
  renewals: number;
  /** The holder's TTL: followers wait this long after the last change they saw. */
  ttlMs: number;
  /** The holder's clock at the write; informational only (clocks differ between machines). */
  renewedAt: number;
}

/** This sidecar's view of the lease. */
export interface LeaseState {
  /** This sidecar's instance id. */
  me: string;
  /** The record last read, or null before the first read (or when there is none). */
  observed: LeaseRecord | null;
  /** Local time at which `observed` was first seen as it is. */
  observedAt: number;
  /** Local time until which this sidecar may act: 0 when it does not hold the lease. */
  heldUntil: number;
}

/** What to do after a read. */
export type LeaseStep =
  | { kind: 'follow'; state: LeaseState }
  | { kind: 'acquire' | 'renew' | 'release'; state: LeaseState; write: LeaseRecord };

export function initialLeaseState(me: string): LeaseState {
  return { me, observed: null, observedAt: 0, heldUntil: 0 };
}

function sameRecord(a: LeaseRecord | null, b: LeaseRecord | null): boolean {
  return a === b || (a !== null && b !== null && a.holder === b.holder && a.term === b.term && a.renewals === b.renewals);
}

/**
 * The decision after reading `record` at local time `now`: renew a lease this sidecar holds,
 * take one that is free or expired, or follow a live holder. A record read that no longer names
 * this sidecar ends its hold at once. A sidecar that does not `campaign` (its recovery is off)
 * never takes the lease, and frees it if it holds it: it would block the others from acting.
 */
export function leaseStep(state: LeaseState, record: LeaseRecord | null, now: number, ttlMs: number, campaign = true): LeaseStep {
  const observedAt = sameRecord(state.observed, record) ? state.observedAt : now;
  const mine = record !== null && record.holder === state.me;
  const next: LeaseState = { ...state, observed: record, observedAt, heldUntil: mine && campaign ? state.heldUntil : 0 };
  if (!campaign) {
    return mine ? { kind: 'release', state: next, write: { ...record, holder: '', renewedAt: now } } : { kind: 'follow', state: next };
  }
  if (mine) {
    return { kind: 'renew', state: next, write: { ...record, renewals: record.renewals + 1, ttlMs, renewedAt: now } };
  }
  const free = record === null || record.holder === '' || now >= observedAt + record.ttlMs;
  if (!free) return { kind: 'follow', state: next };
  return {
    kind: 'acquire',
    state: next,
    write: { holder: state.me, term: (record?.term ?? 0) + 1, renewals: 0, ttlMs, renewedAt: now },
  };
}

/**
 * The state after a write of `written` that started at local time `startedAt`: held until
 * `startedAt + ttl` when the engine accepted it; not held at all when it refused it (someone
 * else wrote first) or could not be reached.
 */
export function leaseWritten(state: LeaseState, written: LeaseRecord, ok: boolean, startedAt: number, now: number): LeaseState {
  if (!ok || written.holder !== state.me) return { ...state, heldUntil: 0, ...(ok ? { observed: written, observedAt: now } : {}) };
  return { ...state, observed: written, observedAt: now, heldUntil: startedAt + written.ttlMs };
}

/** A failed read: whatever was held is given up at once (the engine may be gone for everyone). */
export function leaseLost(state: LeaseState): LeaseState {
  return { ...state, heldUntil: 0 };
}

/** Whether this sidecar may act at `now`. */
export function leaseHeld(state: LeaseState, now: number): boolean {
  return now < state.heldUntil;
}

/** The lease as the status API shows it. */
export interface LeaseStatus {
  holder: string | null;
  term: number;
  /** Local estimate (ms since epoch) of when the lease ends without a renewal; null when free. */
  expiresAt: number | null;
  /** Whether this sidecar holds it now. */
  held: boolean;
}

export function leaseStatus(state: LeaseState, now: number): LeaseStatus {
  const r = state.observed;
  const held = leaseHeld(state, now);
  if (!r || r.holder === '') return { holder: null, term: r?.term ?? 0, expiresAt: null, held };
  const expiresAt = r.holder === state.me && held ? state.heldUntil : state.observedAt + r.ttlMs;
  return { holder: r.holder, term: r.term, expiresAt, held };
}

// ---- the record as labels -----------------------------------------------------------------

export const LEASE_LABELS = {
  holder: 'orchestry.lease.holder',
  term: 'orchestry.lease.term',
  renewals: 'orchestry.lease.renewals',
  ttlMs: 'orchestry.lease.ttl_ms',
  renewedAt: 'orchestry.lease.renewed_at',
} as const;

export function leaseToLabels(r: LeaseRecord): Record<string, string> {
  return {
    [LEASE_LABELS.holder]: r.holder,
    [LEASE_LABELS.term]: String(r.term),
    [LEASE_LABELS.renewals]: String(r.renewals),
    [LEASE_LABELS.ttlMs]: String(r.ttlMs),
    [LEASE_LABELS.renewedAt]: new Date(r.renewedAt).toISOString(),
  };
}

/**
 * The record in `labels`, or null when there is none. Labels someone edited into nonsense read
 * as a free lease with the term kept when it is a number: the next write replaces them.
 */
export function leaseFromLabels(labels: Record<string, string> | undefined): LeaseRecord | null {
  const holder = labels?.[LEASE_LABELS.holder];
  if (holder === undefined) return null;
  const int = (key: string) => {
    const n = Number(labels?.[key]);
    return Number.isSafeInteger(n) && n >= 0 ? n : null;
  };
  const term = int(LEASE_LABELS.term) ?? 0;
  const renewals = int(LEASE_LABELS.renewals);
  const ttlMs = int(LEASE_LABELS.ttlMs);
  if (renewals === null || ttlMs === null || ttlMs === 0) return { holder: '', term, renewals: 0, ttlMs: 0, renewedAt: 0 };
  const renewedAt = Date.parse(labels?.[LEASE_LABELS.renewedAt] ?? '');
  return { holder, term, renewals, ttlMs, renewedAt: Number.isNaN(renewedAt) ? 0 : renewedAt };
}
