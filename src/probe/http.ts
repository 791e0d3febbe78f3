/**
 * HTTP(S) prober. It speaks HTTP/1.1 over its own keep-alive sockets (one per backend origin
 * while probes of it do not overlap; separate ones for verify_ssl backends and those that skip
 * certificate checks), so a probe usually costs one write and one read on an open socket.
 * http-response.ts says why not undici.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type * as Tls from 'node:tls';
import { createSystemClock, type Clock } from '../clock.js';
import type { Backend } from '../model.js';
import type { HealthCheckConfig, HttpMethod } from '../config/types.js';
import { createBodyMatcher, type BodyMatcher } from './body-matcher.js';
import { ResponseReader, type ParseStep } from './http-response.js';
import { prepareTarget, requestText, type BodyCheck, type ReadyTarget, type Target } from './http-target.js';
import { classifyError, errorText, failure, runAttempts, success, timeoutOutcome, type AttemptOutcome } from './outcome.js';
import { armDeadline, createStallLog, lateNote, type Deadline, type DeadlineVerdict, type StallLog } from './stalls.js';
import type { Prober } from './types.js';

/** Bytes of body read at most; the rest is not downloaded (the connection is dropped). */
const BODY_READ_CAP = 4096;
/** Characters of body kept in the result. */
const BODY_KEPT_CHARS = 1000;
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
export interface HttpProberOptions {
  /** Sent as `User-Agent: orchestry-sidecar/<version>`. */
  version: string;
  clock?: Clock;
  /** Event-loop stalls seen by the daemon's timers; a timeout they caused is not the backend's. */
  stalls?: StallLog;
}

export interface HttpProber extends Prober {
  /** Drops pooled connections; a probe still in flight ends as a failure. */
  close(): Promise<void>;
}

/**
 * Idle keep-alive connections by origin, apart by whether certificates are checked: two maps
 * rather than a key string made per backend for each (0.7 MB at 10,000 backends).
 */
interface Pool {
  verified: Map<string, Connection[]>;
  unverified: Map<string, Connection[]>;
}

/** Creates the HTTP prober. Call close() on shutdown. */
export function createHttpProber(opts: HttpProberOptions): HttpProber {
  const clock = opts.clock ?? createSystemClock();
  const stalls = opts.stalls ?? createStallLog();
  const userAgent = `orchestry-sidecar/${opts.version}`;
  const targets = new WeakMap<Backend, Target>();
  const sharedHeads = new Map<string, string>();
  const matcher = createBodyMatcher({ clock });
  const pool: Pool = { verified: new Map(), unverified: new Map() };
  const open = new Set<Connection>();
  // One for the prober: every connection keeps it (one made per probe was kept by each connection).
  const sockets: Sockets = { pool, open };

  const targetOf = (backend: Backend): Target => {
    let target = targets.get(backend);
    if (!target) {
      target = prepareTarget(backend, userAgent, sharedHeads);
      targets.set(backend, target);
      if (target.ok && target.body?.expected.kind === 'regex') matcher.warm();
    }
    return target;
  };

  const attempt = (backend: Backend): Promise<AttemptOutcome> => {
    const target = targetOf(backend);
    if (!target.ok) return Promise.resolve(failure('error', target.error));
    return new Promise((resolve) => {
      new Exchange(sockets, backend.health, target, clock, matcher, stalls, resolve).start();
    });
  };

  return {
    probe: (backend) => runAttempts(backend, 'http', clock, () => attempt(backend)),
    async close() {
      pool.verified.clear();
      pool.unverified.clear();
      for (const c of open) c.destroy(new Error('prober closed'));
      open.clear();
      await matcher.close();
    },
  };
}

interface Sockets {
  pool: Pool;
  /** Every connection not yet closed (idle or in use), for close(). */
  open: Set<Connection>;
}

let tls: typeof Tls | undefined;

/**
 * node:tls once an https backend is probed, not at start: it brings OpenSSL's TLS code and
 * node's TLS modules (~4 MB of RSS) that a plain-HTTP fleet never uses.
 */
function loadTls(): typeof Tls {
  return (tls ??= process.getBuiltinModule('node:tls'));
}

/**
 * The socket's listeners are the same four functions for every connection, which they find on
 * the socket (an emitter calls its listeners with the socket as `this`): four closures and a
 * context a connection cost ~250 bytes each, 2.5 MB at 10,000 backends (heap snapshot).
 */
const CONNECTION = Symbol('orchestry.probe.connection');
type ProbeSocket = Socket & { [CONNECTION]: Connection };

function onSocketData(this: ProbeSocket, data: Buffer): void {
  this[CONNECTION].onData(data);
}

function onSocketError(this: ProbeSocket, err: Error): void {
  this[CONNECTION].onClose(err);
}

/** `close`: nothing more comes (its hadError argument is not an error; 'error' came before). */
function onSocketEnd(this: ProbeSocket): void {
  this[CONNECTION].onClose(null);
}

