/**
 * The main-thread side of the SQLite state store. The daemon's probe path must never wait on
 * disk, so this side only appends to in-memory columns and posts them to the database worker
 * (worker.ts) once per flush_interval_seconds, or at once when BATCH_ROWS probe results wait.
 * Nothing here blocks or throws; problems show up in status().
 */
import type { Worker } from 'node:worker_threads';
import { startWorkerModule } from '../worker-module.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { StoreConfig } from '../config/types.js';
import type { ProbeResult } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { appendProbe, batchOf, clearPending, createPendingWrites, type PendingWrites } from './pending-writes.js';
import type { FromWorker, ToWorker, WorkerInit, WorkerStatus } from './protocol.js';
import type { HealthReport, ReportSource, RestoredState, StateStore, StoreStatus } from './types.js';

/** Probe results that make a batch worth posting before the flush interval is up. */
const BATCH_ROWS = 8192;
/** While the database is unavailable, the worker tries to open it again this often. */
const RETRY_MS = 10_000;

export interface SqliteStoreOptions {
  config: StoreConfig;
  clock: Clock;
  logger?: Logger;
}

interface PendingRequest {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  fallback?: unknown;
}

/** The main-thread side's state: what is queued, what the worker has in flight, and its health. */
interface StoreState {
  config: StoreConfig;
  clock: Clock;
  logger: Logger | undefined;
  worker: Worker;
  pending: PendingWrites;
  seq: number;
  /** Batch seq → probe rows in it, until the worker acks it. */
  inflight: Map<number, number>;
  inflightRows: number;
  dropped: number;
  workerStatus: WorkerStatus;
  /** Set once the worker is gone (crashed, or closed): everything after is dropped. */
  dead: string | null;
  closing: Promise<void> | null;
  flushWaiters: { seq: number; resolve: () => void }[];
  nextRequest: number;
  requests: Map<number, PendingRequest>;
  timer: TimerHandle | null;
}

/** The store; with `config.enabled` false, one that keeps nothing and reports `disabled`. */
export function createSqliteStore(opts: SqliteStoreOptions): StateStore {
  const { config, clock, logger } = opts;
  if (!config.enabled) return createDisabledStore(config.path);
  const s = startStore(config, clock, logger);
  return {
    probe: (r) => probe(s, r),
    failure(event) {
      if (!s.dead) s.pending.events.push(['failure', event]);
    },
    transition(t) {
      if (!s.dead) s.pending.events.push(['transition', t]);
    },
    recoveryAction(record) {
      if (!s.dead) s.pending.events.push(['action', record]);
    },
    saveState(key, json) {
      if (!s.dead) s.pending.states.set(key, json);
    },
    saveAlert(id, json) {
      if (!s.dead) s.pending.alerts.set(id, json);
    },
    alertDelivery(d) {
      if (!s.dead) s.pending.events.push(['delivery', d]);
    },
    restore: () => restore(s),
    report: (app, hours, reportOpts) => report(s, app, hours, reportOpts),
    status: () => status(s),
    flush: () => flush(s),
    close: () => close(s),
  };
}

/** Starts the worker and the flush timer. */
function startStore(config: StoreConfig, clock: Clock, logger: Logger | undefined): StoreState {
  const worker = startWorker({
    path: config.path,
    rawRetentionHours: config.raw_retention_hours,
    rollupRetentionDays: config.rollup_retention_days,
    maxQueue: config.max_queue,
    retryMs: RETRY_MS,
  });
  const s: StoreState = {
    config,
    clock,
    logger,
    worker,
    pending: createPendingWrites(),
    seq: 0,
    inflight: new Map(),
    inflightRows: 0,
    dropped: 0,
    workerStatus: { state: 'ok', error: null, held: 0, dropped: 0, written: 0, sizeBytes: 0, schemaVersion: 0 },
    dead: null,
    closing: null,
    flushWaiters: [],
    nextRequest: 0,
    requests: new Map(),
    timer: null,
  };
  worker.unref();
  worker.on('message', (msg: FromWorker) => onWorkerMessage(s, msg));
  worker.on('error', (err) => goneWith(s, `${config.path}: store worker failed: ${err.message}`));
  worker.on('exit', () => goneWith(s, `${config.path}: store worker exited`));
  scheduleFlush(s);
  return s;
}

/** Posts what is queued every flush_interval_seconds. */
function scheduleFlush(s: StoreState): void {
  s.timer = s.clock.setTimeout(() => {
    post(s);
    scheduleFlush(s);
  }, s.config.flush_interval_seconds * 1000);
  s.timer.unref?.();
}

function onWorkerMessage(s: StoreState, msg: FromWorker): void {
  switch (msg.type) {
    case 'ack': {
      s.inflightRows -= s.inflight.get(msg.seq) ?? 0;
      s.inflight.delete(msg.seq);
      setWorkerStatus(s, msg.status);
      while (s.flushWaiters.length > 0 && s.flushWaiters[0]!.seq <= msg.seq) s.flushWaiters.shift()!.resolve();
      break;
    }
    case 'status':
      setWorkerStatus(s, msg.status);
      break;
    case 'reply': {
      const req = s.requests.get(msg.id);
      s.requests.delete(msg.id);
      if (msg.ok) req?.resolve(msg.value);
      else req?.reject(new Error(msg.error));
      break;
    }
  }
  holdProcessOpen(s);
}

