/**
 * The daemon and the signals a service manager sends it, as a real process (dist/cli.js):
 * SIGHUP reloads the config and keeps it running; every stopping signal writes what the store
 * still holds before exit; the example systemd unit is valid and its commands do what it says.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { CLI, runCli, startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

const UNIT = fileURLToPath(new URL('../../examples/systemd/orchestry-sidecar.service', import.meta.url));

let dir: string;
let backend: TestBackend;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-signals-'));
  backend = await startBackend('signals-1');
});
afterAll(async () => {
  await backend.close();
  await rm(dir, { recursive: true, force: true });
});

/** A config probing one backend every second, whose store is written only once a minute (or at stop). */
async function daemonConfig(name: string): Promise<{ path: string; adminUrl: string; store: string }> {
  const adminPort = await freePort();
  const store = join(dir, `${name}.db`);
  const path = join(dir, `${name}.yaml`);
  await writeFile(
    path,
    sidecarYaml({
      apps: { web: { backends: [backend.address], health: { initial_delay_seconds: 0, period_seconds: 1, timeout_seconds: 0.5 } } },
      nginx: { output_path: join(dir, `${name}-upstreams.conf`), pid_path: join(dir, `${name}-nginx.pid`), validate: false },
      store: { enabled: true, path: store, flush_interval_seconds: 60 },
      admin: { listen: `127.0.0.1:${adminPort}` },
    }),
  );
  return { path, adminUrl: `http://127.0.0.1:${adminPort}`, store };
}

/** Waits until the sidecar has probed `n` times (all of it still unwritten: the store flushes once a minute). */
async function probed(sidecar: SidecarProcess, n: number): Promise<number> {
  return waitFor(async () => {
    const count = await sidecar.metric('orchestry_probes_total', { app: 'web' });
    return count >= n ? count : null;
  }, { what: `${n} probes` });
}

async function checksInStore(store: string): Promise<number> {
  const { code, stdout, stderr } = await runCli(['report', 'web', '--store', store, '--hours', '1', '--json']);
  expect(stderr).toBe('');
  expect(code).toBe(0);
  return (JSON.parse(stdout) as { total_checks: number }).total_checks;
}

describe('daemon signals', () => {
  it('reloads the config on SIGHUP, says so in the log, and keeps running', async () => {
    const { path, adminUrl } = await daemonConfig('hup');
    const sidecar = await startSidecarProcess(path, adminUrl);
    try {
      sidecar.child.kill('SIGHUP');
      await waitFor(() => sidecar.logs().find((l) => l.msg === 'configuration reloaded: unchanged' && l.by === 'SIGHUP'), { what: 'reload log line' });
      expect(sidecar.logs().some((l) => l.msg === 'configuration reload requested' && l.by === 'SIGHUP')).toBe(true);
      expect((await sidecar.api('/healthz')).status).toBe(200);
      expect(sidecar.child.exitCode).toBeNull();
    } finally {
      expect(await sidecar.stop()).toBe(0);
    }
  });

  it.each(['SIGTERM', 'SIGINT', 'SIGQUIT'] as const)('writes every probe result to the store before exiting on %s', async (signal) => {
    const { path, adminUrl, store } = await daemonConfig(signal.toLowerCase());
    const sidecar = await startSidecarProcess(path, adminUrl);
    const seen = await probed(sidecar, 3);
    expect(await sidecar.stop(signal)).toBe(0);
    expect(sidecar.logs().at(-1)?.msg).toBe('orchestry-sidecar stopped');
    expect(await checksInStore(store)).toBeGreaterThanOrEqual(seen);
  });
});

describe('the example systemd unit', () => {
  /** `Key=value` lines of the unit (the last of a repeated key). */
  async function unitKeys(): Promise<Map<string, string>> {
    const text = await readFile(UNIT, 'utf8');
    return new Map(text.split('\n').filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]));
  }

  it('runs the binary itself, reloads by SIGHUP and stops by SIGTERM, and systemd-analyze finds nothing wrong', async () => {
    const keys = await unitKeys();
    const binary = '/usr/local/bin/orchestry-sidecar';
    const unitConfig = '/etc/orchestry-sidecar/sidecar.yaml';
    expect(keys.get('ExecStart')).toBe(`${binary} run --config ${unitConfig}`);
    expect(keys.get('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(keys.get('KillSignal')).toBe('SIGTERM');
    // The unit as installed here: the binary is this build, the config a test one.
    const { path, adminUrl, store } = await daemonConfig('systemd');
    const wrapper = join(dir, 'orchestry-sidecar');
    await writeFile(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    await chmod(wrapper, 0o755);
    const local = (command: string) => command.replaceAll(binary, wrapper).replaceAll(unitConfig, path);
    const unitCopy = join(dir, 'orchestry-sidecar.service');
    await writeFile(unitCopy, local(await readFile(UNIT, 'utf8')));
    const verify = await run('systemd-analyze', ['verify', unitCopy]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);

    const pre = local(keys.get('ExecStartPre')!).split(' ');
    expect((await run(pre[0]!, pre.slice(1))).code).toBe(0);
    const start = local(keys.get('ExecStart')!).split(' ');
    const sidecar = await startSidecarProcess(path, adminUrl, { command: { file: start[0]!, args: start.slice(1) } });
    try {
      const reload = keys.get('ExecReload')!.replace('$MAINPID', String(sidecar.child.pid)).split(' ');
      expect((await run(reload[0]!, reload.slice(1))).code).toBe(0);
      await waitFor(() => sidecar.logs().find((l) => l.msg === 'configuration reloaded: unchanged'), { what: 'reload by ExecReload' });
      const seen = await probed(sidecar, 2);
      expect(await sidecar.stop(keys.get('KillSignal') as NodeJS.Signals)).toBe(0);
      expect(await checksInStore(store)).toBeGreaterThanOrEqual(seen);
    } finally {
      await sidecar.stop('SIGKILL');
    }
  });
});

function run(file: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
