/**
 * State that survives a restart, with real parts: the built CLI as a child process killed with
 * SIGKILL mid-incident and started again on the same SQLite file, a private nginx, loopback
 * backends, real containers for recovery, and a loopback webhook receiver for alerts.
 *
 * The incident: backend 2 of a file app stops listening (ejected, breaker open for 120 s); a
 * container that never gets healthy uses up its app's recovery budget (1 disruptive action), so
 * a third replica killed next is not recreated; a webhook receiver is down, so the alert for backend 2 stays undelivered. Then the sidecar is
 * killed, backend 2 comes back, and a new sidecar starts. Without the store it would route to
 * backend 2 at once (its first probe passes), restart the container again and forget the alert;
 * the last case shows exactly that with an empty database.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { ensureTestImages } from '../helpers/docker-images.js';
import { removeTestContainers, requireDocker, runContainer } from '../helpers/docker.js';
import { nginxConf, nginxPaths, nginxSection, sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { launchNginx, makeNginxDir, serverInFile } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type BackendJson, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = 'state-restart';
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const run = promisify(execFile);

interface RecoveryJson {
  apps: Array<{ app: string; budget_used: number; budget: number }>;
  instances: Array<{ instance: string; app: string; actions_in_window: number; not_before: string | null }>;
}

let dir: string;
let nginx: { pid: number; stop(): Promise<void> };
let nginxPort: number;
let adminPort: number;
let webhookPort: number;
let configPath: string;
let outputPath: string;
let dbPath: string;
let backends: TestBackend[];
let failing: Dockerode.Container;
let failingName: string;
let failingPort: number;
/** A third replica of the container app, killed mid-incident to ask recovery for a second action. */
let spare: { container: Dockerode.Container; port: number };
let sidecar: SidecarProcess | null = null;
let webhook: Server | null = null;
const received: Array<{ status: string; alert: { backend: string; failure_type: string } }> = [];

function yaml(): string {
  return sidecarYaml({
    apps: {
      'sr-file': {
        backends: backends.map((b) => `127.0.0.1:${b.port}`),
        health: { path: '/health', period_seconds: 1.5, timeout_seconds: 1, failure_threshold: 2, success_threshold: 1, initial_delay_seconds: 0 },
      },
    },
    docker: { enabled: true, address_mode: 'host', host_address: '127.0.0.1', startup_grace_seconds: 1 },
    recovery: {
      mode: 'on',
      budget_per_app: 1,
      budget_window_seconds: 600,
      backoff_min_seconds: 60,
      backoff_max_seconds: 600,
      stop_timeout_seconds: 1,
      // Lets the killed spare's recreate reach the budget rule: while the failing replica
      // recovers, the capacity rule (at most half the replicas at once) would refuse it first.
      max_unavailable_fraction: 1,
    },
    breaker: { failure_threshold: 2, recovery_timeout_seconds: 120 },
    store: { path: dbPath, flush_interval_seconds: 0.2 },
    alerting: {
      enabled: true,
      receivers: { hook: { type: 'webhook', url: `http://127.0.0.1:${webhookPort}/alerts`, timeout_seconds: 1 } },
      routes: [{ receivers: ['hook'] }],
      retry_min_seconds: 0.2,
      retry_max_seconds: 0.5,
    },
    nginx: nginxSection(dir, { coalesce_min_wait_seconds: 0.05 }),
    admin: { listen: `127.0.0.1:${adminPort}` },
    // The planner's decisions (a refusal for the budget) are logged at debug.
    logging: { level: 'debug' },
  });
}

