/**
 * Self-healing end to end with real parts: the built CLI as a child process, discovering real
 * containers of the local test image (host networking, app on 127.0.0.1:$PORT) by their
 * `orchestry.*` labels, a private nginx in front of them, and recovery acting through the real
 * Docker Engine. Each case uses its own app, so budgets, backoff and the one-action-in-flight rule
 * of one case never hold up another.
 *
 * nginx routes `Host: <app>.test` to upstream `<app>` and reports the upstream it used in
 * `X-Upstream`. `proxy_next_upstream off`: a request sent to a backend that is going away fails
 * instead of being retried elsewhere, so a missing drain shows as an error.
 */
import { rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestImages } from '../helpers/docker-images.js';
import { controlApp, docker, isGone, removeTestContainers, requireDocker, runTestApp } from '../helpers/docker.js';
import { frontNginxConf, nginxPaths, nginxSection, sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { httpGet, launchNginx, makeNginxDir, nginxSettled, serverInFile } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type BackendJson, type SidecarProcess } from '../helpers/sidecar-process.js';
import { sampleEvery, waitFor } from '../helpers/wait.js';

const SUITE = 'recovery-e2e';
/** Every test app's health check, as its orchestry.health.* labels. */
const HEALTH = { path: '/health', period_seconds: 1.5, timeout_seconds: 1, failure_threshold: 2, success_threshold: 1, initial_delay_seconds: 0 };
/** The sidecar's recovery section but its mode. */
const RECOVERY = {
  max_restarts: 2, restart_window_seconds: 60, backoff_min_seconds: 1, backoff_max_seconds: 4, budget_per_app: 5,
  budget_window_seconds: 60, max_replicas: 3, scale_in_after_seconds: 5, stop_timeout_seconds: 2,
};
const MAX_RESPONSE_TIME_MS = 300;
/** Above MAX_RESPONSE_TIME_MS, well within the probe timeout (1 s): slow, but passing. */
const SLOW_MS = 600;
const GRACE_S = 3;
/** How long the never-healthy container of the budget case is watched (< the budget window). */
const OBSERVE_S = 50;
const DISRUPTIVE = new Set(['restart_container', 'recreate_container', 'replace_instance', 'scale_out', 'scale_in']);

interface App {
  app: string;
  name: string;
  port: number;
  container: Dockerode.Container;
}

interface RecoveryEvent {
  seq: number;
  at: string;
  app: string | null;
  backend: string | null;
  message: string;
  data: {
    strategy: string;
    failure_type: string | null;
    container: string | null;
    new_container?: string;
    ok: boolean;
    dry_run: boolean;
    error?: string;
    reason: string;
    duration_ms: number;
  };
}

let dir: string;
let nginx: { pid: number; stop(): Promise<void> };
let nginxPort: number;
let adminPort: number;
let sidecar: SidecarProcess;
let image: string;
let configPath: string;
let outputPath: string;
/** The budget case's container runs from the start, so its observation overlaps the other cases. */
let budgetApp: App;
let budgetStartedAt: number;

function sidecarConfig(mode: 'on' | 'dry-run'): string {
  return sidecarYaml({
    // Every app comes from container labels; the YAML needs one app of its own.
    apps: { 're-static': { backends: [] } },
    docker: { enabled: true, address_mode: 'host', host_address: '127.0.0.1', startup_grace_seconds: GRACE_S },
    recovery: { mode, ...RECOVERY },
    breaker: { recovery_timeout_seconds: 2 },
    failure_detection: { max_response_time_ms: MAX_RESPONSE_TIME_MS },
    nginx: nginxSection(dir, { coalesce_min_wait_seconds: 0.05, coalesce_max_wait_seconds: 0.5 }),
    admin: { listen: `127.0.0.1:${adminPort}` },
    logging: { level: 'debug' },
  });
}

/** The test app as a labelled container on a free loopback port. */
async function startApp(app: string, opts: { env?: Record<string, string>; labels?: Record<string, string> } = {}): Promise<App> {
  const started = await runTestApp({
    image,
    suite: SUITE,
    app,
    graceMs: 300,
    ...(opts.env ? { env: opts.env } : {}),
    labels: {
      ...Object.fromEntries(Object.entries(HEALTH).map(([key, value]) => [`orchestry.health.${key}`, String(value)])),
      ...opts.labels,
    },
  });
  return { app, ...started };
}

