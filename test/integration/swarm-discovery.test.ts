/**
 * The Swarm source against a real two-node swarm (a manager and a worker, private dockerd
 * processes: test/helpers/swarm.ts): services found by their labels, their running tasks as
 * backends on 127.0.0.1 at their slot's port, scale changes, a task killed and replaced by
 * Swarm, bad labels rejected with the reasons the container source gives, and `auto` telling a
 * manager from a worker and from an Engine outside any swarm. One swarm serves the whole file;
 * each test removes its services.
 */
import type Dockerode from 'dockerode';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createSystemClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/schema.js';
import type { SidecarConfig } from '../../src/config/types.js';
import { createDockerSource } from '../../src/discovery/docker-source.js';
import type { DockerStatus } from '../../src/discovery/engine-connection.js';
import { createSwarmSource, type SwarmSource } from '../../src/discovery/swarm-source.js';
import type { Backend, Snapshot } from '../../src/model.js';
import { discoverySourceSuite } from '../helpers/discovery-suite.js';
import { docker as sharedEngine, removeTestContainers, runTestApp } from '../helpers/docker.js';
import type { PrivateSwarm } from '../helpers/swarm.js';
import { createAppService, killTask, removeServices, runningTasks, scaleService, type AppService } from '../helpers/swarm-services.js';
import { swarmForThisFile } from '../helpers/swarm-stack.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = 'swarm-discovery';
const getSwarm = swarmForThisFile();
let swarm: PrivateSwarm;
const sources: SwarmSource[] = [];

beforeEach(() => {
  swarm = getSwarm();
});

afterAll(async () => {
  await removeTestContainers(SUITE);
});

// Before the file's own hook removes the services (hooks after a test run in reverse order).
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.stop()));
});

