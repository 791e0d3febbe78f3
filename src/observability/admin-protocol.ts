/**
 * What the admin server's two threads share. The front (admin-front.ts, a worker thread) owns
 * the port: it accepts connections, applies the connection limits, answers /healthz itself and
 * hands every other request to the main thread, which computes the reply (admin-server.ts).
 * Liveness, limits and connection counters cross in shared memory, so neither side waits on the
 * other's event loop to read them.
 */
import type { AdminConnectionStats, AdminLimits } from './admin-connections.js';

/** Slots of the shared BigInt64Array. */
export const SHARED = {
  /** Date.now() when the main thread's event loop last ran the heartbeat timer. */
  heartbeat: 0,
  maxConnections: 1,
  idleTimeoutMs: 2,
  requestTimeoutMs: 3,
  open: 4,
  evicted: 5,
  refused: 6,
} as const;
const SLOTS = 7;

export function createShared(): BigInt64Array {
  return new BigInt64Array(new SharedArrayBuffer(SLOTS * BigInt64Array.BYTES_PER_ELEMENT));
}

const read = (shared: BigInt64Array, slot: number): number => Number(Atomics.load(shared, slot));
const write = (shared: BigInt64Array, slot: number, value: number): void => void Atomics.store(shared, slot, BigInt(Math.trunc(value)));

/** Main thread: alive now, and the limits new connections get. */
export function beat(shared: BigInt64Array, now: number, limits: AdminLimits): void {
  write(shared, SHARED.heartbeat, now);
  write(shared, SHARED.maxConnections, limits.maxConnections);
  write(shared, SHARED.idleTimeoutMs, limits.idleTimeoutMs);
  write(shared, SHARED.requestTimeoutMs, limits.requestTimeoutMs);
}

export function readHeartbeat(shared: BigInt64Array): number {
  return read(shared, SHARED.heartbeat);
}

export function readLimits(shared: BigInt64Array): AdminLimits {
  return {
    maxConnections: read(shared, SHARED.maxConnections),
    idleTimeoutMs: read(shared, SHARED.idleTimeoutMs),
    requestTimeoutMs: read(shared, SHARED.requestTimeoutMs),
  };
}

export function writeStats(shared: BigInt64Array, stats: AdminConnectionStats): void {
  write(shared, SHARED.open, stats.open);
  write(shared, SHARED.evicted, stats.evicted);
  write(shared, SHARED.refused, stats.refused);
}

export function readStats(shared: BigInt64Array): AdminConnectionStats {
  return { open: read(shared, SHARED.open), evicted: read(shared, SHARED.evicted), refused: read(shared, SHARED.refused) };
}

export interface FrontInit {
  host: string;
  port: number;
  shared: BigInt64Array;
  /** /healthz answers 503 once the main thread's heartbeat is older than this. */
  stallAfterMs: number;
}

/** A reply computed by the main thread. */
export interface Reply {
  status: number;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
}

export type FromFront =
  | { type: 'listening'; host: string; port: number }
  | { type: 'listen-error'; code: string | undefined; message: string }
  | { type: 'request'; id: number; method: string; url: string }
  | { type: 'server-error'; message: string }
  | { type: 'closed' };

/**
 * A reply as posted to the admin thread: a large body goes as bytes whose buffer is transferred,
 * not copied. As a string, a 7.6 MB /metrics (10,000 backends) was cloned into the admin thread,
 * measured and encoded there, and /healthz waited 130-250 ms behind it.
 */
export type PostedReply = Omit<Reply, 'body'> & { body: string | Uint8Array };

export type ToFront = { type: 'reply'; id: number; reply: PostedReply } | { type: 'close' };
