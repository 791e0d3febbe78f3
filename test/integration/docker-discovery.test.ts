/**
 * The Docker source against the real Engine: labelled containers of the test image (host
 * networking, app on 127.0.0.1:$PORT) become backends; bad labels are rejected; `docker stop`
 * drains before the container dies; an unreachable Engine is reported, retried, never thrown.
 * Other test files may run containers at the same time, so every check looks only at this
 * file's own containers (app names starting with `dd-`).
 */
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createSystemClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/schema.js';
import type { SidecarConfig } from '../../src/config/types.js';
import { containerStopReason, type ContainerEvent, type ContainerFailure } from '../../src/discovery/docker-events.js';
import { createDockerSource, type DockerSource, type DockerStatus } from '../../src/discovery/docker-source.js';
import type { Snapshot } from '../../src/model.js';
import { discoverySourceSuite } from '../helpers/discovery-suite.js';
import { ensureTestImages } from '../helpers/docker-images.js';
import { appAnswers, docker, removeTestContainers, requireDocker, runTestApp } from '../helpers/docker.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = 'docker-discovery';
let image = '';

function config(docker: Record<string, unknown> = {}): SidecarConfig {
  const result = parseConfig({
    apps: { 'dd-web': { health: { path: '/health', period_seconds: 10, timeout_seconds: 2 }, docker: { accept_containers: true } } },
    docker: { enabled: true, address_mode: 'host', ...docker },
  });
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

/** Runs the test app on a free loopback port with `orchestry.*` labels. */
async function startApp(app: string, labels: Record<string, string> = {}) {
  const started = await runTestApp({ image, suite: SUITE, app, graceMs: 1500, labels });
  return { ...started, backendId: `${app}/127.0.0.1:${started.port}` };
}

function watch(opts: { docker?: Dockerode; config?: SidecarConfig } = {}) {
  const snapshots: Snapshot[] = [];
  const statuses: DockerStatus[] = [];
  const events: Array<{ event: ContainerEvent; failures: ContainerFailure[] }> = [];
  const log: Array<{ snapshot: Snapshot } | { event: ContainerEvent }> = [];
  const cfg = opts.config ?? config();
  const source = createDockerSource({
    docker: opts.docker ?? docker,
    config: () => cfg,
    clock: createSystemClock(),
    onStatus: (s) => statuses.push(s),
    onContainerEvent: (event, failures) => {
      events.push({ event, failures });
      log.push({ event });
    },
  });
  const record = (snapshot: Snapshot) => {
    snapshots.push(snapshot);
    log.push({ snapshot });
  };
  const latest = () => snapshots[snapshots.length - 1];
  const backend = (id: string) => latest()?.backends.find((b) => b.id === id);
  return { source, snapshots, statuses, events, log, record, latest, backend };
}

const sources: DockerSource[] = [];
const tracked = <T extends { source: DockerSource }>(w: T): T => {
  sources.push(w.source);
  return w;
};

beforeAll(async () => {
  await requireDocker();
  image = (await ensureTestImages()).nodeApp;
  await removeTestContainers(SUITE);
}, 120_000);

afterAll(async () => {
  await Promise.all(sources.map((s) => s.stop()));
  await removeTestContainers(SUITE);
});

discoverySourceSuite('docker source (real Engine)', async () => {
  const first = await startApp('dd-suite');
  const made = [first.container];
  const w = tracked(watch());
  return {
    source: w.source,
    initial: (s) => s.backends.some((b) => b.id === first.backendId),
    async change() {
      const next = await startApp('dd-suite');
      made.push(next.container);
      return (s) => s.backends.some((b) => b.id === next.backendId) && s.backends.some((b) => b.id === first.backendId);
    },
    witness: () => tracked(watch()).source,
    async close() {
      await Promise.all(sources.map((s) => s.stop()));
      await Promise.all(made.map((c) => c.remove({ force: true }).catch(() => undefined)));
    },
  };
});

describe('docker source against the real Engine', () => {
  test("containerStopReason asks the Engine: gone, not running, or asked to stop since its start; a SIGHUP or an earlier run's kill is no reason", async () => {
    // A 3 s shutdown grace: a SIGTERMed app still runs a while, with its stop request in the log.
    const apps = await Promise.all([1, 2, 3, 4].map(() => runTestApp({ image, suite: SUITE, app: 'dd-stop', graceMs: 3000 })));
    const [killed, termed, removed, hupped] = apps as [(typeof apps)[0], (typeof apps)[0], (typeof apps)[0], (typeof apps)[0]];
    await Promise.all(apps.map((a) => appAnswers(a.port)));
    const startedAt = async (a: typeof killed) => Date.parse((await a.container.inspect()).State.StartedAt);
    const reasons = async () =>
      Promise.all(apps.map(async (a) => containerStopReason(docker, a.container.id, a === removed ? 0 : await startedAt(a), Date.now())));
    expect(await reasons()).toEqual([null, null, null, null]);

    await killed.container.kill();
    await termed.container.kill({ signal: 'SIGTERM' });
    await hupped.container.kill({ signal: 'SIGHUP' });
    await removed.container.remove({ force: true });
    await waitFor(async () => !(await killed.container.inspect()).State.Running, { what: 'the killed container to exit' });
    for (const a of [termed, hupped]) expect((await a.container.inspect()).State.Running).toBe(true);
    expect(await reasons()).toEqual(['the container is exited', 'someone asked the Engine to kill it', 'the container is gone', null]);

    // Started again: the kill belongs to its last run.
    await killed.container.start();
    await appAnswers(killed.port);
    expect(await containerStopReason(docker, killed.container.id, await startedAt(killed), Date.now())).toBe(null);
    await Promise.all([killed, termed, hupped].map((a) => a.container.remove({ force: true })));
  });

  test('labelled containers appear as backends with health labels layered over the YAML app', async () => {
    const app = await startApp('dd-web', {
      'orchestry.weight': '3',
      'orchestry.replica': '1',
      'orchestry.health.failure_threshold': '2',
      'orchestry.health.expected_status_codes': '200,204',
      'orchestry.health.headers': '{"X-Probe":"1"}',
    });
    const w = tracked(watch());
    await w.source.start(w.record);
    const backend = await waitFor(() => w.backend(app.backendId), { what: 'the labelled container as a backend' });
    expect(backend).toMatchObject({
      app: 'dd-web',
      host: '127.0.0.1',
      port: app.port,
      weight: 3,
      backup: false,
      source: 'docker',
      health: {
        path: '/health', // YAML app
        period_seconds: 10, // YAML app
        timeout_seconds: 2, // YAML app
        failure_threshold: 2, // label
        expected_status_codes: [200, 204], // label
        headers: { 'X-Probe': '1' }, // label
        protocol: 'HTTP', // default
      },
      container: { id: app.container.id, name: app.name, image, replica: 1, state: 'running', restartCount: 0 },
    });
    expect(w.statuses).toEqual([{ connected: true }]);
  });

  test('a container with bad labels is rejected with all its errors and the others still appear', async () => {
    const good = await startApp('dd-web');
    const bad = await startApp('web;}', { 'orchestry.port': '80;', 'orchestry.health.timeout_seconds': 'abc' });
    const w = tracked(watch());
    await w.source.start(w.record);
    await waitFor(() => w.backend(good.backendId), { what: 'the good container as a backend' });
    const rejected = w.source.state().rejected.find((r) => r.containerId === bad.container.id);
    expect(rejected).toEqual({
      containerId: bad.container.id,
      containerName: bad.name,
      errors: [
        expect.stringMatching(/^orchestry\.app: app name must .*\(got "web;}"\)$/),
        'orchestry.port: must be an integer (got "80;")',
        'orchestry.health.timeout_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "abc")',
      ],
    });
    expect(JSON.stringify(w.snapshots)).not.toContain('web;}');
  });

  test('docker stop: the backend is drained before the container dies, then removed', async () => {
    const app = await startApp('dd-web');
    await appAnswers(app.port);
    const w = tracked(watch());
    await w.source.start(w.record);
    await waitFor(() => w.backend(app.backendId), { what: 'the container as a backend' });
    const from = w.log.length;

    await app.container.stop({ t: 5 });
    const dieAt = await waitFor(
      () => {
        const i = w.log.findIndex((e, at) => at >= from && 'event' in e && e.event.action === 'die' && e.event.containerId === app.container.id);
        return i >= 0 ? i : null;
      },
      { what: 'the die event' },
    );
    const drainedAt = w.log.findIndex((e, at) => at >= from && 'snapshot' in e && e.snapshot.backends.some((b) => b.id === app.backendId && b.draining));
    expect(drainedAt).toBeGreaterThanOrEqual(from);
    expect(drainedAt).toBeLessThan(dieAt);
    const drained = (w.log[drainedAt] as { snapshot: Snapshot }).snapshot.backends.find((b) => b.id === app.backendId);
    expect(drained?.container?.state).toBe('running');
    await waitFor(() => !w.backend(app.backendId), { what: 'the stopped container to leave the snapshot' });
    // A stop someone asked for is no failure; the app shut down on its own (graceful, exit 0).
    const die = w.events.find((e) => e.event.action === 'die' && e.event.containerId === app.container.id);
    expect(die?.event.exitCode).toBe(0);
    expect(die?.failures).toEqual([]);
  });

  test('docker kill (SIGKILL) and docker rm -f are asked for through the API: drained and let go, no failure (issue 11 item 12)', async () => {
    const killed = await startApp('dd-web');
    const removed = await startApp('dd-web');
    const w = tracked(watch());
    await w.source.start(w.record);
    await waitFor(() => w.backend(killed.backendId) && w.backend(removed.backendId), { what: 'the containers as backends' });
    await killed.container.kill();
    await removed.container.remove({ force: true });
    const dies = await waitFor(
      () => {
        const found = [killed, removed].map((a) => w.events.find((e) => e.event.action === 'die' && e.event.containerId === a.container.id));
        return found.every(Boolean) ? found : null;
      },
      { what: 'both die events' },
    );
    expect(dies.map((d) => d!.failures)).toEqual([[], []]);
    for (const a of [killed, removed]) {
      expect(w.snapshots.some((s) => s.backends.some((b) => b.id === a.backendId && b.draining)), a.name).toBe(true);
    }
    await waitFor(() => !w.backend(killed.backendId) && !w.backend(removed.backendId), { what: 'both to leave the snapshot' });
  });

  test('a process killed from outside the Engine (no kill event: a crash, an OOM kill) is still container_stopped', async () => {
    const app = await startApp('dd-web');
    const w = tracked(watch());
    await w.source.start(w.record);
    await waitFor(() => w.backend(app.backendId), { what: 'the container as a backend' });
    process.kill((await app.container.inspect()).State.Pid, 'SIGKILL');
    const die = await waitFor(
      () => w.events.find((e) => e.event.action === 'die' && e.event.containerId === app.container.id),
      { what: 'the die event' },
    );
    expect(die.failures).toEqual([
      { failureType: 'container_stopped', containerId: app.container.id, app: 'dd-web', details: { exitCode: 137, removed: false } },
    ]);
  });

  test('an Engine that cannot be reached is reported and retried with backoff; nothing is thrown or emitted', async () => {
    const missing = new Dockerode({ socketPath: `/nonexistent-${process.pid}/docker.sock` });
    /** An Engine client that counts the event stream connections asked of it. */
    const counted = () => {
      const attempts: number[] = [];
      const counting = Object.create(missing) as Dockerode;
      counting.getEvents = ((...args: Parameters<Dockerode['getEvents']>) => {
        attempts.push(Date.now());
        return (missing.getEvents as (...a: unknown[]) => unknown)(...args);
      }) as Dockerode['getEvents'];
      return { attempts, docker: counting };
    };
    const retrying = config({ reconnect_min_seconds: 0.05, reconnect_max_seconds: 0.2 });
    const { attempts, docker: counting } = counted();
    const w = tracked(watch({ docker: counting, config: retrying }));
    await expect(w.source.start(w.record)).resolves.toBeUndefined();
    expect(w.statuses[0]).toEqual({ connected: false, error: expect.stringContaining('ENOENT') });
    await waitFor(() => attempts.length >= 5, { what: 'five connection attempts' });
    expect(w.snapshots).toEqual([]);
    expect(w.source.state()).toMatchObject({ connected: false, apps: [], rejected: [] });
    // A twin left running keeps retrying at the longest wait (0.2 s): once it has retried three
    // more times, the stopped source would have too.
    const twin = counted();
    const running = tracked(watch({ docker: twin.docker, config: retrying }));
    await running.source.start(running.record);
    await waitFor(() => twin.attempts.length >= 5, { what: 'the twin reaching the longest wait' });
    await w.source.stop();
    const after = attempts.length;
    const twinAfter = twin.attempts.length;
    await waitFor(() => twin.attempts.length >= twinAfter + 3, { what: 'three more attempts of the running twin' });
    await running.source.stop();
    expect(attempts.length).toBe(after);
  });
});
