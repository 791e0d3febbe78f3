/**
 * HTTP(S) prober on undici. One shared Agent keeps a keep-alive connection per backend, so a
 * probe usually costs one request on an open socket; a second Agent skips certificate checks
 * for backends with verify_ssl=false.
 */
import { isIPv6 } from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import { createSystemClock, type Clock } from '../clock.js';
import { formatAddress, type Backend } from '../model.js';
import { compileExpectedBody } from '../config/schema.js';
import type { HealthCheckConfig, HttpMethod } from '../config/types.js';
import { classifyError, errorText, failure, runAttempts, success, type AttemptOutcome } from './outcome.js';
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
}

export interface HttpProber extends Prober {
  /** Drops pooled connections; a probe still in flight ends as a failure. */
  close(): Promise<void>;
}

/** What a probe needs from a backend, computed once per Backend object, not once per probe. */
type Target =
  | { ok: true; origin: string; path: string; headers: Record<string, string>; body: BodyCheck | null }
  | { ok: false; error: string };

interface BodyCheck {
  matches(text: string): boolean;
  /** Failure text. */
  failure: string;
}

/** Creates the HTTP prober. Call close() on shutdown. */
export function createHttpProber(opts: HttpProberOptions): HttpProber {
  const clock = opts.clock ?? createSystemClock();
  const userAgent = `orchestry-sidecar/${opts.version}`;
  // Probes of one backend never overlap (the scheduler sees to it), so one connection per origin
  // is enough, and undici then uses a plain Client instead of a Pool per backend. The probe's
  // own deadline covers headers and body, so undici's per-request timers are off.
  const agentOptions = { connections: 1, headersTimeout: 0, bodyTimeout: 0 };
  const agent = new Agent(agentOptions);
  const insecureAgent = new Agent({ ...agentOptions, connect: { rejectUnauthorized: false } });
  const targets = new WeakMap<Backend, Target>();

  const targetOf = (backend: Backend): Target => {
    let target = targets.get(backend);
    if (!target) {
      target = prepareTarget(backend, userAgent);
      targets.set(backend, target);
    }
    return target;
  };

  const attempt = (backend: Backend): Promise<AttemptOutcome> => {
    const target = targetOf(backend);
    if (!target.ok) return Promise.resolve(failure('error', target.error));
    return exchange(backend.health.verify_ssl ? agent : insecureAgent, backend.health, target, clock);
  };

  return {
    probe: (backend) => runAttempts(backend, 'http', clock, () => attempt(backend)),
    async close() {
      await Promise.all([agent.destroy(), insecureAgent.destroy()]);
    },
  };
}

/**
 * One attempt: a request and the redirects it is allowed to follow, under one deadline covering
 * connect, headers and body. Built on undici's dispatch handler API rather than request(): no
 * response stream, AbortController or extra promise per request, which at thousands of probes
 * per second saves a tenth of the CPU and a third of the heap (bench/probe-scale.mjs).
 */
