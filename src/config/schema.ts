/**
 * Validation of the YAML configuration into a defaulted SidecarConfig. This is a security
 * boundary: values end up in nginx's config and in probe requests, so names, hosts and paths are
 * checked against allowlists rather than blocklists, and every problem is reported at once with
 * the path a user writes and the value they wrote.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import type { FieldIssue } from '../errors.js';
import { formatAddress } from '../model.js';
import type {
  AdminConfig,
  AlertingConfig,
  AlertReceiverConfig,
  AlertRouteConfig,
  AppConfig,
  AppDockerOptions,
  AppRecoveryOptions,
  ClearCacheCall,
  BackendConfig,
  BreakerConfig,
  DockerConfig,
  FailureDetectionConfig,
  HealthCheckConfig,
  LoggingConfig,
  NginxConfig,
  ProbeSettings,
  RecoveryConfig,
  SidecarConfig,
  StoreConfig,
  UpstreamOptions,
} from './types.js';

/** The seed's HealthCheckConfig defaults, plus `scheme: http` and no `expected_body`. */
export const DEFAULT_HEALTH: HealthCheckConfig = Object.freeze({
  protocol: 'HTTP',
  scheme: 'http',
  path: '/health',
  port: 8000,
  method: 'GET',
  headers: Object.freeze({}) as Record<string, string>,
  body: null,
  expected_status_codes: Object.freeze([200]) as number[],
  expected_body: null,
  probe_data: null,
  expected_response: null,
  initial_delay_seconds: 30,
  period_seconds: 30,
  timeout_seconds: 5,
  failure_threshold: 3,
  success_threshold: 1,
  enabled: true,
  follow_redirects: false,
  verify_ssl: true,
  max_retries: 0,
});

/** A host and an optional port, as written in a backend or listen address. */
export interface ParsedAddress {
  /** Lower-cased; IPv6 without brackets. */
  host: string;
  /** null when the text had no port; 0 is returned as 0 and left to the caller to reject. */
  port: number | null;
}

/** nginx upstream names double as app names; the charset keeps them inert in nginx syntax. */
const APP_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
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
/** Longest timer Node honours is ~24.8 days; a day is plenty for any interval here. */
const MAX_SECONDS = 86_400;

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
    const hostError = checkHost(host);
    if (hostError) return hostError;
  }
  if (portText === null) return { host, port: null };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    return 'must have a port between 1 and 65535';
  }
  return { host, port: Number(portText) };
}

