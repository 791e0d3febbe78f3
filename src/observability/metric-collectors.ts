/**
 * Metrics whose values are read at scrape time rather than counted as events arrive: the
 * per-backend series, the state store's status and the alerting status.
 */
import * as prom from './prom.js';
import type { BreakerStatus, HealthStatus } from '../model.js';
import type { AdminConnectionStats } from './admin-connections.js';
import type { AlertingMetricsStatus, StoreMetricsStatus } from './metrics.js';

const HEALTH_STATES: readonly HealthStatus[] = ['unknown', 'healthy', 'unhealthy'];
const BREAKER_STATES: readonly BreakerStatus[] = ['closed', 'open', 'half_open'];

export interface BackendSeries {
  app: string;
  backend: string;
  /** null until the first setBackends that lists the backend. */
  up: number | null;
  health: HealthStatus | null;
  breaker: BreakerStatus | null;
  /**
   * Probe counts by kind, in the order first seen: a short array (one kind while all is well)
   * rather than a Map, whose table alone is ~200 bytes a backend (heap snapshot at 10,000).
   */
  probes: ProbeCount[];
  /** `app="…",backend="…"` as exposed, for `labelsOf`; '' until first asked, and again when the address changes. */
  labels: string;
}

/** One kind of probe result of one backend; `kind` is shared by every backend (probeKind). */
export interface ProbeCount {
  kind: ProbeKind;
  count: number;
}

/** A protocol, result and error class, with its labels as exposed: one object per kind, process-wide. */
export interface ProbeKind {
  /** The labels after app and backend. */
  labels: string;
}

type Values = () => prom.MetricValue<string>[];

/** The series of `backendId`, created on first use. */
export function seriesOf(perBackend: Map<string, BackendSeries>, backendId: string, app: string): BackendSeries {
  let s = perBackend.get(backendId);
  if (!s) {
    // backendId is `${app}/${host:port}` (model.ts), so the address needs no lookup.
    s = { app, backend: backendId.slice(app.length + 1), up: null, health: null, breaker: null, probes: [], labels: '' };
    perBackend.set(backendId, s);
  }
  return s;
}

/** Registers a metric whose samples `values()` produces at each scrape. */
export function registerCollector(
  registry: prom.Registry,
  name: string,
  type: 'counter' | 'gauge',
  help: string,
  values: Values,
): void {
  registry.registerMetric({
    name,
    help,
    type,
    get: async () => ({ name, help, type, values: values(), aggregator: 'sum' }),
    reset: () => {},
  } as unknown as prom.Metric<string>);
}

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}

function labelsOf(s: BackendSeries): string {
  // Joined: one flat string, not a tree of concatenations kept per backend (see formatAddress).
  if (s.labels === '') s.labels = ['app="', escapeLabelValue(s.app), '",backend="', escapeLabelValue(s.backend), '"'].join('');
  return s.labels;
}

/** The address a series is exposed under; its labels are made again at the next scrape. */
export function setSeriesAddress(s: BackendSeries, backend: string): void {
  if (s.backend === backend) return;
  s.backend = backend;
  s.labels = '';
}

const PROBE_KINDS = new Map<string, Map<string, ProbeKind>>();

/**
 * The kind of a probe result by protocol and error class (`none` on success), with its result
 * label worked out here: fixed words, a few dozen kinds in all, made once for the process so
 * that 10,000 backends share their labels rather than each holding a copy (1.6 MB of strings at
 * 10,000 backends). Looked up without building a key: this runs for every probe.
 */
export function probeKind(protocol: string, errorClass: string): ProbeKind {
  let byClass = PROBE_KINDS.get(protocol);
  if (!byClass) PROBE_KINDS.set(protocol, (byClass = new Map()));
  let kind = byClass.get(errorClass);
  if (!kind) {
    // A local error is neither success nor failure: the sidecar could not probe (e.g. out of
    // file descriptors).
    const result = errorClass === 'none' ? 'success' : errorClass === 'local_error' ? 'local_error' : 'failure';
    kind = { labels: [',protocol="', protocol, '",result="', result, '",error_class="', errorClass, '"'].join('') };
    byClass.set(errorClass, kind);
  }
  return kind;
}

/** Counts one probe of `kind` into a backend's series. */
export function countProbe(s: BackendSeries, kind: ProbeKind): void {
  for (const p of s.probes) {
    if (p.kind === kind) {
      p.count += 1;
      return;
    }
  }
  // A new array, exactly sized by concat: a push, or a literal with a spread (`[...a, x]`),
  // reserves room for 17 (152 bytes of elements a backend, heap snapshot at 10,000). A backend
  // meets a new kind rarely (its first probe, a new error class).
  s.probes = s.probes.concat([{ kind, count: 1 }]);
}

