/** The local test images (test/helpers/docker-images.ts) and the test app's behaviour in them. */
import type Dockerode from 'dockerode';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { ensureTestImages, type TestImages } from '../helpers/docker-images.js';
import {
  controlApp,
  docker,
  removeTestContainers,
  requireDocker,
  runContainer,
  waitForContainer,
  waitForHealthStatus,
} from '../helpers/docker.js';
import { startNginxContainer } from '../helpers/nginx-container.js';
import { httpGet } from '../helpers/nginx-instance.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = 'docker-images';
let images: TestImages;

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  const started = Date.now();
  images = await ensureTestImages();
  const sizes = await Promise.all(
    [images.nodeApp, images.nginx].map(async (n) => `${n} ${((await docker.getImage(n).inspect()).Size / 1e6).toFixed(0)} MB`),
  );
  console.log(`test images ready in ${Date.now() - started} ms: ${sizes.join(', ')}`);
}, 180_000);
afterAll(async () => {
  await removeTestContainers(SUITE);
});

/** Runs the test app on a free loopback port and waits until it answers. */
async function runApp(env: Record<string, string> = {}): Promise<{ container: Dockerode.Container; port: number }> {
  const port = await freePort();
  const container = await runContainer({ image: images.nodeApp, suite: SUITE, env: { PORT: String(port), ...env } });
  if (!env.STARTUP_DELAY_MS) await waitFor(() => httpGet(port, '/health'), { what: 'the app to listen' });
  return { container, port };
}

const exitCode = async (c: Dockerode.Container) =>
  (await waitForContainer(c, (i) => !i.State.Running, { what: 'the container to exit' })).State.ExitCode;

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('test images', () => {
  it('are tagged by content hash, labelled orchestry.test=1, and reused on the next call', async () => {
    expect(images.nodeApp).toMatch(/^orchestry-test\/node-app:[0-9a-f]{16}$/);
    expect(images.nginx).toMatch(/^orchestry-test\/nginx:[0-9a-f]{16}$/);
    for (const name of [images.nodeApp, images.nginx]) {
      expect((await docker.getImage(name).inspect()).Config.Labels).toMatchObject({ 'orchestry.test': '1' });
    }
    expect(await ensureTestImages()).toEqual(images);
  });

  it('node-app carries a HEALTHCHECK that wgets /health on $PORT', async () => {
    const info = await docker.getImage(images.nodeApp).inspect();
    expect(info.Config.Healthcheck?.Test?.join(' ')).toContain('wget -q -O /dev/null http://127.0.0.1:${PORT:-8000}/health');
  });
});

describe('the test app in orchestry-test/node-app', () => {
  it('answers /health and / on 127.0.0.1:PORT, and Docker reports it healthy', async () => {
    const { container, port } = await runApp({ NAME: 'app-one' });

    expect(await httpGet(port, '/health')).toEqual({ status: 200, body: 'ok' });
    expect(await httpGet(port, '/')).toEqual({ status: 200, body: 'app-one' });
    expect((await waitForHealthStatus(container, 'healthy')).State.Health?.Status).toBe('healthy');
  });

  it('fails its health check after /control/fail (Docker sees unhealthy) and passes again after /control/heal', async () => {
    const { container, port } = await runApp();
    await waitForHealthStatus(container, 'healthy');

    await controlApp(port, 'fail');
    expect((await httpGet(port, '/health')).status).toBe(503);
    await waitForHealthStatus(container, 'unhealthy');

    await controlApp(port, 'heal');
    expect(await httpGet(port, '/health')).toEqual({ status: 200, body: 'ok' });
    await waitForHealthStatus(container, 'healthy');
  });

  it('starts failing with HEALTH=fail and answers with the hostname when NAME is unset', async () => {
    const { container, port } = await runApp({ HEALTH: 'fail' });
    expect((await httpGet(port, '/health')).status).toBe(503);
    const hostname = (await container.inspect()).Config.Hostname;
    expect((await httpGet(port, '/')).body).toBe(hostname);
  });

  it('listens only after STARTUP_DELAY_MS', async () => {
    const { port } = await runApp({ STARTUP_DELAY_MS: '3000' });
    expect(await refusesConnections(port)).toBe(true);
    await waitFor(() => httpGet(port, '/health'), { what: 'the app to listen after its delay' });
  });

  it('never answers /health after /control/hang, and delays every response after /control/slow', async () => {
    const { port } = await runApp({ NAME: 'slowpoke' });
    await controlApp(port, 'slow?ms=300');
    const started = Date.now();
    expect((await httpGet(port, '/')).body).toBe('slowpoke');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);

    await controlApp(port, 'slow?ms=0');
    await controlApp(port, 'hang');
    await expect(httpGet(port, '/health')).rejects.toThrow('request timed out');
    expect((await httpGet(port, '/')).body).toBe('slowpoke');
  });

  it('exits with the code given to /control/exit, and dies of a signal on /control/crash (139: pid 1 ignores SIGABRT, abort() then faults)', async () => {
    const exiting = await runApp();
    const crashing = await runApp();
    await controlApp(exiting.port, 'exit?code=3');
    await controlApp(crashing.port, 'crash');
    expect(await exitCode(exiting.container)).toBe(3);
    expect(await exitCode(crashing.container)).toBe(139);
  });

  it('on docker stop, refuses new connections but answers on open ones for GRACE_MS, then exits 0', async () => {
    const { container, port } = await runApp({ NAME: 'graceful', GRACE_MS: '3000' });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<{ body: string; reused: boolean; connection: string | undefined }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ body, reused: req.reusedSocket, connection: res.headers.connection }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await get()).toMatchObject({ body: 'graceful', connection: 'keep-alive' });

      const stopping = container.stop({ t: 10 });
      await waitFor(() => refusesConnections(port), { what: 'the listener to close' });
      // The idle keep-alive connection still gets an answer, and is told to close.
      expect(await get()).toEqual({ body: 'graceful', reused: true, connection: 'close' });

      await stopping;
      expect(await exitCode(container)).toBe(0);
    } finally {
      agent.destroy();
    }
  });
});

describe('orchestry-test/nginx', () => {
  let backend: TestBackend;
  beforeAll(async () => {
    backend = await startBackend('from-host');
  });
  afterAll(async () => {
    await backend.close();
  });

  it('serves on a 127.0.0.1 port with host networking from a bind-mounted config', async () => {
    const nginx = await startNginxContainer({
      suite: SUITE,
      upstreams: `upstream web {\n    server ${backend.address};\n}\n`,
    });
    try {
      expect(await nginx.get('/')).toEqual({ status: 200, body: 'from-host' });
      expect((await nginx.container.inspect()).HostConfig.NetworkMode).toBe('host');
    } finally {
      await nginx.remove();
    }
  });
});
