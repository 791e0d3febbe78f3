/**
 * The whole pipeline with real parts: the built CLI as a child process, a private nginx, and
 * real HTTP backends on loopback. Two apps side by side: `web` (HTTP checks) and `api` (TCP).
 */
import { execFile } from 'node:child_process';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { frontNginxConf, nginxPaths, nginxSection, sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { answeredBy, launchNginx, makeNginxDir, nginxLogCounts, nginxSettled } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const DEFAULT_TEMPLATE = fileURLToPath(new URL('../../templates/upstreams.conf.hbs', import.meta.url));
const PERIOD = 2;
const FAILURE_THRESHOLD = 2;
/** The bound for an ejection to reach the file: failure_threshold × period + 1 s. */
const EJECT_WITHIN_MS = (FAILURE_THRESHOLD * PERIOD + 1) * 1000;

let dir: string;
let nginx: { pid: number; stop(): Promise<void> };
let nginxPort: number;
let sidecar: SidecarProcess;
let web: TestBackend[];
let api: TestBackend[];
let extra: TestBackend;
let configPath: string;
let templatePath: string;
let outputPath: string;

function sidecarConfig(webBackends: TestBackend[], adminPort: number): string {
  const health = { initial_delay_seconds: 0, period_seconds: PERIOD, timeout_seconds: 1, failure_threshold: FAILURE_THRESHOLD };
  return sidecarYaml({
    apps: {
      web: { backends: webBackends.map((b) => b.address), health: { path: '/health', ...health, success_threshold: 1 } },
      api: { backends: api.map((b) => b.address), health: { protocol: 'TCP', ...health } },
    },
    breaker: { recovery_timeout_seconds: 3 },
    nginx: nginxSection(dir, { template_path: templatePath, coalesce_min_wait_seconds: 0.1, coalesce_max_wait_seconds: 1 }),
    admin: { listen: `127.0.0.1:${adminPort}` },
    logging: { level: 'debug' },
  });
}

const reloadsLogged = async () => (await nginxLogCounts(nginxPaths(dir).errorLog)).reloads;

/**
 * Waits until nginx has reloaded since `before` reloads and the replaced workers are gone. The
 * sidecar renames the file into place before `nginx -t` and the reload, so a changed file alone
 * does not mean nginx routes by it yet.
 */
async function reloadedSince(before: number) {
  await waitFor(async () => (await reloadsLogged()) > before, { what: 'nginx reload' });
  // Every worker a reload replaced has exited (old workers still hold the old upstreams).
  await nginxSettled(nginxPaths(dir).errorLog);
}

/** Sends `n` requests through nginx for `host`; returns how many each backend answered. */
const spread = (host: string, n: number) => answeredBy(nginxPort, n, { host });

const upstreamsFile = () => readFile(outputPath, 'utf8');
/** The upstream block of one app in the generated file. */
async function block(app: string): Promise<string> {
  const text = await upstreamsFile();
  const m = new RegExp(`upstream ${app} \\{[\\s\\S]*?\\n\\}`).exec(text);
  return m ? m[0] : '';
}
/** One backend as /api/v1/apps/{app} shows it. */
async function backendOf(app: string, b: TestBackend): Promise<{ consecutive_successes: number } | undefined> {
  const { body } = await sidecar.api<{ backends: Array<{ address: string; consecutive_successes: number }> }>(`/api/v1/apps/${app}`);
  return body.backends.find((x) => x.address === b.address);
}
const isDown = async (app: string, b: TestBackend) => new RegExp(`server ${b.address}[^;]* down;`).test(await block(app));

beforeAll(async () => {
  dir = await makeNginxDir();
  web = await Promise.all(['web-1', 'web-2', 'web-3'].map((n) => startBackend(n)));
  api = await Promise.all(['api-1', 'api-2', 'api-3'].map((n) => startBackend(n)));
  extra = await startBackend('web-4');
  nginxPort = await freePort();
  const adminPort = await freePort();
  configPath = join(dir, 'sidecar.yaml');
  templatePath = join(dir, 'upstreams.conf.hbs');
  outputPath = nginxPaths(dir).outputPath;
  await copyFile(DEFAULT_TEMPLATE, templatePath);
  await writeFile(configPath, sidecarConfig(web, adminPort));
  await writeFile(
    nginxPaths(dir).configPath,
    frontNginxConf(dir, [
      'proxy_next_upstream error timeout http_502 http_503 http_504;',
      `server { listen 127.0.0.1:${nginxPort} default_server; server_name web.test; location / { proxy_pass http://web; } }`,
      `server { listen 127.0.0.1:${nginxPort}; server_name api.test; location / { proxy_pass http://api; } }`,
    ]),
  );
  // nginx cannot start without its upstreams: `render` produces the first file, as a user would.
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'render', '--config', configPath]);
  await writeFile(outputPath, stdout);
  nginx = await launchNginx({ dir, probePort: nginxPort });
  sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);
  await waitFor(async () => (await sidecar.api('/readyz')).status === 200, { what: 'sidecar ready' });
  // Every backend has had its first verdict.
  await waitFor(
    async () => {
      const { body } = await sidecar.api<{ apps: Array<{ backends: Array<{ health: string }> }> }>('/api/v1/apps');
      return body.apps.every((a) => a.backends.every((b) => b.health === 'healthy'));
    },
    { what: 'all backends healthy' },
  );
});

