/**
 * Docker discovery as a hostile user and a new operator meet it (issue 11 items 1, 6, 7, 11,
 * 12, 13), every part real: the built CLI as a child process, a private nginx on this host
 * serving two upstreams (`web` from the YAML, `shop` from container labels only), and app
 * containers of the local test image on host networking. The sidecar takes only containers
 * labelled with this file's suite (docker.constraints), so it also shows several sidecars
 * sharing one Engine. The tests run in order and share the sidecar, nginx and containers.
 */
import type Dockerode from 'dockerode';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { ensureTestImages } from '../helpers/docker-images.js';
import { SUITE_LABEL, appAnswers, controlApp, removeTestContainers, requireDocker, runContainer, runTestApp } from '../helpers/docker.js';
import { nginxConf, nginxPaths, nginxSection, sidecarYaml, UPSTREAM_KEEPALIVE } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { httpGet, launchNginx, makeNginxDir, startNginx, type NginxInstance } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = 'docker-trust';
/** Another sidecar's containers on the same Engine (outside this one's constraints). */
const OTHER_SUITE = 'docker-trust-other';
const HEALTH_LABELS = {
  'orchestry.health.path': '/health',
  'orchestry.health.period_seconds': '1',
  'orchestry.health.timeout_seconds': '0.5',
  'orchestry.health.failure_threshold': '1',
  'orchestry.health.success_threshold': '1',
};

interface AppsBody {
  apps: Array<{ name: string; backends: Array<{ address: string; health: string }> }>;
  rejected_containers: Array<{ id: string; name: string; errors: string[] }>;
}
interface EventsBody {
  events: Array<{ kind: string; app: string | null; backend: string | null; message: string; data: Record<string, unknown> }>;
}

let image = '';
let dir = '';
let nginxDir = '';
let nginx: { pid: number; stop(): Promise<void> } | undefined;
let sidecar: SidecarProcess | undefined;
let webA: TestBackend;
let webB: TestBackend;
/** nginx's two listening ports: `web` and `shop`. */
let webPort = 0;
let shopPort = 0;
let adminPort = 0;
let configPath = '';
let outputPath = '';
/** The label-only app's first container. */
let shop: { container: Dockerode.Container; name: string; port: number };

const file = () => readFile(outputPath, 'utf8');
/** The upstream block of `app` in `text`, or '' when there is none. */
const block = (text: string, app: string) => new RegExp(`upstream ${app} \\{[\\s\\S]*?\\n\\}`).exec(text)?.[0] ?? '';
const serverState = (text: string, app: string, port: number): 'up' | 'down' | null => {
  const m = new RegExp(`server 127\\.0\\.0\\.1:${port}\\b([^;]*);`).exec(block(text, app));
  return m ? (/\bdown\b/.test(m[1] ?? '') ? 'down' : 'up') : null;
};
const apps = async () => (await sidecar!.api<AppsBody>('/api/v1/apps')).body;
const rejectedOf = async (name: string) => (await apps()).rejected_containers.find((r) => r.name === name);
const events = async (query: string) => (await sidecar!.api<EventsBody>(`/api/v1/events?limit=1000&${query}`)).body.events;

function config(docker: Record<string, unknown> = {}): string {
  return sidecarYaml({
    apps: {
      web: {
        backends: [webA.address, webB.address],
        health: { path: '/health', period_seconds: 0.5, timeout_seconds: 0.4, failure_threshold: 1, success_threshold: 1, initial_delay_seconds: 0 },
      },
    },
    docker: {
      enabled: true,
      address_mode: 'host',
      host_address: '127.0.0.1',
      constraints: [`${SUITE_LABEL}=${SUITE}`],
      // nginx's own listening ports.
      forbidden_ports: [webPort, shopPort],
      reconnect_min_seconds: 0.2,
      reconnect_max_seconds: 1,
      ...docker,
    },
    recovery: { mode: 'dry-run' },
    store: { path: join(dir, 'state.db'), flush_interval_seconds: 0.2 },
    nginx: nginxSection(nginxDir, { coalesce_min_wait_seconds: 0.05, coalesce_max_wait_seconds: 0.3 }),
    admin: { listen: `127.0.0.1:${adminPort}` },
  });
}

/**
 * A container of this suite (or `suite`) running the test app on its own free port, with
 * `labels` as given (no orchestry.port unless they say so); `exposeOwnPort` exposes that port.
 */
async function rawApp(labels: Record<string, string>, opts: { exposeOwnPort?: boolean; suite?: string } = {}) {
  const port = await freePort();
  const name = `${SUITE}-${process.pid}-${port}`;
  const container = await runContainer({
    image,
    suite: opts.suite ?? SUITE,
    name,
    env: { PORT: String(port), NAME: name, GRACE_MS: '200' },
    labels: { 'orchestry.enable': 'true', ...labels },
    ...(opts.exposeOwnPort ? { exposedPorts: [port] } : {}),
  });
  return { container, name, port };
}