/** Stops a case's container gracefully once its case is done: a stop asked for is no failure. */
async function quiet(name: string): Promise<void> {
  await docker
    .getContainer(name)
    .stop({ t: 2 })
    .catch(() => undefined);
}

async function backendAt(app: string, port: number): Promise<BackendJson | undefined> {
  return (await sidecar.backends(app)).find((b) => b.address === `127.0.0.1:${port}`);
}

async function recoveryEvents(app: string): Promise<RecoveryEvent[]> {
  const { body } = await sidecar.api<{ events: RecoveryEvent[] }>(`/api/v1/events?kind=recovery&app=${app}&limit=1000`);
  return body.events;
}

/** The first recovery event of `app` that `match` accepts, waiting for it. */
function recoveryEvent(app: string, match: (e: RecoveryEvent) => boolean, timeoutMs = 30_000): Promise<RecoveryEvent> {
  return waitFor(async () => (await recoveryEvents(app)).find(match), {
    timeoutMs,
    intervalMs: 50,
    what: `recovery event of ${app}`,
  });
}

/** How the generated upstreams file lists 127.0.0.1:port. */
const fileState = (port: number) => serverInFile(outputPath, port);

/** Until the backend is healthy, not ejected, and routed by the file nginx reads. */
async function waitRouted(app: string, port: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      const b = await backendAt(app, port);
      const file = await fileState(port);
      if (b?.health === 'healthy' && !b.ejected && file === 'up') return true;
      throw new Error(`file: ${file}, backend: ${JSON.stringify(b ?? null)}`);
    },
    { timeoutMs, intervalMs: 50, what: `${app} at 127.0.0.1:${port} routed` },
  );
}

/** Until nginx itself sends requests for `app` to 127.0.0.1:port (the file alone may not be loaded yet). */
async function routedByNginx(app: string, port: number): Promise<void> {
  await waitRouted(app, port);
  await waitFor(
    async () => {
      const r = await viaNginx(app);
      return r.status === 200 && r.upstream === `127.0.0.1:${port}`;
    },
    { intervalMs: 20, what: `nginx routing ${app} to 127.0.0.1:${port}` },
  );
  await nginxSettled(nginxPaths(dir).errorLog);
}

/** GET / through nginx for `app`; `upstream` is the backend nginx used. */
function viaNginx(app: string): Promise<{ status: number; upstream: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: nginxPort, path: '/', headers: { host: `${app}.test` }, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, upstream: String(res.headers['x-upstream'] ?? '') }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