function setWorkerStatus(s: StoreState, next: WorkerStatus): void {
  const { config, logger } = s;
  if (next.state !== s.workerStatus.state || next.error !== s.workerStatus.error) {
    if (next.state === 'degraded') logger?.warn({ path: config.path, error: next.error }, 'state store degraded');
    else logger?.info({ path: config.path, schemaVersion: next.schemaVersion }, 'state store ok');
  }
  s.workerStatus = next;
}

function goneWith(s: StoreState, error: string): void {
  if (s.dead) return;
  s.dead = error;
  if (!s.closing) s.logger?.error({ path: s.config.path, error }, 'state store stopped');
  for (const w of s.flushWaiters.splice(0)) w.resolve();
  for (const req of s.requests.values()) {
    if ('fallback' in req) req.resolve(req.fallback);
    else req.reject(new Error(`state store unavailable: ${error}`));
  }
  s.requests.clear();
  if (s.timer) s.clock.clearTimeout(s.timer);
}

/** The worker is unref'd so a forgotten close() cannot hold the process; but not while a caller awaits it. */
function holdProcessOpen(s: StoreState): void {
  if (s.flushWaiters.length > 0 || s.requests.size > 0 || s.closing) s.worker.ref();
  else s.worker.unref();
}

/** Posts everything queued as one batch (an empty one still carries `now`); returns its seq. */
function post(s: StoreState): number {
  if (s.dead) return s.seq;
  const n = s.pending.n;
  const { batch, transfer } = batchOf(s.pending, ++s.seq, s.clock.now());
  s.worker.postMessage(batch satisfies ToWorker, transfer);
  s.inflight.set(batch.seq, n);
  s.inflightRows += n;
  clearPending(s.pending);
  return batch.seq;
}

function request<T>(s: StoreState, msg: ToWorker & { id: number }, fallback?: T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const entry = {
      resolve: resolve as (v: unknown) => void,
      reject,
      ...(fallback !== undefined ? { fallback } : {}),
    };
    s.requests.set(msg.id, entry);
    s.worker.postMessage(msg);
    holdProcessOpen(s);
  });
}

function probe(s: StoreState, r: ProbeResult): void {
  if (s.dead || s.pending.n + s.inflightRows >= s.config.max_queue) {
    s.dropped++;
    return;
  }
  if (appendProbe(s.pending, r) >= BATCH_ROWS) post(s);
}

async function restore(s: StoreState): Promise<RestoredState> {
  const empty: RestoredState = { states: new Map(), alerts: [] };
  if (s.dead) return empty;
  post(s);
  return request<RestoredState>(s, { type: 'restore', id: ++s.nextRequest }, empty);
}

async function report(s: StoreState, app: string, hours: number, opts?: { source?: ReportSource }): Promise<HealthReport> {
  if (!(Number.isFinite(hours) && hours > 0)) {
    throw new Error(`report hours must be a positive number, got ${hours}`);
  }
  if (s.dead) throw new Error(`state store unavailable: ${s.dead}`);
  post(s);
  return request<HealthReport>(s, {
    type: 'report',
    id: ++s.nextRequest,
    app,
    hours,
    now: s.clock.now(),
    source: opts?.source ?? 'rollups',
  });
}

function status(s: StoreState): StoreStatus {
  const { dead, closing, workerStatus } = s;
  return {
    state: dead && !closing ? 'degraded' : workerStatus.state,
    path: s.config.path,
    error: dead && !closing ? dead : workerStatus.error,
    queued: s.pending.n + s.inflightRows + workerStatus.held,
    dropped: s.dropped + workerStatus.dropped,
    written: workerStatus.written,
    sizeBytes: workerStatus.sizeBytes,
    schemaVersion: workerStatus.schemaVersion,
  };
}

function flush(s: StoreState): Promise<void> {
  if (s.dead) return Promise.resolve();
  const target = post(s);
  return new Promise<void>((resolve) => {
    s.flushWaiters.push({ seq: target, resolve });
    holdProcessOpen(s);
  });
}

function close(s: StoreState): Promise<void> {
  s.closing ??= (async () => {
    if (s.timer) s.clock.clearTimeout(s.timer);
    if (s.dead) return;
    post(s);
    const exited = new Promise<void>((resolve) => s.worker.once('exit', () => resolve()));
    await request<null>(s, { type: 'close', id: ++s.nextRequest, now: s.clock.now() }, null);
    await exited;
  })();
  return s.closing;
}

/** The store's worker (worker.ts / worker.js beside this file). */
function startWorker(init: WorkerInit): Worker {
  return startWorkerModule(import.meta.url, './worker', { workerData: init });
}

function createDisabledStore(path: string): StateStore {
  const none = () => {};
  return {
    probe: none,
    failure: none,
    transition: none,
    recoveryAction: none,
    saveState: none,
    saveAlert: none,
    alertDelivery: none,
    restore: async () => ({ states: new Map(), alerts: [] }),
    report: async () => {
      throw new Error('state store is disabled (store.enabled: false)');
    },
    status: () => ({
      state: 'disabled',
      path,
      error: null,
      queued: 0,
      dropped: 0,
      written: 0,
      sizeBytes: 0,
      schemaVersion: 0,
    }),
    flush: async () => {},
    close: async () => {},
  };
}
