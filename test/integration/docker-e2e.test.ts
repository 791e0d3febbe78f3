/**
 * Docker end to end, every part real: the built CLI as a child process, nginx in its own
 * container (nginx.mode docker: `nginx -t` by exec, reload by SIGHUP through the API, the
 * generated file in a directory bind-mounted into that container) and app containers of the
 * local test image, found by their `orchestry.*` labels. Everything runs on host networking on
 * 127.0.0.1. Recovery is off (recovery-e2e.test.ts covers it): every change of the upstreams
 * here comes from discovery and probes.
 *
 * The tests run in order and share the containers. The two Docker daemon restarts come last:
 * they take the engine away from everyone for a few seconds (dockerd runs with --live-restore,
 * so containers keep running), and afterAll leaves a daemon running whatever happened.
 */
import type Dockerode from 'dockerode';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestImages } from '../helpers/docker-images.js';
import { appAnswers, controlApp, ensureDockerd, removeTestContainers, requireDocker, restartDockerd, runTestApp } from '../helpers/docker.js';
import { startNginxContainer, type NginxContainer } from '../helpers/nginx-container.js';
import { httpGet } from '../helpers/nginx-instance.js';
import { freePort } from '../helpers/free-port.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { sampleEvery, waitFor } from '../helpers/wait.js';

const SUITE = 'docker-e2e';
/** Every labelled container on the engine is discovered: a name of our own keeps other files' out. */
const APP = `e2e-${process.pid}`;
/** How long the test app keeps answering after SIGTERM (its drain), well under `docker stop -t`. */
const GRACE_MS = 3000;
const DEFAULT_TEMPLATE = fileURLToPath(new URL('../../templates/upstreams.conf.hbs', import.meta.url));

const HEALTH_LABELS = {
  'orchestry.health.path': '/health',
  'orchestry.health.period_seconds': '2',
  'orchestry.health.timeout_seconds': '1',
  'orchestry.health.failure_threshold': '2',
  'orchestry.health.initial_delay_seconds': '0',
};

interface AppContainer {
  container: Dockerode.Container;
  name: string;
  port: number;
}

interface AppsBody {
  apps: Array<{
    name: string;
    backends: Array<{
      address: string;
      health: string;
      ejected: boolean;
      consecutive_successes: number;
      container: { id: string; name: string; image: string; state: string; docker_health: string | null } | null;
    }>;
  }>;
  rejected_containers: Array<{ id: string; name: string; errors: string[] }>;
}

interface Readiness {
  ready: boolean;
  reasons?: string[];
}

let image = '';
let dir = '';
let templatePath = '';
let nginx: NginxContainer | undefined;
let sidecar: SidecarProcess | undefined;
/** The replicas of APP with good labels, in start order. */
const apps: AppContainer[] = [];

/** Every distinct content the generated file had, with the time this side first saw it. */
const versions: Array<{ at: number; text: string }> = [];
let filePoll: { stop(): Promise<void> } | undefined;

function startFilePoll(path: string) {
  filePoll = sampleEvery(10, async () => {
    const text = await readFile(path, 'utf8').catch(() => null);
    if (text !== null && text !== versions.at(-1)?.text) versions.push({ at: Date.now(), text });
  });
}

/** Runs a replica of APP (or whatever its labels say) on a free loopback port. */
function startApp(labels: (port: number) => Record<string, string> = () => ({})): Promise<AppContainer> {
  return runTestApp({ image, suite: SUITE, app: APP, graceMs: GRACE_MS, labels: (port) => ({ ...HEALTH_LABELS, ...labels(port) }) });
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** APP's upstream block in a version of the generated file. */
function block(text: string): string {
  return new RegExp(`upstream ${escape(APP)} \\{[\\s\\S]*?\\n\\}`).exec(text)?.[0] ?? '';
}

/** How APP's upstream in `text` has 127.0.0.1:port: routed, `down`, or absent. */
function serverState(text: string, port: number): 'up' | 'down' | null {
  const m = new RegExp(`^\\s*server 127\\.0\\.0\\.1:${port}\\b([^;]*);`, 'm').exec(block(text));
  if (!m) return null;
  return /\bdown\b/.test(m[1] ?? '') ? 'down' : 'up';
}

const currentFile = () => readFile(nginx!.outputPath, 'utf8');

/** `n` sequential requests through nginx: how many each backend answered, and failures. */
async function spread(n: number): Promise<{ counts: Record<string, number>; failed: string[] }> {
  const counts: Record<string, number> = {};
  const failed: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      const res = await nginx!.get('/');
      if (res.status === 200) counts[res.body] = (counts[res.body] ?? 0) + 1;
      else failed.push(`status ${res.status} at ${new Date().toISOString()}`);
    } catch (err) {
      failed.push((err as Error).message);
    }
  }
  return { counts, failed };
}

