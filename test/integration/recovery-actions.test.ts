/**
 * Recovery's Docker effects (src/recovery/docker-actions.ts) against the real engine, with the
 * test app on host networking: restart, recreate (and its rollback), replace, scale out, scale in.
 */
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { createDockerActions, type DockerActions } from '../../src/recovery/docker-actions.js';
import { pickFreePort } from '../../src/recovery/ports.js';
import { ensureTestImages, type TestImages } from '../helpers/docker-images.js';
import { appAnswers, docker, isGone, removeTestContainers, requireDocker, testLabels } from '../helpers/docker.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = 'recovery-actions';
const TMP_REPO = 'orchestry-test/recovery-tmp';
let images: TestImages;
let actions: DockerActions;
let seq = 0;

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  images = await ensureTestImages();
  actions = createDockerActions({ docker, stopTimeoutSeconds: 5, logger: createLogger({ level: 'silent' }) });
}, 180_000);

afterAll(async () => {
  await removeTestContainers(SUITE);
  await docker.getImage(`${TMP_REPO}:${process.pid}`).remove().catch(() => undefined);
});

const uniqueName = (what: string) => `orchestry-test-recovery-${process.pid}-${what}-${++seq}`;

/**
 * The test app on host networking at 127.0.0.1:port, with more config than the shared helper
 * sets (restart policy, memory limit, working dir, labels), so cloning has something to keep.
 */
async function runApp(opts: { port: number; image?: string; labels?: Record<string, string> }): Promise<Dockerode.Container> {
  const container = await docker.createContainer({
    name: uniqueName('app'),
    Image: opts.image ?? images.nodeApp,
    Env: [`PORT=${opts.port}`, 'NAME=recovery-test', 'GRACE_MS=100'],
    WorkingDir: '/app',
    Labels: {
      'orchestry.enable': 'true',
      'orchestry.app': 'web',
      'orchestry.port': String(opts.port),
      'orchestry.replica': '1',
      ...opts.labels,
      ...testLabels(SUITE),
    },
    HostConfig: {
      NetworkMode: 'host',
      RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 },
      Memory: 256 * 1024 * 1024,
    },
  });
  await container.start();
  await appAnswers(opts.port);
  return container;
}


/** Container events (start, die, destroy) since `since` (epoch s), in order. */
async function eventsSince(since: number): Promise<{ id: string; action: string }[]> {
  const stream = (await docker.getEvents({
    since,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { type: ['container'], event: ['start', 'die', 'destroy'], label: [`orchestry.test.suite=${SUITE}`] },
  })) as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { id: string; Action: string })
    .map((e) => ({ id: e.id, action: e.Action }));
}

