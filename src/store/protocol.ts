/**
 * Messages between the main-thread store API (sqlite-store.ts) and the database worker
 * (worker.ts). Probe results travel as columns of typed arrays, transferred, not copied.
 */
import type { FailureEvent, Transition } from '../health/types.js';
import type { ProbeErrorClass } from '../model.js';
import type { ActionRecord } from '../recovery/types.js';
import type { AlertDelivery, HealthReport, ReportSource, RestoredState } from './types.js';

/** Stored error code = index + 1; 0 is a healthy result. Append only: codes are on disk. */
export const ERROR_CLASSES: readonly ProbeErrorClass[] = [
  'timeout',
  'connection_refused',
  'connection_reset',
  'network_unreachable',
  'dns',
  'tls',
  'unexpected_status',
  'unexpected_body',
  'unexpected_response',
  'error',
  'local_error',
];

export function errorClassName(code: number): string {
  return ERROR_CLASSES[code - 1] ?? `code_${code}`;
}

export interface WorkerInit {
  path: string;
  rawRetentionHours: number;
  rollupRetentionDays: number;
  /** Most probe rows the worker holds while the database is unavailable; oldest dropped beyond. */
  maxQueue: number;
  /** While degraded, try to open the database again this often (by batch time). */
  retryMs: number;
}

/** Probe rows, one entry per column. */
export interface ProbeColumns {
  /** finishedAt, epoch ms. */
  at: Float64Array;
  /** Index into the batch-independent backend list (see Batch.newBackends). */
  b: Uint32Array;
  /** Response time, whole µs. */
  us: Uint32Array;
  /** 0 healthy, else ERROR_CLASSES index + 1. */
  e: Uint8Array;
}

export type EventOp =
  | ['failure', FailureEvent]
  | ['transition', Transition]
  | ['action', ActionRecord]
  | ['delivery', AlertDelivery];

export interface Batch {
  type: 'batch';
  seq: number;
  /** The store clock's now: drives rollup closing, retention and open retries. */
  now: number;
  /** Backends first seen in this batch: [index, key, app]. Indexes count up from 0. */
  newBackends: [number, string, string][];
  probes: ProbeColumns | null;
  events: EventOp[];
  states: [string, string | null][];
  alerts: [string, string | null][];
}

export type ToWorker =
  | Batch
  | { type: 'restore'; id: number }
  | { type: 'report'; id: number; app: string; hours: number; now: number; source: ReportSource }
  | { type: 'close'; id: number; now: number };

export interface WorkerStatus {
  state: 'ok' | 'degraded';
  error: string | null;
  /** Probe rows held while degraded. */
  held: number;
  /** Probe rows the worker dropped (held beyond maxQueue). */
  dropped: number;
  written: number;
  sizeBytes: number;
  schemaVersion: number;
}

export type FromWorker =
  | { type: 'ack'; seq: number; rows: number; status: WorkerStatus }
  | { type: 'status'; status: WorkerStatus }
  | { type: 'reply'; id: number; ok: true; value: RestoredState | HealthReport | null }
  | { type: 'reply'; id: number; ok: false; error: string };