/** Waits until requests through nginx reach exactly the replicas `expected` (by NAME). */
async function routesTo(expected: AppContainer[]): Promise<void> {
  const want = expected.map((a) => a.name).sort();
  let last = '';
  await waitFor(
    async () => {
      const { counts, failed } = await spread(expected.length * 4);
      last = JSON.stringify({ counts, failed: failed.length });
      return failed.length === 0 && JSON.stringify(Object.keys(counts).sort()) === JSON.stringify(want);
    },
    { what: `nginx to route to ${want.join(', ')}`, timeoutMs: 20_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last round: ${last}`);
  });
}

/** Keep-alive-free GETs through nginx from `concurrency` loops, until stop(). */
function startLoad(concurrency: number) {
  const stats = { sent: 0, failed: [] as string[], counts: {} as Record<string, number> };
  let running = true;
  const loop = async () => {
    while (running) {
      stats.sent++;
      try {
        const res = await nginx!.get('/');
        if (res.status === 200) stats.counts[res.body] = (stats.counts[res.body] ?? 0) + 1;
        else stats.failed.push(`status ${res.status}`);
      } catch (err) {
        stats.failed.push((err as Error).message);
      }
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, loop));
  return {
    stats,
    async stop() {
      running = false;
      await done;
      return stats;
    },
  };
}

const readyz = () => sidecar!.api<Readiness>('/readyz');

function sidecarYaml(adminPort: number): string {
  return `apps:
  ${APP}:
    docker: { accept_containers: true }
docker:
  enabled: true
  address_mode: host
  host_address: 127.0.0.1
  reconnect_min_seconds: 0.2
  reconnect_max_seconds: 1
recovery:
  mode: "off"
nginx:
  mode: docker
  container: ${nginx!.name}
  config_path: /etc/nginx/nginx.conf
  output_path: ${nginx!.outputPath}
  template_path: ${templatePath}
  coalesce_min_wait_seconds: 0.05
  coalesce_max_wait_seconds: 0.5
admin:
  listen: 127.0.0.1:${adminPort}
logging:
  level: debug
`;
}

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  image = (await ensureTestImages()).nodeApp;
  dir = await mkdtemp(join(tmpdir(), 'orchestry-docker-e2e-'));
  templatePath = join(dir, 'upstreams.conf.hbs');
  await copyFile(DEFAULT_TEMPLATE, templatePath);
  // nginx needs the upstream to exist before the sidecar's first render.
  nginx = await startNginxContainer({ suite: SUITE, app: APP, upstreams: `upstream ${APP} { server 127.0.0.1:9 down; }\n` });
  apps.push(...(await Promise.all([0, 1, 2].map(() => startApp()))));
  await Promise.all(apps.map((a) => appAnswers(a.port)));
  startFilePoll(nginx.outputPath);
  const adminPort = await freePort();
  const configPath = join(dir, 'sidecar.yaml');
  await writeFile(configPath, sidecarYaml(adminPort));
  sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);
}, 120_000);

afterAll(async () => {
  await filePoll?.stop();
  await sidecar?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  // Everything below needs the engine, and so do the test files after this one.
  await ensureDockerd();
  await nginx?.remove();
  await removeTestContainers(SUITE);
}, 120_000);

describe('Docker discovery with nginx in a container', () => {
  it('routes traffic through the nginx container to three containers found by their labels', async () => {
    await waitFor(() => apps.every((a) => serverState(versions.at(-1)?.text ?? '', a.port) === 'up'), {
      what: 'the three replicas in the generated file',
    });
    // versions[0] is the placeholder nginx started with; the sidecar's first file already has
    // the containers (an upstream rendered before Docker answered would send everything to a 502).
    expect(versions.length).toBeGreaterThan(1);
    for (const v of versions.slice(1)) expect(apps.map((a) => serverState(v.text, a.port))).toEqual(['up', 'up', 'up']);
    // Each server line names its container, as docker-gen's template does.
    const file = await currentFile();
    for (const a of apps) expect(file).toMatch(new RegExp(`^\\s*server 127\\.0\\.0\\.1:${a.port}\\b[^;]*;  # ${a.name}$`, 'm'));
    const app = await waitFor(
      async () => {
        const { body } = await sidecar!.api<AppsBody>('/api/v1/apps');
        const found = body.apps.find((a) => a.name === APP);
        return found && found.backends.length === 3 && found.backends.every((b) => b.health === 'healthy') ? found : null;
      },
      { what: 'three healthy backends in /api/v1/apps' },
    );
    for (const a of apps) {
      const backend = app.backends.find((b) => b.address === `127.0.0.1:${a.port}`);
      expect(backend, a.name).toBeDefined();
      expect(backend!.ejected).toBe(false);
      expect(backend!.container).toMatchObject({
        id: a.container.id.slice(0, 12),
        name: a.name,
        image,
        state: 'running',
      });
    }

    await routesTo(apps);
    const { counts, failed } = await spread(60);
    expect(failed).toEqual([]);
    expect(Object.keys(counts).sort()).toEqual(apps.map((a) => a.name).sort());
  });

  it('ejects a container on `docker stop` before it exits, and no request through nginx fails', async () => {
    const victim = apps[0]!;
    await appAnswers(victim.port);
    await routesTo(apps);
    const from = versions.length;
    const load = startLoad(4);
    await waitFor(() => load.stats.sent >= 20, { what: 'the request loop to get going' });

    const stopAt = Date.now();
    await victim.container.stop({ t: 10 });
    const info = await victim.container.inspect();
    const exitedAt = Date.parse(info.State.FinishedAt);
    // A little more load after the exit: a backend still routed to would show here.
    const sentAtExit = load.stats.sent;
    await waitFor(() => load.stats.sent >= sentAtExit + 40, { what: 'requests after the exit' });
    const result = await load.stop();

    const ejected = versions.slice(from).find((v) => serverState(v.text, victim.port) !== 'up');
    console.log(
      `docker stop under load: ${result.sent} requests through nginx, ${result.failed.length} failed; ` +
        `docker stop -> ejection in the file: ${ejected ? ejected.at - stopAt : 'never'} ms; ` +
        `container exited ${exitedAt - stopAt} ms after docker stop`,
    );
    expect(result.failed).toEqual([]);
    expect(result.sent).toBeGreaterThanOrEqual(100);
    expect(result.counts[victim.name] ?? 0, 'the victim took traffic before its stop').toBeGreaterThan(0);
    expect(info.State.ExitCode, 'the app drained and exited by itself').toBe(0);
    expect(ejected, 'the victim left the upstream').toBeDefined();
    expect(ejected!.at).toBeLessThan(exitedAt);
    // Once gone, it is no backend at all.
    await waitFor(async () => serverState(await currentFile(), victim.port) === null, { what: 'the stopped replica to leave the file' });
  });

  it('ejects a SIGKILLed container from the upstream, and readmits stopped containers when they start again', async () => {
    const victim = apps[1]!;
    const from = versions.length;
    const killAt = Date.now();
    await victim.container.kill();
    const ejected = await waitFor(() => versions.slice(from).find((v) => serverState(v.text, victim.port) !== 'up'), {
      what: 'the killed replica to leave the upstream',
      timeoutMs: 10_000,
      intervalMs: 5,
    });
    console.log(`docker kill (SIGKILL) -> ejection in the file: ${ejected.at - killAt} ms`);
    const { counts, failed } = await spread(20);
    expect(failed).toEqual([]);
    expect(Object.keys(counts)).toEqual([apps[2]!.name]);

    await Promise.all([apps[0]!, victim].map((a) => a.container.start()));
    await Promise.all(apps.map((a) => appAnswers(a.port)));
    await waitFor(async () => apps.every((a) => serverState(versions.at(-1)?.text ?? '', a.port) === 'up'), {
      what: 'both restarted replicas back in the file',
    });
    await routesTo(apps);
  });

  it('rejects containers whose labels try to inject nginx directives; the injection never reaches the file', async () => {
    const injected = [
      { label: 'orchestry.app', labels: () => ({ 'orchestry.app': `${APP};} server { listen 127.0.0.1:1; } upstream x {` }) },
      { label: 'orchestry.port', labels: (port: number) => ({ 'orchestry.port': `${port}; server evil-port.invalid:80` }) },
      { label: 'orchestry.health.path', labels: () => ({ 'orchestry.health.path': '/health;\n}\nserver evil-path.invalid:80;' }) },
    ];
    const bad = await Promise.all(injected.map((i) => startApp(i.labels)));
    const rejected = await waitFor(
      async () => {
        const { body } = await sidecar!.api<AppsBody>('/api/v1/apps');
        const mine = bad.map((b) => body.rejected_containers.find((r) => r.name === b.name));
        return mine.every(Boolean) ? mine : null;
      },
      { what: 'the three containers in rejected_containers' },
    );
    injected.forEach((inj, i) => {
      expect(rejected[i]!.id).toBe(bad[i]!.container.id);
      expect(rejected[i]!.errors.some((e) => e.startsWith(`${inj.label}:`)), JSON.stringify(rejected[i]!.errors)).toBe(true);
    });
    expect(await sidecar!.metric('orchestry_docker_rejected_containers')).toBeGreaterThanOrEqual(3);

    // Give the sidecar every chance to write what it saw: the good replicas still answer, only them.
    await routesTo(apps);
    for (const v of [...versions, { at: Date.now(), text: await currentFile() }]) {
      expect(v.text).not.toContain('evil-');
      expect(v.text).not.toContain(`${APP};`);
      expect(v.text).not.toContain('listen');
      for (const b of bad) expect(v.text).not.toContain(`:${b.port}`);
    }
    await Promise.all(bad.map((b) => b.container.remove({ force: true })));
  });

  it('reloads nginx in its container through the Docker API: a new replica gets traffic, after one render and one reload', async () => {
    // The count starts once nginx has logged every reload the sidecar sent: the last test's last
    // reload (sent, counted as applied) may still be on its way into nginx's log on a loaded
    // machine, and would otherwise count as this test's second.
    await nginx!.settle(await sidecar!.metric('orchestry_nginx_reloads_total', { result: 'success' }));
    const reloads = await nginx!.reloadCount();
    const applies = await sidecar!.metric('orchestry_nginx_applies_total');
    const logged = sidecar!.logs().length;
    const extra = await startApp();
    apps.push(extra);
    await appAnswers(extra.port);
    await routesTo(apps);
    // Docker's health check and two probes of the replica later (a probe period each, longer
    // than the coalescing ceiling), any second render its start could cause would have happened.
    await waitFor(
      async () => {
        const { body } = await sidecar!.api<AppsBody>('/api/v1/apps');
        const b = body.apps.find((a) => a.name === APP)?.backends.find((x) => x.container?.name === extra.name);
        return b?.container?.docker_health === 'healthy' && b.consecutive_successes >= 2;
      },
      { what: 'the new replica healthy for Docker and probed twice' },
    );
    const updates = sidecar!.logs().slice(logged).filter((l) => l.msg === 'nginx upstreams updated');
    const shown = JSON.stringify(updates.map((l) => [l.time, l.changes]));
    // One update adds the replica, and none changes it after; on a loaded machine (CI) the other
    // replicas' probes can time out and come back meanwhile: those updates are theirs, each
    // logged, applied and reloaded once like this one.
    const its = updates.filter((l) => JSON.stringify(l.changes).includes(`(${extra.name})`));
    expect(its.map((l) => JSON.stringify(l.changes)), shown).toEqual([expect.stringContaining(`added 127.0.0.1:${extra.port} (${extra.name})`)]);
    expect(await sidecar!.metric('orchestry_nginx_applies_total'), shown).toBe(applies + updates.length);
    expect(await nginx!.reloadCount(), shown).toBe(reloads + updates.length);
  });

  it('keeps the last good file when nginx -t in the container rejects a template; nginx keeps serving', async () => {
    const goodTemplate = await readFile(templatePath, 'utf8');
    const goodFile = await currentFile();
    const reloads = await nginx!.reloadCount();
    const from = versions.length;
    expect(goodTemplate).toContain('{{#each servers}}');
    await writeFile(templatePath, goodTemplate.replace('{{#each servers}}', '    orchestry_no_such_directive on;\n{{#each servers}}'));
    try {
      const { body } = await waitFor(
        async () => {
          const r = await readyz();
          return r.status === 503 && r.body.reasons?.some((x) => x.includes('orchestry_no_such_directive')) ? r : null;
        },
        { what: 'readyz to report the rejected template' },
      );
      const reason = body.reasons!.find((x) => x.includes('orchestry_no_such_directive'))!;
      expect(reason).toContain('at validate');
      expect(reason).toContain(`in nginx container "${nginx!.name}"`);
      expect(reason).toContain('unknown directive');
      // Tested in a copy beside the live file, so nginx's own file never held the broken text.
      expect(versions.slice(from).some((v) => v.text.includes('orchestry_no_such_directive')), 'the broken file reached nginx\'s path').toBe(false);
      expect(await currentFile()).toBe(goodFile);
      expect(await sidecar!.metric('orchestry_degraded')).toBe(1);
      expect(await nginx!.reloadCount()).toBe(reloads);
      const { counts, failed } = await spread(40);
      expect(failed).toEqual([]);
      expect(Object.keys(counts).sort()).toEqual(apps.map((a) => a.name).sort());
    } finally {
      await writeFile(templatePath, goodTemplate);
    }
    await waitFor(async () => (await readyz()).status === 200, { what: 'readyz to recover with the good template' });
  });

  it('keeps routing while the Docker daemon restarts, then reconnects, resyncs and applies what changed meanwhile', async () => {
    const sick = apps[3]!;
    const healthy = apps.filter((a) => a !== sick);
    expect(await sidecar!.metric('orchestry_docker_connected')).toBe(1);
    expect((await readyz()).status).toBe(200);
    await restartDockerd({
      whileDown: async () => {
        const { body } = await waitFor(
          async () => {
            const r = await readyz();
            return r.status === 503 && r.body.reasons?.some((x) => x.includes('Docker Engine unreachable')) ? r : null;
          },
          { what: 'readyz to report the Docker Engine unreachable' },
        );
        expect(body.ready).toBe(false);
        expect(await sidecar!.metric('orchestry_docker_connected')).toBe(0);
        // Containers keep running (--live-restore) and the sidecar keeps routing to them.
        const { counts, failed } = await spread(40);
        expect(failed).toEqual([]);
        expect(Object.keys(counts).sort()).toEqual(apps.map((a) => a.name).sort());

        // Probes go on: a replica failing now is ejected, but nginx in its container can only be
        // told (exec, SIGHUP) through the engine, so the file is kept as nginx has it.
        await controlApp(sick.port, 'fail');
        await waitFor(
          async () => {
            const r = await readyz();
            return r.body.reasons?.some((x) => x.includes('last nginx update failed') && x.includes('cannot reach the Docker Engine'));
          },
          { what: 'the ejection to fail to reach nginx while the engine is down' },
        );
        expect(serverState(await currentFile(), sick.port)).toBe('up');
      },
    });
    await waitFor(async () => (await sidecar!.metric('orchestry_docker_connected')) === 1, { what: 'the sidecar to reconnect' });
    await waitFor(async () => serverState(await currentFile(), sick.port) === 'down', {
      what: 'the ejection made while the engine was down to reach nginx once it is back',
    });
    await routesTo(healthy);
    await waitFor(async () => (await readyz()).status === 200, { what: 'readyz ok after the reconnect' });

    // A container started right after the restart is found and routed to.
    const late = await startApp();
    apps.push(late);
    await appAnswers(late.port);
    await waitFor(async () => serverState(await currentFile(), late.port) === 'up', { what: 'the replica started after the restart in the file' });
    await routesTo([...healthy, late]);
    apps.splice(apps.indexOf(sick), 1); // ejected for good: its health stays failing
  });

  it('drops a replica whose container exited while the Docker daemon was down, once it is back', async () => {
    const gone = apps[0]!;
    const pid = (await gone.container.inspect()).State.Pid;
    expect(pid).toBeGreaterThan(1);
    await restartDockerd({
      whileDown: async () => {
        // The engine cannot be asked: end the container's own process (this file started it).
        process.kill(pid, 'SIGKILL');
        await waitFor(() => httpGet(gone.port, '/health').then(() => false, () => true), { what: 'the replica to be gone' });
      },
    });
    // Only a resync after the reconnect can tell: the container is no backend at all any more.
    await waitFor(async () => serverState(await currentFile(), gone.port) === null, {
      what: 'the replica that exited during the outage to leave the file',
    });
    expect((await gone.container.inspect()).State.Running).toBe(false);
    apps.splice(0, 1);
    await routesTo(apps);
    await waitFor(async () => (await readyz()).status === 200, { what: 'readyz ok after the reconnect' });
  });
});
