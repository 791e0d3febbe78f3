/**
 * What an HTTP probe sends a backend, prepared once per Backend object (prepareTarget), and the
 * request text made from it for each probe.
 */
import { isIP, isIPv6 } from 'node:net';
import { parseExpectedBody, type ExpectedBody } from '../config/expected-body.js';
import type { HttpMethod } from '../config/types.js';
import { formatAddress, type Backend } from '../model.js';

/** Methods whose request carries a body (Content-Length: 0 when none is configured). */
const BODY_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH']);
/** RFC 9110 token (header names) and field-value characters (no CR, LF or NUL). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** What a probe needs from a backend, computed once per Backend object, not once per probe. */
export type Target =
  | { ok: true; origin: string; host: string; port: number; tls: boolean; servername: string | undefined; path: string; head: RequestHead; body: BodyCheck | null }
  | { ok: false; error: string };

export type ReadyTarget = Extract<Target, { ok: true }>;

/**
 * A request's header lines in three parts: only the first (`host`) and the last (`x-instance-id`)
 * name the backend; the lines between are the app's, one string shared by its backends. A whole
 * head per backend was 1.45 MB of strings at 10,000 backends (heap snapshot); the request is
 * concatenated per probe either way.
 */
interface RequestHead {
  host: string;
  shared: string;
  instance: string;
}

export interface BodyCheck {
  expected: ExpectedBody;
  /** Failure text. */
  failure: string;
}

/** `METHOD path HTTP/1.1`, the prepared headers, and the body with its length. */
export function requestText(target: ReadyTarget, path: string, method: HttpMethod, body: string | null): string {
  const h = target.head;
  const line = `${method} ${path} HTTP/1.1\r\n${h.host}${h.shared}${h.instance}`;
  if (body !== null) return `${line}content-length: ${Buffer.byteLength(body)}\r\n\r\n${Buffer.from(body).toString('latin1')}`;
  return BODY_METHODS.has(method) ? `${line}content-length: 0\r\n\r\n` : `${line}\r\n`;
}

/**
 * The URL, headers and body check of a backend's probe, checked: a health check path or header
 * that would re-target or break the request makes a target that fails every probe with why.
 * `shared` keeps one copy of each app's header lines (see RequestHead).
 */
export function prepareTarget(backend: Backend, userAgent: string, shared: Map<string, string>): Target {
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
  const named: Record<string, string> = { host: url.host, 'user-agent': userAgent };
  for (const [name, value] of Object.entries(h.headers)) named[name.toLowerCase()] = value;
  named['x-health-check'] = 'true';
  named['x-app-name'] = backend.app;
  named['x-instance-id'] = formatAddress(backend.host, backend.port);
  // Validated with the config too; here because these bytes go on the wire as they are.
  // Joined, as the origin below: kept, so one flat string each rather than a tree of
  // concatenations (bench:scale's heap: 32 such nodes a backend before).
  const lines: string[] = [];
  for (const [name, value] of Object.entries(named)) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) return { ok: false, error: `invalid header ${JSON.stringify(name)}: ${JSON.stringify(value)}` };
    // `host` is the first name (a configured Host header takes its place), x-instance-id the last.
    if (name !== 'host' && name !== 'x-instance-id') lines.push(name, ': ', value, '\r\n');
  }
  const middle = lines.join('');
  // One copy per distinct text (an app's header lines). Apps come and go over a daemon's life:
  // past a bound the map starts over, which only costs sharing with the targets made before.
  let common = shared.get(middle);
  if (common === undefined) {
    if (shared.size >= MAX_SHARED_HEADS) shared.clear();
    shared.set(middle, (common = middle));
  }
  const head: RequestHead = {
    host: ['host: ', named.host!, '\r\n'].join(''),
    shared: common,
    instance: ['x-instance-id: ', named['x-instance-id']!, '\r\n'].join(''),
  };
  let body: BodyCheck | null = null;
  if (h.expected_body !== null) {
    // The same reading as config validation: `/pattern/flags` is a regular expression.
    const expected = parseExpectedBody(h.expected_body);
    if (typeof expected === 'string') return { ok: false, error: `expected_body ${expected}` };
    body = { expected, failure: `body does not match expected_body ${JSON.stringify(h.expected_body)}` };
  }
  const tls = url.protocol === 'https:';
  // SNI takes a host name, never an address.
  const servername = tls && isIP(backend.host) === 0 ? backend.host : undefined;
  // url.origin for http(s), flat.
  const origin = [url.protocol, '//', url.host].join('');
  // The app's own string when the URL class left it as it was: one copy per app, not per backend.
  const path = [url.pathname, url.search].join('');
  return { ok: true, origin, host: backend.host, port, tls, servername, path: path === h.path ? h.path : path, head, body };
}

const MAX_SHARED_HEADS = 10_000;

/** The hostname the URL class should produce for a backend host, or '' when it cannot. */
function canonicalHostname(host: string): string {
  if (!isIPv6(host)) return host.toLowerCase();
  try {
    return new URL(`http://[${host}]/`).hostname;
  } catch {
    return '';
  }
}
