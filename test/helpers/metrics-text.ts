/**
 * Reading a Prometheus text exposition in tests, and one from metrics that have seen one of
 * everything (the metrics tests, the dashboard test).
 */
import { expect } from 'vitest';
import type { BackendView, FailureEvent } from '../../src/health/types.js';
import type { ProbeResult } from '../../src/model.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { backendView, failureEvent, probeResult } from './fixtures.js';

type Labels = Record<string, string>;
interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

/** Parses the sample lines of a text exposition (enough for prom-client's output). */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Labels = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Samples of `name` whose labels include `labels`. */
export function find(text: string, name: string, labels: Labels = {}): Sample[] {
  return parseSamples(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/** The value of the one sample of `name` with exactly these labels; undefined if absent. */
export function value(text: string, name: string, labels: Labels = {}): number | undefined {
  const matches = parseSamples(text).filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  expect(matches.length).toBeLessThanOrEqual(1);
  return matches[0]?.value;
}

/** A probe of `app`'s backend at `address` that took 4 ms. */
export const probe = (app: string, address: string, over: Partial<ProbeResult> = {}): ProbeResult =>
  probeResult({ backendId: `${app}/${address}`, app, responseTimeMs: 4, body: null, startedAt: 1_000, finishedAt: 1_004, ...over });

export const view = (app: string, host: string, port: number, over: Partial<BackendView> = {}): BackendView =>
  backendView({ app, host, port, ...over });

/** A first port_not_listening failure of `app`'s backend 127.0.0.1:8001. */
export const failure = (app: string, over: Partial<FailureEvent> = {}): FailureEvent =>
  failureEvent({ failureType: 'port_not_listening', backendId: `${app}/127.0.0.1:8001`, app, message: 'connection refused', consecutiveCount: 1, totalCount: 1, ...over });

/** A metrics instance that has seen one of everything (labelled with `instance` when given). */
export async function busyExposition(collectDefault: boolean, instance?: string): Promise<string> {
  const m = createMetrics({ collectDefault, docker: true, ...(instance ? { instance } : {}) });
  m.onProbe(probe('web', '127.0.0.1:8001'), 'http');
  m.onProbe(
    probe('web', '127.0.0.1:8002', { healthy: false, errorClass: 'connection_refused', responseTimeMs: 1 }),
    'http',
  );
  m.onProbe(probe('db', '[::1]:5432', { checkType: 'tcp', responseTimeMs: 0.4 }), 'tcp');
  m.onFailures([failure('web')]);
  m.onTransition({ kind: 'health', backendId: 'web/127.0.0.1:8002', app: 'web', from: 'healthy', to: 'unhealthy', at: 1, reason: 'x' });
  m.onTransition({ kind: 'breaker', backendId: 'web/127.0.0.1:8002', app: 'web', from: 'closed', to: 'open', at: 1, reason: 'x' });
  m.onApply({ result: 'applied', durationMs: 42, reloaded: true });
  m.onApply({ result: 'failed', stage: 'validate', durationMs: 12, reloaded: false });
  m.onApply({ result: 'unchanged', durationMs: 1, reloaded: false });
  m.onConfigReload('success', 1_700_000_000_000);
  m.setBackends([
    view('web', '127.0.0.1', 8001),
    view('web', '127.0.0.1', 8002, { health: 'unhealthy', breaker: 'open', ejected: true }),
    view('db', '::1', 5432),
  ]);
  m.setPanic('web', false);
  m.setDegraded(true);
  m.observeStore(() => ({ state: 'ok', queued: 3, dropped: 0, written: 120, sizeBytes: 4096 }));
  m.observeAlerting(() => ({ firing: 1, byReceiver: { am: { type: 'alertmanager', queued: 0, sent: 2, failed: 1 } } }));
  m.onRecoveryAction({ app: 'web', strategy: 'restart_container', ok: true, dryRun: false, durationMs: 800 });
  m.setRecoveryInFlight(0);
  m.setDockerConnected(true);
  m.setRejectedContainers(0);
  return m.render();
}
