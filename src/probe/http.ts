/**
 * HTTP(S) prober on undici. One keep-alive undici Client per backend origin (two maps: one for
 * verify_ssl backends, one that skips certificate checks), so a probe usually costs one request
 * on an open socket.
 */
import { isIPv6 } from 'node:net';
import { Client, type Dispatcher } from 'undici';
import { createSystemClock, type Clock } from '../clock.js';
import { formatAddress, type Backend } from '../model.js';
import { parseExpectedBody, type ExpectedBody } from '../config/expected-body.js';
import type { HealthCheckConfig, HttpMethod } from '../config/types.js';
import { createBodyMatcher, type BodyMatcher } from './body-matcher.js';
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

/** What a probe needs from a backend, computed once per Backend object, not once per probe. */
type Target =
  | { ok: true; origin: string; path: string; headers: string[]; body: BodyCheck | null }
  | { ok: false; error: string };

type ReadyTarget = Extract<Target, { ok: true }>;

interface BodyCheck {
  expected: ExpectedBody;
  /** Failure text. */
  failure: string;
}

/** Creates the HTTP prober. Call close() on shutdown. */
export function createHttpProber(opts: HttpProberOptions): HttpProber {
  const clock = opts.clock ?? createSystemClock();
  const stalls = opts.stalls ?? createStallLog();
  const userAgent = `orchestry-sidecar/${opts.version}`;
  const targets = new WeakMap<Backend, Target>();
  // Probes of one backend never overlap (the scheduler sees to it), so one connection per
  // origin is enough: a Client each, without an Agent in front (its bookkeeping and events cost
  // allocations on every request). The probe's own deadline covers headers and body, so
  // undici's per-request timers are off.
  const clientOptions = { headersTimeout: 0, bodyTimeout: 0 };
  const matcher = createBodyMatcher({ clock });
  const insecureOptions = { ...clientOptions, connect: { rejectUnauthorized: false } };
  const clients = new Map<string, Client>();
  const insecureClients = new Map<string, Client>();

  const clientFor = (origin: string, verify: boolean): Client => {
    const pool = verify ? clients : insecureClients;
    let client = pool.get(origin);
    if (!client) {
      const created = new Client(origin, verify ? clientOptions : insecureOptions);
      // As undici's Agent does: a client whose connection went away and that has nothing
      // queued is dropped, so backends that left do not keep one each forever.
      const dropIfUnused = (): void => {
        if (pool.get(origin) !== created || created.stats.size > 0) return;
        pool.delete(origin);
        if (!created.destroyed) void created.close();
      };
      created.on('disconnect', dropIfUnused).on('connectionError', dropIfUnused);
      pool.set(origin, created);
      client = created;
    }
    return client;
  };

  const targetOf = (backend: Backend): Target => {
    let target = targets.get(backend);
    if (!target) {
      target = prepareTarget(backend, userAgent);
      targets.set(backend, target);
      if (target.ok && target.body?.expected.kind === 'regex') matcher.warm();
    }
    return target;
  };

  const attempt = (backend: Backend): Promise<AttemptOutcome> => {
    const target = targetOf(backend);
    if (!target.ok) return Promise.resolve(failure('error', target.error));
    return new Promise((resolve) => {
      const client = clientFor(target.origin, backend.health.verify_ssl);
      new Exchange(client, backend.health, target, clock, matcher, stalls, resolve).start();
    });
  };

  return {
    probe: (backend) => runAttempts(backend, 'http', clock, () => attempt(backend)),
    async close() {
      const all = [...clients.values(), ...insecureClients.values()];
      clients.clear();
      insecureClients.clear();
      await Promise.all([...all.map((c) => c.destroy()), matcher.close()]);
    },
  };
}

/**
 * One attempt: a request and the redirects it is allowed to follow, under one deadline covering
 * connect, headers and body. Built on undici's dispatch handler API rather than request(): no
 * response stream, AbortController or extra promise per request. A class rather than closures
 * because this runs thousands of times per second: one object per attempt (and one Hop per
 * request) instead of a dozen closures and their contexts (bench/probe-scale.mjs).
 */
class Exchange {
  settled = false;
  /** The current request's controller; null until undici starts it. */
  controller: Dispatcher.DispatchController | null = null;
  deadline: Deadline | undefined = undefined;
  /** The response is in and its body is with the regular expression matcher. */
  matching = false;

  constructor(
    readonly client: Client,
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
    // A request still waiting for its connection has no controller yet; onRequestStart aborts
    // it if it ever starts.
    this.controller?.abort(new Error('probe deadline passed'));
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
    const hop = new Hop(this, path, method, body, redirects, staleRetried);
    try {
      this.client.dispatch({ origin: this.target.origin, path, method, headers: this.target.headers, body }, hop);
    } catch (err) {
      this.finish(failure(classifyError(err), errorText(err)));
    }
  }
}