function config(docker: Record<string, unknown> = {}): SidecarConfig {
  const result = parseConfig({
    apps: { unrelated: {} },
    docker: { enabled: true, swarm: true, swarm_refresh_seconds: 0.5, ...docker },
  });
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

function watch(opts: { docker?: Dockerode; config?: SidecarConfig } = {}) {
  const snapshots: Snapshot[] = [];
  const statuses: DockerStatus[] = [];
  const cfg = opts.config ?? config();
  const source = createSwarmSource({
    docker: opts.docker ?? swarm.manager,
    config: () => cfg,
    clock: createSystemClock(),
    onStatus: (s) => statuses.push(s),
  });
  sources.push(source);
  const latest = () => snapshots.at(-1);
  /** The backends of `app` in the latest snapshot, by id. */
  const of = (app: string) => (latest()?.backends ?? []).filter((b) => b.app === app).sort((a, b) => (a.id < b.id ? -1 : 1));
  return { source, snapshots, statuses, latest, of, start: () => source.start((s) => void snapshots.push(s)) };
}

const ids = (backends: Backend[]) => backends.map((b) => b.id);
const expectedIds = (app: string, svc: AppService, slots: number[]) => slots.map((n) => `${app}/127.0.0.1:${svc.port(n)}`).sort();

discoverySourceSuite('swarm source', async () => {
  const svc = await createAppService(swarm, { name: 'suite-web', app: 'suite', replicas: 1 });
  await runningTasks(swarm, svc.id, 1);
  const w = watch();
  const has = (s: Snapshot, slot: number) => s.backends.some((b) => b.id === `suite/127.0.0.1:${svc.port(slot)}`);
  return {
    source: w.source,
    initial: (s) => has(s, 1),
    async change() {
      await scaleService(swarm, svc.id, 2);
      return (s) => has(s, 2);
    },
    witness: () => watch().source,
    close: async () => {
      await Promise.all(sources.splice(0).map((s) => s.stop()));
      await removeServices(swarm);
    },
  };
});

describe('swarm source', () => {
  test('discovers services by their labels and their running tasks, on every node, with task and node', async () => {
    const svc = await createAppService(swarm, { name: 'disc-web', app: 'disc', replicas: 3 });
    const other = await createAppService(swarm, { name: 'disc-plain', app: 'plain', replicas: 1, labels: { 'orchestry.enable': null } });
    const tasks = await runningTasks(swarm, svc.id, 3);
    await runningTasks(swarm, other.id, 1);
    const w = watch();
    await w.start();
    expect(w.statuses).toEqual([{ connected: true }]);
    await waitFor(() => w.of('disc').length === 3, { what: 'three backends' });
    expect(ids(w.of('disc'))).toEqual(expectedIds('disc', svc, [1, 2, 3]));
    expect(w.of('plain')).toEqual([]);
    for (const b of w.of('disc')) {
      const t = tasks.find((x) => x.ID === b.task!.id)!;
      expect(b.port).toBe(svc.port(t.Slot!));
      expect(b.task).toMatchObject({ serviceId: svc.id, serviceName: 'disc-web', slot: t.Slot, nodeId: t.NodeID, nodeAddress: '127.0.0.1', state: 'running' });
      expect(b.task!.containerId).toBe(t.Status.ContainerStatus?.ContainerID);
      expect(b.container).toBeUndefined();
    }
    expect(new Set(w.of('disc').map((b) => b.task!.nodeId))).toEqual(new Set(swarm.nodes.map((n) => n.nodeId)));
    expect(w.latest()?.apps?.map((a) => a.name)).toEqual(['disc']);
  });

  test('scaling a service out and in (docker service scale) changes its backends', async () => {
    const svc = await createAppService(swarm, { name: 'scale-web', app: 'scale', replicas: 1 });
    await runningTasks(swarm, svc.id, 1);
    const w = watch();
    await w.start();
    await waitFor(() => w.of('scale').length === 1, { what: 'one backend' });
    await scaleService(swarm, svc.id, 3);
    await waitFor(() => ids(w.of('scale')).join() === expectedIds('scale', svc, [1, 2, 3]).join(), { what: 'three backends after scale-out', timeoutMs: 30_000 });
    await scaleService(swarm, svc.id, 1);
    await waitFor(() => ids(w.of('scale')).join() === expectedIds('scale', svc, [1]).join(), { what: 'one backend after scale-in', timeoutMs: 30_000 });
  });

  test("a task killed on the worker is replaced by Swarm: the source drops it and reports the replacement", async () => {
    const svc = await createAppService(swarm, { name: 'kill-web', app: 'kill', replicas: 2 });
    const tasks = await runningTasks(swarm, svc.id, 2);
    const worker = swarm.nodes.find((n) => n.role === 'worker')!;
    const victim = tasks.find((t) => t.NodeID === worker.nodeId) ?? tasks[0]!;
    const w = watch();
    await w.start();
    await waitFor(() => w.of('kill').length === 2, { what: 'two backends' });
    const t0 = Date.now();
    await killTask(swarm, victim);
    const gone = await waitFor(() => (w.of('kill').every((b) => b.task!.id !== victim.ID) ? Date.now() : null), { what: 'the killed task gone' });
    const back = await waitFor(
      () => {
        const b = w.of('kill').find((x) => x.task!.slot === victim.Slot);
        return b && b.task!.id !== victim.ID ? Date.now() : null;
      },
      { what: 'a new task in the slot', timeoutMs: 30_000 },
    );
    console.log(`task killed on the worker: gone from the snapshot after ${gone - t0} ms, replacement listed after ${back - t0} ms`);
    expect(ids(w.of('kill'))).toEqual(expectedIds('kill', svc, [1, 2]));
  });

  test("a task container killed on the manager's own node is drained at once, before Swarm reports it", async () => {
    const svc = await createAppService(swarm, { name: 'drain-web', app: 'drain', replicas: 2 });
    const tasks = await runningTasks(swarm, svc.id, 2);
    const manager = swarm.nodes[0]!;
    const local = tasks.find((t) => t.NodeID === manager.nodeId);
    expect(local, 'a task on the manager').toBeDefined();
    const w = watch({ config: config({ swarm_refresh_seconds: 60 }) });
    await w.start();
    await waitFor(() => w.of('drain').length === 2, { what: 'two backends' });
    const before = w.snapshots.length;
    await killTask(swarm, local!);
    const first = await waitFor(() => w.snapshots.slice(before).find((s) => s.backends.some((b) => b.task?.id === local!.ID && b.draining)), {
      what: 'a snapshot with the task draining',
    });
    expect(first.backends.filter((b) => b.app === 'drain').length).toBe(2);
  });
});

describe('label validation as for containers', () => {
  const BAD = { 'orchestry.port': '80;', 'orchestry.weight': 'heavy', 'orchestry.health.path': 'no-slash' };

  test('a service with bad labels is rejected, none of its tasks routed, with the reasons a container gets', async () => {
    const bad = await createAppService(swarm, { name: 'bad-web', app: 'badlabels', replicas: 1, labels: BAD });
    const good = await createAppService(swarm, { name: 'good-web', app: 'goodlabels', replicas: 1 });
    await runningTasks(swarm, bad.id, 1);
    await runningTasks(swarm, good.id, 1);
    const w = watch();
    await w.start();
    await waitFor(() => w.of('goodlabels').length === 1, { what: 'the good service routed' });
    expect(w.of('badlabels')).toEqual([]);
    const rejected = w.source.state().rejected;
    expect(rejected.map((r) => [r.kind, r.containerId, r.containerName])).toEqual([['service', bad.id, 'bad-web']]);

    // The same labels on a container of the shared engine, through the container source.
    const image = swarm.images.nodeApp;
    const container = await runTestApp({ image, suite: SUITE, app: 'badlabels', graceMs: 200, labels: { 'orchestry.address_mode': 'host', ...BAD } });
    const dockerSource = createDockerSource({ docker: sharedEngine, config: () => config({ swarm: false }), clock: createSystemClock() });
    try {
      await dockerSource.start(() => undefined);
      const mine = dockerSource.state().rejected.find((r) => r.containerName === container.name);
      expect(mine?.errors).toHaveLength(3);
      expect(rejected[0]!.errors).toEqual(mine!.errors);
    } finally {
      await dockerSource.stop();
      await removeTestContainers(SUITE);
    }
  });
});

describe('docker.swarm: auto and true', () => {
  test('auto on a manager discovers; auto on a worker or on an Engine outside any swarm reports none, and says why', async () => {
    const svc = await createAppService(swarm, { name: 'auto-web', app: 'auto', replicas: 1 });
    await runningTasks(swarm, svc.id, 1);
    const onManager = watch({ config: config({ swarm: 'auto' }) });
    const onWorker = watch({ docker: swarm.nodes[1]!.docker, config: config({ swarm: 'auto' }) });
    const outside = watch({ docker: sharedEngine, config: config({ swarm: 'auto' }) });
    await Promise.all([onManager.start(), onWorker.start(), outside.start()]);
    await waitFor(() => onManager.of('auto').length === 1, { what: 'the manager discovering' });
    expect(onManager.source.state()).toMatchObject({ connected: true, active: true });
    for (const w of [onWorker, outside]) {
      expect(w.snapshots.at(-1)).toEqual({ source: 'swarm', backends: [], apps: [] });
      expect(w.source.state()).toMatchObject({ connected: true, active: false });
    }
    expect(onWorker.source.state().inactiveReason).toBe('this Engine is a Swarm worker, not a manager');
    expect(outside.source.state().inactiveReason).toBe('this Engine is not in a Swarm (state inactive)');
  });

  test('true on a worker is an error, reported and retried, never thrown', async () => {
    const w = watch({ docker: swarm.nodes[1]!.docker });
    await w.start();
    await waitFor(() => w.statuses.length > 0, { what: 'a status' });
    expect(w.statuses[0]!.connected).toBe(false);
    expect(w.statuses[0]!.error).toMatch(/not a swarm manager/i);
    expect(w.snapshots).toEqual([]);
  });
});