/** Waits until the sidecar has applied a change to `web` (so the whole file passed nginx -t). */
async function webUpdates(backend: TestBackend, mode: 'fail' | 'ok'): Promise<void> {
  backend.setMode(mode);
  const want = mode === 'fail' ? 'down' : 'up';
  await waitFor(async () => serverState(await file(), 'web', backend.port) === want, {
    what: `web's ${backend.name} ${want} in the file`,
    timeoutMs: 15_000,
  });
}

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  await removeTestContainers(OTHER_SUITE);
  image = (await ensureTestImages()).nodeApp;
  dir = await mkdtemp(join(tmpdir(), 'orchestry-docker-trust-'));
  webA = await startBackend('web-a');
  webB = await startBackend('web-b');
  nginxDir = await makeNginxDir();
  [webPort, shopPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const paths = nginxPaths(nginxDir);
  outputPath = paths.outputPath;
  await writeFile(outputPath, 'upstream web { server 127.0.0.1:9 down; }\nupstream shop { server 127.0.0.1:9 down; }\n');
  await writeFile(
    paths.configPath,
    nginxConf({
      dir: nginxDir,
      http: [
        ...UPSTREAM_KEEPALIVE,
        `server { listen 127.0.0.1:${webPort}; location / { proxy_pass http://web; } }`,
        `server { listen 127.0.0.1:${shopPort}; location / { proxy_pass http://shop; } }`,
      ],
    }),
  );
  nginx = await launchNginx({ dir: nginxDir, probePort: webPort });
  shop = await runTestApp({ image, suite: SUITE, app: 'shop', graceMs: 200, labels: HEALTH_LABELS });
  await appAnswers(shop.port);
  configPath = join(dir, 'sidecar.yaml');
  await writeFile(configPath, config());
  sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);
}, 120_000);

