/**
 * What each event the daemon reports does to the metrics: module-level functions over the
 * metrics' state (the prom-client metrics, their per-app label children, the per-backend series).
 */
import type * as prom from './prom.js';
import type { BackendView, FailureEvent, Transition } from '../health/types.js';
import { formatAddress, type ProbeResult } from '../model.js';
import { createChildCache } from './child-cache.js';
import { countProbe, probeKind, seriesOf, setSeriesAddress, type BackendSeries } from './metric-collectors.js';
import type { MetricSet, defineProbeDuration } from './metric-definitions.js';
import type { Metrics } from './metrics.js';

/** Label value for "no error" and "no stage", so every series carries every label. */
const NONE = 'none';

export interface MetricsState {
  registry: prom.Registry;
  m: MetricSet;
  // Per-backend series (four metrics, up to eight series a backend) are kept in one plain map and
  // written at scrape time: with thousands of backends prom-client's label children cost ~5 KB
  // a backend and ~6 µs a probe; this costs a map lookup per probe and nothing at rest.
  perBackend: Map<string, BackendSeries>;
  /** Per-app series, keyed by app name. */
  apps: AppCaches;
  /** Where the per-backend views are read at each scrape, when set. */
  observeBackends?: () => BackendView[];
}

type AppCaches = ReturnType<typeof createAppCaches>;

/** The label children of every per-app metric; setBackends drops those of apps that left. */
export function createAppCaches(probeDuration: ReturnType<typeof defineProbeDuration>, m: MetricSet) {
  return {
    durations: createChildCache(probeDuration),
    transitions: createChildCache(m.transitionsTotal),
    failures: createChildCache(m.failuresTotal),
    ejected: createChildCache(m.ejectedBackends),
    backends: createChildCache(m.backendsGauge),
    panic: createChildCache(m.upstreamPanic),
  };
}

export function onProbe(s: MetricsState, result: ProbeResult, protocol: 'http' | 'tcp'): void {
  const errorClass = result.healthy ? NONE : (result.errorClass ?? 'error');
  countProbe(seriesOf(s.perBackend, result.backendId, result.app), probeKind(protocol, errorClass));
  const durations = s.apps.durations;
  const histogram =
    durations.get(result.app, protocol) ?? durations.add(result.app, protocol, { app: result.app, protocol });
  histogram.observe(result.responseTimeMs / 1000);
}

export function onFailures(s: MetricsState, events: FailureEvent[]): void {
  const failures = s.apps.failures;
  for (const e of events) {
    const key = `${e.failureType}/${e.severity}`;
    const child =
      failures.get(e.app, key) ??
      failures.add(e.app, key, { app: e.app, failure_type: e.failureType, severity: e.severity });
    child.inc();
  }
}

export function onTransition(s: MetricsState, t: Transition): void {
  const key = `${t.kind}/${t.to}`;
  const transitions = s.apps.transitions;
  const child = transitions.get(t.app, key) ?? transitions.add(t.app, key, { app: t.app, kind: t.kind, to: t.to });
  child.inc();
}

export function onApply(s: MetricsState, outcome: Parameters<Metrics['onApply']>[0]): void {
  const { appliesTotal, reloadsTotal, reloadDuration } = s.m;
  appliesTotal.inc({ result: outcome.result, stage: outcome.stage ?? NONE });
  if (outcome.result === 'failed') reloadsTotal.inc({ result: 'failure' });
  else if (outcome.reloaded) reloadsTotal.inc({ result: 'success' });
  if (outcome.reloaded) reloadDuration.observe(outcome.durationMs / 1000);
}

export function setBackends(s: MetricsState, views: BackendView[]): void {
  const ids = new Set<string>();
  const perApp = new Map<string, { total: number; ejected: number }>();
  for (const view of views) {
    ids.add(view.backendId);
    const counts = perApp.get(view.app) ?? { total: 0, ejected: 0 };
    counts.total += 1;
    if (view.ejected) counts.ejected += 1;
    perApp.set(view.app, counts);

    const series = seriesOf(s.perBackend, view.backendId, view.app);
    setSeriesAddress(series, formatAddress(view.host, view.port));
    series.up = view.ejected ? 0 : 1;
    series.health = view.health;
    series.breaker = view.breaker;
  }
  const { backends, ejected } = s.apps;
  for (const [app, counts] of perApp) {
    (backends.get(app, '') ?? backends.add(app, '', { app })).set(counts.total);
    (ejected.get(app, '') ?? ejected.add(app, '', { app })).set(counts.ejected);
  }
  for (const id of s.perBackend.keys()) if (!ids.has(id)) s.perBackend.delete(id);
  for (const cache of Object.values(s.apps)) cache.retain(perApp);
}

export function setPanic(s: MetricsState, app: string, panic: boolean): void {
  const panics = s.apps.panic;
  (panics.get(app, '') ?? panics.add(app, '', { app })).set(panic ? 1 : 0);
}

export function onRecoveryAction(s: MetricsState, record: Parameters<Metrics['onRecoveryAction']>[0]): void {
  const result = record.dryRun ? 'dry_run' : record.ok ? 'success' : 'failure';
  s.m.recoveryActions.inc({ app: record.app, strategy: record.strategy, result });
  if (!record.dryRun) s.m.recoveryDuration.observe({ strategy: record.strategy }, record.durationMs / 1000);
}
