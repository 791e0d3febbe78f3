/**
 * A private Prometheus Alertmanager on loopback for the alerting tests: its own config, storage
 * dir and free port, clustering off, stopped by pid. Alerting config fixtures: fixtures.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

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