/** One request of an Exchange (the first, or a redirect) and undici's handler for it. */
class Hop implements Dispatcher.DispatchHandler {
  status = 0;
  location: unknown = undefined;
  /** The body read so far: one chunk usually, more only when the body arrives in pieces. */
  chunks: Buffer | Buffer[] | null = null;
  size = 0;
  complete = false;

  constructor(
    readonly x: Exchange,
    readonly path: string,
    readonly method: HttpMethod,
    readonly body: string | null,
    readonly redirects: number,
    readonly staleRetried: boolean,
  ) {}

  onRequestStart(c: Dispatcher.DispatchController): void {
    if (this.x.settled) return c.abort(new Error('probe deadline passed'));
    this.x.controller = c;
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = statusCode;
    this.location = headers.location;
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.complete) return;
    if (this.chunks === null) this.chunks = chunk;
    else if (Array.isArray(this.chunks)) this.chunks.push(chunk);
    else this.chunks = [this.chunks, chunk];
    this.size += chunk.length;
    // Enough to judge the body: stop downloading (this drops the connection).
    if (this.size >= BODY_READ_CAP) {
      this.onComplete();
      c.abort(new Error('body read cap reached'));
    }
  }

  onResponseEnd(): void {
    this.onComplete();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const x = this.x;
    if (this.complete || x.settled) return;
    // A kept-alive connection that the server closed just as it was reused fails before any
    // response. One retry on a fresh connection tells that apart from a backend that is gone
    // (which then refuses the connection or resets it again).
    if (!this.staleRetried && this.status === 0 && classifyError(err) === 'connection_reset') {
      return x.send(this.path, this.method, this.body, this.redirects, true);
    }
    x.finish(failure(classifyError(err), errorText(err)));
  }

  onComplete(): void {
    const x = this.x;
    if (this.complete || x.settled) return;
    this.complete = true;
    const { h, target } = x;
    const status = this.status;
    if (h.follow_redirects && REDIRECT_STATUSES.has(status) && typeof this.location === 'string') {
      if (this.redirects === MAX_REDIRECTS) return x.finish(failure('error', `more than ${MAX_REDIRECTS} redirects`, status));
      let next: URL;
      try {
        next = new URL(this.location, target.origin + this.path);
      } catch {
        return x.finish(failure('error', `invalid redirect location ${JSON.stringify(this.location)}`, status));
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
    const text = decode(this.chunks, this.size);
    const kept = text.length > BODY_KEPT_CHARS ? text.slice(0, BODY_KEPT_CHARS) : text;
    if (!h.expected_status_codes.includes(status)) {
      const expected = h.expected_status_codes.join(', ');
      return x.finish(failure('unexpected_status', `unexpected status ${status} (expected ${expected})`, status, kept));
    }
    if (target.body) return x.checkBody(target.body, text, status, kept);
    x.finish(success(status, kept));
  }
}

/** The first BODY_READ_CAP bytes as text. */
function decode(chunks: Buffer | Buffer[] | null, size: number): string {
  if (chunks === null) return '';
  const length = Math.min(size, BODY_READ_CAP);
  if (!Array.isArray(chunks)) return chunks.toString('utf8', 0, length);
  return Buffer.concat(chunks, length).toString('utf8');
}

function prepareTarget(backend: Backend, userAgent: string): Target {
  const h = backend.health;
  const base = `${h.scheme}://${formatAddress(backend.host, backend.port)}`;
  let url: URL;
  try {
    url = new URL(h.path, base);
  } catch {
    return { ok: false, error: `invalid health check URL ${JSON.stringify(base + h.path)}` };
  }
  // Defence in depth: a path such as `//elsewhere/x` or `http://elsewhere/` would re-target the
  // request, and a host with URL syntax in it would too.
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  if (url.protocol !== `${h.scheme}:` || url.hostname !== canonicalHostname(backend.host) || port !== backend.port) {
    return { ok: false, error: `health check URL ${url.href} does not target backend ${base}` };
  }
  const named: Record<string, string> = { 'user-agent': userAgent };
  for (const [name, value] of Object.entries(h.headers)) named[name.toLowerCase()] = value;
  named['x-health-check'] = 'true';
  named['x-app-name'] = backend.app;
  named['x-instance-id'] = formatAddress(backend.host, backend.port);
  // undici takes [name, value, ...] without the Object.keys() an object costs on every request.
  const headers = Object.entries(named).flat();
  let body: BodyCheck | null = null;
  if (h.expected_body !== null) {
    // The same reading as config validation: `/pattern/flags` is a regular expression.
    const expected = parseExpectedBody(h.expected_body);
    if (typeof expected === 'string') return { ok: false, error: `expected_body ${expected}` };
    body = { expected, failure: `body does not match expected_body ${JSON.stringify(h.expected_body)}` };
  }
  return { ok: true, origin: url.origin, path: url.pathname + url.search, headers, body };
}

/** The hostname the URL class should produce for a backend host, or '' when it cannot. */
function canonicalHostname(host: string): string {
  if (!isIPv6(host)) return host.toLowerCase();
  try {
    return new URL(`http://[${host}]/`).hostname;
  } catch {
    return '';
  }
}
