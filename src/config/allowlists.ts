/**
 * The security allowlists. Config values and Docker labels end up in nginx's config, in probe
 * requests and in Docker calls, so names, hosts, paths, headers and URLs are checked against
 * what is allowed rather than against what is known to be dangerous.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { isMap, join, num, show, withSchema, type Check } from './check.js';
import { parseExpectedBody } from './expected-body.js';

/** A host and an optional port, as written in a backend or listen address. */
export interface ParsedAddress {
  /** Lower-cased; IPv6 without brackets. */
  host: string;
  /** null when the text had no port; 0 is returned as 0 and left to the caller to reject. */
  port: number | null;
}

/** nginx upstream names double as app names; the charset keeps them inert in nginx syntax. */
export const APP_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** RFC 7230 token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Headers the HTTP client owns: setting them would re-target or re-frame the probe request. */
const RESERVED_HEADERS = new Map<string, string>([
  ['host', 'cannot be set (it would re-target the request)'],
  ['content-length', 'cannot be set (the client frames the body)'],
  ['transfer-encoding', 'cannot be set (the client frames the body)'],
  ['connection', 'cannot be set (the client manages connections)'],
  ['keep-alive', 'cannot be set (the client manages connections)'],
  ['upgrade', 'cannot be set (the client manages connections)'],
  ['expect', 'cannot be set (the client does not support it)'],
]);
/** RFC 3986 path and query characters, minus '@' (userinfo) which could re-target a URL. */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:%/?]*$/;
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
/** Docker's container name charset. */
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** The JSON Schema pattern of a regular expression written for validation here. */
const pattern = (re: RegExp) => ({ type: 'string', pattern: re.source });

/**
 * Parses `host:port`, `host`, `[v6]:port` or `[v6]`. Returns an error text (without the value,
 * which the caller appends) when the address is malformed or the host is not an IPv4 address,
 * an IPv6 address or an RFC 1123 hostname.
 */
export function parseAddress(text: string): ParsedAddress | string {
  if (text === '') return 'must not be empty';
  let host: string;
  let portText: string | null = null;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) return 'is missing "]" after the IPv6 address';
    host = text.slice(1, end).toLowerCase();
    const rest = text.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return 'must be "[ipv6]" or "[ipv6]:port"';
      portText = rest.slice(1);
    }
    if (!isIPv6(host) || host.includes('%')) return 'has an invalid IPv6 address in brackets';
  } else {
    const parts = text.split(':');
    if (parts.length > 2) return 'must put an IPv6 address in brackets, e.g. [::1]:8080';
    host = (parts[0] ?? '').toLowerCase();
    portText = parts[1] ?? null;
    const hostError = hostProblem(host);
    if (hostError) return hostError;
  }
  if (portText === null) return { host, port: null };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    return 'must have a port between 1 and 65535';
  }
  return { host, port: Number(portText) };
}

/** Why `host` is neither an IPv4 address nor an RFC 1123 hostname, or null. */
export function hostProblem(host: string): string | null {
  if (isIPv4(host)) return null;
  const labels = host.split('.');
  const isHostname =
    host.length <= 253 &&
    labels.every((label) => HOST_LABEL.test(label)) &&
    // An all-numeric last label is a mistyped IPv4 address, not a name (RFC 3696).
    !/^\d+$/.test(labels[labels.length - 1] ?? '');
  return isHostname ? null : 'must be an IPv4 address, a bracketed IPv6 address or a hostname';
}

/**
 * Why `host` (lower-cased, IPv6 without brackets), a valid host, is still no address to connect
 * to, or null: nginx reads `server unix:...` as a UNIX socket path (while the prober would
 * connect to a host named unix), and the unspecified, broadcast and multicast addresses are
 * places to listen or announce, not backends.
 */
export function targetProblem(host: string): string | null {
  if (host === 'unix') return 'must not be "unix" (nginx reads "unix:" as a UNIX socket path)';
  if (isIPv4(host)) {
    const first = Number(host.slice(0, host.indexOf('.')));
    if (first === 0) return 'must not be an address of 0.0.0.0/8 (an address to listen on, not to connect to)';
    if (host === '255.255.255.255') return 'must not be the broadcast address';
    if (first >= 224 && first <= 239) return 'must not be a multicast address';
  } else if (isIPv6(host)) {
    if (/^[0:]+$/.test(host)) return 'must not be the unspecified address :: (an address to listen on, not to connect to)';
    if (host.startsWith('ff')) return 'must not be a multicast address';
  }
  return null;
}

/** A file system path: passed to nginx and fs calls, never through a shell. */
export const fsPath: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  if (value === '') return report(path, 'must not be empty');
  if (/[\r\n\0]/.test(value)) {
    return report(path, `must not contain newlines or NUL (got ${show(value)})`);
  }
  return value;
}, { type: 'string', minLength: 1, pattern: '^[^\\r\\n\\u0000]*$' });