function checkHost(host: string): string | null {
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
 * How `expected_body` is read: `/pattern/flags` is a regular expression, anything else a
 * substring. Returns a matcher, or an error text when the expression does not compile.
 */
export function compileExpectedBody(text: string): ((body: string) => boolean) | string {
  const regex = /^\/(.+)\/([a-z]*)$/s.exec(text);
  if (!regex) return (body) => body.includes(text);
  const [, pattern = '', flags = ''] = regex;
  // g and y make RegExp#test stateful across calls (lastIndex), so one probe would affect the next.
  if (/[gy]/.test(flags)) return 'must not use the g or y regular expression flags';
  try {
    const compiled = new RegExp(pattern, flags);
    return (body) => compiled.test(body);
  } catch (err) {
    return `is not a valid regular expression: ${(err as Error).message}`;
  }
}

// ---- validation toolkit -------------------------------------------------------------------

type Raw = Record<string, unknown>;
/** Records one issue; returns undefined so a check can `return report(...)`. */
export type Report = (path: string, message: string) => undefined;
/** Validates one value; returns it (possibly normalised), or undefined after reporting. */
export type Check<T> = (value: unknown, path: string, report: Report) => T | undefined;

/** The bad value for an error message: JSON-quoted so control characters stay visible. */
export function show(value: unknown): string {
  if (typeof value === 'string') {
    const json = JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
    // JSON leaves DEL, C1 controls and line separators raw; escape them too for log safety.
    return json.replace(
      /[\u007f-\u009f\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (typeof value === 'object' && value !== null) {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch {
      // YAML anchors can build a cyclic value.
    }
    if (json === undefined || json.length > 80) return Array.isArray(value) ? 'a list' : 'a map';
    return json;
  }
  return String(value);
}

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const segment = /^[A-Za-z0-9_-]+$/.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (!path) return segment;
  return segment.startsWith('[') ? `${path}${segment}` : `${path}.${segment}`;
}

function isMap(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A section: absent or null means "all defaults"; unknown keys are reported. */
function readMap(
  value: unknown,
  path: string,
  keys: readonly string[],
  report: Report,
): Raw | undefined {
  if (value === undefined || value === null) return {};
  if (!isMap(value)) return report(path, `must be a map (got ${show(value)})`);
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) report(join(path, key), 'unknown key');
  }
  return value;
}

function field<T>(
  raw: Raw,
  path: string,
  key: string,
  fallback: T,
  check: Check<T>,
  report: Report,
): T {
  const value = raw[key];
  if (value === undefined) return fallback;
  const checked = check(value, join(path, key), report);
  return checked === undefined ? fallback : checked;
}

/** A number within the rule's bounds. */
export function num(rule: { int?: boolean; min?: number; max?: number; above?: number }): Check<number> {
  return (value, path, report) => {
    const kind = rule.int ? 'an integer' : 'a number';
    if (typeof value !== 'number' || Number.isNaN(value)) {
      return report(path, `must be ${kind} (got ${show(value)})`);
    }
    if (!Number.isFinite(value)) return report(path, `must be a finite number (got ${value})`);
    if (rule.int && !Number.isInteger(value)) return report(path, `must be an integer (got ${value})`);
    if (rule.above !== undefined && !(value > rule.above)) {
      return report(path, `must be greater than ${rule.above} (got ${value})`);
    }
    const { min, max } = rule;
    if (min !== undefined && max !== undefined && (value < min || value > max)) {
      return report(path, `must be between ${min} and ${max} (got ${value})`);
    }
    if (min !== undefined && value < min) return report(path, `must be at least ${min} (got ${value})`);
    if (max !== undefined && value > max) return report(path, `must be at most ${max} (got ${value})`);
    return value;
  };
}

/** Case-insensitive enum; the value is normalised to the listed spelling. */
export function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (value, path, report) => {
    const match =
      typeof value === 'string'
        ? values.find((v) => v.toLowerCase() === value.toLowerCase())
        : undefined;
    return match ?? report(path, `must be one of ${values.join(', ')} (got ${show(value)})`);
  };
}

export const bool: Check<boolean> = (value, path, report) =>
  typeof value === 'boolean' ? value : report(path, `must be true or false (got ${show(value)})`);

const str: Check<string> = (value, path, report) =>
  typeof value === 'string' ? value : report(path, `must be a string (got ${show(value)})`);

function nullable<T>(check: Check<T>): Check<T | null> {
  return (value, path, report) => (value === null ? null : check(value, path, report));
}

/** A file system path: passed to nginx and fs calls, never through a shell. */
const fsPath: Check<string> = (value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  if (value === '') return report(path, 'must not be empty');
  if (/[\r\n\0]/.test(value)) {
    return report(path, `must not contain newlines or NUL (got ${show(value)})`);
  }
  return value;
};

// ---- health -------------------------------------------------------------------------------

const probePath: Check<string> = (value, path, report) => {
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
};

const headers: Check<Record<string, string>> = (value, path, report) => {
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
};

const statusCodes: Check<number[]> = (value, path, report) => {
  if (!Array.isArray(value) || value.length === 0) {
    return report(path, `must be a non-empty list of status codes (got ${show(value)})`);
  }
  const code = num({ int: true, min: 100, max: 599 });
  const codes = value.map((v, i) => code(v, join(path, i), report));
  return codes.every((c) => c !== undefined) ? (codes as number[]) : undefined;
};

const expectedBody: Check<string> = (value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const compiled = compileExpectedBody(value);
  return typeof compiled === 'string' ? report(path, `${compiled} (got ${show(value)})`) : value;
};

const HEALTH_CHECKS: { [K in keyof HealthCheckConfig]: Check<HealthCheckConfig[K]> } = {
  protocol: oneOf(['HTTP', 'TCP']),
  scheme: oneOf(['http', 'https']),
  path: probePath,
  port: num({ int: true, min: 1, max: 65535 }),
  method: oneOf(['GET', 'POST', 'PUT', 'HEAD']),
  headers,
  body: nullable(str),
  expected_status_codes: statusCodes,
  expected_body: nullable(expectedBody),
  probe_data: nullable(str),
  expected_response: nullable(str),
  initial_delay_seconds: num({ min: 0, max: MAX_SECONDS }),
  period_seconds: num({ above: 0, max: MAX_SECONDS }),
  timeout_seconds: num({ min: 1, max: MAX_SECONDS }),
  failure_threshold: num({ int: true, min: 1 }),
  success_threshold: num({ int: true, min: 1 }),
  enabled: bool,
  follow_redirects: bool,
  verify_ssl: bool,
  max_retries: num({ int: true, min: 0, max: 10 }),
};
const HEALTH_KEYS = Object.keys(HEALTH_CHECKS) as (keyof HealthCheckConfig)[];

/** Only the fields that are present and valid, so that they can be layered over defaults. */
function parseHealthFields(
  value: unknown,
  path: string,
  report: Report,
): Partial<HealthCheckConfig> {
  const raw = readMap(value, path, HEALTH_KEYS, report);
  const out: Record<string, unknown> = {};
  if (!raw) return out;
  for (const key of HEALTH_KEYS) {
    if (raw[key] === undefined) continue;
    const checked = (HEALTH_CHECKS[key] as Check<unknown>)(raw[key], join(path, key), report);
    if (checked !== undefined) out[key] = checked;
  }
  return out as Partial<HealthCheckConfig>;
}

/**
 * Rules between health fields. `set` names the fields the caller's layer wrote itself: a
 * conflict is then blamed on the field the layer set (labels set one field over a YAML base);
 * without it (the YAML) the rule's own subject is blamed.
 */
function checkHealthCombination(
  health: HealthCheckConfig,
  path: string,
  valid: (key: string) => boolean,
  report: Report,
  set?: (key: string) => boolean,
): void {
  const { timeout_seconds: timeout, period_seconds: period } = health;
  if (timeout >= period && valid('timeout_seconds') && valid('period_seconds')) {
    if (set && !set('timeout_seconds') && set('period_seconds')) {
      report(join(path, 'period_seconds'), `must be greater than timeout_seconds (got ${period} <= ${timeout})`);
    } else {
      report(join(path, 'timeout_seconds'), `must be less than period_seconds (got ${timeout} >= ${period})`);
    }
  }
  if (health.method === 'HEAD' && health.expected_body !== null) {
    if (set && !set('expected_body') && set('method')) {
      report(join(path, 'method'), 'must not be HEAD when expected_body is set (a HEAD response has no body)');
    } else {
      report(
        join(path, 'expected_body'),
        'must not be set when method is HEAD (a HEAD response has no body)',
      );
    }
  }
}

/**
 * Validates a map of health fields with the YAML's rules (each field, then the rules between
 * fields) and layers it over `base`, a complete valid health config. Issue paths start at
 * `path`, e.g. `orchestry.health` gives `orchestry.health.timeout_seconds`.
 */
export function parseHealthOverlay(
  raw: Record<string, unknown>,
  path: string,
  base: HealthCheckConfig,
): { ok: true; health: HealthCheckConfig } | { ok: false; issues: FieldIssue[] } {
  const issues: FieldIssue[] = [];
  const report: Report = (at, message) => {
    issues.push({ path: at, message });
    return undefined;
  };
  const own = parseHealthFields(raw, path, report);
  const health: HealthCheckConfig = structuredClone({ ...base, ...own });
  const valid = (key: string) => !issues.some((i) => i.path === join(path, key));
  checkHealthCombination(health, path, valid, report, (key) => raw[key] !== undefined);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, health };
}