function exchange(
  dispatcher: Dispatcher,
  h: HealthCheckConfig,
  target: Extract<Target, { ok: true }>,
  clock: Clock,
): Promise<AttemptOutcome> {
  return new Promise((resolve) => {
    const timeoutMs = h.timeout_seconds * 1000;
    let settled = false;
    let controller: Dispatcher.DispatchController | null = null;
    const finish = (outcome: AttemptOutcome): void => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      resolve(outcome);
    };
    const timer = clock.setTimeout(() => {
      finish(failure('timeout', `timeout after ${timeoutMs} ms`));
      // A request still waiting for its connection has no controller yet; onRequestStart aborts
      // it if it ever starts.
      controller?.abort(new Error('probe deadline passed'));
    }, timeoutMs);

    const send = (path: string, method: HttpMethod, body: string | null, redirects: number, staleRetried: boolean) => {
      let status = 0;
      let location: unknown;
      const chunks: Buffer[] = [];
      let size = 0;
      let complete = false;

      const onComplete = (): void => {
        if (complete || settled) return;
        complete = true;
        if (h.follow_redirects && REDIRECT_STATUSES.has(status) && typeof location === 'string') {
          if (redirects === MAX_REDIRECTS) return finish(failure('error', `more than ${MAX_REDIRECTS} redirects`, status));
          let next: URL;
          try {
            next = new URL(location, target.origin + path);
          } catch {
            return finish(failure('error', `invalid redirect location ${JSON.stringify(location)}`, status));
          }
          // A probe never leaves its backend, whatever the backend answers.
          if (next.origin !== target.origin) {
            return finish(failure('error', `redirect to ${next.href} leaves backend ${target.origin}`, status));
          }
          const toGet = status === 303 || ((status === 301 || status === 302) && method === 'POST');
          const nextMethod = toGet && method !== 'HEAD' ? 'GET' : method;
          return send(next.pathname + next.search, nextMethod, toGet ? null : body, redirects + 1, staleRetried);
        }
        const text = decode(chunks, size);
        const kept = text.length > BODY_KEPT_CHARS ? text.slice(0, BODY_KEPT_CHARS) : text;
        if (!h.expected_status_codes.includes(status)) {
          const expected = h.expected_status_codes.join(', ');
          return finish(failure('unexpected_status', `unexpected status ${status} (expected ${expected})`, status, kept));
        }
        if (target.body && !target.body.matches(text)) {
          return finish(failure('unexpected_body', target.body.failure, status, kept));
        }
        finish(success(status, kept));
      };

      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          if (settled) return c.abort(new Error('probe deadline passed'));
          controller = c;
        },
        onResponseStart(_c, statusCode, headers) {
          status = statusCode;
          location = headers.location;
        },
        onResponseData(c, chunk) {
          if (complete) return;
          chunks.push(chunk);
          size += chunk.length;
          // Enough to judge the body: stop downloading (this drops the connection).
          if (size >= BODY_READ_CAP) {
            onComplete();
            c.abort(new Error('body read cap reached'));
          }
        },
        onResponseEnd() {
          onComplete();
        },
        onResponseError(_c, err) {
          if (complete || settled) return;
          // A kept-alive connection that the server closed just as it was reused fails before
          // any response. One retry on a fresh connection tells that apart from a backend that
          // is gone (which then refuses the connection or resets it again).
          if (!staleRetried && status === 0 && classifyError(err) === 'connection_reset') {
            return send(path, method, body, redirects, true);
          }
          finish(failure(classifyError(err), errorText(err)));
        },
      };
      try {
        dispatcher.dispatch({ origin: target.origin, path, method, headers: target.headers, body }, handler);
      } catch (err) {
        finish(failure(classifyError(err), errorText(err)));
      }
    };

    send(target.path, h.method, h.body, 0, false);
  });
}

/** The first BODY_READ_CAP bytes as text. */
function decode(chunks: Buffer[], size: number): string {
  const length = Math.min(size, BODY_READ_CAP);
  if (chunks.length === 1) return chunks[0]!.toString('utf8', 0, length);
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
  const headers: Record<string, string> = { 'user-agent': userAgent };
  for (const [name, value] of Object.entries(h.headers)) headers[name.toLowerCase()] = value;
  headers['x-health-check'] = 'true';
  headers['x-app-name'] = backend.app;
  headers['x-instance-id'] = formatAddress(backend.host, backend.port);
  let body: BodyCheck | null = null;
  if (h.expected_body !== null) {
    // The same reading as config validation: `/pattern/flags` is a regular expression.
    const matches = compileExpectedBody(h.expected_body);
    if (typeof matches === 'string') return { ok: false, error: `expected_body ${matches}` };
    body = { matches, failure: `body does not match expected_body ${JSON.stringify(h.expected_body)}` };
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