afterAll(async () => {
  await sidecar?.stop();
  await nginx?.stop();
  await removeTestContainers(SUITE);
  await removeTestContainers(OTHER_SUITE);
  await webA?.close();
  await webB?.close();
  if (nginxDir) await rm(nginxDir, { recursive: true, force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('Docker discovery an operator can trust', () => {
  it('routes the YAML app and the label-only app; another sidecar\'s container (outside docker.constraints) is not even seen', async () => {
    const theirs = await rawApp({ 'orchestry.app': 'shop', 'orchestry.port': '0' }, { suite: OTHER_SUITE });
    await waitFor(async () => serverState(await file(), 'shop', shop.port) === 'up' && serverState(await file(), 'web', webA.port) === 'up', {
      what: 'both apps in the file',
    });
    await waitFor(async () => (await httpGet(shopPort)).body === shop.name, { what: 'shop through nginx' });
    // The file is written before nginx has reloaded it: wait for nginx, not for the file.
    await waitFor(async () => ['web-a', 'web-b'].includes((await httpGet(webPort)).body), { what: 'web through nginx' });
    // Its bad label (port 0) would be rejected if it were looked at: it is not.
    await waitFor(async () => (await apps()).apps.some((a) => a.name === 'shop' && a.backends.length === 1), { what: 'shop in the API' });
    expect(await rejectedOf(theirs.name)).toBeUndefined();
    expect(await file()).not.toContain(`:${theirs.port}`);
  });

  it('a label cannot pull traffic: a closed YAML app, the sidecar\'s admin port and nginx\'s own ports are refused with their reasons (item 1)', async () => {
    const join = await rawApp({ 'orchestry.app': 'web', 'orchestry.port': String(adminPort), 'orchestry.weight': '1000' });
    const admin = await rawApp({ 'orchestry.app': 'evil', 'orchestry.port': String(adminPort), 'orchestry.weight': '1000' });
    const loop = await rawApp({ 'orchestry.app': 'evil2', 'orchestry.port': String(webPort) });
    const reasons = await waitFor(
      async () => {
        const found = await Promise.all([join, admin, loop].map((c) => rejectedOf(c.name)));
        return found.every(Boolean) ? found.map((r) => r!.errors) : null;
      },
      { what: 'the three containers in rejected_containers' },
    );
    expect(reasons).toEqual([
      ['orchestry.app: app "web" is defined in the YAML, which does not let containers join it (set apps.web.docker.accept_containers: true) (got "web")'],
      [`orchestry.port: port ${adminPort} is the sidecar's admin API (admin.listen); no container on host networking is routed there (got "${adminPort}")`],
      [`orchestry.port: port ${webPort} is in docker.forbidden_ports (nginx's own listening ports); no container on host networking is routed there (got "${webPort}")`],
    ]);
    // Give it every chance to write what it saw: a change to web gets through, and no port of theirs does.
    await webUpdates(webB, 'fail');
    await webUpdates(webB, 'ok');
    const text = await file();
    expect(text).not.toContain(`:${adminPort}`);
    expect(text).not.toContain('evil');
    for (let i = 0; i < 20; i++) expect(['web-a', 'web-b']).toContain((await httpGet(webPort)).body);
    await Promise.all([join, admin, loop].map((c) => c.container.remove({ force: true })));
  });

  it('a container nginx would refuse is rejected, and the other apps keep updating while it exists (item 6)', async () => {
    const upper = await rawApp({ 'orchestry.app': 'WEB' });
    const backupOnly = await rawApp({ 'orchestry.app': 'solo', 'orchestry.backup': 'true' });
    const reasons = await waitFor(
      async () => {
        const found = await Promise.all([upper, backupOnly].map((c) => rejectedOf(c.name)));
        return found.every(Boolean) ? found.map((r) => r!.errors) : null;
      },
      { what: 'both containers in rejected_containers' },
    );
    expect(reasons).toEqual([
      ['orchestry.app: conflicts with app "web": nginx compares upstream names ignoring case (got "WEB")'],
      ['orchestry.backup: every server of app "solo" would be a backup; nginx needs at least one that is not (got "true")'],
    ]);
    // An unhealthy YAML backend is still ejected, and readmitted.
    await webUpdates(webA, 'fail');
    await webUpdates(webA, 'ok');
    expect(block(await file(), 'WEB')).toBe('');
    expect(block(await file(), 'solo')).toBe('');
    await Promise.all([upper, backupOnly].map((c) => c.container.remove({ force: true })));
  });

  it('a host-network container without orchestry.port is routed at its only exposed port, else rejected, never at 8000 (item 11)', async () => {
    const noPort = { 'orchestry.app': 'shop', ...HEALTH_LABELS };
    const exposed = await rawApp(noPort);
    // The test app listens on its PORT: that is the one port it exposes.
    const one = await rawApp(noPort, { exposeOwnPort: true });
    await waitFor(async () => serverState(await file(), 'shop', one.port) === 'up', { what: 'the exposed port in the file' });
    const rejected = await waitFor(() => rejectedOf(exposed.name), { what: 'the container exposing no port rejected' });
    expect(rejected.errors).toEqual([
      'orchestry.port: is required for a container on host networking (address mode host) unless it exposes exactly one TCP port; it exposes no port',
    ]);
    expect(block(await file(), 'shop')).not.toContain(':8000');
    await Promise.all([exposed, one].map((c) => c.container.remove({ force: true })));
    await waitFor(async () => serverState(await file(), 'shop', one.port) === null, { what: 'the exposed one out of the file' });
  });

  it('docker kill and docker rm -f drain and let go: no container_stopped, no recovery planned; a crash still is one (item 12)', async () => {
    // On failure, what the sidecar logged about a container says which way a failure or plan came.
    const logged = (c: { name: string }) => JSON.stringify(sidecar!.logs().filter((l) => JSON.stringify(l).includes(c.name)));
    const extra = await runTestApp({ image, suite: SUITE, app: 'shop', graceMs: 200, labels: HEALTH_LABELS });
    const crash = await runTestApp({ image, suite: SUITE, app: 'shop', graceMs: 200, labels: HEALTH_LABELS });
    await Promise.all([extra, crash].map((a) => appAnswers(a.port)));
    await waitFor(
      async () => {
        const text = await file();
        return [extra, crash].every((a) => serverState(text, 'shop', a.port) === 'up');
      },
      { what: 'the replicas in the file' },
    );
    await waitFor(async () => (await apps()).apps.find((a) => a.name === 'shop')?.backends.every((b) => b.health === 'healthy'), {
      what: 'every shop backend healthy',
    });
    await shop.container.kill();
    await extra.container.remove({ force: true });
    const died = (c: { name: string }) => async () => (await events('kind=docker')).some((e) => e.message === `container ${c.name}: die`);
    await waitFor(died(shop), { what: 'the die of the killed container' });
    await waitFor(died(extra), { what: 'the die of the removed container' });
    await waitFor(async () => serverState(await file(), 'shop', shop.port) === null && serverState(await file(), 'shop', extra.port) === null, {
      what: 'both out of the file',
    });
    await controlApp(crash.port, 'exit?code=3').catch(() => undefined);
    await waitFor(
      async () => (await events('kind=failure&app=shop')).find((e) => e.data.failure_type === 'container_stopped'),
      { what: 'the crash reported as container_stopped' },
    );
    const stopped = (await events('kind=failure&app=shop')).filter((e) => e.data.failure_type === 'container_stopped');
    // On failure: the Docker events as the sidecar saw them, and what it logged about the containers.
    const seen = JSON.stringify((await events('kind=docker')).filter((e) => [shop, extra].some((c) => e.message.includes(c.name))).map((e) => e.message));
    expect(stopped.map((e) => e.backend), `${seen}\n${logged(shop)}\n${logged(extra)}`).toEqual([`shop/127.0.0.1:${crash.port}`]);
    // Recovery (dry-run) plans for the crash, never for what the operator stopped.
    const recoveries = JSON.stringify(await events('kind=recovery&app=shop'));
    for (const c of [shop, extra]) expect(recoveries, logged(c)).not.toContain(c.container.id);
    for (const c of [shop, extra]) expect(recoveries, logged(c)).not.toContain(`127.0.0.1:${c.port}`);
    await shop.container.start();
    await appAnswers(shop.port);
    await waitFor(async () => serverState(await file(), 'shop', shop.port) === 'up', { what: 'the killed container back once started' });
    await crash.container.remove({ force: true });
  });

  it('an app only labels define stays in the file after its last container is removed, and across a restart (item 7)', async () => {
    await shop.container.remove({ force: true });
    await waitFor(async () => serverState(await file(), 'shop', shop.port) === null, { what: 'the last shop container out of the file' });
    expect(block(await file(), 'shop')).toContain('server 127.0.0.1:9 down;');
    // nginx still accepts the file (proxy_pass http://shop), so other apps keep updating.
    await webUpdates(webB, 'fail');
    expect((await httpGet(shopPort)).status).toBe(502);
    await sidecar!.stop();
    webB.setMode('ok');
    sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);
    await waitFor(async () => serverState(await file(), 'web', webB.port) === 'up', { what: 'the restarted sidecar to apply web' });
    expect(block(await file(), 'shop')).toContain('server 127.0.0.1:9 down;');
    expect((await apps()).apps.map((a) => a.name)).toContain('shop');
  });

  it('static YAML apps are written while Docker is unreachable at start; remembered label apps as they last were (item 7)', async () => {
    await sidecar!.stop();
    sidecar = undefined;
    webA.setMode('fail');
    const down = join(dir, 'docker-down.yaml');
    await writeFile(down, config({ socket_path: join(dir, 'no-such-docker.sock') }));
    sidecar = await startSidecarProcess(down, `http://127.0.0.1:${adminPort}`);
    await waitFor(async () => serverState(await file(), 'web', webA.port) === 'down', { what: 'web written while Docker is unreachable' });
    expect(block(await file(), 'shop')).toContain('server 127.0.0.1:9 down;');
    const ready = await sidecar.api<{ reasons: string[] }>('/readyz');
    expect(ready.body.reasons.join(' ')).toContain('Docker');
    await waitFor(async () => (await Promise.all([1, 2, 3, 4].map(() => httpGet(webPort)))).every((r) => r.body === 'web-b'), {
      what: 'nginx routing web to web-b only',
    });
    webA.setMode('ok');
    await sidecar.stop();
    sidecar = undefined;
  });

  it('a labels-only setup: no apps in the YAML, every app from container labels (item 13)', async () => {
    const second: NginxInstance = await startNginx({ upstreams: 'upstream cart { server 127.0.0.1:9 down; }\n', app: 'cart' });
    try {
      const cart = await runTestApp({ image, suite: SUITE, app: 'cart', graceMs: 200, labels: HEALTH_LABELS });
      await appAnswers(cart.port);
      const port = await freePort();
      const path = join(dir, 'labels-only.yaml');
      await writeFile(
        path,
        sidecarYaml({
          docker: { enabled: true, address_mode: 'host', constraints: [`${SUITE_LABEL}=${SUITE}`], forbidden_ports: [second.port] },
          nginx: { binary: second.config().binary, prefix: second.dir, config_path: second.configPath, output_path: second.outputPath, pid_path: second.pidPath, coalesce_min_wait_seconds: 0.05 },
          store: { enabled: false },
          admin: { listen: `127.0.0.1:${port}` },
        }),
      );
      const labelsOnly = await startSidecarProcess(path, `http://127.0.0.1:${port}`);
      try {
        await waitFor(async () => (await second.get()).body === cart.name, { what: 'cart routed through nginx' });
        const { body } = await labelsOnly.api<AppsBody>('/api/v1/apps');
        expect(body.apps.map((a) => a.name)).toEqual(['cart']);
      } finally {
        expect(await labelsOnly.stop()).toBe(0);
      }
    } finally {
      await second.stop();
    }
  });
});
