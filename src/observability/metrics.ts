/**
 * Prometheus metrics (prom-client). A listener: main.ts feeds it plain data (probe results,
 * transitions, apply outcomes, backend views); no core module imports prom-client.
 */
import * as prom from 'prom-client';
import type { LabelValues } from 'prom-client';
import type { FailureEvent, Transition, BackendView } from '../health/types.js';
import { formatAddress, type BreakerStatus, type HealthStatus, type ProbeResult } from '../model.js';

const HEALTH_STATES: readonly HealthStatus[] = ['unknown', 'healthy', 'unhealthy'];
const BREAKER_STATES: readonly BreakerStatus[] = ['closed', 'open', 'half_open'];

/** Probes take from under a millisecond (loopback TCP) up to their timeout (seconds). */
const PROBE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** render + `nginx -t` + reload: tens of milliseconds normally, seconds on a loaded host. */
const APPLY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Label value for "no error" and "no stage", so every series carries every label. */
const NONE = 'none';

interface BackendSeries {
  app: string;
  backend: string;
  /** null until the first setBackends that lists the backend. */
  up: number | null;
  health: HealthStatus | null;
  breaker: BreakerStatus | null;
  /** `${protocol}/${error_class}` -> count. */
  probes: Map<string, { protocol: string; result: string; errorClass: string; count: number }>;
}

/** The daemon's metrics, in a registry of their own. */
export interface Metrics {
  registry: prom.Registry;
  /** Content-Type of `render()`'s text. */
  contentType: string;
  /** The exposition text for a `/metrics` response. */
  render(): Promise<string>;
  onProbe(result: ProbeResult, protocol: 'http' | 'tcp'): void;
  onFailures(events: FailureEvent[]): void;
  onTransition(t: Transition): void;
  /** One attempt to bring nginx in line; `stage` is where a failed one stopped. */
  onApply(outcome: {
    result: 'unchanged' | 'applied' | 'failed';
    stage?: string;
    durationMs: number;
    reloaded: boolean;
  }): void;
  onConfigReload(result: 'success' | 'failure'): void;
  /**
   * The full set of current backends; series of backends and apps not in it are removed (a
   * probe result landing after its backend left re-creates its series until the next call).
   */
  setBackends(views: BackendView[]): void;
  setDegraded(degraded: boolean): void;
  setPanic(app: string, panic: boolean): void;
  /** One recovery action finished (or, in dry-run, was recorded). */
  onRecoveryAction(record: { app: string; strategy: string; ok: boolean; dryRun: boolean; durationMs: number }): void;
  setRecoveryInFlight(count: number): void;
  /** Whether the Docker event stream is connected (only when Docker discovery is on). */
  setDockerConnected(connected: boolean): void;
  /** Containers left out because of bad labels. */
  setRejectedContainers(count: number): void;
  /** Read at scrape time: the state store's status (not called when the store is disabled). */
  observeStore(status: () => StoreMetricsStatus): void;
  /** Read at scrape time: the alerting status (not called when alerting is disabled). */
  observeAlerting(status: () => AlertingMetricsStatus): void;
}

/** What the store metrics read; StoreStatus has these fields. */
export interface StoreMetricsStatus {
  state: 'ok' | 'degraded' | 'disabled';
  queued: number;
  dropped: number;
  written: number;
  sizeBytes: number;
}

/** What the alerting metrics read; AlertingStatus has these fields. */
export interface AlertingMetricsStatus {
  firing: number;
  byReceiver: Record<string, { type: string; queued: number; sent: number; failed: number }>;
}

/**
 * Creates the metrics. Each call has its own Registry, so tests and several instances never
 * collide on prom-client's global one. `collectDefault` (default true) adds the standard
 * process_* and nodejs_* metrics.
 */
