/**
 * The admin HTTP server (node:http): Prometheus metrics, liveness and readiness probes, a
 * read-only JSON view of apps and backends, and the status page that reads that JSON. Everything
 * it shows comes from callbacks, so it holds no state of its own.
 */
import type { Worker } from 'node:worker_threads';
import { ConfigError, SidecarError, describeError } from '../errors.js';
import { DEFAULT_ADMIN } from '../config/defaults.js';
import { startWorkerModule } from '../worker-module.js';
import { adminLimits, type AdminConnectionStats, type AdminLimits } from './admin-connections.js';
import { beat, createShared, readStats, writeStats, type FromFront, type FrontInit, type Reply, type ToFront } from './admin-protocol.js';
import { EVENT_KINDS, type EventKind, type EventQuery, type LoggedEvent } from './event-log.js';
import type { Logger } from './logger.js';
import { STATUS_PAGE_HEADERS, STATUS_PAGE_HTML } from './status-page.js';

export interface AdminServerOptions {
  /** `host:port` (IPv6 as `[::1]:9180`); port 0 picks a free port. */
  listen: string;
  logger: Logger;
  metrics: { render(): Promise<string>; contentType: string };
  /**
   * JSON-ready view of every app, or of the one `query.app` names (undefined when there is no
   * such app); with `query.summary`, counts per app instead of every backend.
   */
  getApps(query: AppsQuery): unknown | undefined;
  /** JSON-ready view of one app, or undefined when there is no such app. */
  getApp(name: string): unknown | undefined;
  readiness(): { ready: boolean; reasons: string[] };
  /** Recent events for `/api/v1/events`. */
  getEvents?(query: EventQuery): LoggedEvent[];
  /**
   * The health report of one app over the last `hours` (`/api/v1/apps/{app}/report`): undefined
   * when there is no such app; rejects with a SidecarError when the store cannot answer.
   */
  getReport?(app: string, hours: number): Promise<unknown | undefined>;
  /** Alerts firing now, for `/api/v1/alerts`. */
  getAlerts?(): unknown;
  /** Recovery's budgets, backoffs and holds, for `/api/v1/recovery`. */
  getRecovery?(): unknown;
  /** Connection cap and timeouts, read at each new connection; the `admin` defaults without it. */
  limits?(): AdminLimits;
  /** /healthz says 503 once the main thread has not run for this long (LIVENESS_STALL_MS). */
  stallAfterMs?: number;
}

/** `/api/v1/apps?app=NAME&summary=1`: one app, and/or counts instead of backends. */
export interface AppsQuery {
  app?: string;
  summary?: boolean;
}

/** Longest report window: the default rollup retention is 30 days. */
export const MAX_REPORT_HOURS = 24 * 366;

export interface AdminServer {
  /** Listens; resolves with the bound address, rejects with a one-line reason naming it. */
  start(): Promise<{ host: string; port: number }>;
  /** Stops listening and drops open (keep-alive) connections. */
  close(): Promise<void>;
  /** Open connections and those closed by the cap. */
  connections(): AdminConnectionStats;
}

const ALLOWED_METHODS = 'GET, HEAD';
const JSON_TYPE = 'application/json; charset=utf-8';
const STATUS_PAGE: Reply = {
  status: 200,
  contentType: 'text/html; charset=utf-8',
  body: STATUS_PAGE_HTML,
  headers: { ...STATUS_PAGE_HEADERS },
};

/** Common listen failures, worded for an operator. */
const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
  EACCES: 'permission denied',
};

/** Splits `host:port` / `[v6]:port`; throws a ConfigError naming admin.listen otherwise. */
export function parseListenAddress(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]\s]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new ConfigError([
      {
        path: 'admin.listen',
        message: `expected "host:port" with a port from 0 to 65535 (e.g. "127.0.0.1:9180" or "[::1]:9180"), got ${JSON.stringify(listen)}`,
      },
    ]);
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