/** Sends `n` requests through nginx, `parallel` at a time; counts answers by upstream (or status). */
async function spread(app: string, n: number, parallel = 1): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let left = n;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (left-- > 0) {
        const r = await viaNginx(app);
        const key = r.status === 200 ? r.upstream : `status ${r.status}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

/** Waits until Docker says the container has run longer than the startup grace (recovery leaves younger ones alone). */
async function pastGrace(c: Dockerode.Container): Promise<void> {
  const started = Date.parse((await c.inspect()).State.StartedAt);
  await waitFor(() => Date.now() >= started + GRACE_S * 1000 + 200, { intervalMs: 100, what: `${c.id} past its startup grace` });
}

/** Epoch ms of Docker's `kill` events for a container between two times (epoch ms). */
async function killTimes(id: string, sinceMs: number, untilMs: number): Promise<number[]> {
  const stream = (await docker.getEvents({
    since: Math.floor(sinceMs / 1000),
    until: Math.ceil(untilMs / 1000),
    filters: { container: [id], event: ['kill'] },
  })) as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => Math.floor((JSON.parse(l) as { timeNano: number }).timeNano / 1e6));
}

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  image = (await ensureTestImages()).nodeApp;
  dir = await makeNginxDir();
  nginxPort = await freePort();
  adminPort = await freePort();
  configPath = join(dir, 'sidecar.yaml');
  outputPath = nginxPaths(dir).outputPath;
  await writeFile(configPath, sidecarConfig('on'));
  // The sidecar writes the real file; nginx only needs one to start.
  await writeFile(outputPath, '# empty until the sidecar writes it\n');
  await writeFile(
    nginxPaths(dir).configPath,
    frontNginxConf(dir, [
      'proxy_next_upstream off;',
      'proxy_read_timeout 10s;',
      'server {',
      `  listen 127.0.0.1:${nginxPort};`,
      '  server_name ~^(?<app>[a-z0-9-]+)\\.test$;',
      '  add_header X-Upstream $upstream_addr always;',
      '  location / { proxy_pass http://$app; }',
      '}',
    ]),
  );
  nginx = await launchNginx({ dir, probePort: nginxPort });
  sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);
  await waitFor(async () => (await sidecar.api('/readyz')).status === 200, { what: 'sidecar ready' });
  budgetApp = await startApp('re-budget', { env: { HEALTH: 'fail' } });
  budgetStartedAt = Date.parse((await budgetApp.container.inspect()).State.StartedAt);
}, 180_000);

afterAll(async () => {
  // The sidecar first: it would take the removals below for failures and recover them.
  await sidecar?.stop();
  await nginx?.stop();
  // Recreated containers keep the suite label, and replicas recovery added are cloned with it.
  await removeTestContainers(SUITE);
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('self-healing with real containers, a real Docker Engine and a real nginx', () => {
  it('restarts a container whose health endpoint starts failing, through the API, and routes to it again once healthy', async () => {
    // Two replicas: with one, its ejection would leave none, and nginx would route to it anyway (panic).
    const [a, other] = [await startApp('re-restart'), await startApp('re-restart')];
    await Promise.all([waitRouted(a.app, a.port), waitRouted(a.app, other.port)]);
    await pastGrace(a.container);
    const before = await a.container.inspect();

    const failAt = Date.now();
    await controlApp(a.port, 'fail');
    // Ejected in the file nginx reads and in the API (the restart follows the ejection at once,
    // and a restarted container stays ejected until a probe passes again).
    await Promise.all([
      waitFor(async () => (await fileState(a.port)) === 'down', { intervalMs: 10, what: 'server marked down' }),
      waitFor(async () => (await backendAt(a.app, a.port))?.ejected === true, { intervalMs: 10, what: 'ejected in the API' }),
    ]);
    const restart = await recoveryEvent(a.app, (e) => e.data.strategy === 'restart_container');
    console.log(`[recovery-e2e] health failing -> first restart: ${Date.parse(restart.at) - failAt} ms (restart took ${restart.data.duration_ms} ms)`);
    expect(restart.data).toMatchObject({
      ok: true,
      dry_run: false,
      failure_type: 'health_check_failed',
      container: before.Id,
    });
    expect(restart.backend).toBe(`${a.app}/127.0.0.1:${a.port}`);

    const after = await a.container.inspect();
    expect(after.Id).toBe(before.Id);
    expect(after.State.StartedAt).not.toBe(before.State.StartedAt);
    expect(after.State.Running).toBe(true);

    // HEALTH resets to ok when the process starts again: readmitted, and nginx sends it traffic.
    await routedByNginx(a.app, a.port);
    expect((await spread(a.app, 10))[`127.0.0.1:${a.port}`]).toBeGreaterThan(0);
    const events = await recoveryEvents(a.app);
    expect(events.filter((e) => DISRUPTIVE.has(e.data.strategy)).map((e) => e.data.strategy)).toEqual(['restart_container']);
    expect(events.some((e) => e.data.strategy === 'remove_from_lb' && e.data.ok)).toBe(true);
    expect(await sidecar.metric('orchestry_recovery_actions_total', { app: a.app, strategy: 'restart_container', result: 'success' })).toBe(1);
    await Promise.all([quiet(a.name), quiet(other.name)]);
  });

  it('recreates a container that keeps failing after max_restarts restarts, with the same name and labels', async () => {
    // HEALTH=fail is in its environment: every restart comes back failing.
    const b = await startApp('re-recreate', { env: { HEALTH: 'fail' } });
    const before = await b.container.inspect();
    const recreate = await recoveryEvent(b.app, (e) => e.data.strategy === 'recreate_container', 45_000);
    expect(recreate.data).toMatchObject({ ok: true, dry_run: false, failure_type: 'health_check_failed', container: before.Id });
    const events = await recoveryEvents(b.app);
    const restartsBefore = events.filter((e) => e.seq < recreate.seq && e.data.strategy === 'restart_container');
    expect(restartsBefore).toHaveLength(RECOVERY.max_restarts);
    expect(restartsBefore.every((e) => e.data.ok)).toBe(true);

    const newId = recreate.data.new_container!;
    expect(newId).toBeTruthy();
    expect(newId).not.toBe(before.Id);
    const fresh = await docker.getContainer(b.name).inspect();
    expect(fresh.Id).toBe(newId);
    expect(fresh.State.Running).toBe(true);
    expect(fresh.Config.Labels).toEqual(before.Config.Labels);
    expect(fresh.Config.Env).toEqual(before.Config.Env);
    expect(fresh.HostConfig.NetworkMode).toBe('host');
    expect(await isGone(before.Id)).toBe(true);
    // The recreated container is discovered as the same backend.
    await waitFor(async () => (await backendAt(b.app, b.port))?.container?.id === newId.slice(0, 12), {
      what: 'backend bound to the recreated container',
    });
    await quiet(b.name);
  }, 90_000);

  it('recreates a container whose process is SIGKILLed outside the Engine (a crash), from Docker\'s die event', async () => {
    const c = await startApp('re-kill');
    await waitRouted(c.app, c.port);
    const before = await c.container.inspect();

    const killAt = Date.now();
    // Not `docker kill`: a kill asked through the API is deliberate and no failure (issue 11).
    process.kill(before.State.Pid, 'SIGKILL');
    await waitFor(async () => (await fileState(c.port)) !== 'up', { intervalMs: 5, what: 'killed backend out of nginx' });
    const ejectedMs = Date.now() - killAt;
    const failure = await waitFor(
      async () => {
        const { body } = await sidecar.api<{ events: Array<{ data: { failure_type: string; details?: { exitCode?: number } } }> }>(
          `/api/v1/events?kind=failure&app=${c.app}`,
        );
        return body.events.find((e) => e.data.failure_type === 'container_stopped');
      },
      { what: 'container_stopped failure' },
    );
    expect(failure.data.details?.exitCode).toBe(137);
    const action = await recoveryEvent(c.app, (e) => e.data.strategy === 'recreate_container' || e.data.strategy === 'replace_instance');
    console.log(
      `[recovery-e2e] SIGKILL (crash) -> out of nginx: ${ejectedMs} ms; -> ${action.data.strategy} done: ${Date.parse(action.at) + action.data.duration_ms - killAt} ms`,
    );
    expect(action.data).toMatchObject({ ok: true, dry_run: false, failure_type: 'container_stopped', container: before.Id });
    const fresh = await docker.getContainer(action.data.new_container!).inspect();
    expect(fresh.Id).not.toBe(before.Id);
    expect(fresh.State.Running).toBe(true);
    expect(fresh.Config.Labels['orchestry.app']).toBe(c.app);
    const port = Number(fresh.Config.Labels['orchestry.port']);
    await routedByNginx(c.app, port);
    expect(await spread(c.app, 4)).toEqual({ [`127.0.0.1:${port}`]: 4 });
    await quiet(fresh.Id);
  });

  it('scales a slow app out by one replica that receives traffic, and back in, drained first, once it has recovered', async () => {
    const low = await freePort();
    const range: [number, number] = [low, low + 19];
    const d = await startApp('re-scale', {
      labels: { 'orchestry.port_range': `${range[0]}-${range[1]}`, 'orchestry.recovery.max_replicas': '2' },
    });
    await waitRouted(d.app, d.port);
    await controlApp(d.port, `slow?ms=${SLOW_MS}`);
    const slowAt = Date.now();

    const out = await recoveryEvent(d.app, (e) => e.data.strategy === 'scale_out');
    expect(out.data).toMatchObject({ ok: true, dry_run: false, failure_type: 'high_response_time' });
    const addedId = out.data.new_container!;
    const added = await docker.getContainer(addedId).inspect();
    expect(added.State.Running).toBe(true);
    expect(added.Config.Labels).toMatchObject({ 'orchestry.app': d.app, 'orchestry.recovery.added': 'true' });
    const addedPort = Number(added.Config.Labels['orchestry.port']);
    expect(addedPort).toBeGreaterThanOrEqual(range[0]);
    expect(addedPort).toBeLessThanOrEqual(range[1]);
    expect(added.Config.Env).toContain(`PORT=${addedPort}`);
    await routedByNginx(d.app, addedPort);
    const counts = await spread(d.app, 12, 3);
    expect(counts[`127.0.0.1:${addedPort}`]).toBeGreaterThan(0);
    expect(Object.keys(counts).every((k) => k === `127.0.0.1:${addedPort}` || k === `127.0.0.1:${d.port}`)).toBe(true);

    // Still slow: the added replica stays, however long past scale_in_after_seconds (plus a
    // planner tick, 5 s): until a probe that late has found the app still slow.
    const stillSlowFrom = Date.now() + (RECOVERY.scale_in_after_seconds + 5 + 2) * 1000;
    await waitFor(
      async () => {
        const probe = (await backendAt(d.app, d.port))?.last_probe;
        return probe && Date.parse(probe.at) >= stillSlowFrom;
      },
      { timeoutMs: stillSlowFrom - Date.now() + 15_000, intervalMs: 200, what: 'a probe of the slow app past scale_in_after_seconds' },
    );
    expect((await backendAt(d.app, d.port))?.last_probe?.response_time_ms).toBeGreaterThan(MAX_RESPONSE_TIME_MS);
    expect((await recoveryEvents(d.app)).filter((e) => e.data.strategy === 'scale_in')).toEqual([]);
    expect((await docker.getContainer(addedId).inspect()).State.Running).toBe(true);
    expect((await recoveryEvents(d.app)).filter((e) => e.data.strategy === 'scale_out')).toHaveLength(1);

    await controlApp(d.port, 'slow?ms=0');
    const healAt = Date.now();
    // Watch, while it scales in: the first version of the file that no longer routes to the
    // added replica (its mtime), and every request through nginx.
    let drainedAt: number | null = null;
    const watcher = sampleEvery(5, async () => {
      if (drainedAt === null && (await fileState(addedPort)) !== 'up') drainedAt = (await stat(outputPath)).mtimeMs;
    });
    const statuses: Record<string, number> = {};
    const requests = () => Object.values(statuses).reduce((a, b) => a + b, 0);
    const loop = sampleEvery(10, async () => {
      const r = await viaNginx(d.app).catch((err: Error) => ({ status: -1, upstream: err.message }));
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    });
    const scaleIn = await recoveryEvent(d.app, (e) => e.data.strategy === 'scale_in', 30_000);
    await waitFor(() => isGone(addedId), { what: 'added replica removed' });
    // Keep sending through the removal's own reload: until the file no longer names the replica,
    // nginx has loaded it, and ten more requests went through.
    await waitFor(async () => (await fileState(addedPort)) === 'absent', { what: 'the removed replica out of the file' });
    await nginxSettled(nginxPaths(dir).errorLog);
    const sent = requests();
    await waitFor(() => requests() >= sent + 10, { what: 'ten more requests through nginx' });
    await Promise.all([watcher.stop(), loop.stop()]);
    const kills = await killTimes(addedId, healAt - 1000, Date.now() + 1000);

    console.log(
      `[recovery-e2e] scale_out ${Date.parse(out.at) - slowAt} ms after the app turned slow; scale_in ${Date.parse(scaleIn.at) - healAt} ms after it recovered, ` +
        `out of nginx ${kills[0]! - drainedAt!} ms before its stop; ${requests()} requests through nginx meanwhile: ${JSON.stringify(statuses)}`,
    );
    expect(scaleIn.data).toMatchObject({ ok: true, dry_run: false, container: addedId });
    expect(Date.parse(scaleIn.at) - healAt).toBeGreaterThanOrEqual(RECOVERY.scale_in_after_seconds * 1000);
    expect(kills.length).toBeGreaterThan(0);
    expect(drainedAt).not.toBeNull();
    expect(drainedAt!).toBeLessThan(kills[0]!);
    expect(statuses).toEqual({ 200: expect.any(Number) });
    expect(await fileState(addedPort)).toBe('absent');
    expect(await fileState(d.port)).toBe('up');
    await quiet(d.name);
  }, 120_000);

  it('keeps restarts, recreates and their spacing within max_restarts, the budget and the backoff', async () => {
    const end = budgetStartedAt + OBSERVE_S * 1000;
    // Watched until recovery has given up on it (budget_per_app actions recorded and a refusal
    // for the budget, which only comes after the last), at most OBSERVE_S from its start: the
    // budget window does not renew in between.
    const refusal = (l: Record<string, unknown>) =>
      l.msg === 'recovery decision' && l.app === budgetApp.app && String(l.reason).startsWith('recovery budget exhausted');
    await waitFor(
      async () =>
        (await recoveryEvents(budgetApp.app)).filter((e) => DISRUPTIVE.has(e.data.strategy)).length >= RECOVERY.budget_per_app &&
        sidecar.logs().some(refusal),
      { timeoutMs: Math.max(end - Date.now(), 0) + 5_000, what: `${RECOVERY.budget_per_app} actions on ${budgetApp.app}, then a refusal for the budget` },
    );
    const events = await recoveryEvents(budgetApp.app);
    const disruptive = events.filter((e) => DISRUPTIVE.has(e.data.strategy) && Date.parse(e.at) <= end);
    const strategies = disruptive.map((e) => e.data.strategy);
    console.log(
      `[recovery-e2e] never-healthy container over ${OBSERVE_S} s: ${strategies.join(', ')} at ${disruptive
        .map((e) => `${((Date.parse(e.at) - budgetStartedAt) / 1000).toFixed(1)}s`)
        .join(', ')}`,
    );
    // Restarts first, up to the limit within the window, then recreates.
    expect(strategies.filter((s) => s === 'restart_container')).toHaveLength(RECOVERY.max_restarts);
    expect(strategies.slice(0, RECOVERY.max_restarts)).toEqual(Array(RECOVERY.max_restarts).fill('restart_container'));
    expect(strategies.slice(RECOVERY.max_restarts).every((s) => s === 'recreate_container')).toBe(true);
    // The budget bounds everything, and it was what stopped recovery here.
    expect(disruptive.length).toBeLessThanOrEqual(RECOVERY.budget_per_app);
    expect(sidecar.logs().some(refusal)).toBe(true);
    expect(disruptive).toHaveLength(RECOVERY.budget_per_app);
    expect(disruptive.every((e) => e.data.ok && !e.data.dry_run)).toBe(true);
    // Backoff: each action starts at least the current backoff after the previous one finished,
    // and the backoff doubles from min to max.
    for (let i = 1; i < disruptive.length; i++) {
      const prev = disruptive[i - 1]!;
      const finished = Date.parse(prev.at) + prev.data.duration_ms;
      const backoff = Math.min(RECOVERY.backoff_min_seconds * 2 ** (i - 1), RECOVERY.backoff_max_seconds) * 1000;
      expect(Date.parse(disruptive[i]!.at) - finished).toBeGreaterThanOrEqual(backoff - 2);
    }
    await quiet(budgetApp.name);
  }, 60_000);

  it('records what it would do in dry-run mode and touches no container', async () => {
    const reloads = await sidecar.metric('orchestry_config_reloads_total', { result: 'success' });
    await writeFile(configPath, sidecarConfig('dry-run'));
    await waitFor(async () => (await sidecar.metric('orchestry_config_reloads_total', { result: 'success' })) > reloads, {
      what: 'dry-run configuration loaded',
    });
    const f = await startApp('re-dry');
    await waitRouted(f.app, f.port);
    await pastGrace(f.container);
    const before = await f.container.inspect();
    await controlApp(f.port, 'fail');
    // The planner walks the whole escalation as if each step had worked: restarts, then recreate.
    const recreate = await recoveryEvent(f.app, (e) => e.data.strategy === 'recreate_container', 30_000);
    const events = await recoveryEvents(f.app);
    expect(recreate.data.dry_run).toBe(true);
    expect(events.filter((e) => e.data.strategy === 'restart_container')).toHaveLength(RECOVERY.max_restarts);
    expect(events.every((e) => e.data.dry_run)).toBe(true);
    expect(events.every((e) => e.message.startsWith('dry-run: '))).toBe(true);
    expect(await sidecar.metric('orchestry_recovery_actions_total', { app: f.app, result: 'dry_run' })).toBeGreaterThan(0);
    expect(await sidecar.metric('orchestry_recovery_actions_total', { app: f.app, result: 'success' })).toBe(0);

    const after = await docker.getContainer(f.name).inspect();
    expect(after.Id).toBe(before.Id);
    expect(after.State.StartedAt).toBe(before.State.StartedAt);
    expect(after.RestartCount).toBe(before.RestartCount);
    expect(after.State.Running).toBe(true);
    // Nothing restarted it, so it still fails (a restart would have reset HEALTH to ok).
    expect((await httpGet(f.port, '/health')).status).toBe(503);
    expect(await backendAt(f.app, f.port)).toMatchObject({ health: 'unhealthy', ejected: true });
    await quiet(f.name);
  });
});
