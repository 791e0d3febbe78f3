/**
 * The main-thread side of the SQLite state store. The daemon's probe path must never wait on
 * disk, so this side only appends to in-memory columns and posts them to the database worker
 * (worker.ts) once per flush_interval_seconds, or at once when BATCH_ROWS probe results wait.
 * Nothing here blocks or throws; problems show up in status().
 */
import { Worker } from 'node:worker_threads';
import type { Clock, TimerHandle } from '../clock.js';
import type { StoreConfig } from '../config/types.js';
import type { ProbeErrorClass } from '../model.js';
import type { Logger } from '../observability/logger.js';
import {
  ERROR_CLASSES,
  type Batch,
  type EventOp,
  type FromWorker,
  type ToWorker,
  type WorkerInit,
  type WorkerStatus,
} from './protocol.js';
import type { HealthReport, ReportSource, RestoredState, StateStore, StoreStatus } from './types.js';

/** Probe results that make a batch worth posting before the flush interval is up. */
const BATCH_ROWS = 8192;
/** While the database is unavailable, the worker tries to open it again this often. */
const RETRY_MS = 10_000;

const ERROR_CODES = new Map<ProbeErrorClass, number>(ERROR_CLASSES.map((c, i) => [c, i + 1]));
const UNCLASSIFIED = ERROR_CODES.get('error')!;

export interface SqliteStoreOptions {
  config: StoreConfig;
  clock: Clock;
  logger?: Logger;
}