/** A probe (or clear_cache) path: it can never change the host the request goes to. */
export const probePath: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const fail = (why: string) => report(path, `${why} (got ${show(value)})`);
  if (!value.startsWith('/')) return fail("must start with '/'");
  if (value.startsWith('//')) return fail("must not start with '//' (it would change the probed host)");
  if (value.includes('://')) return fail("must not contain '://' (it would change the probed host)");
  if (value.includes('@')) return fail("must not contain '@' (it would change the probed host)");
  if (value.includes('\\')) return fail("must not contain '\\' (it would change the probed host)");
  if (value.includes('#')) return fail("must not contain '#'");
  if (/\s/.test(value) || CONTROL_CHARS.test(value)) {
    return fail('must not contain whitespace or control characters');
  }
  if (!PATH_CHARS.test(value)) return fail('must contain only URL path and query characters');
  if (/%(?![0-9A-Fa-f]{2})/.test(value)) return fail("has a '%' not followed by two hex digits");
  return value;
}, { type: 'string', pattern: "^/(?!/)(?!.*://)[A-Za-z0-9\\-._~!$&'()*+,;=:%/?]*$" });

/** Request headers: RFC 7230 names, each once, none the client owns; Latin-1 values. */
export const headers: Check<Record<string, string>> = withSchema((value, path, report) => {
  if (!isMap(value)) return report(path, `must be a map (got ${show(value)})`);
  const entries: [string, string][] = [];
  const seen = new Set<string>();
  let valid = true;
  for (const [name, headerValue] of Object.entries(value)) {
    const at = join(path, name);
    const lower = name.toLowerCase();
    const problem = !HEADER_NAME.test(name)
      ? `is not a valid header name (got ${show(name)})`
      : RESERVED_HEADERS.get(lower) ?? (seen.has(lower) ? 'is set twice (header names ignore case)' : null);
    seen.add(lower);
    if (problem) {
      valid = false;
      report(at, problem);
    } else if (typeof headerValue !== 'string') {
      valid = false;
      report(at, `must be a string (got ${show(headerValue)})`);
    } else if (CONTROL_CHARS.test(headerValue)) {
      valid = false;
      report(at, `must not contain control characters (got ${show(headerValue)})`);
    } else if (/[^\u0000-\u00ff]/.test(headerValue)) {
      // HTTP/1.1 header bytes are Latin-1; the client rejects anything wider at request time.
      valid = false;
      report(at, `must contain only Latin-1 characters (got ${show(headerValue)})`);
    } else {
      entries.push([name, headerValue]);
    }
  }
  // fromEntries defines own properties, so a header named __proto__ cannot touch the prototype.
  return valid ? Object.fromEntries(entries) : undefined;
}, { type: 'object', propertyNames: pattern(HEADER_NAME), additionalProperties: { type: 'string' } });

const statusCode = num({ int: true, min: 100, max: 599 });

/** A non-empty list of HTTP status codes. */
export const statusCodes: Check<number[]> = withSchema((value, path, report) => {
  if (!Array.isArray(value) || value.length === 0) {
    return report(path, `must be a non-empty list of status codes (got ${show(value)})`);
  }
  const codes = value.map((v, i) => statusCode(v, join(path, i), report));
  return codes.every((c) => c !== undefined) ? (codes as number[]) : undefined;
}, { type: 'array', minItems: 1, items: { type: 'integer', minimum: 100, maximum: 599 } });

/** A substring, or a `/regex/flags` that V8's linear-time engine runs (see expected-body.ts). */
export const expectedBody: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const parsed = parseExpectedBody(value);
  return typeof parsed === 'string' ? report(path, `${parsed} (got ${show(value)})`) : value;
}, { type: 'string' });

/** Why `name` cannot be an app name (it doubles as an nginx upstream name), or null. */
export function appNameProblem(name: string): string | null {
  if (APP_NAME.test(name)) return null;
  return (
    "app name must start with a letter, digit or '_' and contain only letters, digits, " +
    `'_', '.', '-' (at most 64 characters) (got ${show(name)})`
  );
}

/** An app name where one is referred to (it doubles as an nginx upstream name). */
export const appName: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const problem = appNameProblem(value);
  return problem ? report(path, problem) : value;
}, pattern(APP_NAME));