// ---- apps ---------------------------------------------------------------------------------

/** Why `name` cannot be an app name (it doubles as an nginx upstream name), or null. */
export function appNameProblem(name: string): string | null {
  if (APP_NAME.test(name)) return null;
  return (
    "app name must start with a letter, digit or '_' and contain only letters, digits, " +
    `'_', '.', '-' (at most 64 characters) (got ${show(name)})`
  );
}

/** Upstream options of an app that sets none. */
const DEFAULT_KEEPALIVE = 32;
const DEFAULT_BALANCE = 'round_robin';

/**
 * An app the YAML does not define (e.g. one found only in Docker labels): no static backends,
 * the given health and Docker options, and every upstream option at its default.
 */
export function defaultApp(
  name: string,
  nginx: NginxConfig,
  health: HealthCheckConfig,
  docker: AppDockerOptions = DEFAULT_APP_DOCKER,
  recovery: AppRecoveryOptions = DEFAULT_APP_RECOVERY,
): AppConfig {
  return {
    name,
    docker: { ...docker },
    recovery: structuredClone(recovery),
    backends: [],
    health: structuredClone(health),
    upstream: { ejected: nginx.ejected, keepalive: DEFAULT_KEEPALIVE, balance: DEFAULT_BALANCE, backup_app: null },
  };
}

const backendEntry = (defaultPort: number): Check<BackendConfig> => (value, path, report) => {
  let address: unknown = value;
  let weight = 1;
  let backup = false;
  let addressPath = path;
  if (isMap(value)) {
    const raw = readMap(value, path, ['address', 'weight', 'backup'], report);
    if (!raw) return undefined;
    weight = field(raw, path, 'weight', weight, num({ int: true, min: 1, max: 1000 }), report);
    backup = field(raw, path, 'backup', backup, bool, report);
    addressPath = join(path, 'address');
    if (raw.address === undefined) return report(addressPath, 'is required');
    address = raw.address;
  }
  if (typeof address !== 'string') {
    return report(
      addressPath,
      `must be "host:port" or a map with address, weight, backup (got ${show(address)})`,
    );
  }
  const parsed = parseAddress(address);
  if (typeof parsed === 'string') return report(addressPath, `${parsed} (got ${show(address)})`);
  if (parsed.port === 0) {
    return report(addressPath, `must have a port between 1 and 65535 (got ${show(address)})`);
  }
  return { host: parsed.host, port: parsed.port ?? defaultPort, weight, backup };
};