/**
 * A metric whose exposition text `text(extraLabels)` writes itself. The per-backend series are
 * ~8 a backend: at 10,000 backends prom-client's formatting of 82,000 label objects took
 * 0.5-0.8 s of a scrape; lines from labels formatted once per backend take a fraction of that.
 */
interface TextMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  text(extraLabels: string): string;
}

const PROM_FORMAT = (prom.Registry.prototype as unknown as { getMetricsAsString(this: prom.Registry, m: prom.Metric<string>): Promise<string> }).getMetricsAsString;

/**
 * prom-client's Registry, with the text of TextMetrics written by the metric itself; every
 * other metric as prom-client writes it, in registration (exposition) order.
 */
export class TextRegistry extends prom.Registry {
  // Registry.metrics() formats each metric through this method (lib/registry.js), which its
  // type declarations leave out.
  async getMetricsAsString(metric: prom.Metric<string>): Promise<string> {
    const text = (metric as unknown as Partial<TextMetric>).text;
    return text ? text(this.extraLabels) : PROM_FORMAT.call(this, metric);
  }

  /** `,sidecar="…"` once default labels are set (prom-client writes them after a series' own). */
  private extraLabels = '';

  override setDefaultLabels(labels: Record<string, string>): void {
    super.setDefaultLabels(labels);
    this.extraLabels = Object.entries(labels).map(([name, value]) => `,${name}="${escapeLabelValue(value)}"`).join('');
  }
}

function registerText(registry: prom.Registry, name: string, type: 'counter' | 'gauge', help: string, lines: (extra: string, out: string[]) => void): void {
  const metric: TextMetric & { get(): Promise<unknown>; reset(): void } = {
    name,
    help,
    type,
    text(extra) {
      const out = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
      lines(extra, out);
      return out.join('\n');
    },
    // For prom-client's own uses (getSingleMetric, merging): no samples.
    get: async () => ({ name, help, type, values: [], aggregator: 'sum' }),
    reset: () => {},
  };
  registry.registerMetric(metric as unknown as prom.Metric<string>);
}

/** The four per-backend metrics, read from `perBackend`. */
export function registerBackendCollectors(registry: prom.Registry, perBackend: Map<string, BackendSeries>): void {
  registerText(registry, 'orchestry_probes_total', 'counter', 'Active probes completed, by result and error class (error_class="none" on success).', (extra, out) => {
    for (const s of perBackend.values()) {
      const labels = labelsOf(s);
      for (const p of s.probes) out.push(`orchestry_probes_total{${labels}${p.kind.labels}${extra}} ${p.count}`);
    }
  });
  registerText(registry, 'orchestry_backend_up', 'gauge', 'Whether the backend is routed (1) or ejected from its upstream (0).', (extra, out) => {
    for (const s of perBackend.values()) if (s.up !== null) out.push(`orchestry_backend_up{${labelsOf(s)}${extra}} ${s.up}`);
  });
  registerText(
    registry,
    'orchestry_backend_health_state',
    'gauge',
    'Health state of the backend; the series of the current state is 1, the others 0.',
    oneHot('orchestry_backend_health_state', perBackend, HEALTH_STATES, (s) => s.health),
  );
  registerText(
    registry,
    'orchestry_breaker_state',
    'gauge',
    'Circuit breaker state of the backend; the series of the current state is 1, the others 0.',
    oneHot('orchestry_breaker_state', perBackend, BREAKER_STATES, (s) => s.breaker),
  );
}

/** One series per state and backend: 1 for the backend's current state, 0 for the others. */
function oneHot<S extends string>(
  name: string,
  perBackend: Map<string, BackendSeries>,
  states: readonly S[],
  pick: (s: BackendSeries) => S | null,
): (extra: string, out: string[]) => void {
  return (extra, out) => {
    for (const s of perBackend.values()) {
      const current = pick(s);
      if (current === null) continue;
      const labels = labelsOf(s);
      for (const state of states) out.push(`${name}{${labels},state="${state}"${extra}} ${state === current ? 1 : 0}`);
    }
  };
}

/** The state store's metrics, read from `status()` at each scrape. */
export function registerStoreCollectors(registry: prom.Registry, status: () => StoreMetricsStatus): void {
  const one = (name: string, type: 'counter' | 'gauge', help: string, pick: (s: StoreMetricsStatus) => number) =>
    registerCollector(registry, name, type, help, () => [{ value: pick(status()), labels: {} }]);
  one('orchestry_store_up', 'gauge', 'Whether the state store is writable (1) or degraded (0): routing goes on either way.', (s) => (s.state === 'ok' ? 1 : 0));
  one('orchestry_store_written_total', 'counter', 'Probe results committed to the state store.', (s) => s.written);
  one('orchestry_store_dropped_total', 'counter', 'Probe results dropped because the state store was unavailable or behind.', (s) => s.dropped);
  one('orchestry_store_queue', 'gauge', 'Probe results waiting to be written.', (s) => s.queued);
  one('orchestry_store_size_bytes', 'gauge', 'Size of the state store database file (WAL included).', (s) => s.sizeBytes);
}