/** A list of container names, as a YAML list or a comma-separated label value. */
export const containerNames: Check<string[]> = withSchema((value, path, report) => {
  const list = typeof value === 'string' ? value.split(',').map((v) => v.trim()).filter((v) => v !== '') : value;
  if (!Array.isArray(list)) return report(path, `must be a list of container names (got ${show(value)})`);
  const bad = list.find((v) => typeof v !== 'string' || !CONTAINER_NAME.test(v));
  if (bad !== undefined) {
    return report(path, `must contain only container names ([A-Za-z0-9][A-Za-z0-9_.-]*) (got ${show(bad)})`);
  }
  return [...new Set(list as string[])];
}, { anyOf: [{ type: 'array', items: pattern(CONTAINER_NAME) }, { type: 'string' }] });

/** An environment variable name, e.g. PORT. */
export const envName: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string' || !ENV_NAME.test(value)) {
    return report(path, `must be an environment variable name (got ${show(value)})`);
  }
  return value;
}, pattern(ENV_NAME));

/** `"20000-20099"` or `[20000, 20099]`: an inclusive port range. */
export const portRange: Check<[number, number]> = withSchema((value, path, report) => {
  let pair: unknown[] | null = null;
  if (typeof value === 'string') {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(value.trim());
    if (m) pair = [Number(m[1]), Number(m[2])];
  } else if (Array.isArray(value) && value.length === 2) {
    pair = value;
  }
  const ok = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
  if (!pair || !ok(pair[0]) || !ok(pair[1]) || pair[0] > pair[1]) {
    return report(path, `must be a port range "low-high" within 1..65535 (got ${show(value)})`);
  }
  return [pair[0], pair[1]];
}, {
  anyOf: [
    { type: 'string', pattern: '^\\s*\\d{1,5}-\\d{1,5}\\s*$' },
    { type: 'array', minItems: 2, maxItems: 2, items: { type: 'integer', minimum: 1, maximum: 65535 } },
  ],
});

/** `host:port` or `[ipv6]:port` to listen on. */
export const listenAddress: Check<string> = withSchema((value, path, report) => {
  // A port alone (`9180`, or 9180 unquoted) is the usual slip: say what to write instead.
  if ((typeof value === 'number' && Number.isInteger(value)) || (typeof value === 'string' && /^\d{1,5}$/.test(value))) {
    return report(path, `expected host:port, e.g. "127.0.0.1:${value}" (loopback only) or "0.0.0.0:${value}" (every interface) (got ${show(value)}: a port alone)`);
  }
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const parsed = parseAddress(value);
  if (typeof parsed === 'string') return report(path, `${parsed} (got ${show(value)})`);
  if (parsed.port === null) {
    return report(path, `must be "host:port" or "[ipv6]:port" (got ${show(value)})`);
  }
  return value;
}, { type: 'string', pattern: ':\\d{1,5}$' });

/** `ip:port` or `[ipv6]:port`: a socket to bind or to point nginx at, so no host name. */
export const ipListenAddress: Check<string> = withSchema((value, path, report) => {
  const ok = listenAddress(value, path, report);
  if (ok === undefined) return undefined;
  const host = ok.startsWith('[') ? ok.slice(1, ok.indexOf(']')) : ok.slice(0, ok.lastIndexOf(':'));
  return isIP(host) ? ok : report(path, `must be an IP address and port, e.g. 127.0.0.1:5353 (got ${show(value)})`);
}, { type: 'string', pattern: ':\\d{1,5}$' });

/** A DNS name of letters, digits, `-` and `_` labels, e.g. `orchestry.internal`. */
export const dnsName: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const labels = value.replace(/\.$/, '').split('.');
  const ok = value.length <= 200 && labels.every((l) => /^[A-Za-z0-9_-]{1,63}$/.test(l));
  return ok ? value.replace(/\.$/, '').toLowerCase() : report(path, `must be a DNS name of letters, digits, "-" and "_" labels, e.g. orchestry.internal (got ${show(value)})`);
}, { type: 'string', pattern: '^[A-Za-z0-9_-]{1,63}(\\.[A-Za-z0-9_-]{1,63})*\\.?$' });

/** A bearer token. */
export const token: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  // Printable ASCII without spaces: it is compared against an `Authorization: Bearer` value.
  if (!/^[\x21-\x7e]+$/.test(value)) {
    return report(path, 'must be non-empty printable ASCII without spaces');
  }
  return value;
}, { type: 'string', pattern: '^[\\x21-\\x7e]+$' });

/**
 * An http(s) URL without credentials in it (they belong in headers, which are not logged). Its
 * JSON Schema has no pattern: the URL parser forgives more (spaces around, any case) than one.
 */
export const httpUrl: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return report(path, `must be an http or https URL (got ${show(value)})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return report(path, `must be an http or https URL (got ${show(value)})`);
  }
  if (url.username || url.password) return report(path, 'must not contain credentials (put them in headers)');
  return value;
}, { type: 'string' });