describe('recovery docker actions', () => {
  it('restarts a container in place: same id, running again with a new start time', async () => {
    const port = await freePort();
    const c = await runApp({ port });
    const before = await c.inspect();
    const r = await actions.restart(c.id);
    expect(r).toMatchObject({ ok: true, containerId: c.id });
    expect(r.newContainerId).toBeUndefined();
    const after = await c.inspect();
    expect(after.State.Running).toBe(true);
    expect(after.State.StartedAt).not.toBe(before.State.StartedAt);
    await appAnswers(port);
  });

  it('does not restart a container that is not running: one stopped outside recovery stays stopped', async () => {
    const port = await freePort();
    const c = await runApp({ port });
    await c.kill();
    await waitFor(async () => !(await c.inspect()).State.Running, { what: 'the killed container to stop' });
    const r = await actions.restart(c.id);
    expect(r).toMatchObject({ ok: false, containerId: c.id });
    expect(r.error).toMatch(/^not restarted: container [0-9a-f]{12} is exited, not running \(stopped outside recovery\)$/);
    expect((await c.inspect()).State.Running).toBe(false);
  });

  it('recreates a container: new id, same name, image, env, labels and host config; the old one is gone', async () => {
    const port = await freePort();
    const c = await runApp({ port });
    const before = await c.inspect();
    const r = await actions.recreate(c.id);
    expect(r.ok, r.error).toBe(true);
    expect(r.newContainerId).toBeDefined();
    expect(r.newContainerId).not.toBe(c.id);
    expect(await isGone(c.id)).toBe(true);
    const after = await docker.getContainer(r.newContainerId!).inspect();
    expect(after.Name).toBe(before.Name);
    expect(after.State.Running).toBe(true);
    expect(after.Config.Image).toBe(before.Config.Image);
    expect(after.Config.Env).toEqual(before.Config.Env);
    expect(after.Config.Labels).toEqual(before.Config.Labels);
    expect(after.Config.Entrypoint).toEqual(before.Config.Entrypoint);
    expect(after.Config.WorkingDir).toBe('/app');
    expect(after.Config.Healthcheck).toEqual(before.Config.Healthcheck);
    expect(after.HostConfig.NetworkMode).toBe('host');
    expect(after.HostConfig.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 2 });
    expect(after.HostConfig.Memory).toBe(256 * 1024 * 1024);
    await appAnswers(port);
  });

  it('recreates a stopped container and starts it', async () => {
    const port = await freePort();
    const c = await runApp({ port });
    await c.stop({ t: 1 });
    const r = await actions.recreate(c.id);
    expect(r.ok, r.error).toBe(true);
    expect((await docker.getContainer(r.newContainerId!).inspect()).State.Running).toBe(true);
    await appAnswers(port);
  });

  it('puts the old container back when the new one cannot be created', async () => {
    // An image tag that disappears after the container is created: recreate cannot create.
    const tmp = `${TMP_REPO}:${process.pid}`;
    await docker.getImage(images.nodeApp).tag({ repo: TMP_REPO, tag: String(process.pid) });
    const port = await freePort();
    const c = await runApp({ port, image: tmp });
    const before = await c.inspect();
    await docker.getImage(tmp).remove();
    const r = await actions.recreate(c.id);
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/no such image/i);
    const after = await c.inspect();
    expect(after.Name).toBe(before.Name);
    expect(after.State.Running).toBe(true);
    await appAnswers(port);
  });

  it('replaces a container: the new replica runs on a new port before the old one is removed', async () => {
    const [oldPort, newPort] = [await freePort(), await freePort()];
    const c = await runApp({ port: oldPort });
    const since = Math.floor(Date.now() / 1000);
    const name = uniqueName('replacement');
    const r = await actions.replace(c.id, { name, portEnv: 'PORT', port: newPort });
    expect(r.ok, r.error).toBe(true);
    const fresh = await docker.getContainer(r.newContainerId!).inspect();
    expect(fresh.Name).toBe(`/${name}`);
    expect(fresh.Config.Env).toContain(`PORT=${newPort}`);
    expect(fresh.Config.Labels['orchestry.port']).toBe(String(newPort));
    expect(fresh.Config.Labels['orchestry.replica']).toBe('1');
    expect(await isGone(c.id)).toBe(true);
    await appAnswers(newPort);

    const events = await eventsSince(since);
    const startedNew = events.findIndex((e) => e.id === fresh.Id && e.action === 'start');
    const diedOld = events.findIndex((e) => e.id === c.id && e.action === 'die');
    expect(startedNew).toBeGreaterThanOrEqual(0);
    expect(diedOld).toBeGreaterThan(startedNew);
  });

  it('scales out: a clone on a free port of the range, labelled as added, answering /health', async () => {
    const port = await freePort();
    const template = await runApp({ port, labels: { 'orchestry.health.path': '/health' } });
    const low = await freePort();
    const newPort = await pickFreePort([low, low + 9], [port]);
    expect(newPort).not.toBeNull();
    const name = uniqueName('added');
    const r = await actions.scaleOut(template.id, { name, portEnv: 'PORT', port: newPort!, replica: 2 });
    expect(r).toMatchObject({ ok: true, containerId: template.id });
    const added = await docker.getContainer(r.newContainerId!).inspect();
    const tpl = await template.inspect();
    expect(added.Name).toBe(`/${name}`);
    expect(added.Config.Labels).toEqual({
      ...tpl.Config.Labels,
      'orchestry.port': String(newPort),
      'orchestry.replica': '2',
      'orchestry.recovery.added': 'true',
    });
    expect(added.Config.Env).toEqual(tpl.Config.Env.map((e) => (e.startsWith('PORT=') ? `PORT=${newPort}` : e)));
    expect(added.HostConfig.NetworkMode).toBe('host');
    expect(tpl.State.Running).toBe(true);
    await appAnswers(newPort!);
    await appAnswers(port);
  });

  it('refuses to scale out a host-networked app without a port, creating nothing', async () => {
    const port = await freePort();
    const template = await runApp({ port });
    const name = uniqueName('portless');
    const r = await actions.scaleOut(template.id, { name, portEnv: 'PORT' });
    expect(r.ok).toBe(false);
    expect(r.error).toContain('uses host networking: a new replica needs a port');
    expect(await docker.listContainers({ all: true, filters: { name: [name] } })).toEqual([]);
  });

  it('scales in: stops and removes; a container already gone counts as done', async () => {
    const port = await freePort();
    const c = await runApp({ port });
    const r = await actions.scaleIn(c.id);
    expect(r).toMatchObject({ ok: true, containerId: c.id });
    expect(await isGone(c.id)).toBe(true);
    expect((await actions.scaleIn(c.id)).ok).toBe(true);
  });

  it('reports a failure as data, never by throwing', async () => {
    const r = await actions.restart('no-such-container-orchestry-test');
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/no such container/i);
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });
});