function parseBackends(
  value: unknown,
  path: string,
  defaultPort: number,
  report: Report,
): BackendConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return report(path, `must be a list (got ${show(value)})`) ?? [];
  const check = backendEntry(defaultPort);
  const seen = new Map<string, number>();
  const out: BackendConfig[] = [];
  value.forEach((entry, i) => {
    const backend = check(entry, join(path, i), report);
    if (!backend) return;
    const address = formatAddress(backend.host, backend.port);
    const first = seen.get(address);
    if (first !== undefined) {
      report(join(path, i), `duplicate backend ${address} (also at index ${first})`);
      return;
    }
    seen.set(address, i);
    out.push(backend);
  });
  return out;
}

const BALANCE = ['round_robin', 'least_conn', 'ip_hash', 'random'] as const;
const EJECTED = ['down', 'omit'] as const;
const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
const ADDRESS_MODES = ['network', 'host'] as const;
const RECOVERY_MODES = ['off', 'dry-run', 'on'] as const;

function parseApp(
  name: string,
  value: unknown,
  path: string,
  defaults: Partial<HealthCheckConfig>,
  nginx: NginxConfig,
  report: Report,
  issues: readonly FieldIssue[],
): AppConfig | undefined {
  const raw = readMap(value, path, ['backends', 'health', 'upstream', 'docker', 'recovery'], report);
  if (!raw) return undefined;
  const healthPath = join(path, 'health');
  const own = parseHealthFields(raw.health, healthPath, report);
  // Shallow layering: a field set on the app replaces the default whole (headers included).
  const health: HealthCheckConfig = structuredClone({ ...DEFAULT_HEALTH, ...defaults, ...own });
  // A field that was itself invalid fell back to its default; comparing that would mislead.
  const valid = (key: string) =>
    !issues.some((i) => i.path === join(healthPath, key) || i.path === `defaults.health.${key}`);
  checkHealthCombination(health, healthPath, valid, report);

  const backends = parseBackends(raw.backends, join(path, 'backends'), health.port, report);

  const upstreamPath = join(path, 'upstream');
  const upstream = readSection<UpstreamOptions>(raw.upstream, upstreamPath, {
    ejected: [nginx.ejected, oneOf(EJECTED)],
    keepalive: [DEFAULT_KEEPALIVE, num({ int: true, min: 0, max: 10_000 })],
    balance: [DEFAULT_BALANCE, oneOf(BALANCE)],
    backup_app: [null, nullable(appName)],
  }, report);
  const { balance } = upstream;
  if (upstream.backup_app === name) {
    report(join(upstreamPath, 'backup_app'), `must name another app (got ${show(name)})`);
  }
  if ((balance === 'ip_hash' || balance === 'random') && upstream.backup_app !== null) {
    report(
      join(upstreamPath, 'backup_app'),
      `cannot be used with balance ${balance}: nginx rejects backup servers there (got ${show(upstream.backup_app)})`,
    );
  }
  if ((balance === 'ip_hash' || balance === 'random') && backends.some((b) => b.backup)) {
    report(
      join(upstreamPath, 'balance'),
      `cannot be used with backup backends, nginx rejects it (got ${show(balance)})`,
    );
  }
  const docker = parseAppDocker(raw.docker, join(path, 'docker'), report);
  const recovery = parseAppRecovery(raw.recovery, join(path, 'recovery'), report);
  return { name, docker, recovery, backends, health, upstream };
}

/** An app name where one is referred to (it doubles as an nginx upstream name). */
export const appName: Check<string> = (value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const problem = appNameProblem(value);
  return problem ? report(path, problem) : value;
};

/** Docker's container name charset. */
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** A list of container names, as a YAML list or a comma-separated label value. */
export const containerNames: Check<string[]> = (value, path, report) => {
  const list = typeof value === 'string' ? value.split(',').map((v) => v.trim()).filter((v) => v !== '') : value;
  if (!Array.isArray(list)) return report(path, `must be a list of container names (got ${show(value)})`);
  const bad = list.find((v) => typeof v !== 'string' || !CONTAINER_NAME.test(v));
  if (bad !== undefined) {
    return report(path, `must contain only container names ([A-Za-z0-9][A-Za-z0-9_.-]*) (got ${show(bad)})`);
  }
  return [...new Set(list as string[])];
};

const CACHE_METHODS = ['POST', 'PUT', 'DELETE', 'GET'] as const;

/** `{method, path}` or the label form `"POST /admin/cache/clear"`. */
export const clearCacheCall: Check<ClearCacheCall> = (value, path, report) => {
  let method: unknown = 'POST';
  let callPath: unknown = value;
  if (typeof value === 'string') {
    const m = /^([A-Za-z]+)\s+(\S+)$/.exec(value.trim());
    if (m) [, method, callPath] = m;
  } else if (isMap(value)) {
    const raw = readMap(value, path, ['method', 'path'], report);
    if (!raw) return undefined;
    method = raw.method ?? 'POST';
    callPath = raw.path;
    if (callPath === undefined) return report(join(path, 'path'), 'is required');
  } else {
    return report(path, `must be "METHOD /path" or a map with method and path (got ${show(value)})`);
  }
  const m = oneOf(CACHE_METHODS)(method, join(path, 'method'), report);
  const p = probePath(callPath, join(path, 'path'), report);
  return m && p ? { method: m, path: p } : undefined;
};

