/**
 * `defaults.health` and `apps.<name>.health` (and the `orchestry.health.*` labels): the seed's
 * HealthCheckConfig, plus `scheme` and `expected_body`.
 */
import type { FieldIssue } from '../errors.js';
import { expectedBody, headers, probePath, statusCodes } from './allowlists.js';
import {
  MAX_SECONDS,
  bool,
  createIssues,
  duration,
  join,
  nullable,
  num,
  oneOf,
  readMap,
  sectionKeys,
  str,
  type Check,
  type Report,
  type Section,
} from './check.js';
import { DEFAULT_HEALTH, HTTP_METHODS, PROTOCOLS, SCHEMES } from './defaults.js';
import type { HealthCheckConfig } from './types.js';

/**
 * The shortest probe timeout, 100 ms: short enough for a loopback or same-host backend, long
 * enough that a busy event loop (probes start up to a 25 ms tick late) does not fail a healthy
 * backend. The seed's floor was 1 s. A period must exceed the timeout, so it is above this too.
 */
export const MIN_TIMEOUT_SECONDS = 0.1;

/** Each health key's check, default and meaning. */
export const HEALTH: Section<HealthCheckConfig> = {
  defaults: DEFAULT_HEALTH,
  fields: {
    protocol: { check: oneOf(PROTOCOLS), meaning: 'Probe kind.' },
    scheme: { check: oneOf(SCHEMES), meaning: 'HTTP probes only.' },
    path: { check: probePath, meaning: "HTTP request path, optionally with a query string; nothing in it may change the probed host." },
    port: { check: num({ int: true, min: 1, max: 65535 }), meaning: 'Port for backends written without one.' },
    method: { check: oneOf(HTTP_METHODS), meaning: 'HTTP method.' },
    headers: { check: headers, meaning: 'Extra request headers (not Host, Content-Length, Transfer-Encoding, Connection, Keep-Alive, Upgrade, Expect).' },
    body: { check: nullable(str), meaning: 'Request body.' },
    expected_status_codes: { check: statusCodes, meaning: 'Status codes that count as healthy.' },
    expected_body: { check: nullable(expectedBody), meaning: 'Text the response body must contain, or /pattern/flags for a regular expression run in linear time (no backreferences, lookahead, i/u/v/d flags or counts above 16; not with method HEAD).' },
    probe_data: { check: nullable(str), meaning: 'TCP only: bytes to send after connecting.' },
    expected_response: { check: nullable(str), meaning: 'TCP only: text the reply must contain.' },
    initial_delay_seconds: { check: duration({ min: 0, max: MAX_SECONDS }), meaning: "Wait before a new backend's first probe." },
    period_seconds: { check: duration({ above: MIN_TIMEOUT_SECONDS, max: MAX_SECONDS }), meaning: 'Interval between probes; must be greater than timeout_seconds.' },
    ejected_period_seconds: { check: duration({ min: MIN_TIMEOUT_SECONDS, max: MAX_SECONDS }), meaning: "Interval between probes while the backend is ejected (HAProxy's downinter), so it is readmitted soon after it recovers. Not while the sidecar is overloaded." },
    fast_period_seconds: { check: duration({ min: MIN_TIMEOUT_SECONDS, max: MAX_SECONDS }), meaning: "Interval between probes of a backend whose verdict may change (HAProxy's fastinter): routed and failing its last probe or real requests in nginx's log, or ejected and passing its last probe with any breaker hold served. Not while the sidecar is overloaded." },
    timeout_seconds: { check: duration({ min: MIN_TIMEOUT_SECONDS, max: MAX_SECONDS }), meaning: 'Probe timeout.' },
    failure_threshold: { check: num({ int: true, min: 1 }), meaning: 'Consecutive failures before a backend is unhealthy.' },
    success_threshold: { check: num({ int: true, min: 1 }), meaning: 'Consecutive successes before it is healthy again.' },
    enabled: { check: bool, meaning: 'Probe this app at all.' },
    follow_redirects: { check: bool, meaning: 'Follow HTTP redirects.' },
    verify_ssl: { check: bool, meaning: 'Verify TLS certificates (scheme https).' },
    max_retries: { check: num({ int: true, min: 0, max: 10 }), meaning: 'Retries within one probe before it counts as failed.' },
  },
};

const HEALTH_KEYS = sectionKeys(HEALTH);

/** Only the fields that are present and valid, so that they can be layered over defaults. */
export function parseHealthFields(
  value: unknown,
  path: string,
  report: Report,
): Partial<HealthCheckConfig> {
  const raw = readMap(value, path, HEALTH_KEYS, report);
  const out: Record<string, unknown> = {};
  if (!raw) return out;
  for (const key of HEALTH_KEYS) {
    if (raw[key] === undefined) continue;
    const checked = (HEALTH.fields[key].check as Check<unknown>)(raw[key], join(path, key), report);
    if (checked !== undefined) out[key] = checked;
  }
  return out as Partial<HealthCheckConfig>;
}

/**
 * Rules between health fields. `set` names the fields the caller's layer wrote itself: a
 * conflict is then blamed on the field the layer set (labels set one field over a YAML base);
 * without it (the YAML) the rule's own subject is blamed.
 */
export function checkHealthCombination(
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
  const { issues, report } = createIssues();
  const own = parseHealthFields(raw, path, report);
  const health: HealthCheckConfig = structuredClone({ ...base, ...own });
  const valid = (key: string) => !issues.some((i) => i.path === join(path, key));
  checkHealthCombination(health, path, valid, report, (key) => raw[key] !== undefined);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, health };
}
