/**
 * The Docker source's own logic (coalescing, draining at once, reconnect with backoff, failure
 * signals) driven by a manual clock. The Engine here is a small stand-in that answers list,
 * inspect and the event stream from memory; test/integration/docker-discovery.test.ts runs the
 * same source against the real Engine.
 */
import Dockerode from 'dockerode';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { createManualClock, type ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/schema.js';
import type { SidecarConfig } from '../../src/config/types.js';
import type { ContainerEvent, ContainerFailure } from '../../src/discovery/docker-events.js';
import type { InspectedContainer } from '../../src/discovery/docker-labels.js';
import { createDockerSource, type DockerSource, type DockerStatus } from '../../src/discovery/docker-source.js';
import type { Snapshot } from '../../src/model.js';

const T0 = Date.parse('2026-11-28T07:00:00Z');

function config(docker: Record<string, unknown> = {}): SidecarConfig {
  const result = parseConfig({
    apps: { web: { docker: { accept_containers: true } } },
    docker: { address_mode: 'host', reconnect_min_seconds: 0.5, reconnect_max_seconds: 4, startup_grace_seconds: 60, ...docker },
  });
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

function container(id: string, port: number, state: Partial<InspectedContainer['State']> = {}): InspectedContainer {
  return {
    Id: id,
    Name: `/web-${id}`,
    RestartCount: 0,
    State: {
      Status: 'running',
      OOMKilled: false,
      ExitCode: 0,
      StartedAt: new Date(T0).toISOString(),
      Health: { Status: 'healthy' },
      ...state,
    },
    Config: {
      Image: 'orchestry-test/node-app:1',
      Labels: { 'orchestry.enable': 'true', 'orchestry.app': 'web', 'orchestry.port': String(port) },
    },
    NetworkSettings: { Networks: { host: { IPAddress: '' } } },
  };
}

/** An Engine stand-in: containers in memory, one event stream at a time, can go away. */
function fakeEngine() {
  const containers = new Map<string, InspectedContainer>();
  let stream: PassThrough | null = null;
  let reachable = true;
  const calls = { list: 0, events: 0 };
  const down = () => Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT' });
  const docker = {
    async getEvents() {
      calls.events++;
      if (!reachable) throw down();
      stream = new PassThrough();
      return stream;
    },
    async listContainers() {
      calls.list++;
      if (!reachable) throw down();
      return [...containers.keys()].map((Id) => ({ Id }));
    },
    getContainer(id: string) {
      return {
        async inspect() {
          const c = containers.get(id);
          if (!c) throw Object.assign(new Error('No such container'), { statusCode: 404 });
          return structuredClone(c);
        },
      };
    },
  };
  return {
    docker: docker as unknown as Dockerode,
    containers,
    calls,
    send(action: string, id: string, attributes: Record<string, string> = {}) {
      const c = containers.get(id);
      stream?.write(
        `${JSON.stringify({
          Type: 'container',
          Action: action,
          Actor: { ID: id, Attributes: { name: `web-${id}`, ...c?.Config.Labels, ...attributes } },
          timeNano: T0 * 1e6,
        })}\n`,
      );
    },
    /** The daemon goes away: the stream ends and every call fails until `back()`. */
    vanish() {
      reachable = false;
      stream?.end();
      stream = null;
    },
    back() {
      reachable = true;
    },
  };
}

/**
 * Lets promise callbacks and stream events run: the stand-in Engine answers from memory, so all
 * that is pending is microtasks and nextTicks, which run before the event loop's next turn.
 * No time passes, on the manual clock or the real one.
 */
const settle = () => new Promise((r) => setImmediate(r));

interface Rig {
  engine: ReturnType<typeof fakeEngine>;
  clock: ManualClock;
  source: DockerSource;
  snapshots: Snapshot[];
  statuses: DockerStatus[];
  events: Array<{ event: ContainerEvent; failures: ContainerFailure[] }>;
}

let rig: Rig | null = null;
afterEach(async () => {
  await rig?.source.stop();
  rig = null;
});

async function start(
  setup: (engine: ReturnType<typeof fakeEngine>) => void = () => undefined,
  more: { knownApps?: string[]; docker?: Record<string, unknown> } = {},
): Promise<Rig> {
  const engine = fakeEngine();
  setup(engine);
  const clock = createManualClock(T0);
  const r: Rig = { engine, clock, snapshots: [], statuses: [], events: [], source: null as unknown as DockerSource };
  r.source = createDockerSource({
    docker: engine.docker,
    config: () => config(more.docker),
    clock,
    ...(more.knownApps ? { knownApps: more.knownApps } : {}),
    onStatus: (s) => r.statuses.push(s),
    onContainerEvent: (event, failures) => r.events.push({ event, failures }),
  });
  rig = r;
  await r.source.start((s) => r.snapshots.push(s));
  return r;
}

const last = (r: Rig) => r.snapshots[r.snapshots.length - 1] as Snapshot;
const view = (s: Snapshot) => s.backends.map((b) => `${b.id}${b.draining ? ' draining' : ''}`);

/** A container of an app only labels define. */
function labelled(id: string, app: string, port: number, labels: Record<string, string> = {}): InspectedContainer {
  const c = container(id, port);
  c.Config.Labels = { ...c.Config.Labels, 'orchestry.app': app, ...labels };
  return c;
}

describe('docker source: apps only labels define are remembered (issue 11 item 7)', () => {
  test('an app whose last container is removed stays in every snapshot, without backends (nginx may reference it)', async () => {
    const r = await start((e) => e.containers.set('s', labelled('s', 'shop', 18101)));
    expect(last(r).apps?.map((a) => a.name)).toEqual(['shop']);
    r.engine.send('destroy', 's');
    r.engine.containers.delete('s');
    r.clock.advance(100);
    await settle();
    expect(last(r).backends).toEqual([]);
    expect(last(r).apps?.map((a) => [a.name, a.docker.accept_containers])).toEqual([['shop', true]]);
    expect(r.source.state().apps.map((a) => a.name)).toEqual(['shop']);
  });

  test('apps known from before a restart are in the first snapshot, and keep their name against a new one differing in case', async () => {
    const r = await start((e) => e.containers.set('s', labelled('s', 'CART', 18102)), { knownApps: ['cart', 'web'] });
    // `web` is the YAML's: it stays the YAML's app. `CART` would be a duplicate of `cart` for nginx.
    expect(last(r).apps?.map((a) => a.name)).toEqual(['cart']);
    expect(r.source.state().rejected.map((x) => x.errors)).toEqual([
      ['orchestry.app: conflicts with app "cart": nginx compares upstream names ignoring case (got "CART")'],
    ]);
  });

  test('events of containers outside docker.constraints cause no resync (another sidecar owns them)', async () => {
    const r = await start((e) => e.containers.set('a', container('a', 18001, {})), { docker: { constraints: ['project=shop'] } });
    const lists = r.engine.calls.list;
    r.engine.send('start', 'x', { 'orchestry.enable': 'true', project: 'blog' });
    r.clock.advance(100);
    await settle();
    expect(r.engine.calls.list).toBe(lists);
    r.engine.send('start', 'y', { 'orchestry.enable': 'true', project: 'shop' });
    r.clock.advance(100);
    await settle();
    expect(r.engine.calls.list).toBe(lists + 1);
  });
});

describe('docker source', () => {
  test('start lists and inspects every labelled container and emits them, connected', async () => {
    const r = await start((e) => {
      e.containers.set('a', container('a', 18001));
      e.containers.set('b', container('b', 18002, { Status: 'exited', ExitCode: 1 }));
    });
    expect(r.snapshots.map(view)).toEqual([['web/127.0.0.1:18001']]);
    expect(r.statuses).toEqual([{ connected: true }]);
  });

  test('a burst of events is covered by one resync after the coalescing wait', async () => {
    const r = await start((e) => e.containers.set('a', container('a', 18001)));
    const lists = r.engine.calls.list;
    r.engine.containers.set('b', container('b', 18002));
    for (const action of ['create', 'start', 'health_status: starting', 'health_status: healthy']) r.engine.send(action, 'b');
    await settle();
    expect(r.engine.calls.list).toBe(lists);
    r.clock.advance(100);
    await settle();
    expect(r.engine.calls.list).toBe(lists + 1);
    expect(view(last(r))).toEqual(['web/127.0.0.1:18001', 'web/127.0.0.1:18002']);
  });

  test('kill with SIGTERM drains the backend at once, before any resync, until the container is gone', async () => {
    const r = await start((e) => {
      e.containers.set('a', container('a', 18001));
      e.containers.set('b', container('b', 18002));
    });
    const lists = r.engine.calls.list;
    r.engine.send('kill', 'a', { signal: '15' });
    await settle();
    expect(r.engine.calls.list).toBe(lists);
    expect(view(last(r))).toEqual(['web/127.0.0.1:18001 draining', 'web/127.0.0.1:18002']);

    r.clock.advance(100); // resync while the process is still shutting down: still draining
    await settle();
    expect(view(last(r))).toEqual(['web/127.0.0.1:18001 draining', 'web/127.0.0.1:18002']);

    r.engine.containers.set('a', container('a', 18001, { Status: 'exited', ExitCode: 0 }));
    r.engine.send('die', 'a', { exitCode: '0' });
    r.clock.advance(100);
    await settle();
    expect(view(last(r))).toEqual(['web/127.0.0.1:18002']);
    expect(r.events.map((e) => [e.event.action, e.failures.map((f) => f.failureType)])).toEqual([
      ['kill', []],
      ['die', []],
    ]);
  });

  test('a restarted container is routed to again once its new run is seen', async () => {
    const r = await start((e) => e.containers.set('a', container('a', 18001)));
    r.engine.send('kill', 'a', { signal: '15' });
    await settle();
    expect(view(last(r))).toEqual(['web/127.0.0.1:18001 draining']);
    r.engine.containers.set('a', container('a', 18001, { StartedAt: new Date(T0 + 3000).toISOString() }));
    r.engine.send('die', 'a', { exitCode: '0' });
    r.engine.send('start', 'a');
    r.clock.advance(100);
    await settle();
    expect(view(last(r))).toEqual(['web/127.0.0.1:18001']);
  });

  test('a kill with SIGHUP does not drain', async () => {
    const r = await start((e) => e.containers.set('a', container('a', 18001)));
    const count = r.snapshots.length;
    r.engine.send('kill', 'a', { signal: '1' });
    await settle();
    r.clock.advance(100);
    await settle();
    expect(r.snapshots.length).toBe(count);
  });

  test('a container that dies by itself is reported as container_stopped with its exit code', async () => {
    const r = await start((e) => e.containers.set('a', container('a', 18001)));
    r.engine.containers.set('a', container('a', 18001, { Status: 'exited', ExitCode: 3 }));
    r.engine.send('die', 'a', { exitCode: '3' });
    r.clock.advance(100);
    await settle();
    expect(r.events).toMatchObject([
      {
        event: { action: 'die', containerId: 'a', app: 'web', exitCode: 3, container: { state: 'exited' } },
        failures: [{ failureType: 'container_stopped', containerId: 'a', app: 'web', details: { exitCode: 3, removed: false } }],
      },
    ]);
  });

  test('a HEALTHCHECK still starting when the startup grace runs out is reported without any event', async () => {
    const r = await start((e) => e.containers.set('a', container('a', 18001, { Health: { Status: 'starting' } })));
    expect(r.events).toEqual([]);
    r.clock.advance(60_000);
    await settle();
    expect(r.events.map((e) => [e.event.action, e.failures.map((f) => f.failureType)])).toEqual([
      ['sync', ['application_startup_failed']],
    ]);
  });

  test('while the Engine is unreachable it keeps the last snapshot, reports it, and resyncs on reconnect', async () => {
    const r = await start((e) => e.containers.set('a', container('a', 18001)));
    const count = r.snapshots.length;
    r.engine.vanish();
    await settle();
    expect(r.statuses).toEqual([
      { connected: true },
      { connected: false, error: 'Docker event stream ended' },
    ]);
    r.clock.advance(500); // first retry, still down
    await settle();
    expect(r.statuses[r.statuses.length - 1]).toEqual({ connected: false, error: 'connect ENOENT /var/run/docker.sock' });
    expect(r.snapshots.length).toBe(count);

    r.engine.containers.set('b', container('b', 18002));
    r.engine.back();
    r.clock.advance(1000); // second retry after a doubled wait
    await settle();
    expect(r.statuses[r.statuses.length - 1]).toEqual({ connected: true });
    expect(view(last(r))).toEqual(['web/127.0.0.1:18001', 'web/127.0.0.1:18002']);
  });

  test('reconnect waits double each time from reconnect_min_seconds up to reconnect_max_seconds', async () => {
    const r = await start();
    r.engine.vanish();
    await settle();
    const attempts: number[] = [];
    for (const wait of [500, 1000, 2000, 4000, 4000]) {
      const before = r.engine.calls.events;
      r.clock.advance(wait - 1);
      await settle();
      expect(r.engine.calls.events).toBe(before);
      r.clock.advance(1);
      await settle();
      expect(r.engine.calls.events).toBe(before + 1);
      attempts.push(r.clock.now() - T0);
    }
    expect(attempts).toEqual([500, 1500, 3500, 7500, 11500]);
  });

  test('stop ends reconnect attempts and emissions', async () => {
    const r = await start((e) => e.containers.set('a', container('a', 18001)));
    r.engine.vanish();
    await settle();
    await r.source.stop();
    const calls = r.engine.calls.events;
    r.engine.back();
    r.clock.advance(60_000);
    await settle();
    expect(r.engine.calls.events).toBe(calls);
    expect(r.clock.pendingTimers()).toBe(0);
  });

  test('state() exposes rejected containers and apps only labels define', async () => {
    const r = await start((e) => {
      const bad = container('x', 18009);
      bad.Config.Labels = { ...bad.Config.Labels, 'orchestry.weight': '1 down' };
      e.containers.set('x', bad);
      const api = container('y', 18010);
      api.Config.Labels = { ...api.Config.Labels, 'orchestry.app': 'api' };
      e.containers.set('y', api);
    });
    const state = r.source.state();
    expect(state.connected).toBe(true);
    expect(state.rejected).toEqual([
      { containerId: 'x', containerName: 'web-x', errors: ['orchestry.weight: must be an integer (got "1 down")'] },
    ]);
    expect(state.apps.map((a) => a.name)).toEqual(['api']);
  });
});