/** The store; with `config.enabled` false, one that keeps nothing and reports `disabled`. */
export function createSqliteStore(opts: SqliteStoreOptions): StateStore {
  const { config, clock, logger } = opts;
  if (!config.enabled) return createDisabledStore(config.path);

  let capacity = 1024;
  let at = new Float64Array(capacity);
  let bcol = new Uint32Array(capacity);
  let us = new Uint32Array(capacity);
  let ecol = new Uint8Array(capacity);
  let n = 0;
  const backendIndex = new Map<string, number>();
  let newBackends: [number, string, string][] = [];
  let events: EventOp[] = [];
  let states = new Map<string, string | null>();
  let alerts = new Map<string, string | null>();

  let seq = 0;
  const inflight = new Map<number, number>();
  let inflightRows = 0;
  let dropped = 0;
  let workerStatus: WorkerStatus = {
    state: 'ok',
    error: null,
    held: 0,
    dropped: 0,
    written: 0,
    sizeBytes: 0,
    schemaVersion: 0,
  };
  /** Set once the worker is gone (crashed, or closed): everything after is dropped. */
  let dead: string | null = null;
  let closing: Promise<void> | null = null;
  const flushWaiters: { seq: number; resolve: () => void }[] = [];
  let nextRequest = 0;
  const requests = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; fallback?: unknown }>();

  const worker = startWorker({
    path: config.path,
    rawRetentionHours: config.raw_retention_hours,
    rollupRetentionDays: config.rollup_retention_days,
    maxQueue: config.max_queue,
    retryMs: RETRY_MS,
  });
  worker.unref();
  worker.on('message', (msg: FromWorker) => {
    switch (msg.type) {
      case 'ack': {
        inflightRows -= inflight.get(msg.seq) ?? 0;
        inflight.delete(msg.seq);
        setWorkerStatus(msg.status);
        while (flushWaiters.length > 0 && flushWaiters[0]!.seq <= msg.seq) flushWaiters.shift()!.resolve();
        break;
      }
      case 'status':
        setWorkerStatus(msg.status);
        break;
      case 'reply': {
        const req = requests.get(msg.id);
        requests.delete(msg.id);
        if (msg.ok) req?.resolve(msg.value);
        else req?.reject(new Error(msg.error));
        break;
      }
    }
    holdProcessOpen();
  });
  worker.on('error', (err) => goneWith(`${config.path}: store worker failed: ${err.message}`));
  worker.on('exit', () => goneWith(`${config.path}: store worker exited`));

  let timer: TimerHandle | null = null;
  const tick = () => {
    post();
    timer = clock.setTimeout(tick, config.flush_interval_seconds * 1000);
    timer.unref?.();
  };
  timer = clock.setTimeout(tick, config.flush_interval_seconds * 1000);
  timer.unref?.();

  function setWorkerStatus(next: WorkerStatus): void {
    if (next.state !== workerStatus.state || next.error !== workerStatus.error) {
      if (next.state === 'degraded') logger?.warn({ path: config.path, error: next.error }, 'state store degraded');
      else logger?.info({ path: config.path, schemaVersion: next.schemaVersion }, 'state store ok');
    }
    workerStatus = next;
  }

  function goneWith(error: string): void {
    if (dead) return;
    dead = error;
    if (!closing) logger?.error({ path: config.path, error }, 'state store stopped');
    for (const w of flushWaiters.splice(0)) w.resolve();
    for (const req of requests.values()) {
      if ('fallback' in req) req.resolve(req.fallback);
      else req.reject(new Error(`state store unavailable: ${error}`));
    }
    requests.clear();
    if (timer) clock.clearTimeout(timer);
  }

  /** The worker is unref'd so a forgotten close() cannot hold the process; but not while a caller awaits it. */
  function holdProcessOpen(): void {
    if (flushWaiters.length > 0 || requests.size > 0 || closing) worker.ref();
    else worker.unref();
  }

  /** Posts everything queued as one batch (an empty one still carries `now`); returns its seq. */
  function post(): number {
    if (dead) return seq;
    const probes =
      n > 0 ? { at: at.slice(0, n), b: bcol.slice(0, n), us: us.slice(0, n), e: ecol.slice(0, n) } : null;
    const batch: Batch = {
      type: 'batch',
      seq: ++seq,
      now: clock.now(),
      newBackends,
      probes,
      events,
      states: [...states],
      alerts: [...alerts],
    };
    worker.postMessage(
      batch satisfies ToWorker,
      probes ? [probes.at.buffer, probes.b.buffer, probes.us.buffer, probes.e.buffer] : [],
    );
    inflight.set(batch.seq, n);
    inflightRows += n;
    n = 0;
    newBackends = [];
    events = [];
    states = new Map();
    alerts = new Map();
    return batch.seq;
  }

  function request<T>(msg: ToWorker & { id: number }, fallback?: T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry = {
        resolve: resolve as (v: unknown) => void,
        reject,
        ...(fallback !== undefined ? { fallback } : {}),
      };
      requests.set(msg.id, entry);
      worker.postMessage(msg);
      holdProcessOpen();
    });
  }

  function grow(): void {
    capacity *= 2;
    const copy = <T extends Float64Array | Uint32Array | Uint8Array>(old: T, fresh: T): T => {
      fresh.set(old);
      return fresh;
    };
    at = copy(at, new Float64Array(capacity));
    bcol = copy(bcol, new Uint32Array(capacity));
    us = copy(us, new Uint32Array(capacity));
    ecol = copy(ecol, new Uint8Array(capacity));
  }

  return {
    probe(r) {
      if (dead || n + inflightRows >= config.max_queue) {
        dropped++;
        return;
      }
      let b = backendIndex.get(r.backendId);
      if (b === undefined) {
        b = backendIndex.size;
        backendIndex.set(r.backendId, b);
        newBackends.push([b, r.backendId, r.app]);
      }
      if (n === capacity) grow();
      at[n] = r.finishedAt;
      bcol[n] = b;
      us[n] = r.responseTimeMs > 0 ? Math.round(r.responseTimeMs * 1000) : 0;
      ecol[n] = r.healthy ? 0 : r.errorClass ? (ERROR_CODES.get(r.errorClass) ?? UNCLASSIFIED) : UNCLASSIFIED;
      if (++n >= BATCH_ROWS) post();
    },
    failure(event) {
      if (!dead) events.push(['failure', event]);
    },
    transition(t) {
      if (!dead) events.push(['transition', t]);
    },
    recoveryAction(record) {
      if (!dead) events.push(['action', record]);
    },
    saveState(key, json) {
      if (!dead) states.set(key, json);
    },
    saveAlert(id, json) {
      if (!dead) alerts.set(id, json);
    },
    alertDelivery(d) {
      if (!dead) events.push(['delivery', d]);
    },
    async restore() {
      const empty: RestoredState = { states: new Map(), alerts: [] };
      if (dead) return empty;
      post();
      return request<RestoredState>({ type: 'restore', id: ++nextRequest }, empty);
    },
    async report(app: string, hours: number, opts?: { source?: ReportSource }) {
      if (!(Number.isFinite(hours) && hours > 0)) {
        throw new Error(`report hours must be a positive number, got ${hours}`);
      }
      if (dead) throw new Error(`state store unavailable: ${dead}`);
      post();
      return request<HealthReport>({
        type: 'report',
        id: ++nextRequest,
        app,
        hours,
        now: clock.now(),
        source: opts?.source ?? 'rollups',
      });
    },
    status(): StoreStatus {
      return {
        state: dead && !closing ? 'degraded' : workerStatus.state,
        path: config.path,
        error: dead && !closing ? dead : workerStatus.error,
        queued: n + inflightRows + workerStatus.held,
        dropped: dropped + workerStatus.dropped,
        written: workerStatus.written,
        sizeBytes: workerStatus.sizeBytes,
        schemaVersion: workerStatus.schemaVersion,
      };
    },
    flush() {
      if (dead) return Promise.resolve();
      const target = post();
      return new Promise<void>((resolve) => {
        flushWaiters.push({ seq: target, resolve });
        holdProcessOpen();
      });
    },
    close() {
      closing ??= (async () => {
        if (timer) clock.clearTimeout(timer);
        if (dead) return;
        post();
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        await request<null>({ type: 'close', id: ++nextRequest, now: clock.now() }, null);
        await exited;
      })();
      return closing;
    },
  };
}

/**
 * Starts worker.js beside this file. Under vitest this file runs from its TypeScript source;
 * then the worker runs from worker.ts with Node's type stripping, with a resolve hook mapping
 * the NodeNext `./x.js` specifiers to the `./x.ts` files next to them.
 */
function startWorker(init: WorkerInit): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
  }
  const entry = new URL('./worker.ts', import.meta.url).href;
  const bootstrap = `
    require('node:module').registerHooks({
      resolve(specifier, context, next) {
        if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
          return next(specifier.slice(0, -3) + '.ts', context);
        }
        return next(specifier, context);
      },
    });
    import(${JSON.stringify(entry)});`;
  return new Worker(bootstrap, { eval: true, workerData: init });
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