/** /healthz says 503 once the main thread's event loop has not turned for this long. */
export const LIVENESS_STALL_MS = 30_000;
/** How often the main thread tells the front it is alive (and the limits in effect). */
const HEARTBEAT_MS = 100;
/** A lost front is started again after RESTART_MIN_MS; while its port cannot be had, up to every RESTART_MAX_MS. */
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;

/**
 * Creates the admin server; `listen` is checked here, before anything binds. The port is served
 * by a worker thread (admin-front.ts) that answers /healthz from the main thread's heartbeat and
 * asks the main thread for every other reply.
 */
export function createAdminServer(opts: AdminServerOptions): AdminServer {
  const address = parseListenAddress(opts.listen);
  const defaults = adminLimits(DEFAULT_ADMIN);
  const limits = opts.limits ?? (() => defaults);
  const shared = createShared();
  const beatNow = (): void => beat(shared, Date.now(), limits());
  const stallAfterMs = opts.stallAfterMs ?? LIVENESS_STALL_MS;
  let front: Front | null = null;
  let heartbeat: NodeJS.Timeout | undefined;
  let restart: NodeJS.Timeout | undefined;
  let restartDelayMs = RESTART_MIN_MS;
  // A front that exits on its own (a bug, out of memory) is started again on the port it had, so
  // the port comes back by itself: after a second, and while the port cannot be had (another
  // process took it meanwhile) again and again, the wait doubling up to RESTART_MAX_MS.
  const onLost = (lost: Front, bound: { host: string; port: number }, code: number): void => {
    if (front !== lost) return;
    // Its sockets died with it; the counters of dropped connections go on.
    writeStats(shared, { ...readStats(shared), open: 0 });
    opts.logger.error({ code, admin: `${bound.host}:${bound.port}`, retry_in_ms: restartDelayMs }, 'admin server thread exited; starting it again');
    restart = setTimeout(() => {
      const next = startFront({ host: bound.host, port: bound.port, shared, stallAfterMs }, opts, (f, c) => onLost(f, bound, c));
      front = next;
      next.listening.then(
        () => (restartDelayMs = RESTART_MIN_MS),
        (err: { code?: string; message: string }) => {
          opts.logger.error({ err: err.message, code: err.code, admin: `${bound.host}:${bound.port}` }, 'admin server thread could not listen again');
          restartDelayMs = Math.min(restartDelayMs * 2, RESTART_MAX_MS);
          // Its exit comes back here (it is still the current front) and schedules the next try.
          void next.worker.terminate();
        },
      );
    }, restartDelayMs).unref();
  };
  return {
    async start() {
      beatNow();
      let bound: { host: string; port: number } | undefined;
      const f = startFront({ host: address.host, port: address.port, shared, stallAfterMs }, opts, (lost, code) => bound && onLost(lost, bound, code));
      try {
        bound = await f.listening;
        front = f;
        heartbeat = setInterval(beatNow, HEARTBEAT_MS).unref();
        return bound;
      } catch (err) {
        await f.worker.terminate();
        const { code, message } = err as { code?: string; message: string };
        const reason = LISTEN_ERRORS[code ?? ''] ?? message;
        throw new SidecarError('ADMIN_LISTEN_FAILED', `admin.listen: cannot listen on ${opts.listen}: ${reason}${code ? ` (${code})` : ''}`, { cause: err });
      }
    },
    async close() {
      const f = front;
      front = null;
      clearTimeout(restart);
      clearInterval(heartbeat);
      if (!f) return;
      f.worker.postMessage({ type: 'close' } satisfies ToFront);
      await f.closed;
      await f.worker.terminate();
    },
    connections: () => readStats(shared),
  };
}

interface Front {
  worker: Worker;
  listening: Promise<{ host: string; port: number }>;
  closed: Promise<void>;
}

