/**
 * Prometheus metrics (prom-client). A listener: main.ts feeds it plain data (probe results,
 * transitions, apply outcomes, backend views); no core module imports prom-client.
 *
 * The metrics are defined in metric-definitions.ts, the per-backend and status ones are read at
 * scrape time by metric-collectors.ts, and metric-handlers.ts turns each event into updates.
 */
import * as prom from './prom.js';
import { VERSION } from '../version.js';
import type { BackendView, FailureEvent, Transition } from '../health/types.js';
import type { ProbeResult } from '../model.js';
import type { AdminConnectionStats } from './admin-connections.js';
import {
  registerAdminCollectors,
  registerCollector,
  registerAlertingCollectors,
  registerBackendCollectors,
  TextRegistry,
  registerFailoverCollectors,
  registerStoreCollectors,
  type BackendSeries,
  type FailoverMetricsStatus,
} from './metric-collectors.js';
import { defineMetrics, defineProbeDuration, setInitialValues } from './metric-definitions.js';
import {
  createAppCaches,
  onApply,
  onFailures,
  onProbe,
  onRecoveryAction,
  onTransition,
  setBackends,
  setPanic,
  type MetricsState,
} from './metric-handlers.js';

/** The daemon's metrics, in a registry of their own. */
export interface Metrics {
  registry: prom.Registry;
  /** The sidecar's identity: the `sidecar` label of every series (METRICS_IDENTITY_LABEL); null without one. */
  readonly instance: string | null;
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
  /** A load of the configuration file after start (a change on disk, SIGHUP) at `at` (epoch ms). */
  onConfigReload(result: 'success' | 'failure', at: number): void;
  /**
   * The full set of current backends; series of backends and apps not in it are removed (a
   * probe result landing after its backend left re-creates its series until the next call).
   */
  setBackends(views: BackendView[]): void;
  /**
   * Read at scrape time: every backend's view (its up/health/breaker series). Reading them per
   * scrape rather than per transition keeps a burst of transitions from costing N each.
   */
  observeBackends(views: () => BackendView[]): void;
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
  /** Read at scrape time: how nginx is told, the DNS server's and the log receiver's counters. */
  observeFailover(status: () => FailoverMetricsStatus): void;
  /** Read at scrape time: the admin server's connections. */
  observeAdmin(stats: () => AdminConnectionStats): void;
  /** Read at scrape time: whether this sidecar holds its node's Swarm lease (null: no lease, no series). */
  observeSwarmLease(held: () => boolean | null): void;
}

export interface MetricsOptions {
  /** Add the standard process_* and nodejs_* metrics (default true). */
  collectDefault?: boolean;
  /** Docker discovery is on: export the Docker gauges (default false). */
  docker?: boolean;
  /** When the configuration in effect was loaded, epoch ms (default now). */
  configLoadedAt?: number;
  /** The sidecar's identity (config/instance.ts instanceId()), on every series; the daemon always gives one. */
  instance?: string;
}

/**
 * The label carrying the sidecar's identity on every series. Not `instance`: Prometheus sets that
 * on every scraped series (the target's host:port) and renames a scraped `instance` label to
 * `exported_instance`; nor `node` or `host`, which exporters and relabeling rules commonly use.
 */
export const METRICS_IDENTITY_LABEL = 'sidecar';

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
 * collide on prom-client's global one.
 */
export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = createRegistry(opts.collectDefault ?? true);
  const instance = opts.instance ?? null;
  if (instance !== null) registry.setDefaultLabels({ [METRICS_IDENTITY_LABEL]: instance });
  const registers = [registry];
  // Registration order is exposition order: the probe histogram, then the per-backend series.
  const probeDuration = defineProbeDuration(registers);
  const perBackend = new Map<string, BackendSeries>();
  registerBackendCollectors(registry, perBackend);
  const m = defineMetrics(registers);
  setInitialValues(m);
  m.buildInfo.set({ version: VERSION, node: process.version }, 1);
  m.configLastReloadSuccessful.set(1);
  m.configLastReloadSuccess.set(Math.floor((opts.configLoadedAt ?? Date.now()) / 1000));
  // Without Docker discovery, Docker gauges would only ever say 0 (and fire `== 0` alerts).
  if (!opts.docker) for (const name of ['orchestry_docker_connected', 'orchestry_docker_rejected_containers']) registry.removeSingleMetric(name);
  const s: MetricsState = { registry, m, perBackend, apps: createAppCaches(probeDuration, m) };

  return {
    registry,
    instance,
    contentType: registry.contentType,
    render: () => {
      if (s.observeBackends) setBackends(s, s.observeBackends());
      return registry.metrics();
    },
    onProbe: (result, protocol) => onProbe(s, result, protocol),
    onFailures: (events) => onFailures(s, events),
    onTransition: (t) => onTransition(s, t),
    onApply: (outcome) => onApply(s, outcome),
    onConfigReload: (result, at) => {
      m.configReloadsTotal.inc({ result });
      m.configLastReloadSuccessful.set(result === 'success' ? 1 : 0);
      if (result === 'success') m.configLastReloadSuccess.set(Math.floor(at / 1000));
    },
    setBackends: (views) => setBackends(s, views),
    observeBackends: (views) => {
      s.observeBackends = views;
    },
    setDegraded: (degraded) => m.degradedGauge.set(degraded ? 1 : 0),
    setPanic: (app, panic) => setPanic(s, app, panic),
    onRecoveryAction: (record) => onRecoveryAction(s, record),
    setRecoveryInFlight: (count) => m.recoveryInFlight.set(count),
    setDockerConnected: (connected) => m.dockerConnected.set(connected ? 1 : 0),
    observeStore: (status) => registerStoreCollectors(registry, status),
    observeAlerting: (status) => registerAlertingCollectors(registry, status),
    observeFailover: (status) => registerFailoverCollectors(registry, status),
    observeAdmin: (stats) => registerAdminCollectors(registry, stats),
    observeSwarmLease: (held) =>
      registerCollector(registry, 'orchestry_swarm_lease_held', 'gauge', "Whether this sidecar holds its node's Swarm lease (1), the only one of the node's sidecars that acts on its tasks.", () => {
        const h = held();
        return h === null ? [] : [{ value: h ? 1 : 0, labels: {} }];
      }),
    setRejectedContainers: (count) => m.rejectedContainers.set(count),
  };
}

function createRegistry(collectDefault: boolean): prom.Registry {
  const registry = new TextRegistry();
  if (collectDefault) {
    prom.collectDefaultMetrics({ register: registry });
    // Gauges named like counters fail `promtool check metrics`; each is only the sum of the
    // nodejs_active_*{type} gauge that stays.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      registry.removeSingleMetric(name);
    }
  }
  return registry;
}
