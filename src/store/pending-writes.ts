/**
 * What the store's main-thread side has queued since its last post to the worker: probe results
 * as growable typed-array columns (a few array stores each, no object per result), plus events,
 * states and alerts, until they are posted as one batch.
 */
import type { ProbeErrorClass, ProbeResult } from '../model.js';
import { ERROR_CLASSES, type Batch, type EventOp } from './protocol.js';

const ERROR_CODES = new Map<ProbeErrorClass, number>(ERROR_CLASSES.map((c, i) => [c, i + 1]));
const UNCLASSIFIED = ERROR_CODES.get('error')!;

export interface PendingWrites {
  capacity: number;
  at: Float64Array;
  b: Uint32Array;
  us: Uint32Array;
  e: Uint8Array;
  /** Probe rows queued. */
  n: number;
  /** Backend key → index, for the store's lifetime: the worker keeps the same list. */
  backendIndex: Map<string, number>;
  newBackends: [number, string, string][];
  events: EventOp[];
  states: Map<string, string | null>;
  alerts: Map<string, string | null>;
}

export function createPendingWrites(): PendingWrites {
  const capacity = 1024;
  return {
    capacity,
    at: new Float64Array(capacity),
    b: new Uint32Array(capacity),
    us: new Uint32Array(capacity),
    e: new Uint8Array(capacity),
    n: 0,
    backendIndex: new Map(),
    newBackends: [],
    events: [],
    states: new Map(),
    alerts: new Map(),
  };
}

/** Queues one probe result as a row; returns the rows now queued. */
export function appendProbe(p: PendingWrites, r: ProbeResult): number {
  let b = p.backendIndex.get(r.backendId);
  if (b === undefined) {
    b = p.backendIndex.size;
    p.backendIndex.set(r.backendId, b);
    p.newBackends.push([b, r.backendId, r.app]);
  }
  if (p.n === p.capacity) grow(p);
  const i = p.n;
  p.at[i] = r.finishedAt;
  p.b[i] = b;
  p.us[i] = r.responseTimeMs > 0 ? Math.round(r.responseTimeMs * 1000) : 0;
  p.e[i] = r.healthy ? 0 : r.errorClass ? (ERROR_CODES.get(r.errorClass) ?? UNCLASSIFIED) : UNCLASSIFIED;
  return ++p.n;
}

/** Everything queued as one batch, with the probe buffers to transfer (not copy) to the worker. */
export function batchOf(p: PendingWrites, seq: number, now: number): { batch: Batch; transfer: ArrayBuffer[] } {
  const n = p.n;
  const probes =
    n > 0 ? { at: p.at.slice(0, n), b: p.b.slice(0, n), us: p.us.slice(0, n), e: p.e.slice(0, n) } : null;
  const batch: Batch = {
    type: 'batch',
    seq,
    now,
    newBackends: p.newBackends,
    probes,
    events: p.events,
    states: [...p.states],
    alerts: [...p.alerts],
  };
  const transfer = probes ? [probes.at.buffer, probes.b.buffer, probes.us.buffer, probes.e.buffer] : [];
  return { batch, transfer };
}

/** Empties the queue once its batch is posted (the backend index stays). */
export function clearPending(p: PendingWrites): void {
  p.n = 0;
  p.newBackends = [];
  p.events = [];
  p.states = new Map();
  p.alerts = new Map();
}

function grow(p: PendingWrites): void {
  p.capacity *= 2;
  const copy = <T extends Float64Array | Uint32Array | Uint8Array>(old: T, fresh: T): T => {
    fresh.set(old);
    return fresh;
  };
  p.at = copy(p.at, new Float64Array(p.capacity));
  p.b = copy(p.b, new Uint32Array(p.capacity));
  p.us = copy(p.us, new Uint32Array(p.capacity));
  p.e = copy(p.e, new Uint8Array(p.capacity));
}