/**
 * One keep-alive connection: one request at a time, read by a ResponseReader. Between requests
 * it waits in the pool, unreferenced (an idle probe connection does not keep the process up),
 * and leaves the pool when the backend closes it.
 */
class Connection {
  readonly socket: Socket;
  /** The request in progress; null while idle. */
  hop: Hop | null = null;
  /** It has carried a complete response: a failure before the next one may be a stale reuse. */
  reused = false;
  closed = false;

  constructor(
    readonly sockets: Sockets,
    /** The pool it waits in while idle (verified or not), under `key`, its origin. */
    readonly idle: Map<string, Connection[]>,
    readonly key: string,
    target: ReadyTarget,
    verify: boolean,
  ) {
    this.socket = target.tls
      ? loadTls().connect({ host: target.host, port: target.port, servername: target.servername, rejectUnauthorized: verify, ALPNProtocols: ['http/1.1'] })
      : netConnect({ host: target.host, port: target.port, noDelay: true });
    (this.socket as ProbeSocket)[CONNECTION] = this;
    this.socket.on('data', onSocketData);
    this.socket.on('error', onSocketError);
    // No 'end' listener: a backend's FIN makes the socket (allowHalfOpen false) end its own side
    // and close, so 'close' follows at once, and a second 'end' listener costs each socket an
    // array of listeners (104 bytes, 1 MB at 10,000 backends).
    this.socket.on('close', onSocketEnd);
    sockets.open.add(this);
  }

  onData(data: Buffer): void {
    // Bytes nobody asked for: the connection's framing is lost, it carries no more requests.
    if (this.hop) this.hop.data(data);
    else this.destroy(new Error('unsolicited bytes on an idle connection'));
  }

  onClose(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.sockets.open.delete(this);
    this.leavePool();
    this.socket.destroy();
    const hop = this.hop;
    this.hop = null;
    hop?.closed(this, err);
  }

  destroy(err: Error): void {
    if (this.closed) return;
    this.onClose(err);
  }

  send(hop: Hop, request: string): void {
    this.hop = hop;
    this.socket.ref();
    this.socket.write(request, 'latin1');
  }

  /** The response is in: back to the pool when it can carry another request, else closed. */
  release(keepAlive: boolean): void {
    this.hop = null;
    if (!keepAlive || this.closed) return this.destroy(new Error('not reusable'));
    this.reused = true;
    this.socket.unref();
    const idle = this.idle.get(this.key);
    if (idle) idle.push(this);
    else this.idle.set(this.key, [this]);
  }

  private leavePool(): void {
    const idle = this.idle.get(this.key);
    if (!idle) return;
    const i = idle.indexOf(this);
    if (i >= 0) idle.splice(i, 1);
    if (idle.length === 0) this.idle.delete(this.key);
  }

  static take(sockets: Sockets, target: ReadyTarget, verify: boolean, fresh: boolean): Connection {
    const pool = verify ? sockets.pool.verified : sockets.pool.unverified;
    // An emptied list stays in the pool while its connection is out: taking and returning the
    // one connection of a backend every probe would otherwise delete and re-add the key and
    // allocate a list each time, garbage that lives a whole period. The list goes when its last
    // connection closes (leavePool).
    const reuse = fresh ? undefined : pool.get(target.origin)?.pop();
    return reuse ?? new Connection(sockets, pool, target.origin, target, verify);
  }
}

/**
 * One attempt: a request and the redirects it is allowed to follow, under one deadline covering
 * connect, headers and body. A class rather than closures because this runs thousands of times
 * per second: one object per attempt (and one Hop per request) instead of a dozen closures and
 * their contexts (bench/probe-scale.mjs).
 */
class Exchange {
  settled = false;
  /** The connection of the request in progress. */
  conn: Connection | null = null;
  deadline: Deadline | undefined = undefined;
  /** The response is in and its body is with the regular expression matcher. */
  matching = false;

  constructor(
    readonly sockets: Sockets,
    readonly h: HealthCheckConfig,
    readonly target: ReadyTarget,
    readonly clock: Clock,
    readonly matcher: BodyMatcher,
    readonly stalls: StallLog,
    readonly resolve: (outcome: AttemptOutcome) => void,
  ) {}

  start(): void {
    this.deadline = armDeadline({ clock: this.clock, timeoutMs: this.h.timeout_seconds * 1000, stalls: this.stalls, onExpire: (v, given) => this.expire(v, given) });
    this.send(this.target.path, this.h.method, this.h.body, 0, false);
  }

  finish(outcome: AttemptOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.deadline?.cancel();
    this.resolve(outcome);
  }

  /** The deadline passed (or the sidecar stalled too long to tell whether it did). */
  expire(verdict: DeadlineVerdict, givenBackMs: number): void {
    const ms = this.h.timeout_seconds * 1000;
    // The backend answered in time: the match is the sidecar's own work, bounded by the matcher
    // (its budget counts from when it starts running; a worker that cannot start fails it). Its
    // wait behind another app's heavy match is not charged to this probe: failing it here lost
    // probes of every app whenever one pattern overran (a local error, no verdict).
    if (this.matching) return;
    this.finish(timeoutOutcome(verdict, `timeout after ${ms} ms${lateNote(givenBackMs)}`));
    // The connection is in an unknown state (a request without its answer): not reused.
    this.conn?.destroy(new Error('probe deadline passed'));
  }

