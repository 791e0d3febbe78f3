/**
 * Helpers for the alerting tests: a private Prometheus Alertmanager on loopback (its own config,
 * storage dir and free port, clustering off, stopped by pid), and config, event and view fixtures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait.js';
import type { AlertingConfig, AlertReceiverConfig, AlertRouteConfig } from '../../src/config/types.js';
import type { BackendView, FailureEvent } from '../../src/health/types.js';

export function receiver(name: string, over: Partial<AlertReceiverConfig> = {}): AlertReceiverConfig {
  return { name, type: 'webhook', url: `http://127.0.0.1:9/${name}`, headers: {}, timeout_seconds: 5, max_per_minute: 30, ...over };
}

export function route(receivers: string[], over: Partial<AlertRouteConfig> = {}): AlertRouteConfig {
  return { receivers, min_severity: 'low', apps: [], failure_types: [], ...over };
}

/** Enabled, one webhook receiver `ops` on one catch-all route. */
export function alertConfig(over: Partial<AlertingConfig> = {}): AlertingConfig {
  return {
    enabled: true,
    receivers: [receiver('ops')],
    routes: [route(['ops'])],
    escalation: { after_seconds: 900, receivers: [] },
    resend_interval_seconds: 60,
    retry_min_seconds: 1,
    retry_max_seconds: 300,
    ...over,
  };
}

export function failure(over: Partial<FailureEvent> = {}): FailureEvent {
  return {
    failureType: 'health_check_failed',
    backendId: 'web/127.0.0.1:8001',
    app: 'web',
    severity: 'high',
    message: 'HTTP 500 from /health',
    details: {},
    timestamp: 0,
    consecutiveCount: 3,
    totalCount: 3,
    firstOccurrence: 0,
    critical: false,
    ...over,
  };
}

export function view(over: Partial<BackendView> = {}): BackendView {
  return {
    backendId: 'web/127.0.0.1:8001',
    app: 'web',
    host: '127.0.0.1',
    port: 8001,
    weight: 1,
    backup: false,
    health: 'healthy',
    breaker: 'closed',
    ejected: false,
    draining: false,
    container: null,
    consecutiveFailures: 0,
    consecutiveSuccesses: 1,
    lastProbe: null,
    lastFailure: null,
    since: 0,
    ...over,
  };
}

export const ALERTMANAGER_BIN = process.env.ALERTMANAGER_BIN ?? '/usr/bin/prometheus-alertmanager';

/** One alert as GET /api/v2/alerts returns it (the fields the tests read). */
export interface AlertmanagerAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: 'active' | 'suppressed' | 'unprocessed' };
}

export interface AlertmanagerInstance {
  /** Base URL, e.g. http://127.0.0.1:41234 (what a receiver's url is set to). */
  url: string;
  pid: number;
  /** GET /api/v2/alerts?active=true: alerts Alertmanager considers firing now. */
  activeAlerts(): Promise<AlertmanagerAlert[]>;
  stop(): Promise<void>;
}

/** A port nothing listened on a moment ago (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts a private Alertmanager: a minimal config (one route to a receiver that notifies
 * nobody), storage in a temp dir, 127.0.0.1 on a free port, and `--cluster.listen-address=`
 * (empty), which turns clustering off instead of binding 0.0.0.0:9094 and gossiping. Resolves
 * once /-/ready answers 200. Throws, naming the path, when the binary is missing.
 */
export async function startAlertmanager(): Promise<AlertmanagerInstance> {
  try {
    await access(ALERTMANAGER_BIN);
  } catch {
    throw new Error(`Alertmanager binary not found at ${ALERTMANAGER_BIN} (install the Debian package prometheus-alertmanager, or set ALERTMANAGER_BIN)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'orchestry-alertmanager-'));
  const configPath = join(dir, 'alertmanager.yml');
  await writeFile(configPath, ['route:', "  receiver: 'null'", 'receivers:', "  - name: 'null'", ''].join('\n'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  const child: ChildProcess = spawn(ALERTMANAGER_BIN, [
    `--config.file=${configPath}`,
    `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--cluster.listen-address=',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`alertmanager exited with ${child.exitCode}: ${output.slice(-2000)}`);
      return (await fetch(`${url}/-/ready`)).status === 200;
    }, { timeoutMs: 20_000, what: `alertmanager ready at ${url}` });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    pid: child.pid!,
    async activeAlerts() {
      const res = await fetch(`${url}/api/v2/alerts?active=true`);
      if (res.status !== 200) throw new Error(`GET /api/v2/alerts: HTTP ${res.status}`);
      return (await res.json()) as AlertmanagerAlert[];
    },
    stop,
  };
}
