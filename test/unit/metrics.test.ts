import { describe, expect, it } from 'vitest';
import type { Transition } from '../../src/health/types.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { VERSION } from '../../src/version.js';
import { busyExposition, failure, find, parseSamples, probe, value, view } from '../helpers/metrics-text.js';

describe('metrics', () => {
  it('reads the store and alerting status at scrape time', async () => {
    const m = createMetrics({ collectDefault: false });
    let store = { state: 'ok' as 'ok' | 'degraded' | 'disabled', queued: 3, dropped: 0, written: 120, sizeBytes: 4096 };
    m.observeStore(() => store);
    m.observeAlerting(() => ({ firing: 2, byReceiver: { hook: { type: 'webhook', queued: 1, sent: 5, failed: 3 } } }));
    let text = await m.render();
    expect(text).toContain('orchestry_store_up 1\n');
    expect(text).toContain('orchestry_store_written_total 120\n');
    expect(text).toContain('orchestry_store_size_bytes 4096\n');
    expect(text).toContain('orchestry_alerts_firing 2\n');
    expect(text).toContain('orchestry_alert_notifications_total{receiver="hook",type="webhook",result="success"} 5\n');
    expect(text).toContain('orchestry_alert_notifications_total{receiver="hook",type="webhook",result="failure"} 3\n');
    expect(text).toContain('orchestry_alert_queue{receiver="hook",type="webhook"} 1\n');
    store = { ...store, state: 'degraded', dropped: 7 };
    text = await m.render();
    expect(text).toContain('orchestry_store_up 0\n');
    expect(text).toContain('orchestry_store_dropped_total 7\n');
  });

  it('counts probes per backend with result and error class, and times them per app', async () => {
    const m = createMetrics({ collectDefault: false });
    m.onProbe(probe('web', '127.0.0.1:8001'), 'http');
    m.onProbe(probe('web', '127.0.0.1:8001', { responseTimeMs: 30 }), 'http');
    m.onProbe(probe('web', '127.0.0.1:8001', { healthy: false, errorClass: 'timeout', responseTimeMs: 2000 }), 'http');
    const text = await m.render();

    const base = { app: 'web', backend: '127.0.0.1:8001', protocol: 'http' };
    expect(value(text, 'orchestry_probes_total', { ...base, result: 'success', error_class: 'none' })).toBe(2);
    expect(value(text, 'orchestry_probes_total', { ...base, result: 'failure', error_class: 'timeout' })).toBe(1);
    const hist = { app: 'web', protocol: 'http' };
    expect(value(text, 'orchestry_probe_duration_seconds_count', hist)).toBe(3);
    expect(value(text, 'orchestry_probe_duration_seconds_sum', hist)).toBeCloseTo(2.034, 6);
    expect(value(text, 'orchestry_probe_duration_seconds_bucket', { ...hist, le: '0.005' })).toBe(1);
    expect(value(text, 'orchestry_probe_duration_seconds_bucket', { ...hist, le: '0.05' })).toBe(2);
    expect(value(text, 'orchestry_probe_duration_seconds_bucket', { ...hist, le: '2.5' })).toBe(3);
  });

  it('relabels every series of a backend once its view gives an address other than its id, counts kept', async () => {
    const m = createMetrics({ collectDefault: false });
    const p = probe('db', 'task-1', { checkType: 'tcp' });
    m.onProbe(p, 'tcp');
    const before = { app: 'db', backend: 'task-1', protocol: 'tcp', result: 'success', error_class: 'none' };
    expect(value(await m.render(), 'orchestry_probes_total', before)).toBe(1);
    m.setBackends([view('db', '::1', 5432, { backendId: 'db/task-1' })]);
    m.onProbe(p, 'tcp');
    m.onProbe({ ...p, healthy: false, errorClass: 'connection_refused' }, 'tcp');
    const text = await m.render();
    const labels = { app: 'db', backend: '[::1]:5432', protocol: 'tcp' };
    expect(value(text, 'orchestry_probes_total', { ...labels, result: 'success', error_class: 'none' })).toBe(2);
    expect(value(text, 'orchestry_probes_total', { ...labels, result: 'failure', error_class: 'connection_refused' })).toBe(1);
    expect(find(text, 'orchestry_probes_total', { backend: 'task-1' })).toEqual([]);
    expect(value(text, 'orchestry_backend_up', { app: 'db', backend: '[::1]:5432' })).toBe(1);
  });

  it('counts a probe the sidecar could not run (local_error) as neither success nor failure', async () => {
    const m = createMetrics({ collectDefault: false });
    m.onProbe(probe('web', '127.0.0.1:8001', { healthy: false, errorClass: 'local_error' }), 'http');
    m.onProbe(probe('web', '127.0.0.1:8001', { healthy: false, errorClass: 'timeout' }), 'http');
    const text = await m.render();
    const results = find(text, 'orchestry_probes_total', { app: 'web' }).map((s) => `${s.labels.result}/${s.labels.error_class}`);
    expect(results.sort()).toEqual(['failure/timeout', 'local_error/local_error']);
  });

  it('labels a failed probe without an error class as "error"', async () => {
    const m = createMetrics({ collectDefault: false });
    m.onProbe(probe('web', '127.0.0.1:8001', { healthy: false, errorClass: null }), 'tcp');
    const text = await m.render();
    expect(find(text, 'orchestry_probes_total', { result: 'failure' }).map((s) => s.labels.error_class)).toEqual([
      'error',
    ]);
  });

  it('sets up, one-hot health and breaker states, and per-app counts from backend views', async () => {
    const m = createMetrics({ collectDefault: false });
    m.setBackends([
      view('web', '127.0.0.1', 8001),
      view('web', '127.0.0.1', 8002, { health: 'unhealthy', breaker: 'open', ejected: true }),
      view('db', '::1', 5432, { health: 'unknown', breaker: 'half_open', ejected: true }),
    ]);
    const text = await m.render();

    const a = { app: 'web', backend: '127.0.0.1:8001' };
    const b = { app: 'web', backend: '127.0.0.1:8002' };
    const c = { app: 'db', backend: '[::1]:5432' };
    expect(value(text, 'orchestry_backend_up', a)).toBe(1);
    expect(value(text, 'orchestry_backend_up', b)).toBe(0);
    expect(value(text, 'orchestry_backend_up', c)).toBe(0);
    expect(value(text, 'orchestry_backend_health_state', { ...a, state: 'healthy' })).toBe(1);
    expect(value(text, 'orchestry_backend_health_state', { ...a, state: 'unhealthy' })).toBe(0);
    expect(value(text, 'orchestry_backend_health_state', { ...a, state: 'unknown' })).toBe(0);
    expect(value(text, 'orchestry_backend_health_state', { ...b, state: 'unhealthy' })).toBe(1);
    expect(value(text, 'orchestry_backend_health_state', { ...c, state: 'unknown' })).toBe(1);
    expect(value(text, 'orchestry_breaker_state', { ...a, state: 'closed' })).toBe(1);
    expect(value(text, 'orchestry_breaker_state', { ...b, state: 'open' })).toBe(1);
    expect(value(text, 'orchestry_breaker_state', { ...b, state: 'closed' })).toBe(0);
    expect(value(text, 'orchestry_breaker_state', { ...c, state: 'half_open' })).toBe(1);
    expect(find(text, 'orchestry_breaker_state', c).reduce((sum, s) => sum + s.value, 0)).toBe(1);
    expect(value(text, 'orchestry_backends', { app: 'web' })).toBe(2);
    expect(value(text, 'orchestry_ejected_backends', { app: 'web' })).toBe(1);
    expect(value(text, 'orchestry_backends', { app: 'db' })).toBe(1);
    expect(value(text, 'orchestry_ejected_backends', { app: 'db' })).toBe(1);
  });

  it('flips the one-hot state series when a backend changes state', async () => {
    const m = createMetrics({ collectDefault: false });
    const labels = { app: 'web', backend: '127.0.0.1:8001' };
    m.setBackends([view('web', '127.0.0.1', 8001)]);
    m.setBackends([view('web', '127.0.0.1', 8001, { health: 'unhealthy', breaker: 'half_open', ejected: true })]);
    const text = await m.render();

    const health = Object.fromEntries(
      find(text, 'orchestry_backend_health_state', labels).map((s) => [s.labels.state, s.value]),
    );
    expect(health).toEqual({ unknown: 0, healthy: 0, unhealthy: 1 });
    const breaker = Object.fromEntries(find(text, 'orchestry_breaker_state', labels).map((s) => [s.labels.state, s.value]));
    expect(breaker).toEqual({ closed: 0, open: 0, half_open: 1 });
    expect(value(text, 'orchestry_backend_up', labels)).toBe(0);
  });

  it('removes every series of backends and apps that are no longer reported', async () => {
    const m = createMetrics({ collectDefault: false });
    m.onProbe(probe('web', '127.0.0.1:8001'), 'http');
    m.onProbe(probe('web', '127.0.0.1:8002'), 'http');
    m.onProbe(probe('api', '127.0.0.1:9001'), 'tcp');
    m.onTransition({ kind: 'health', backendId: 'api/127.0.0.1:9001', app: 'api', from: 'unknown', to: 'healthy', at: 1, reason: 'x' });
    m.onFailures([failure('api')]);
    m.setBackends([view('web', '127.0.0.1', 8001), view('web', '127.0.0.1', 8002), view('api', '127.0.0.1', 9001)]);
    m.setPanic('api', true);
    expect(find(await m.render(), 'orchestry_upstream_panic', { app: 'api' })).toHaveLength(1);

    m.setBackends([view('web', '127.0.0.1', 8001)]);
    const text = await m.render();

    for (const s of parseSamples(text)) {
      expect(s.labels.backend, `${s.name} ${JSON.stringify(s.labels)}`).not.toBe('127.0.0.1:8002');
      expect(s.labels.app, `${s.name} ${JSON.stringify(s.labels)}`).not.toBe('api');
    }
    expect(value(text, 'orchestry_backends', { app: 'web' })).toBe(1);
    expect(find(text, 'orchestry_probes_total', { backend: '127.0.0.1:8001' })).toHaveLength(1);
    expect(find(text, 'orchestry_backend_health_state', { backend: '127.0.0.1:8001' })).toHaveLength(3);
  });

  it('counts a backend again from zero when it comes back after removal', async () => {
    const m = createMetrics({ collectDefault: false });
    m.onProbe(probe('web', '127.0.0.1:8001'), 'http');
    m.setBackends([view('web', '127.0.0.1', 8001)]);
    m.setBackends([]);
    m.onProbe(probe('web', '127.0.0.1:8001'), 'http');
    m.setBackends([view('web', '127.0.0.1', 8001)]);
    const text = await m.render();
    const labels = { app: 'web', backend: '127.0.0.1:8001', protocol: 'http', result: 'success', error_class: 'none' };
    expect(value(text, 'orchestry_probes_total', labels)).toBe(1);
    expect(value(text, 'orchestry_backend_up', { app: 'web', backend: '127.0.0.1:8001' })).toBe(1);
  });

  it('counts transitions by kind and target state, and failures by type and severity', async () => {
    const m = createMetrics({ collectDefault: false });
    const t: Transition = { kind: 'breaker', backendId: 'web/127.0.0.1:8001', app: 'web', from: 'closed', to: 'open', at: 1, reason: 'x' };
    m.onTransition(t);
    m.onTransition({ ...t, from: 'open', to: 'half_open' });
    m.onTransition({ ...t, from: 'half_open', to: 'open' });
    m.onTransition({ kind: 'health', backendId: t.backendId, app: 'web', from: 'healthy', to: 'unhealthy', at: 1, reason: 'x' });
    m.onFailures([failure('web'), failure('web'), failure('web', { failureType: 'health_check_timeout', severity: 'medium' })]);
    const text = await m.render();

    expect(value(text, 'orchestry_transitions_total', { app: 'web', kind: 'breaker', to: 'open' })).toBe(2);
    expect(value(text, 'orchestry_transitions_total', { app: 'web', kind: 'breaker', to: 'half_open' })).toBe(1);
    expect(value(text, 'orchestry_transitions_total', { app: 'web', kind: 'health', to: 'unhealthy' })).toBe(1);
    expect(value(text, 'orchestry_failures_total', { app: 'web', failure_type: 'port_not_listening', severity: 'high' })).toBe(2);
    expect(
      value(text, 'orchestry_failures_total', { app: 'web', failure_type: 'health_check_timeout', severity: 'medium' }),
    ).toBe(1);
  });

  it('counts reloads and applies, times only applies that reloaded, and tracks degraded', async () => {
    const m = createMetrics({ collectDefault: false });
    let text = await m.render();
    expect(value(text, 'orchestry_nginx_reloads_total', { result: 'success' })).toBe(0);
    expect(value(text, 'orchestry_nginx_reloads_total', { result: 'failure' })).toBe(0);
    expect(value(text, 'orchestry_config_reloads_total', { result: 'failure' })).toBe(0);
    expect(value(text, 'orchestry_degraded')).toBe(0);

    m.onApply({ result: 'applied', durationMs: 40, reloaded: true });
    m.onApply({ result: 'applied', durationMs: 60, reloaded: true });
    m.onApply({ result: 'unchanged', durationMs: 2, reloaded: false });
    m.onApply({ result: 'failed', stage: 'validate', durationMs: 15, reloaded: false });
    m.onConfigReload('success', 1000);
    m.onConfigReload('failure', 2000);
    m.onConfigReload('failure', 3000);
    m.setDegraded(true);
    text = await m.render();

    expect(value(text, 'orchestry_nginx_reloads_total', { result: 'success' })).toBe(2);
    expect(value(text, 'orchestry_nginx_reloads_total', { result: 'failure' })).toBe(1);
    expect(value(text, 'orchestry_nginx_applies_total', { result: 'applied', stage: 'none' })).toBe(2);
    expect(value(text, 'orchestry_nginx_applies_total', { result: 'unchanged', stage: 'none' })).toBe(1);
    expect(value(text, 'orchestry_nginx_applies_total', { result: 'failed', stage: 'validate' })).toBe(1);
    expect(value(text, 'orchestry_nginx_reload_duration_seconds_count')).toBe(2);
    expect(value(text, 'orchestry_nginx_reload_duration_seconds_sum')).toBeCloseTo(0.1, 9);
    expect(value(text, 'orchestry_config_reloads_total', { result: 'success' })).toBe(1);
    expect(value(text, 'orchestry_config_reloads_total', { result: 'failure' })).toBe(2);
    expect(value(text, 'orchestry_degraded')).toBe(1);

    m.setDegraded(false);
    expect(value(await m.render(), 'orchestry_degraded')).toBe(0);
  });

  it('reports panic per app', async () => {
    const m = createMetrics({ collectDefault: false });
    m.setBackends([view('web', '127.0.0.1', 8001, { health: 'unhealthy', ejected: true })]);
    m.setPanic('web', true);
    expect(value(await m.render(), 'orchestry_upstream_panic', { app: 'web' })).toBe(1);
    m.setPanic('web', false);
    expect(value(await m.render(), 'orchestry_upstream_panic', { app: 'web' })).toBe(0);
  });

  it('leaves process and nodejs metrics out when collectDefault is false', async () => {
    const text = await createMetrics({ collectDefault: false }).render();
    expect(parseSamples(text).filter((s) => !s.name.startsWith('orchestry_'))).toEqual([]);
  });

  it('every own metric is prefixed orchestry_ and documented with HELP and TYPE', async () => {
    const text = await busyExposition(false);
    const names = new Set(parseSamples(text).map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
    expect(names.size).toBeGreaterThanOrEqual(15);
    for (const name of names) {
      expect(name).toMatch(/^orchestry_/);
      expect(text).toContain(`# HELP ${name} `);
      expect(text).toContain(`# TYPE ${name} `);
    }
  });

});

describe('build, configuration and Docker metrics', () => {
  it('says which version runs on which Node', async () => {
    const text = await createMetrics({ collectDefault: false }).render();
    expect(find(text, 'orchestry_build_info')).toEqual([{ name: 'orchestry_build_info', labels: { version: VERSION, node: process.version }, value: 1 }]);
  });

  it('keeps whether the last configuration load succeeded and when the one in effect was loaded', async () => {
    const m = createMetrics({ collectDefault: false, configLoadedAt: 1_700_000_000_500 });
    let text = await m.render();
    expect(value(text, 'orchestry_config_last_reload_successful')).toBe(1);
    expect(value(text, 'orchestry_config_last_reload_success_timestamp_seconds')).toBe(1_700_000_000);
    m.onConfigReload('failure', 1_700_000_100_000);
    text = await m.render();
    expect(value(text, 'orchestry_config_last_reload_successful')).toBe(0);
    expect(value(text, 'orchestry_config_last_reload_success_timestamp_seconds')).toBe(1_700_000_000);
    m.onConfigReload('success', 1_700_000_200_000);
    text = await m.render();
    expect(value(text, 'orchestry_config_last_reload_successful')).toBe(1);
    expect(value(text, 'orchestry_config_last_reload_success_timestamp_seconds')).toBe(1_700_000_200);
  });

  it('exports the Docker gauges only with Docker discovery on (a `== 0` alert would fire without it)', async () => {
    const off = createMetrics({ collectDefault: false });
    off.setDockerConnected(false);
    off.setRejectedContainers(0);
    expect(await off.render()).not.toContain('orchestry_docker_');
    const on = createMetrics({ collectDefault: false, docker: true });
    expect(value(await on.render(), 'orchestry_docker_connected')).toBe(0);
  });

  it('counts recovery actions by strategy and result, dry runs apart', async () => {
    const m = createMetrics({ collectDefault: false, docker: true });
    m.onRecoveryAction({ app: 'web', strategy: 'restart_container', ok: true, dryRun: false, durationMs: 1500 });
    m.onRecoveryAction({ app: 'web', strategy: 'restart_container', ok: false, dryRun: false, durationMs: 200 });
    m.onRecoveryAction({ app: 'web', strategy: 'scale_out', ok: true, dryRun: true, durationMs: 0 });
    m.setRecoveryInFlight(1);
    m.setDockerConnected(true);
    m.setRejectedContainers(2);
    const text = await m.render();
    expect(text).toContain('orchestry_recovery_actions_total{app="web",strategy="restart_container",result="success"} 1');
    expect(text).toContain('orchestry_recovery_actions_total{app="web",strategy="restart_container",result="failure"} 1');
    expect(text).toContain('orchestry_recovery_actions_total{app="web",strategy="scale_out",result="dry_run"} 1');
    expect(text).toContain('orchestry_recovery_action_duration_seconds_count{strategy="restart_container"} 2');
    expect(text).not.toContain('orchestry_recovery_action_duration_seconds_count{strategy="scale_out"}');
    expect(text).toContain('orchestry_recovery_actions_in_flight 1');
    expect(text).toContain('orchestry_docker_connected 1');
    expect(text).toContain('orchestry_docker_rejected_containers 2');
  });
});