export function createMetrics(opts: { collectDefault?: boolean } = {}): Metrics {
  const registry = new prom.Registry();
  if (opts.collectDefault ?? true) {
    prom.collectDefaultMetrics({ register: registry });
    // Gauges named like counters fail `promtool check metrics`; each is only the sum of the
    // nodejs_active_*{type} gauge that stays.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      registry.removeSingleMetric(name);
    }
  }
  const registers = [registry];

  const probeDuration = new prom.Histogram({
    name: 'orchestry_probe_duration_seconds',
    help: 'Wall time of active probes, retries included.',
    labelNames: ['app', 'protocol'] as const,
    buckets: PROBE_BUCKETS,
    registers,
  });
  // Per-backend series (four metrics, up to eight series a backend) are kept in one plain map and
  // written at scrape time: with thousands of backends prom-client's label children cost ~5 KB
  // a backend and ~6 µs a probe; this costs a map lookup per probe and nothing at rest.
  const perBackend = new Map<string, BackendSeries>();
  const seriesOf = (backendId: string, app: string): BackendSeries => {
    let s = perBackend.get(backendId);
    if (!s) {
      // backendId is `${app}/${host:port}` (model.ts), so the address needs no lookup.
      s = { app, backend: backendId.slice(app.length + 1), up: null, health: null, breaker: null, probes: new Map() };
      perBackend.set(backendId, s);
    }
    return s;
  };
  const collect = (name: string, type: 'counter' | 'gauge', help: string, values: () => prom.MetricValue<string>[]) => {
    registry.registerMetric({
      name,
      help,
      type,
      get: async () => ({ name, help, type, values: values(), aggregator: 'sum' }),
      reset: () => {},
    } as unknown as prom.Metric<string>);
  };
  collect('orchestry_probes_total', 'counter', 'Active probes completed, by result and error class (error_class="none" on success).', () => {
    const out: prom.MetricValue<string>[] = [];
    for (const s of perBackend.values()) {
      for (const p of s.probes.values()) {
        out.push({ value: p.count, labels: { app: s.app, backend: s.backend, protocol: p.protocol, result: p.result, error_class: p.errorClass } });
      }
    }
    return out;
  });
  collect('orchestry_backend_up', 'gauge', 'Whether the backend is routed (1) or ejected from its upstream (0).', () => {
    const out: prom.MetricValue<string>[] = [];
    for (const s of perBackend.values()) if (s.up !== null) out.push({ value: s.up, labels: { app: s.app, backend: s.backend } });
    return out;
  });
  const oneHot = <S extends string>(states: readonly S[], pick: (s: BackendSeries) => S | null) => () => {
    const out: prom.MetricValue<string>[] = [];
    for (const s of perBackend.values()) {
      const current = pick(s);
      if (current === null) continue;
      for (const state of states) out.push({ value: state === current ? 1 : 0, labels: { app: s.app, backend: s.backend, state } });
    }
    return out;
  };
  collect(
    'orchestry_backend_health_state',
    'gauge',
    'Health state of the backend; the series of the current state is 1, the others 0.',
    oneHot(HEALTH_STATES, (s) => s.health),
  );
  collect(
    'orchestry_breaker_state',
    'gauge',
    'Circuit breaker state of the backend; the series of the current state is 1, the others 0.',
    oneHot(BREAKER_STATES, (s) => s.breaker),
  );
  const transitionsTotal = new prom.Counter({
    name: 'orchestry_transitions_total',
    help: 'Health and breaker state changes, by the state entered.',
    labelNames: ['app', 'kind', 'to'] as const,
    registers,
  });
  const failuresTotal = new prom.Counter({
    name: 'orchestry_failures_total',
    help: 'Failure events detected, by type and severity.',
    labelNames: ['app', 'failure_type', 'severity'] as const,
    registers,
  });
  const ejectedBackends = new prom.Gauge({
    name: 'orchestry_ejected_backends',
    help: 'Backends of the app currently ejected from its upstream.',
    labelNames: ['app'] as const,
    registers,
  });
  const backendsGauge = new prom.Gauge({
    name: 'orchestry_backends',
    help: 'Backends of the app currently known from discovery.',
    labelNames: ['app'] as const,
    registers,
  });
  const upstreamPanic = new prom.Gauge({
    name: 'orchestry_upstream_panic',
    help: 'Whether the app is rendered in panic mode (every backend down, routing to all or the fallback).',
    labelNames: ['app'] as const,
    registers,
  });
  const reloadsTotal = new prom.Counter({
    name: 'orchestry_nginx_reloads_total',
    help: 'nginx configuration changes attempted: reloaded (success) or failed at any stage (failure).',
    labelNames: ['result'] as const,
    registers,
  });
  const appliesTotal = new prom.Counter({
    name: 'orchestry_nginx_applies_total',
    help: 'Applies of the desired upstream set, by result and the stage a failed one stopped at.',
    labelNames: ['result', 'stage'] as const,
    registers,
  });
  const reloadDuration = new prom.Histogram({
    name: 'orchestry_nginx_reload_duration_seconds',
    help: 'Duration of applies that reloaded nginx: render, validate and reload.',
    buckets: APPLY_BUCKETS,
    registers,
  });
  const configReloadsTotal = new prom.Counter({
    name: 'orchestry_config_reloads_total',
    help: 'Reloads of the sidecar configuration file, by result.',
    labelNames: ['result'] as const,
    registers,
  });
  const degradedGauge = new prom.Gauge({
    name: 'orchestry_degraded',
    help: 'Whether the last nginx apply failed (nginx keeps running the last good configuration).',
    registers,
  });

  const recoveryActions = new prom.Counter({
    name: 'orchestry_recovery_actions_total',
    help: 'Recovery actions by app, strategy and result (success, failure, dry_run).',
    labelNames: ['app', 'strategy', 'result'] as const,
    registers,
  });
  const recoveryDuration = new prom.Histogram({
    name: 'orchestry_recovery_action_duration_seconds',
    help: 'Duration of recovery actions that touched Docker, by strategy.',
    labelNames: ['strategy'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers,
  });
  const recoveryInFlight = new prom.Gauge({
    name: 'orchestry_recovery_actions_in_flight',
    help: 'Recovery actions running now.',
    registers,
  });
  const dockerConnected = new prom.Gauge({
    name: 'orchestry_docker_connected',
    help: 'Whether the Docker event stream is connected (1) or being reconnected (0).',
    registers,
  });
  const rejectedContainers = new prom.Gauge({
    name: 'orchestry_docker_rejected_containers',
    help: 'Containers with orchestry.enable=true left out because of invalid labels.',
    registers,
  });
  recoveryInFlight.set(0);

  // Both results exist from the start, so rate() and alerts work before the first event.
  for (const result of ['success', 'failure']) {
    reloadsTotal.inc({ result }, 0);
    configReloadsTotal.inc({ result }, 0);
  }
  degradedGauge.set(0);

  // Per-app series, keyed by app name.
  const durationChildren = createChildCache(probeDuration);
  const transitionChildren = createChildCache(transitionsTotal);
  const failureChildren = createChildCache(failuresTotal);
  const ejectedChildren = createChildCache(ejectedBackends);
  const backendsChildren = createChildCache(backendsGauge);
  const panicChildren = createChildCache(upstreamPanic);
  const appCaches = [
    durationChildren,
    transitionChildren,
    failureChildren,
    ejectedChildren,
    backendsChildren,
    panicChildren,
  ];

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),

    onProbe(result, protocol) {
      const errorClass = result.healthy ? NONE : (result.errorClass ?? 'error');
      const key = `${protocol}/${errorClass}`;
      const probes = seriesOf(result.backendId, result.app).probes;
      const count = probes.get(key);
      if (count) count.count += 1;
      else probes.set(key, { protocol, result: result.healthy ? 'success' : 'failure', errorClass, count: 1 });
      const histogram =
        durationChildren.get(result.app, protocol) ??
        durationChildren.add(result.app, protocol, { app: result.app, protocol });
      histogram.observe(result.responseTimeMs / 1000);
    },

    onFailures(events) {
      for (const e of events) {
        const key = `${e.failureType}/${e.severity}`;
        const child =
          failureChildren.get(e.app, key) ??
          failureChildren.add(e.app, key, { app: e.app, failure_type: e.failureType, severity: e.severity });
        child.inc();
      }
    },

    onTransition(t) {
      const key = `${t.kind}/${t.to}`;
      const child =
        transitionChildren.get(t.app, key) ??
        transitionChildren.add(t.app, key, { app: t.app, kind: t.kind, to: t.to });
      child.inc();
    },

    onApply(outcome) {
      appliesTotal.inc({ result: outcome.result, stage: outcome.stage ?? NONE });
      if (outcome.result === 'failed') reloadsTotal.inc({ result: 'failure' });
      else if (outcome.reloaded) reloadsTotal.inc({ result: 'success' });
      if (outcome.reloaded) reloadDuration.observe(outcome.durationMs / 1000);
    },

    onConfigReload(result) {
      configReloadsTotal.inc({ result });
    },

    setBackends(views) {
      const ids = new Set<string>();
      const perApp = new Map<string, { total: number; ejected: number }>();
      for (const view of views) {
        ids.add(view.backendId);
        const counts = perApp.get(view.app) ?? { total: 0, ejected: 0 };
        counts.total += 1;
        if (view.ejected) counts.ejected += 1;
        perApp.set(view.app, counts);

        const s = seriesOf(view.backendId, view.app);
        s.backend = formatAddress(view.host, view.port);
        s.up = view.ejected ? 0 : 1;
        s.health = view.health;
        s.breaker = view.breaker;
      }
      for (const [app, counts] of perApp) {
        (backendsChildren.get(app, '') ?? backendsChildren.add(app, '', { app })).set(counts.total);
        (ejectedChildren.get(app, '') ?? ejectedChildren.add(app, '', { app })).set(counts.ejected);
      }
      for (const id of perBackend.keys()) if (!ids.has(id)) perBackend.delete(id);
      for (const cache of appCaches) cache.retain(perApp);
    },

    setDegraded(degraded) {
      degradedGauge.set(degraded ? 1 : 0);
    },

    setPanic(app, panic) {
      (panicChildren.get(app, '') ?? panicChildren.add(app, '', { app })).set(panic ? 1 : 0);
    },

    onRecoveryAction(record) {
      const result = record.dryRun ? 'dry_run' : record.ok ? 'success' : 'failure';
      recoveryActions.inc({ app: record.app, strategy: record.strategy, result });
      if (!record.dryRun) recoveryDuration.observe({ strategy: record.strategy }, record.durationMs / 1000);
    },

    setRecoveryInFlight(count) {
      recoveryInFlight.set(count);
    },

    setDockerConnected(connected) {
      dockerConnected.set(connected ? 1 : 0);
    },

    observeStore(status) {
      const one = (name: string, type: 'counter' | 'gauge', help: string, pick: (s: StoreMetricsStatus) => number) =>
        collect(name, type, help, () => [{ value: pick(status()), labels: {} }]);
      one('orchestry_store_up', 'gauge', 'Whether the state store is writable (1) or degraded (0): routing goes on either way.', (s) => (s.state === 'ok' ? 1 : 0));
      one('orchestry_store_written_total', 'counter', 'Probe results committed to the state store.', (s) => s.written);
      one('orchestry_store_dropped_total', 'counter', 'Probe results dropped because the state store was unavailable or behind.', (s) => s.dropped);
      one('orchestry_store_queue', 'gauge', 'Probe results waiting to be written.', (s) => s.queued);
      one('orchestry_store_size_bytes', 'gauge', 'Size of the state store database file (WAL included).', (s) => s.sizeBytes);
    },

    observeAlerting(status) {
      collect('orchestry_alerts_firing', 'gauge', 'Alerts firing now (one per backend and failure type).', () => [{ value: status().firing, labels: {} }]);
      const perReceiver = (pick: (r: AlertingMetricsStatus['byReceiver'][string]) => Array<[Record<string, string>, number]>) => () => {
        const out: prom.MetricValue<string>[] = [];
        for (const [receiver, r] of Object.entries(status().byReceiver)) {
          for (const [labels, value] of pick(r)) out.push({ value, labels: { receiver, type: r.type, ...labels } });
        }
        return out;
      };
      collect('orchestry_alert_notifications_total', 'counter', 'Alert notification attempts by receiver and result (each failed retry counts).', perReceiver((r) => [
        [{ result: 'success' }, r.sent],
        [{ result: 'failure' }, r.failed],
      ]));
      collect('orchestry_alert_queue', 'gauge', 'Alert notifications waiting for delivery (kept in the store while they wait).', perReceiver((r) => [[{}, r.queued]]));
    },

    setRejectedContainers(count) {
      rejectedContainers.set(count);
    },
  };
}

interface ChildCache<C, L extends string> {
  get(owner: string, key: string): C | undefined;
  add(owner: string, key: string, labels: LabelValues<L>): C;
  /** Removes every series of owners not in `keep`. */
  retain(keep: { has(owner: string): boolean }): void;
}

/**
 * Label children of one metric, grouped by owner (a backend or an app). Hot paths reuse a child
 * instead of building a label object per event, and an owner that disappears takes all of its
 * series with it.
 */
function createChildCache<C, L extends string>(metric: {
  labels(labels: LabelValues<L>): C;
  remove(labels: LabelValues<L>): void;
}): ChildCache<C, L> {
  const owners = new Map<string, Map<string, { child: C; labels: LabelValues<L> }>>();
  return {
    get: (owner, key) => owners.get(owner)?.get(key)?.child,
    add(owner, key, labels) {
      let children = owners.get(owner);
      if (!children) owners.set(owner, (children = new Map()));
      const child = metric.labels(labels);
      children.set(key, { child, labels });
      return child;
    },
    retain(keep) {
      for (const [owner, children] of owners) {
        if (keep.has(owner)) continue;
        for (const { labels } of children.values()) metric.remove(labels);
        owners.delete(owner);
      }
    },
  };
}