  /** Judges a response with the expected status by its body. */
  checkBody(check: BodyCheck, text: string, status: number, kept: string): void {
    const judge = (matched: boolean) =>
      this.finish(matched ? success(status, kept) : failure('unexpected_body', check.failure, status, kept));
    const expected = check.expected;
    if (expected.kind === 'substring') return judge(text.includes(expected.text));
    this.matching = true;
    void this.matcher.match(expected.source, expected.flags, text).then((result) => {
      this.matching = false;
      if (typeof result === 'boolean') judge(result);
      else this.finish(failure('local_error', result, status, kept));
    });
  }

  send(path: string, method: HttpMethod, body: string | null, redirects: number, staleRetried: boolean): void {
    if (this.settled) return;
    const conn = Connection.take(this.sockets, this.target, this.h.verify_ssl, staleRetried);
    this.conn = conn;
    const hop = new Hop(this, path, method, body, redirects, staleRetried);
    conn.send(hop, requestText(this.target, path, method, body));
  }
}

/** One request of an Exchange (the first, or a redirect) and its response. */
class Hop {
  readonly reader: ResponseReader;

  constructor(
    readonly x: Exchange,
    readonly path: string,
    readonly method: HttpMethod,
    readonly body: string | null,
    readonly redirects: number,
    readonly staleRetried: boolean,
  ) {
    this.reader = new ResponseReader(method === 'HEAD', BODY_READ_CAP);
  }

  data(data: Buffer): void {
    this.step(this.reader.feed(data));
  }

  /** The connection closed (err null: by the backend) while this request was on it. */
  closed(conn: Connection, err: Error | null): void {
    const x = this.x;
    if (x.settled) return;
    if (err === null) return this.step(this.reader.end());
    // A kept-alive connection that the server closed just as it was reused fails before any
    // response. One retry on a fresh connection tells that apart from a backend that is gone
    // (which then refuses the connection or resets it again).
    if (this.staleCandidate(conn) && classifyError(err) === 'connection_reset') return this.retryFresh();
    x.finish(failure(classifyError(err), errorText(err)));
  }

  private staleCandidate(conn: Connection): boolean {
    return !this.staleRetried && conn.reused && !this.reader.started;
  }

  private retryFresh(): void {
    this.x.send(this.path, this.method, this.body, this.redirects, true);
  }

  private step(step: ParseStep): void {
    const x = this.x;
    if (x.settled || step === 'more') return;
    const conn = x.conn!;
    if (step === 'done') {
      conn.release(this.reader.keepAlive);
      return this.complete();
    }
    conn.destroy(new Error(step.error));
    if (this.staleCandidate(conn)) return this.retryFresh();
    x.finish(failure(this.reader.started ? 'error' : 'connection_reset', step.error));
  }

  private complete(): void {
    const x = this.x;
    const { h, target } = x;
    const { status, location } = this.reader;
    if (h.follow_redirects && REDIRECT_STATUSES.has(status) && typeof location === 'string') {
      if (this.redirects === MAX_REDIRECTS) return x.finish(failure('error', `more than ${MAX_REDIRECTS} redirects`, status));
      let next: URL;
      try {
        next = new URL(location, target.origin + this.path);
      } catch {
        return x.finish(failure('error', `invalid redirect location ${JSON.stringify(location)}`, status));
      }
      // A probe never leaves its backend, whatever the backend answers.
      if (next.origin !== target.origin) {
        return x.finish(failure('error', `redirect to ${next.href} leaves backend ${target.origin}`, status));
      }
      const method = this.method;
      const toGet = status === 303 || ((status === 301 || status === 302) && method === 'POST');
      const nextMethod = toGet && method !== 'HEAD' ? 'GET' : method;
      return x.send(next.pathname + next.search, nextMethod, toGet ? null : this.body, this.redirects + 1, this.staleRetried);
    }
    const text = decode(this.reader.body, this.reader.bodySize);
    const kept = text.length > BODY_KEPT_CHARS ? text.slice(0, BODY_KEPT_CHARS) : text;
    if (!h.expected_status_codes.includes(status)) {
      const expected = h.expected_status_codes.join(', ');
      return x.finish(failure('unexpected_status', `unexpected status ${status} (expected ${expected})`, status, kept));
    }
    if (target.body) return x.checkBody(target.body, text, status, kept);
    x.finish(success(status, kept));
  }
}

/** The body bytes kept (at most BODY_READ_CAP) as text. */
function decode(chunks: Buffer[], size: number): string {
  if (chunks.length === 0) return '';
  if (chunks.length === 1) return chunks[0]!.toString('utf8');
  return Buffer.concat(chunks, size).toString('utf8');
}
