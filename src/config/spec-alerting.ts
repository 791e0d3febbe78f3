/** `alerting`: receivers, the routes that pick them, escalation, and delivery retries. */
import { FAILURE_TYPE_NAMES } from '../health/types.js';
import { APP_NAME, appName, headers, httpUrl } from './allowlists.js';
import {
  MAX_SECONDS,
  bool,
  duration,
  isMap,
  join,
  listOf,
  num,
  oneOf,
  readMap,
  readSection,
  sectionKeys,
  show,
  str,
  withChecks,
  type Check,
  type Raw,
  type Report,
  type Section,
} from './check.js';
import {
  DEFAULT_ALERTING,
  DEFAULT_ESCALATION,
  DEFAULT_RECEIVER,
  DEFAULT_ROUTE,
  RECEIVER_TYPES,
  SEVERITIES,
} from './defaults.js';
import type { AlertingConfig, AlertReceiverConfig, AlertRouteConfig } from './types.js';

type AlertingFields = Pick<AlertingConfig, 'enabled' | 'resend_interval_seconds' | 'retry_min_seconds' | 'retry_max_seconds'>;

/** The plain keys of `alerting`; `receivers`, `routes` and `escalation` have their own tables. */
export const ALERTING: Section<AlertingFields> = {
  defaults: DEFAULT_ALERTING,
  fields: {
    enabled: { check: bool, meaning: 'Send notifications; needs at least one route.' },
    resend_interval_seconds: { check: duration({ above: 0, max: 3600 }), meaning: 'Firing alerts are re-sent to Alertmanager this often (it resolves alerts it stops hearing of).' },
    retry_min_seconds: { check: duration({ above: 0, max: 3600 }), meaning: 'Failed deliveries are retried after this, doubling...' },
    retry_max_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: '...up to this far apart.' },
  },
};

/** `alerting.receivers.<name>`; `type` and `url` are required. */
export const RECEIVER: Section<Omit<AlertReceiverConfig, 'name'>> = {
  defaults: DEFAULT_RECEIVER,
  fields: {
    type: { check: oneOf(RECEIVER_TYPES), meaning: 'Generic JSON webhook, Slack-compatible incoming webhook, or Prometheus Alertmanager (API v2).' },
    url: { check: httpUrl, meaning: "The webhook, or Alertmanager's base URL (/api/v2/alerts is appended); no credentials in it." },
    headers: { check: headers, meaning: 'Extra request headers (e.g. Authorization).' },
    timeout_seconds: { check: duration({ above: 0, max: 300 }), meaning: 'Per delivery attempt.' },
    max_per_minute: { check: num({ int: true, min: 1, max: 100_000 }), meaning: 'Rate limit; notifications beyond it wait their turn, in order.' },
  },
};

/** `alerting.routes[]`; `receivers` is required and names receivers defined above. */
export const ROUTE: Section<AlertRouteConfig> = {
  defaults: DEFAULT_ROUTE,
  fields: {
    receivers: { check: listOf(str), meaning: 'Where matching alerts go; an alert goes to every route it matches.' },
    min_severity: { check: oneOf(SEVERITIES), meaning: 'Only alerts at least this severe.' },
    apps: { check: listOf(appName), meaning: 'Only these apps; empty = every app.' },
    failure_types: { check: listOf(oneOf(FAILURE_TYPE_NAMES)), meaning: 'Only these failure types; empty = every type.' },
  },
};

/** `alerting.escalation`. */
export const ESCALATION: Section<AlertingConfig['escalation']> = {
  defaults: DEFAULT_ESCALATION,
  fields: {
    after_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: 'An alert still firing this long after it started...' },
    receivers: { check: listOf(str), meaning: '...is sent, once, to these receivers (and they get its resolution).' },
  },
};

/** Every key `alerting` accepts. */
export const ALERTING_KEYS = [...sectionKeys(ALERTING), 'receivers', 'routes', 'escalation'];

function parseReceivers(value: unknown, report: Report): AlertReceiverConfig[] {
  const receivers: AlertReceiverConfig[] = [];
  if (value === undefined || value === null) return receivers;
  if (!isMap(value)) {
    report('alerting.receivers', `must be a map of receiver name to receiver (got ${show(value)})`);
    return receivers;
  }
  for (const [name, body] of Object.entries(value)) {
    const path = join('alerting.receivers', name);
    if (!APP_NAME.test(name)) report(path, `receiver name must be letters, digits, '_', '.', '-' (got ${show(name)})`);
    if (!isMap(body) || body.type === undefined) {
      report(join(path, 'type'), 'is required (webhook, slack or alertmanager)');
    }
    if (isMap(body) && body.url === undefined) report(join(path, 'url'), 'is required');
    receivers.push({ name, ...readSection(body, path, RECEIVER, report) });
  }
  return receivers;
}

function parseRoutes(value: unknown, receiverNames: Check<string[]>, report: Report): AlertRouteConfig[] {
  const routes: AlertRouteConfig[] = [];
  if (value === undefined || value === null) return routes;
  if (!Array.isArray(value)) {
    report('alerting.routes', `must be a list (got ${show(value)})`);
    return routes;
  }
  const route = withChecks(ROUTE, { receivers: receiverNames });
  value.forEach((body, i) => {
    const path = join('alerting.routes', i);
    if (!isMap(body) || body.receivers === undefined) report(join(path, 'receivers'), 'is required');
    routes.push(readSection(body, path, route, report));
  });
  return routes;
}

/** `alerting`, with routes and escalation checked against the receivers it defines. */
export function parseAlerting(value: unknown, report: Report): AlertingConfig {
  const raw: Raw = readMap(value, 'alerting', ALERTING_KEYS, report) ?? {};
  const receivers = parseReceivers(raw.receivers, report);
  const names = new Set(receivers.map((r) => r.name));
  const receiverName: Check<string> = (v, path, rep) =>
    typeof v === 'string' && names.has(v) ? v : rep(path, `must name a receiver under alerting.receivers (got ${show(v)})`);
  const receiverNames = listOf(receiverName);
  const routes = parseRoutes(raw.routes, receiverNames, report);
  const escalation = readSection(raw.escalation, 'alerting.escalation', withChecks(ESCALATION, { receivers: receiverNames }), report);
  const plain = Object.fromEntries(sectionKeys(ALERTING).map((key) => [key, raw[key]]));
  const rest = readSection(plain, 'alerting', ALERTING, report);
  if (rest.retry_max_seconds < rest.retry_min_seconds) {
    report('alerting.retry_max_seconds', `must be at least retry_min_seconds (got ${rest.retry_max_seconds} < ${rest.retry_min_seconds})`);
  }
  if (rest.enabled && routes.length === 0) {
    report('alerting.routes', 'must have at least one route when alerting.enabled is true');
  }
  return { ...rest, receivers, routes, escalation };
}