/** The alerting metrics, read from `status()` at each scrape. */
export function registerAlertingCollectors(registry: prom.Registry, status: () => AlertingMetricsStatus): void {
  registerCollector(registry, 'orchestry_alerts_firing', 'gauge', 'Alerts firing now (one per backend and failure type).', () => [{ value: status().firing, labels: {} }]);
  const perReceiver = (pick: (r: AlertingMetricsStatus['byReceiver'][string]) => Array<[Record<string, string>, number]>) => () => {
    const out: prom.MetricValue<string>[] = [];
    for (const [receiver, r] of Object.entries(status().byReceiver)) {
      for (const [labels, value] of pick(r)) out.push({ value, labels: { receiver, type: r.type, ...labels } });
    }
    return out;
  };
  registerCollector(registry, 'orchestry_alert_notifications_total', 'counter', 'Alert notification attempts by receiver and result (each failed retry counts).', perReceiver((r) => [
    [{ result: 'success' }, r.sent],
    [{ result: 'failure' }, r.failed],
  ]));
  registerCollector(registry, 'orchestry_alert_queue', 'gauge', 'Alert notifications waiting for delivery (kept in the store while they wait).', perReceiver((r) => [[{}, r.queued]]));
}

/** The admin server's connections, read at each scrape. */
export function registerAdminCollectors(registry: prom.Registry, stats: () => AdminConnectionStats): void {
  registerCollector(registry, 'orchestry_admin_connections', 'gauge', 'Connections open on the admin port now (at most admin.max_connections).', () => [{ value: stats().open, labels: {} }]);
  registerCollector(registry, 'orchestry_admin_connections_dropped_total', 'counter', 'Admin connections closed by the cap: evicted (the oldest idle one, for a new one) or refused (all were busy).', () => {
    const s = stats();
    return [{ value: s.evicted, labels: { reason: 'evicted' } }, { value: s.refused, labels: { reason: 'refused' } }];
  });
}

/** What the failover metrics read at scrape time: how nginx is told, the DNS server, the log receiver. */
export interface FailoverMetricsStatus {
  updateVia: string | null;
  dns: { queries: Record<string, number>; outcomes: Partial<Record<string, number>>; truncated: number } | null;
  passive: { received: number; parsed: number; outcomes: number; dropped: Record<string, number> } | null;
}

/** DNS mode and passive evidence, read at scrape time. */
export function registerFailoverCollectors(registry: prom.Registry, status: () => FailoverMetricsStatus): void {
  registerCollector(registry, 'orchestry_nginx_update_mode', 'gauge', 'How routing changes reach nginx: the series of the mode in use is 1 (dns: SRV answers, no reload; reload: rewrite and reload).', () => {
    const mode = status().updateVia;
    return mode ? ['dns', 'reload'].map((m) => ({ value: m === mode ? 1 : 0, labels: { mode: m } })) : [];
  });
  registerCollector(registry, 'orchestry_dns_queries_total', 'counter', "DNS mode: queries the sidecar's DNS server answered (or dropped), by transport and outcome.", () => {
    const dns = status().dns;
    if (!dns) return [];
    return Object.entries(dns.outcomes).map(([outcome, value]) => ({ value: value ?? 0, labels: { outcome } }));
  });
  registerCollector(registry, 'orchestry_dns_truncated_total', 'counter', 'DNS mode: UDP answers cut to TC (nginx asks again over TCP).', () => {
    const dns = status().dns;
    return dns ? [{ value: dns.truncated, labels: {} }] : [];
  });
  registerCollector(registry, 'orchestry_passive_lines_total', 'counter', "Lines of nginx's access log received, by what became of them (parsed, or dropped and why).", () => {
    const p = status().passive;
    if (!p) return [];
    return [{ value: p.parsed, labels: { result: 'parsed' } }, ...Object.entries(p.dropped).map(([reason, value]) => ({ value, labels: { result: reason } }))];
  });
  registerCollector(registry, 'orchestry_passive_outcomes_total', 'counter', "Upstream attempts read from nginx's access log (one per try of a request).", () => {
    const p = status().passive;
    return p ? [{ value: p.outcomes, labels: {} }] : [];
  });
}