/** Starts a front; `onExit` hears of its exit (code), whether asked for or not. */
function startFront(init: FrontInit, opts: AdminServerOptions, onExit: (front: Front, code: number) => void): Front {
  // A small young generation: the front holds a few connections and one reply at a time.
  const worker = startWorkerModule(import.meta.url, './admin-front', { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
  let listened!: (address: { host: string; port: number }) => void;
  let failed!: (err: { code?: string; message: string }) => void;
  let closed!: () => void;
  const front: Front = {
    worker,
    listening: new Promise((resolve, reject) => ((listened = resolve), (failed = reject))),
    closed: new Promise((resolve) => (closed = resolve)),
  };
  worker.on('message', (msg: FromFront) => {
    if (msg.type === 'request') void answer(opts, worker, msg.id, msg.method, msg.url);
    else if (msg.type === 'listening') listened({ host: msg.host, port: msg.port });
    else if (msg.type === 'listen-error') failed({ code: msg.code, message: msg.message });
    else if (msg.type === 'server-error') opts.logger.warn({ err: msg.message }, 'admin server: a connection could not be accepted');
    else closed();
  });
  worker.on('error', (err) => {
    opts.logger.error({ err }, 'admin server thread failed');
    failed({ message: describeError(err) });
  });
  worker.on('exit', (code) => {
    closed();
    onExit(front, code);
  });
  return front;
}

async function answer(opts: AdminServerOptions, worker: Worker, id: number, method: string, url: string): Promise<void> {
  let reply: Reply;
  try {
    reply = await respond(opts, method, url);
  } catch (err) {
    opts.logger.error({ err, method, url }, 'admin request failed');
    reply = json(500, { error: `internal error: ${describeError(err)}` });
  }
  if (reply.body.length < TRANSFER_FROM_CHARS) return worker.postMessage({ type: 'reply', id, reply } satisfies ToFront);
  // Its own exactly sized ArrayBuffer (never Buffer's shared pool), which the transfer detaches.
  const body = new TextEncoder().encode(reply.body);
  worker.postMessage({ type: 'reply', id, reply: { ...reply, body } } satisfies ToFront, [body.buffer]);
}

/** Bodies from this size on are posted as transferred bytes (see PostedReply). */
const TRANSFER_FROM_CHARS = 64 * 1024;

async function respond(opts: AdminServerOptions, method: string, url: string): Promise<Reply> {
  // The raw path, not `new URL(url, base)`: that would read `//host/x` as another origin.
  const [path, query = ''] = url.split('?', 2) as [string, string?];
  const handler = route(opts, path, new URLSearchParams(query));
  if (!handler) return json(404, { error: `no such path ${JSON.stringify(path)}` });
  if (method !== 'GET' && method !== 'HEAD') {
    return { ...json(405, { error: `method ${method} not allowed` }), headers: { Allow: ALLOWED_METHODS } };
  }
  return handler();
}

type Handler = () => Reply | Promise<Reply>;

function route(opts: AdminServerOptions, path: string, query: URLSearchParams): Handler | undefined {
  switch (path) {
    case '/':
    case '/status':
      return () => STATUS_PAGE;
    case '/metrics':
      return async () => ({ status: 200, contentType: opts.metrics.contentType, body: await opts.metrics.render() });
    case '/healthz':
      // GET and HEAD are answered by the front from the heartbeat; this route gives the other methods their 405.
      return () => json(200, { status: 'ok' });
    case '/readyz':
      return () => {
        const { ready, reasons } = opts.readiness();
        return ready ? json(200, { ready: true }) : json(503, { ready: false, reasons });
      };
    case '/api/v1/apps':
      return () => apps(opts, query);
    case '/api/v1/events':
      return opts.getEvents ? () => events(opts.getEvents!, query) : undefined;
    case '/api/v1/alerts':
      return opts.getAlerts ? () => json(200, opts.getAlerts!()) : undefined;
    case '/api/v1/recovery':
      return opts.getRecovery ? () => json(200, opts.getRecovery!()) : undefined;
  }
  return appRoute(opts, path, query);
}

/** `/api/v1/apps/{app}` and `/api/v1/apps/{app}/report`. */
function appRoute(opts: AdminServerOptions, path: string, query: URLSearchParams): Handler | undefined {
  const m = /^\/api\/v1\/apps\/([^/]+)(\/report)?$/.exec(path);
  if (!m) return undefined;
  if (m[2] && !opts.getReport) return undefined;
  return async () => {
    let name: string;
    try {
      name = decodeURIComponent(m[1] as string);
    } catch {
      return json(400, { error: `malformed app name ${JSON.stringify(m[1])}` });
    }
    if (m[2]) return report(opts.getReport!, name, query);
    const app = opts.getApp(name);
    return app === undefined ? json(404, { error: `unknown app ${JSON.stringify(name)}` }) : json(200, app);
  };
}

/** `/api/v1/apps?app=NAME&summary=1`; a bad parameter is a 400 naming it, an unknown app a 404. */
function apps(opts: AdminServerOptions, params: URLSearchParams): Reply {
  const q: AppsQuery = {};
  for (const [key, value] of params) {
    if (key === 'app') q.app = value;
    else if (key === 'summary') {
      if (!['1', 'true', '0', 'false'].includes(value)) {
        return json(400, { error: `query parameter summary: must be 1, true, 0 or false (got ${JSON.stringify(value)})` });
      }
      q.summary = value === '1' || value === 'true';
    } else {
      return json(400, { error: `unknown query parameter ${JSON.stringify(key)}` });
    }
  }
  const body = opts.getApps(q);
  return body === undefined ? json(404, { error: `unknown app ${JSON.stringify(q.app)}` }) : json(200, body);
}

/** `/api/v1/events?after=SEQ&kind=K&app=A&limit=N`; a bad parameter is a 400 naming it. */
function events(get: (q: EventQuery) => LoggedEvent[], params: URLSearchParams): Reply {
  const q: EventQuery = {};
  for (const [key, value] of params) {
    if (key === 'after' || key === 'limit') {
      const n = Number(value);
      const max = key === 'limit' ? 1000 : Number.MAX_SAFE_INTEGER;
      if (!/^\d+$/.test(value) || n > max || (key === 'limit' && n === 0)) {
        return json(400, { error: `query parameter ${key}: must be an integer${key === 'limit' ? ' from 1 to 1000' : ' >= 0'} (got ${JSON.stringify(value)})` });
      }
      q[key] = n;
    } else if (key === 'kind') {
      if (!EVENT_KINDS.includes(value as EventKind)) {
        return json(400, { error: `query parameter kind: must be one of ${EVENT_KINDS.join(', ')} (got ${JSON.stringify(value)})` });
      }
      q.kind = value as EventKind;
    } else if (key === 'app') {
      q.app = value;
    } else {
      return json(400, { error: `unknown query parameter ${JSON.stringify(key)}` });
    }
  }
  return json(200, { events: get(q) });
}

/** `/api/v1/apps/{app}/report?hours=N` (default 24). */
async function report(
  get: NonNullable<AdminServerOptions['getReport']>,
  app: string,
  params: URLSearchParams,
): Promise<Reply> {
  let hours = 24;
  for (const [key, value] of params) {
    if (key !== 'hours') return json(400, { error: `unknown query parameter ${JSON.stringify(key)}` });
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > MAX_REPORT_HOURS) {
      return json(400, { error: `query parameter hours: must be a number above 0 and at most ${MAX_REPORT_HOURS} (got ${JSON.stringify(value)})` });
    }
    hours = n;
  }
  try {
    const body = await get(app, hours);
    return body === undefined ? json(404, { error: `unknown app ${JSON.stringify(app)}` }) : json(200, body);
  } catch (err) {
    if (err instanceof SidecarError) return json(503, { error: err.message });
    throw err;
  }
}

function json(status: number, value: unknown): Reply {
  // JSON.stringify(undefined) is undefined, not a string; answer `null` instead.
  return { status, contentType: JSON_TYPE, body: `${JSON.stringify(value) ?? 'null'}\n` };
}