afterAll(async () => {
  await sidecar?.stop();
  await nginx?.stop();
  for (const b of [...(web ?? []), ...(api ?? []), extra].filter(Boolean)) await b.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('end to end with a real nginx', () => {
  it('routes to every backend of both apps at first', async () => {
    const webSpread = await spread('web.test', 30);
    expect(Object.keys(webSpread).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    const apiSpread = await spread('api.test', 30);
    expect(Object.keys(apiSpread).sort()).toEqual(['api-1', 'api-2', 'api-3']);
    const { body } = await sidecar.api<{ apps: Array<{ name: string; backends: Array<Record<string, unknown>> }> }>('/api/v1/apps');
    expect(body.apps.map((a) => a.name)).toEqual(['web', 'api']);
    expect(body.apps[0]!.backends[0]).toMatchObject({ health: 'healthy', breaker: 'closed', ejected: false });
  });

  it('ejects a backend whose health check fails, with one reload, and nginx stops sending it traffic', async () => {
    const reloadsBefore = await sidecar.metric('orchestry_nginx_reloads_total', { result: 'success' });
    const nginxReloadsBefore = await reloadsLogged();
    web[1]!.setMode('fail');
    await waitFor(() => isDown('web', web[1]!), { timeoutMs: EJECT_WITHIN_MS, intervalMs: 20, what: 'web-2 marked down' });
    expect(await isDown('web', web[0]!)).toBe(false);
    expect(await isDown('web', web[2]!)).toBe(false);
    await reloadedSince(nginxReloadsBefore);
    expect(await sidecar.metric('orchestry_nginx_reloads_total', { result: 'success' })).toBe(reloadsBefore + 1);
    expect(await reloadsLogged()).toBe(nginxReloadsBefore + 1);

    const counts = await spread('web.test', 100);
    expect(counts['web-2']).toBeUndefined();
    expect((counts['web-1'] ?? 0) + (counts['web-3'] ?? 0)).toBe(100);
    expect(counts['web-1']).toBeGreaterThan(0);
    expect(counts['web-3']).toBeGreaterThan(0);

    const app = await sidecar.api<{ backends: Array<{ address: string; health: string; ejected: boolean; last_failure: { type: string } | null }> }>('/api/v1/apps/web');
    const b2 = app.body.backends.find((b) => b.address === web[1]!.address)!;
    expect(b2).toMatchObject({ health: 'unhealthy', ejected: true });
    expect(b2.last_failure?.type).toBe('health_check_failed');
    expect(await sidecar.metric('orchestry_backend_up', { app: 'web', backend: web[1]!.address })).toBe(0);
    expect(sidecar.logs().some((l) => l.msg === 'health healthy -> unhealthy' && l.backend === `web/${web[1]!.address}`)).toBe(true);
    const { body: ev } = await sidecar.api<{ events: Array<{ kind: string; backend: string | null; message: string }> }>('/api/v1/events?kind=transition');
    expect(ev.events.some((e) => e.backend === `web/${web[1]!.address}` && e.message === 'health healthy -> unhealthy')).toBe(true);
  });

  it('routes to the backend again once it heals', async () => {
    const before = await reloadsLogged();
    web[1]!.setMode('ok');
    await waitFor(async () => !(await isDown('web', web[1]!)), { timeoutMs: 15_000, what: 'web-2 back in the upstream' });
    await reloadedSince(before);
    // A reload begun for an earlier change can satisfy reloadedSince(): wait for this one to route.
    await waitFor(async () => (await spread('web.test', 8))['web-2'], { what: 'web-2 receiving traffic' });
  });

  it('ejects a TCP-checked backend that stops listening, and readmits it when it listens again', async () => {
    const before = await reloadsLogged();
    await api[2]!.stop();
    await waitFor(() => isDown('api', api[2]!), { timeoutMs: EJECT_WITHIN_MS, intervalMs: 20, what: 'api-3 marked down' });
    const app = await sidecar.api<{ backends: Array<{ address: string; last_failure: { type: string } | null }> }>('/api/v1/apps/api');
    expect(app.body.backends.find((b) => b.address === api[2]!.address)!.last_failure?.type).toBe('port_not_listening');
    await reloadedSince(before);
    const counts = await spread('api.test', 30);
    expect(counts['api-3']).toBeUndefined();
    expect((counts['api-1'] ?? 0) + (counts['api-2'] ?? 0)).toBe(30);
    await api[2]!.resume();
    await waitFor(async () => !(await isDown('api', api[2]!)), { timeoutMs: 15_000, what: 'api-3 readmitted' });
  });

  it('routes to a fourth backend added by editing the config file, without a restart, with one render and one reload', async () => {
    const pid = sidecar.child.pid;
    const adminPort = Number(new URL(sidecar.adminUrl).port);
    // Start from rest: every backend routed in the sidecar's view and in the file, nginx reloaded.
    await waitFor(
      async () => {
        const { body } = await sidecar.api<{ apps: Array<{ backends: Array<{ ejected: boolean; breaker: string }> }> }>('/api/v1/apps');
        const all = body.apps.flatMap((a) => a.backends);
        return all.every((b) => !b.ejected && b.breaker === 'closed') && !(await upstreamsFile()).includes(' down;');
      },
      { what: 'every backend routed' },
    );
    await nginxSettled(nginxPaths(dir).errorLog);
    const before = await reloadsLogged();
    const appliesBefore = await sidecar.metric('orchestry_nginx_applies_total');
    await writeFile(configPath, sidecarConfig([...web, extra], adminPort));
    await waitFor(async () => (await block('web')).includes(`server ${extra.address}`), { what: 'web-4 in the upstream' });
    await reloadedSince(before);
    // A reload begun for an earlier change can satisfy reloadedSince(): wait for this one to route.
    await waitFor(async () => (await spread('web.test', 8))['web-4'], { what: 'web-4 receiving traffic' });
    // Two probes of web-4 later (a period each, longer than the coalescing ceiling of 1 s), any
    // second render or reload the edit could cause would have happened.
    await waitFor(async () => ((await backendOf('web', extra))?.consecutive_successes ?? 0) >= 2, { what: 'two probes of web-4' });
    const events = (await sidecar.api<{ events: unknown[] }>('/api/v1/events?kind=nginx')).body;
    expect(await sidecar.metric('orchestry_nginx_applies_total'), JSON.stringify(events)).toBe(appliesBefore + 1);
    expect(await reloadsLogged()).toBe(before + 1);
    expect(sidecar.child.pid).toBe(pid);
    expect(sidecar.child.exitCode).toBeNull();
    expect(await sidecar.metric('orchestry_config_reloads_total', { result: 'success' })).toBeGreaterThanOrEqual(1);
  });

  it('keeps the running config when an edit is invalid', async () => {
    const before = await readFile(configPath, 'utf8');
    await writeFile(configPath, before.replace('timeout_seconds: 1', 'timeout_seconds: 10'));
    await waitFor(async () => (await sidecar.metric('orchestry_config_reloads_total', { result: 'failure' })) >= 1, {
      what: 'rejected config counted',
    });
    const rejected = sidecar.logs().find((l) => l.msg === 'configuration rejected; running configuration kept');
    expect(String(rejected?.err)).toContain('apps.web.health.timeout_seconds: must be less than period_seconds (got 10 >= 2)');
    expect((await block('web')).includes(`server ${extra.address}`)).toBe(true);
    expect((await sidecar.api('/readyz')).status).toBe(200);
    await writeFile(configPath, before);
  });

  it('renders every backend when all of an app are down (panic) and says so', async () => {
    for (const b of web) b.setMode('fail');
    extra.setMode('fail');
    await waitFor(async () => (await block('web')).includes('# panic'), { timeoutMs: 15_000, what: 'panic rendering' });
    const text = await block('web');
    expect(text).not.toContain(' down;');
    for (const b of [...web, extra]) expect(text).toContain(`server ${b.address}`);
    expect(await sidecar.metric('orchestry_upstream_panic', { app: 'web' })).toBe(1);
    expect(sidecar.logs().some((l) => l.level === 'error' && String(l.msg).includes('panic'))).toBe(true);
    for (const b of [...web, extra]) b.setMode('ok');
    await waitFor(async () => !(await block('web')).includes('# panic') && !(await block('web')).includes(' down;'), {
      timeoutMs: 20_000,
      what: 'panic over',
    });
  });

  it('keeps nginx serving the last good file and fails /readyz when the template is broken', async () => {
    const good = await readFile(templatePath, 'utf8');
    const lastGood = await upstreamsFile();
    await writeFile(templatePath, good.replace('{{/each}}', '{{/eahc}}'));
    await waitFor(async () => (await sidecar.api('/readyz')).status === 503, { what: '/readyz failing' });
    const { body } = await sidecar.api<{ reasons: string[] }>('/readyz');
    expect(body.reasons.join(' ')).toMatch(/template/);
    expect(await upstreamsFile()).toBe(lastGood);
    expect((await spread('web.test', 10))['status 502']).toBeUndefined();
    await writeFile(templatePath, good);
    await waitFor(async () => (await sidecar.api('/readyz')).status === 200, { what: '/readyz ok again' });
  });

  it('rolls back a rendering that nginx -t rejects and keeps serving', async () => {
    const good = await readFile(templatePath, 'utf8');
    const lastGood = await upstreamsFile();
    const reloadsBefore = await reloadsLogged();
    await writeFile(templatePath, good.replace('upstream {{name}} {', 'upstream {{name}} {\n    not_a_directive on;'));
    await waitFor(async () => (await sidecar.api('/readyz')).status === 503, { what: '/readyz failing' });
    const { body } = await sidecar.api<{ reasons: string[] }>('/readyz');
    expect(body.reasons.join(' ')).toContain('validate');
    expect(body.reasons.join(' ')).toContain('not_a_directive');
    expect(await upstreamsFile()).toBe(lastGood);
    expect(await reloadsLogged()).toBe(reloadsBefore);
    expect(await sidecar.metric('orchestry_degraded')).toBe(1);
    expect(Object.keys(await spread('web.test', 10)).every((k) => k.startsWith('web-'))).toBe(true);
    await writeFile(templatePath, good);
    await waitFor(async () => (await sidecar.api('/readyz')).status === 200, { what: '/readyz ok again' });
    expect(await sidecar.metric('orchestry_degraded')).toBe(0);
  });

  it('exposes metrics that promtool accepts', async () => {
    const { body } = await sidecar.api<string>('/metrics');
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) =>
        err ? reject(new Error(`promtool: ${stderr || stdout || err.message}`)) : resolve({ stdout, stderr }),
      );
      child.stdin!.end(body);
    });
    expect(stdout + stderr).toBe('');
    expect(body).toMatch(/orchestry_probes_total\{[^}]*result="success"/);
  });

  it('stops cleanly on SIGTERM', async () => {
    const code = await sidecar.stop();
    expect(code).toBe(0);
    expect(sidecar.logs().some((l) => l.msg === 'orchestry-sidecar stopped')).toBe(true);
  });
});
