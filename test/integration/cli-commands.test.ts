/**
 * The commands besides `run`, as users run them (dist/cli.js in a child process): help per
 * command, usage errors that name the right option, check-config and render refusing what the
 * daemon refuses, status and report from a running sidecar by --url and report from the store
 * file when none runs, and one line on a Node too old to run it.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backend-server.js';
import { sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { useScratchDir } from '../helpers/scratch-dir.js';
import { runCli, startSidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

const scratch = useScratchDir('orchestry-cli-commands-');
const write = scratch.write;

describe('CLI commands', () => {
  it('gives each command its own help, exit 0', async () => {
    for (const command of ['run', 'check-config', 'render', 'status', 'report']) {
      const { code, stdout } = await runCli([command, '--help']);
      expect(code).toBe(0);
      expect(stdout).toContain(`Usage: orchestry-sidecar ${command}`);
    }
    expect((await runCli(['report', '--help'])).stdout).toContain('--store FILE');
    expect((await runCli(['help', 'status'])).stdout).toContain('--url URL');
    expect((await runCli(['run', '--help'])).stdout).toContain('SIGHUP reloads the config file');
  });

  it('answers a mistyped option with the one meant and the help to read, exit 2', async () => {
    const typo = await runCli(['check-config', '--cofig', 'x.yaml']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe('orchestry-sidecar: check-config: unknown option --cofig (did you mean --config?)\n(see orchestry-sidecar check-config --help)\n');
    const elsewhere = await runCli(['status', '--hours', '3']);
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).toContain('status: unknown option --hours (an option of report)');
    const missing = await runCli(['report']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('report: missing APP');
    const hours = await runCli(['report', 'web', '--hours', 'many', '--url', 'http://127.0.0.1:9']);
    expect(hours.code).toBe(2);
    expect(hours.stderr).toContain('--hours: must be a number above 0');
  });

  it('check-config and render refuse an app the daemon would not write, naming it (exit 1)', async () => {
    const path = await write(
      'all-backup.yaml',
      sidecarYaml({
        apps: { web: { backends: ['127.0.0.1:8001'] }, spare: { backends: [{ address: '127.0.0.1:8002', backup: true }] } },
        nginx: { output_path: scratch.at('all-backup.conf'), config_path: scratch.at('nginx.conf'), binary: '/nonexistent/nginx' },
      }),
    );
    const check = await runCli(['check-config', '--config', path]);
    expect(check.code).toBe(1);
    expect(check.stdout).toBe('');
    expect(check.stderr).toContain('apps.spare: the daemon would not write this upstream: every server is a backup');
    const render = await runCli(['render', '--config', path]);
    expect(render.code).toBe(1);
    // What the daemon writes: the app as its placeholder, every other app as configured.
    expect(render.stdout).toContain('upstream web {\n    server 127.0.0.1:8001');
    expect(render.stdout).toMatch(/upstream spare \{\n(.*\n)*?\s+server 127\.0\.0\.1:9 down;/);
    expect(render.stderr).toContain('apps.spare: the daemon would not write this upstream');
  });

  it('check-config and render refuse two apps nginx would take for one (web and WEB), naming the second', async () => {
    const path = await write('case.yaml', sidecarYaml({ apps: { web: { backends: ['127.0.0.1:8001'] }, WEB: { backends: ['127.0.0.1:8002'] } } }));
    for (const command of ['check-config', 'render']) {
      const { code, stdout, stderr } = await runCli([command, '--config', path]);
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toContain('apps.WEB: is the same upstream name as apps.web to nginx, which ignores case');
    }
  });

  it('check-config warns about a missing nginx binary, main config and output directory, and still exits 0', async () => {
    const path = await write(
      'no-nginx.yaml',
      sidecarYaml({
        apps: { web: { backends: ['127.0.0.1:8001'] } },
        nginx: { binary: scratch.at('no-nginx'), config_path: scratch.at('no-nginx.conf'), output_path: join(scratch.at('no-dir'), 'upstreams.conf') },
      }),
    );
    const { code, stdout, stderr } = await runCli(['check-config', '--config', path]);
    expect(code).toBe(0);
    expect(stdout).toContain('valid (1 apps, 1 backends)');
    expect(stderr).toContain(`warning: nginx.binary: "${scratch.at('no-nginx')}" not found`);
    expect(stderr).toContain(`warning: nginx.config_path: "${scratch.at('no-nginx.conf')}" does not exist`);
    expect(stderr).toContain(`warning: nginx.output_path: directory "${scratch.at('no-dir')}" does not exist`);
  });

  it('status and report ask a sidecar by --url without a config; report reads the store file once none runs', async () => {
    const backend = await startBackend('cli-report-1');
    const adminPort = await freePort();
    const adminUrl = `http://127.0.0.1:${adminPort}`;
    const store = scratch.at('report.db');
    const path = await write(
      'report.yaml',
      sidecarYaml({
        apps: { web: { backends: [backend.address], health: { initial_delay_seconds: 0, period_seconds: 1, timeout_seconds: 0.5 } } },
        nginx: { output_path: scratch.at('report-upstreams.conf'), pid_path: scratch.at('report-nginx.pid'), validate: false },
        store: { enabled: true, path: store, flush_interval_seconds: 1 },
        admin: { listen: `127.0.0.1:${adminPort}` },
      }),
    );
    const sidecar = await startSidecarProcess(path, adminUrl);
    try {
      await waitFor(async () => (await sidecar.metric('orchestry_probes_total', { app: 'web' })) >= 2, { what: '2 probes' });
      const status = await runCli(['status', '--url', adminUrl]);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(new RegExp(`^web\\s+${backend.address.replace(/\./g, '\\.')}\\s+healthy`, 'm'));
      const live = await runCli(['report', 'web', '--url', adminUrl, '--json', '--hours', '1']);
      expect(live.code).toBe(0);
      expect(JSON.parse(live.stdout)).toMatchObject({ app_name: 'web' });
    } finally {
      expect(await sidecar.stop()).toBe(0);
      await backend.close();
    }
    const stopped = await runCli(['report', 'web', '--config', path, '--json', '--hours', '1']);
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toContain(`no sidecar answers at ${adminUrl}`);
    expect(stopped.stderr).toContain(`reading the store file ${store}`);
    expect(JSON.parse(stopped.stdout)).toMatchObject({ app_name: 'web' });
    expect((JSON.parse(stopped.stdout) as { total_checks: number }).total_checks).toBeGreaterThanOrEqual(2);
    const table = await runCli(['report', 'web', '--store', store]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^web: last 24 h/);
    const unknown = await runCli(['report', 'shop', '--store', store]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`orchestry-sidecar: no history of app "shop" in ${store}\n`);
    const nobody = await runCli(['status', '--url', adminUrl]);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toContain(`no sidecar answers at ${adminUrl}/api/v1/apps`);
  });

  it('says in one line that the Node on PATH is too old, instead of a dependency crashing', async () => {
    const oldNode = '/usr/bin/node';
    const version = await new Promise<string>((resolve, reject) =>
      execFile(oldNode, ['--version'], (err, stdout) => (err ? reject(err) : resolve(stdout.trim()))),
    );
    expect(version).toMatch(/^v20\./); // the machine's own Node, older than package.json's engines
    const { code, stdout, stderr } = await runCli(['--version'], { node: oldNode });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe(`orchestry-sidecar: Node.js 22.19 or newer is required (package.json engines ">=22.19"); this is Node.js ${version.slice(1)}\n`);
  });
});