/** Defaults of an app's recovery options. */
export const DEFAULT_APP_RECOVERY: AppRecoveryOptions = Object.freeze({
  dependencies: Object.freeze([]) as unknown as string[],
  clear_cache: null,
}) as AppRecoveryOptions;

function parseAppRecovery(value: unknown, path: string, report: Report): AppRecoveryOptions {
  return readSection<AppRecoveryOptions>(value, path, {
    dependencies: [[], containerNames],
    clear_cache: [null, nullable(clearCacheCall)],
  }, report);
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** An environment variable name, e.g. PORT. */
export const envName: Check<string> = (value, path, report) => {
  if (typeof value !== 'string' || !ENV_NAME.test(value)) {
    return report(path, `must be an environment variable name (got ${show(value)})`);
  }
  return value;
};

/** `"20000-20099"` or `[20000, 20099]`: an inclusive port range. */
export const portRange: Check<[number, number]> = (value, path, report) => {
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
};

/** The seed's FailureDetector thresholds, plus the detectors it names and this project adds. */
export const DEFAULT_FAILURE_DETECTION: FailureDetectionConfig = Object.freeze({
  max_response_time_ms: 5000,
  max_error_rate_percent: 5,
  min_error_rate_samples: 20,
  consecutive_failure_limit: 3,
  failure_rate_window_minutes: 10,
  max_cpu_percent: 90,
  max_memory_percent: 90,
  stats_interval_seconds: 10,
  resource_samples: 3,
  memory_leak_window_minutes: 10,
  memory_leak_horizon_minutes: 60,
  deadlock_timeouts: 3,
  deadlock_cpu_percent: 5,
});

/** Defaults of an app's Docker options. */
export const DEFAULT_APP_DOCKER: AppDockerOptions = Object.freeze({
  address_mode: null,
  port_range: null,
  port_env: 'PORT',
  max_replicas: null,
}) as AppDockerOptions;

function parseAppDocker(value: unknown, path: string, report: Report): AppDockerOptions {
  return readSection<AppDockerOptions>(value, path, {
    address_mode: [null, nullable(oneOf(ADDRESS_MODES))],
    port_range: [null, nullable(portRange)],
    port_env: ['PORT', envName],
    max_replicas: [null, nullable(num({ int: true, min: 1, max: 1000 }))],
  }, report);
}

// ---- top level ----------------------------------------------------------------------------

/** Each key's default and check; the keys are also the section's only allowed keys. */
type Spec<T> = { [K in keyof T]: [T[K], Check<T[K]>] };

function readSection<T>(value: unknown, path: string, spec: Spec<T>, report: Report): T {
  const keys = Object.keys(spec) as (keyof T & string)[];
  const raw = readMap(value, path, keys, report) ?? {};
  const out = {} as T;
  for (const key of keys) {
    const [fallback, check] = spec[key];
    out[key] = field(raw, path, key, fallback, check, report);
  }
  return out;
}

function parseNginx(value: unknown, baseDir: string | undefined, report: Report): NginxConfig {
  const nginx = readSection<NginxConfig>(value, 'nginx', {
    mode: ['local', oneOf(['local', 'docker'] as const)],
    container: [null, nullable(str)],
    container_label: [null, nullable(str)],
    binary: ['nginx', fsPath],
    config_path: ['/etc/nginx/nginx.conf', fsPath],
    prefix: [null, nullable(fsPath)],
    output_path: ['/etc/nginx/conf.d/orchestry-upstreams.conf', fsPath],
    template_path: [null, nullable(fsPath)],
    pid_path: [null, nullable(fsPath)],
    ejected: ['down', oneOf(EJECTED)],
    coalesce_min_wait_seconds: [0.1, num({ min: 0, max: 60 })],
    coalesce_max_wait_seconds: [2, num({ min: 0, max: 60 })],
    validate: [true, bool],
  }, report);
  const { coalesce_min_wait_seconds: min, coalesce_max_wait_seconds: max } = nginx;
  if (max < min) {
    report(
      'nginx.coalesce_max_wait_seconds',
      `must be at least coalesce_min_wait_seconds (got ${max} < ${min})`,
    );
  }
  if (nginx.mode === 'docker' && nginx.container === null && nginx.container_label === null) {
    report('nginx.container', 'must be set (or nginx.container_label) when nginx.mode is docker');
  }
  const abs = <T extends string | null>(p: T): T =>
    (p !== null && baseDir && !isAbsolute(p) ? resolve(baseDir, p) : p) as T;
  return {
    ...nginx,
    // A bare name is looked up in PATH; only a name with a slash is a path to resolve.
    binary: nginx.binary.includes('/') ? abs(nginx.binary) : nginx.binary,
    config_path: abs(nginx.config_path),
    prefix: abs(nginx.prefix),
    output_path: abs(nginx.output_path),
    template_path: abs(nginx.template_path),
    pid_path: abs(nginx.pid_path),
  };
}

const listenAddress: Check<string> = (value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const parsed = parseAddress(value);
  if (typeof parsed === 'string') return report(path, `${parsed} (got ${show(value)})`);
  if (parsed.port === null) {
    return report(path, `must be "host:port" or "[ipv6]:port" (got ${show(value)})`);
  }
  return value;
};

const token: Check<string> = (value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  // Printable ASCII without spaces: it is compared against an `Authorization: Bearer` value.
  if (!/^[\x21-\x7e]+$/.test(value)) {
    return report(path, 'must be non-empty printable ASCII without spaces');
  }
  return value;
};

const TOP_KEYS = [
  'defaults', 'apps', 'docker', 'recovery', 'store', 'alerting', 'breaker', 'failure_detection', 'nginx',
  'admin', 'probes', 'logging',
];

function parseStore(value: unknown, baseDir: string | undefined, report: Report): StoreConfig {
  const store = readSection<StoreConfig>(value, 'store', {
    enabled: [true, bool],
    path: ['orchestry-sidecar.db', fsPath],
    raw_retention_hours: [24, num({ above: 0, max: 24 * 366 })],
    rollup_retention_days: [30, num({ above: 0, max: 3660 })],
    flush_interval_seconds: [1, num({ above: 0, max: 60 })],
    max_queue: [200_000, num({ int: true, min: 1000, max: 10_000_000 })],
  }, report);
  return { ...store, path: baseDir && !isAbsolute(store.path) ? resolve(baseDir, store.path) : store.path };
}

const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
const RECEIVER_TYPES = ['webhook', 'slack', 'alertmanager'] as const;

/** An http(s) URL without credentials in it (they belong in headers, which are not logged). */
const httpUrl: Check<string> = (value, path, report) => {
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
};

const nameList = (check: Check<string>): Check<string[]> => (value, path, report) => {
  if (!Array.isArray(value)) return report(path, `must be a list (got ${show(value)})`);
  const out = value.map((v, i) => check(v, join(path, i), report));
  return out.every((v) => v !== undefined) ? (out as string[]) : undefined;
};

const FAILURE_TYPES = [
  'health_check_failed', 'health_check_timeout', 'health_check_error', 'high_response_time',
  'high_error_rate', 'high_resource_usage', 'container_stopped', 'container_restart_loop',
  'container_oom_killed', 'network_unreachable', 'port_not_listening', 'dns_resolution_failed',
  'application_startup_failed', 'application_deadlock', 'application_memory_leak',
] as const;

function parseAlerting(value: unknown, report: Report): AlertingConfig {
  const raw = readMap(value, 'alerting', [
    'enabled', 'receivers', 'routes', 'escalation', 'resend_interval_seconds', 'retry_min_seconds', 'retry_max_seconds',
  ], report) ?? {};
  const receivers: AlertReceiverConfig[] = [];
  if (raw.receivers !== undefined && raw.receivers !== null) {
    if (!isMap(raw.receivers)) {
      report('alerting.receivers', `must be a map of receiver name to receiver (got ${show(raw.receivers)})`);
    } else {
      for (const [name, body] of Object.entries(raw.receivers)) {
        const path = join('alerting.receivers', name);
        if (!APP_NAME.test(name)) report(path, `receiver name must be letters, digits, '_', '.', '-' (got ${show(name)})`);
        if (!isMap(body) || body.type === undefined) {
          report(join(path, 'type'), 'is required (webhook, slack or alertmanager)');
        }
        if (isMap(body) && body.url === undefined) report(join(path, 'url'), 'is required');
        const r = readSection<Omit<AlertReceiverConfig, 'name'>>(body, path, {
          type: ['webhook', oneOf(RECEIVER_TYPES)],
          url: ['', httpUrl],
          headers: [{}, headers],
          timeout_seconds: [5, num({ above: 0, max: 300 })],
          max_per_minute: [30, num({ int: true, min: 1, max: 100_000 })],
        }, report);
        receivers.push({ name, ...r });
      }
    }
  }
  const names = new Set(receivers.map((r) => r.name));
  const receiverName: Check<string> = (v, path, rep) =>
    typeof v === 'string' && names.has(v) ? v : rep(path, `must name a receiver under alerting.receivers (got ${show(v)})`);
  const routes: AlertRouteConfig[] = [];
  if (raw.routes !== undefined && raw.routes !== null) {
    if (!Array.isArray(raw.routes)) {
      report('alerting.routes', `must be a list (got ${show(raw.routes)})`);
    } else {
      raw.routes.forEach((body, i) => {
        const path = join('alerting.routes', i);
        if (!isMap(body) || body.receivers === undefined) report(join(path, 'receivers'), 'is required');
        routes.push(readSection<AlertRouteConfig>(body, path, {
          receivers: [[], nameList(receiverName)],
          min_severity: ['low', oneOf(SEVERITIES)],
          apps: [[], nameList(appName)],
          failure_types: [[], nameList(oneOf(FAILURE_TYPES))],
        }, report));
      });
    }
  }
  const escalation = readSection<AlertingConfig['escalation']>(raw.escalation, 'alerting.escalation', {
    after_seconds: [900, num({ above: 0, max: MAX_SECONDS })],
    receivers: [[], nameList(receiverName)],
  }, report);
  const rest = readSection<Pick<AlertingConfig, 'enabled' | 'resend_interval_seconds' | 'retry_min_seconds' | 'retry_max_seconds'>>(
    { enabled: raw.enabled, resend_interval_seconds: raw.resend_interval_seconds, retry_min_seconds: raw.retry_min_seconds, retry_max_seconds: raw.retry_max_seconds },
    'alerting',
    {
      enabled: [false, bool],
      resend_interval_seconds: [60, num({ above: 0, max: 3600 })],
      retry_min_seconds: [1, num({ above: 0, max: 3600 })],
      retry_max_seconds: [300, num({ above: 0, max: MAX_SECONDS })],
    },
    report,
  );
  if (rest.retry_max_seconds < rest.retry_min_seconds) {
    report('alerting.retry_max_seconds', `must be at least retry_min_seconds (got ${rest.retry_max_seconds} < ${rest.retry_min_seconds})`);
  }
  if (rest.enabled && routes.length === 0) {
    report('alerting.routes', 'must have at least one route when alerting.enabled is true');
  }
  return { ...rest, receivers, routes, escalation };
}

function parseDocker(value: unknown, report: Report): DockerConfig {
  const docker = readSection<DockerConfig>(value, 'docker', {
    enabled: [false, bool],
    socket_path: ['/var/run/docker.sock', fsPath],
    address_mode: ['network', oneOf(ADDRESS_MODES)],
    network: [null, nullable(str)],
    host_address: ['127.0.0.1', str],
    startup_grace_seconds: [60, num({ min: 0, max: MAX_SECONDS })],
    reconnect_min_seconds: [0.5, num({ above: 0, max: 3600 })],
    reconnect_max_seconds: [30, num({ above: 0, max: 3600 })],
  }, report);
  const hostProblem = checkHost(docker.host_address);
  if (hostProblem) report('docker.host_address', `${hostProblem} (got ${show(docker.host_address)})`);
  if (docker.reconnect_max_seconds < docker.reconnect_min_seconds) {
    report(
      'docker.reconnect_max_seconds',
      `must be at least reconnect_min_seconds (got ${docker.reconnect_max_seconds} < ${docker.reconnect_min_seconds})`,
    );
  }
  return docker;
}

function parseRecovery(value: unknown, report: Report): RecoveryConfig {
  const r = readSection<RecoveryConfig>(value, 'recovery', {
    mode: ['dry-run', oneOf(RECOVERY_MODES)],
    max_restarts: [3, num({ int: true, min: 0, max: 1000 })],
    restart_window_seconds: [300, num({ above: 0, max: MAX_SECONDS })],
    backoff_min_seconds: [10, num({ min: 0, max: MAX_SECONDS })],
    backoff_max_seconds: [300, num({ min: 0, max: MAX_SECONDS })],
    budget_per_app: [10, num({ int: true, min: 0, max: 10_000 })],
    budget_window_seconds: [600, num({ above: 0, max: MAX_SECONDS })],
    max_unavailable_fraction: [0.5, num({ above: 0, max: 1 })],
    min_healthy_replicas: [1, num({ int: true, min: 0, max: 1000 })],
    max_replicas: [5, num({ int: true, min: 1, max: 1000 })],
    scale_in_after_seconds: [300, num({ min: 0, max: MAX_SECONDS })],
    stop_timeout_seconds: [10, num({ min: 0, max: 3600 })],
  }, report);
  if (r.backoff_max_seconds < r.backoff_min_seconds) {
    report(
      'recovery.backoff_max_seconds',
      `must be at least backoff_min_seconds (got ${r.backoff_max_seconds} < ${r.backoff_min_seconds})`,
    );
  }
  return r;
}

/**
 * Validates raw parsed YAML into a defaulted SidecarConfig, collecting every issue. Relative
 * nginx paths are resolved against `opts.baseDir` (the config file's directory) when given.
 */
export function parseConfig(
  raw: unknown,
  opts: { baseDir?: string } = {},
): { ok: true; config: SidecarConfig } | { ok: false; issues: FieldIssue[] } {
  const issues: FieldIssue[] = [];
  const report: Report = (path, message) => {
    issues.push({ path, message });
    return undefined;
  };
  if (raw !== undefined && raw !== null && !isMap(raw)) {
    return { ok: false, issues: [{ path: '', message: `the document must be a map (got ${show(raw)})` }] };
  }
  const top = readMap(raw, '', TOP_KEYS, report) ?? {};

  const defaults = readMap(top.defaults, 'defaults', ['health'], report) ?? {};
  const healthDefaults = parseHealthFields(defaults.health, 'defaults.health', report);
  const nginx = parseNginx(top.nginx, opts.baseDir, report);

  const apps: AppConfig[] = [];
  if (top.apps === undefined || top.apps === null) {
    report('apps', 'is required');
  } else if (!isMap(top.apps)) {
    report('apps', `must be a map of app name to app (got ${show(top.apps)})`);
  } else if (Object.keys(top.apps).length === 0) {
    report('apps', 'must define at least one app');
  } else {
    for (const [name, body] of Object.entries(top.apps)) {
      const path = join('apps', name);
      const nameProblem = appNameProblem(name);
      if (nameProblem) report(path, nameProblem);
      const app = parseApp(name, body, path, healthDefaults, nginx, report, issues);
      if (app) apps.push(app);
    }
  }

  const docker = parseDocker(top.docker, report);
  const recovery = parseRecovery(top.recovery, report);
  const store = parseStore(top.store, opts.baseDir, report);
  const alerting = parseAlerting(top.alerting, report);
  const breaker = readSection<BreakerConfig>(top.breaker, 'breaker', {
    failure_threshold: [5, num({ int: true, min: 1 })],
    success_threshold: [3, num({ int: true, min: 1 })],
    recovery_timeout_seconds: [60, num({ above: 0, max: MAX_SECONDS })],
    max_test_requests: [3, num({ int: true, min: 1 })],
  }, report);
  // A half-open breaker closes only after success_threshold trial successes, and it admits at
  // most max_test_requests trials: more successes than trials could never close it again.
  if (breaker && breaker.success_threshold > breaker.max_test_requests) {
    report(
      'breaker.success_threshold',
      `must not exceed max_test_requests (got ${breaker.success_threshold} > ${breaker.max_test_requests})`,
    );
  }
  const fdPath = 'failure_detection';
  const D = DEFAULT_FAILURE_DETECTION;
  const failureDetection = readSection<FailureDetectionConfig>(top.failure_detection, fdPath, {
    max_response_time_ms: [D.max_response_time_ms, num({ above: 0, max: MAX_SECONDS * 1000 })],
    max_error_rate_percent: [D.max_error_rate_percent, num({ min: 0, max: 100 })],
    min_error_rate_samples: [D.min_error_rate_samples, num({ int: true, min: 1, max: 1_000_000 })],
    consecutive_failure_limit: [D.consecutive_failure_limit, num({ int: true, min: 1 })],
    failure_rate_window_minutes: [D.failure_rate_window_minutes, num({ above: 0, max: MAX_SECONDS / 60 })],
    max_cpu_percent: [D.max_cpu_percent, num({ above: 0, max: 100 })],
    max_memory_percent: [D.max_memory_percent, num({ above: 0, max: 100 })],
    stats_interval_seconds: [D.stats_interval_seconds, num({ min: 0, max: 3600 })],
    resource_samples: [D.resource_samples, num({ int: true, min: 1, max: 1000 })],
    memory_leak_window_minutes: [D.memory_leak_window_minutes, num({ above: 0, max: MAX_SECONDS / 60 })],
    memory_leak_horizon_minutes: [D.memory_leak_horizon_minutes, num({ above: 0, max: MAX_SECONDS / 60 })],
    deadlock_timeouts: [D.deadlock_timeouts, num({ int: true, min: 1, max: 1000 })],
    deadlock_cpu_percent: [D.deadlock_cpu_percent, num({ min: 0, max: 100 })],
  }, report);
  const admin = readSection<AdminConfig>(top.admin, 'admin', {
    listen: ['127.0.0.1:9180', listenAddress],
    token: [null, nullable(token)],
  }, report);
  const probes = readSection<ProbeSettings>(top.probes, 'probes', {
    max_concurrency: [512, num({ int: true, min: 1, max: 100_000 })],
    jitter_fraction: [0.1, num({ min: 0, max: 0.5 })],
  }, report);
  const logging = readSection<LoggingConfig>(top.logging, 'logging', {
    level: ['info', oneOf(LEVELS)],
  }, report);

  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    config: {
      // The seed's health defaults under defaults.health: the base of apps that only Docker
      // labels define.
      defaults: { health: structuredClone({ ...DEFAULT_HEALTH, ...healthDefaults }) },
      apps,
      docker,
      recovery,
      store,
      alerting,
      breaker,
      failure_detection: failureDetection,
      nginx,
      admin,
      probes,
      logging,
    },
  };
}
