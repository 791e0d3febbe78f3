/**
 * The daemon's prom-client metrics: names, help texts, labels and buckets, one line each. The
 * per-backend series are not here: metric-collectors.ts writes them at scrape time.
 */
import * as prom from './prom.js';

/** Probes take from under a millisecond (loopback TCP) up to their timeout (seconds). */
const PROBE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** render + `nginx -t` + reload: tens of milliseconds normally, seconds on a loaded host. */
const APPLY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const RECOVERY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

type Registers = prom.Registry[];

function counter<const L extends string = never>(registers: Registers, name: string, help: string, labelNames: readonly L[] = []) {
  return new prom.Counter<L>({ name, help, labelNames, registers });
}

function gauge<const L extends string = never>(registers: Registers, name: string, help: string, labelNames: readonly L[] = []) {
  return new prom.Gauge<L>({ name, help, labelNames, registers });
}

function histogram<const L extends string = never>(
  registers: Registers,
  name: string,
  help: string,
  buckets: number[],
  labelNames: readonly L[] = [],
) {
  return new prom.Histogram<L>({ name, help, labelNames, buckets, registers });
}

/** Registered first, ahead of the per-backend collectors, as the exposition has always listed it. */
export function defineProbeDuration(registers: Registers) {
  return histogram(registers, 'orchestry_probe_duration_seconds', 'Wall time of active probes, retries included.', PROBE_BUCKETS, ['app', 'protocol']);
}

/** Every other metric the daemon updates as events arrive, in exposition order. */
export function defineMetrics(registers: Registers) {
  return {
    transitionsTotal: counter(registers, 'orchestry_transitions_total', 'Health and breaker state changes, by the state entered.', ['app', 'kind', 'to']),
    failuresTotal: counter(registers, 'orchestry_failures_total', 'Failure events detected, by type and severity.', ['app', 'failure_type', 'severity']),
    ejectedBackends: gauge(registers, 'orchestry_ejected_backends', 'Backends of the app currently ejected from its upstream.', ['app']),
    backendsGauge: gauge(registers, 'orchestry_backends', 'Backends of the app currently known from discovery.', ['app']),
    upstreamPanic: gauge(registers, 'orchestry_upstream_panic', 'Whether the app is rendered in panic mode (every backend down, routing to all or the fallback).', ['app']),
    reloadsTotal: counter(registers, 'orchestry_nginx_reloads_total', 'nginx configuration changes attempted: reloaded (success) or failed at any stage (failure).', ['result']),
    appliesTotal: counter(registers, 'orchestry_nginx_applies_total', 'Applies of the desired upstream set, by result and the stage a failed one stopped at.', ['result', 'stage']),
    reloadDuration: histogram(registers, 'orchestry_nginx_reload_duration_seconds', 'Duration of applies that reloaded nginx: render, validate and reload.', APPLY_BUCKETS),
    configReloadsTotal: counter(registers, 'orchestry_config_reloads_total', 'Reloads of the sidecar configuration file, by result.', ['result']),
    configLastReloadSuccessful: gauge(registers, 'orchestry_config_last_reload_successful', 'Whether the last load of the configuration file (at start, on a change or SIGHUP) succeeded.'),
    configLastReloadSuccess: gauge(registers, 'orchestry_config_last_reload_success_timestamp_seconds', 'When the configuration in effect was loaded (Unix time).'),
    degradedGauge: gauge(registers, 'orchestry_degraded', 'Whether the last nginx apply failed (nginx keeps running the last good configuration).'),
    recoveryActions: counter(registers, 'orchestry_recovery_actions_total', 'Recovery actions by app, strategy and result (success, failure, dry_run).', ['app', 'strategy', 'result']),
    recoveryDuration: histogram(registers, 'orchestry_recovery_action_duration_seconds', 'Duration of recovery actions that touched Docker, by strategy.', RECOVERY_BUCKETS, ['strategy']),
    recoveryInFlight: gauge(registers, 'orchestry_recovery_actions_in_flight', 'Recovery actions running now.'),
    dockerConnected: gauge(registers, 'orchestry_docker_connected', 'Whether the Docker event stream is connected (1) or being reconnected (0).'),
    rejectedContainers: gauge(registers, 'orchestry_docker_rejected_containers', 'Containers with orchestry.enable=true left out because of invalid labels.'),
    buildInfo: gauge(registers, 'orchestry_build_info', 'Always 1; the labels say which sidecar version runs on which Node.js.', ['version', 'node']),
  };
}

export type MetricSet = ReturnType<typeof defineMetrics>;

/** Zero values for the unlabelled gauges and the fixed-result counters. */
export function setInitialValues(m: MetricSet): void {
  m.recoveryInFlight.set(0);
  // Both results exist from the start, so rate() and alerts work before the first event.
  for (const result of ['success', 'failure']) {
    m.reloadsTotal.inc({ result }, 0);
    m.configReloadsTotal.inc({ result }, 0);
  }
  m.degradedGauge.set(0);
}