async function start(env: Record<string, string> = {}): Promise<SidecarProcess> {
  sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`, { env });
  return sidecar;
}

async function backendJson(port: number): Promise<BackendJson | undefined> {
  return (await sidecar!.backends('sr-file')).find((b) => b.address === `127.0.0.1:${port}`);
}

const fileState = (port: number) => serverInFile(outputPath, port);

/** What the store's file holds now: read-only, beside the running sidecar's writer (WAL). */
function stored(): { states: Map<string, string>; alerts: string[] } {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const states = db.prepare('SELECT key, json FROM state').all() as Array<{ key: string; json: string }>;
    const alerts = db.prepare('SELECT json FROM alerts').all() as Array<{ json: string }>;
    return { states: new Map(states.map((r) => [r.key, r.json])), alerts: alerts.map((r) => r.json) };
  } finally {
    db.close();
  }
}

async function recovery(): Promise<RecoveryJson> {
  return (await sidecar!.api<RecoveryJson>('/api/v1/recovery')).body;
}

async function restartsOf(): Promise<number> {
  const { body } = await sidecar!.api<{ events: Array<{ data: { strategy: string } }> }>('/api/v1/events?kind=recovery&app=sr-budget&limit=1000');
  return body.events.filter((e) => e.data.strategy === 'restart_container').length;
}

function startWebhook(): Promise<void> {
  webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as (typeof received)[number]);
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) => webhook!.listen(webhookPort, '127.0.0.1', resolve));
}

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  const image = (await ensureTestImages()).nodeApp;
  dir = await makeNginxDir();
  [nginxPort, adminPort, webhookPort] = [await freePort(), await freePort(), await freePort()];
  configPath = join(dir, 'sidecar.yaml');
  outputPath = nginxPaths(dir).outputPath;
  dbPath = join(dir, 'state', 'orchestry.db');
  backends = [await startBackend('b1'), await startBackend('b2'), await startBackend('b3')];
  await backends[1]!.stop();
  await writeFile(configPath, yaml());
  // nginx needs the upstream its server names to start; the sidecar writes the real file.
  await writeFile(outputPath, 'upstream sr-file { server 127.0.0.1:9; }\n');
  await writeFile(
    nginxPaths(dir).configPath,
    nginxConf({ dir, http: [`server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://sr-file; } }`] }),
  );
  nginx = await launchNginx({ dir, probePort: nginxPort });
  // Two replicas of a container app; one never passes its health check (HEALTH=fail survives restarts).
  const labels = (port: number) => ({
    'orchestry.enable': 'true',
    'orchestry.app': 'sr-budget',
    'orchestry.port': String(port),
    'orchestry.health.path': '/health',
    'orchestry.health.period_seconds': '1.5',
    'orchestry.health.timeout_seconds': '1',
    'orchestry.health.failure_threshold': '2',
    'orchestry.health.success_threshold': '1',
    'orchestry.health.initial_delay_seconds': '0',
  });
  const [okPort, sparePort] = [await freePort(), await freePort()];
  failingPort = await freePort();
  failingName = `${SUITE}-${process.pid}-fail`;
  await runContainer({ image, suite: SUITE, name: `${SUITE}-${process.pid}-ok`, env: { PORT: String(okPort) }, labels: labels(okPort) });
  failing = await runContainer({ image, suite: SUITE, name: failingName, env: { PORT: String(failingPort), HEALTH: 'fail' }, labels: labels(failingPort) });
  spare = {
    container: await runContainer({ image, suite: SUITE, name: `${SUITE}-${process.pid}-spare`, env: { PORT: String(sparePort) }, labels: labels(sparePort) }),
    port: sparePort,
  };
}, 180_000);

afterAll(async () => {
  if (sidecar && sidecar.child.exitCode === null) await sidecar.stop();
  await nginx?.stop();
  await removeTestContainers(SUITE);
  await Promise.all((backends ?? []).map((b) => b.close()));
  await new Promise((r) => (webhook ? webhook.close(r) : r(undefined)));
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('state that survives a sidecar restart (real process, real SQLite file)', () => {
  let beforeCrash: { notBefore: string | null; startedAt: string; file: string };

  it('mid-incident: backend 2 ejected with its breaker open, the budget used, the alert undelivered', async () => {
    await start();
    const b2 = backends[1]!;
    await waitFor(async () => (await backendJson(b2.port))?.breaker === 'open' && (await fileState(b2.port)) === 'down', {
      what: 'backend 2 ejected with its breaker open',
    }).catch(async (e) => { console.log('DEBUG', JSON.stringify(await backendJson(b2.port)), await readFile(outputPath,'utf8'), JSON.stringify(sidecar!.logs().filter(l => l.level !== 20).slice(-25).map(l => l.msg + ' ' + (l.err ?? '') + (l.backend ?? '')))); throw e; });
    await waitFor(async () => (await restartsOf()) === 1, { what: 'the failing container restarted once', timeoutMs: 30_000 });
    const r = await waitFor(
      async () => {
        const rec = await recovery();
        return rec.apps.find((a) => a.app === 'sr-budget')?.budget_used === 1 ? rec : null;
      },
      { what: 'the recovery budget of sr-budget used' },
    );
    const instance = r.instances.find((i) => i.instance === failingName);
    expect(instance).toMatchObject({ app: 'sr-budget', actions_in_window: 1 });
    expect(instance!.not_before).not.toBeNull();
    // The receiver is down: the alert is firing, its deliveries failing.
    await waitFor(
      async () => {
        const { body } = await sidecar!.api<{ alerts: Array<{ backend: string }>; receivers: Record<string, { failed: number }> }>('/api/v1/alerts');
        return body.alerts.some((a) => a.backend === `sr-file/127.0.0.1:${b2.port}`) && (body.receivers.hook?.failed ?? 0) > 0;
      },
      { what: 'an alert for backend 2 whose delivery failed' },
    );
    expect(received).toEqual([]);
    // Its restart stays the only one: the budget refuses the app's next disruptive action. (The
    // failing container itself asks for none: its breaker is open, so it is not probed for 120 s.)
    // The spare replica crashing now (killed outside the Engine: `docker kill` would be asked
    // for, no failure) is a container_stopped failure recovery would recreate.
    process.kill((await spare.container.inspect()).State.Pid, 'SIGKILL');
    await waitFor(
      () => sidecar!.logs().find((l) => l.msg === 'recovery decision' && l.app === 'sr-budget' && String(l.reason).startsWith('recovery budget exhausted')),
      { what: 'the recreate of the killed replica refused for the budget' },
    );
    // The file as the crash leaves it: the killed replica gone, the restarted one failing again.
    await waitFor(async () => (await fileState(spare.port)) === 'absent' && (await fileState(failingPort)) === 'down', {
      what: 'the killed replica out of the file and the restarted one down',
    });
    expect(await restartsOf()).toBe(1);
    beforeCrash = {
      notBefore: instance!.not_before,
      startedAt: (await failing.inspect()).State.StartedAt,
      file: await readFile(outputPath, 'utf8'),
    };
    // Crash only once the file holds what the new process must restore.
    await waitFor(
      () => {
        const { states, alerts } = stored();
        const b2State = states.get(`backend:sr-file/127.0.0.1:${b2.port}`);
        return (
          b2State !== undefined &&
          (JSON.parse(b2State) as { breaker: { status: string } }).breaker.status === 'open' &&
          (states.get('planner') ?? '').includes(`"notBefore":${Date.parse(beforeCrash.notBefore!)}`) &&
          alerts.some((a) => a.includes(`sr-file/127.0.0.1:${b2.port}`))
        );
      },
      { what: 'breaker, recovery budget and alert written to the store' },
    );
    sidecar!.child.kill('SIGKILL');
    await new Promise((r) => sidecar!.child.once('exit', r));
  }, 90_000);

  it('after SIGKILL and a new start: still ejected while it passes probes, breaker open, budget and backoff kept, the alert delivered', async () => {
    const b2 = backends[1]!;
    await b2.resume(); // it would pass its very next probe
    await startWebhook();
    await start();
    // The first view of it the new process gives is the restored one.
    const view = await waitFor(() => backendJson(b2.port), { what: 'backend 2 known to the new sidecar' });
    expect(view).toMatchObject({ health: 'unhealthy', breaker: 'open', ejected: true });
    // For two probe periods it stays out (the breaker waits out its 120 s, so it is not even
    // probed): until backends 1 and 3, on the same period, have each been probed three more
    // times, the file nginx reads never routes to it, and is what it was before the crash.
    const others = [backends[0]!, backends[2]!];
    const probesOf = (b: TestBackend) => sidecar!.metric('orchestry_probes_total', { app: 'sr-file', backend: `127.0.0.1:${b.port}` });
    const from = await Promise.all(others.map(probesOf));
    const seen = new Set<string>();
    await waitFor(
      async () => {
        seen.add(await fileState(b2.port));
        return (await Promise.all(others.map(probesOf))).every((n, i) => n >= from[i]! + 3);
      },
      { what: 'three more probes of backends 1 and 3', intervalMs: 50 },
    );
    seen.add(await fileState(b2.port));
    expect([...seen]).toEqual(['down']);
    expect(await backendJson(b2.port)).toMatchObject({ breaker: 'open', ejected: true });
    expect(await readFile(outputPath, 'utf8')).toBe(beforeCrash.file);

    const r = await recovery();
    expect(r.apps.find((a) => a.app === 'sr-budget')).toMatchObject({ budget_used: 1, budget: 1 });
    expect(r.instances.find((i) => i.instance === failingName)).toMatchObject({ actions_in_window: 1, not_before: beforeCrash.notBefore });
    // The container keeps failing its checks, and is not restarted again.
    expect(await restartsOf()).toBe(0); // this process has taken no action
    expect((await failing.inspect()).State.StartedAt).toBe(beforeCrash.startedAt);

    // The alert that could not be delivered before the crash reaches the receiver now.
    const kept = await waitFor(() => received.find((n) => n.status === 'firing' && n.alert.backend === `sr-file/127.0.0.1:${b2.port}`), {
      what: 'the kept alert delivered',
    });
    expect(kept.alert.failure_type).toBe('port_not_listening');
  }, 60_000);

  it('reports the history from before the crash, as a table and as JSON', async () => {
    const b2 = backends[1]!;
    const env = { ...process.env, ORCHESTRY_CONFIG: '' };
    const json = JSON.parse((await run(process.execPath, [CLI, 'report', 'sr-file', '--config', configPath, '--json', '--hours', '1'], { env })).stdout) as {
      app_name: string;
      total_checks: number;
      failed_checks: number;
      failure_breakdown: Record<string, number>;
      ejections: number;
      generated_at: string;
      backends: Array<{ backend_id: string; failed_checks: number; error_breakdown: Record<string, number> }>;
    };
    expect(json.app_name).toBe('sr-file');
    const row = json.backends.find((b) => b.backend_id === `sr-file/127.0.0.1:${b2.port}`)!;
    expect(row.failed_checks).toBeGreaterThanOrEqual(2);
    expect(row.error_breakdown.connection_refused).toBe(row.failed_checks);
    expect(json.failure_breakdown.port_not_listening).toBeGreaterThanOrEqual(2);
    // Health -> unhealthy and breaker -> open, and the restart in between: one outage.
    expect(json.ejections).toBe(1);
    expect(json.generated_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const table = (await run(process.execPath, [CLI, 'report', 'sr-file', '--config', configPath], { env })).stdout;
    expect(table).toMatch(/^sr-file: last 24 h /);
    expect(table).toContain(`sr-file/127.0.0.1:${b2.port}`);
    expect(table).toMatch(/errors: connection_refused \d+/);
    expect(table).toContain('breaker closed -> open');

    const bad = await run(process.execPath, [CLI, 'report', 'sr-file', '--config', configPath, '--hours', 'x'], { env }).catch((e: { code: number; stderr: string }) => e);
    // A bad option value is a usage error (exit 2), like an unknown option.
    expect(bad).toMatchObject({ code: 2, stderr: 'orchestry-sidecar: report: --hours: must be a number above 0 and at most 8784 (got "x")\n(see orchestry-sidecar report --help)\n' });
  }, 30_000);

  it('with an empty database instead, the same backend is routed at once (what the store prevents)', async () => {
    await sidecar!.stop();
    const b2 = backends[1]!;
    await start({ ORCHESTRY_STORE_PATH: join(dir, 'state', 'empty.db') });
    await waitFor(async () => (await fileState(b2.port)) === 'up', { what: 'backend 2 routed by a sidecar without its state' });
    await sidecar!.stop();
  }, 30_000);

  it('a corrupt database: routing goes on, the store says degraded, reports answer 503, the file is untouched', async () => {
    const corrupt = join(dir, 'state', 'corrupt.db');
    await writeFile(corrupt, 'this is not a SQLite database, and must stay as it is\n'.repeat(100));
    const hash = async () => createHash('sha256').update(await readFile(corrupt)).digest('hex');
    const before = await hash();
    await start({ ORCHESTRY_STORE_PATH: corrupt });
    await waitFor(async () => (await sidecar!.api('/readyz')).status === 200, { what: 'ready with a corrupt store' });
    await waitFor(async () => (await fileState(backends[1]!.port)) === 'up', { what: 'routing with state in memory' });
    const { body } = await sidecar!.api<{ state_store: { state: string; error: string } }>('/api/v1/apps');
    expect(body.state_store.state).toBe('degraded');
    expect(body.state_store.error).toContain(`${corrupt}: file is not a database`);
    expect(await sidecar!.metric('orchestry_store_up')).toBe(0);
    const report = await sidecar!.api<{ error: string }>('/api/v1/apps/sr-file/report');
    expect(report.status).toBe(503);
    expect(report.body.error).toContain('file is not a database');
    expect(sidecar!.logs().some((l) => l.msg === 'state store unavailable: routing goes on with state in memory only')).toBe(true);
    await sidecar!.stop();
    expect(await hash()).toBe(before);
  }, 30_000);
});
