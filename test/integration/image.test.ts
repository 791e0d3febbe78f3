/**
 * The Dockerfile, built for real against the local node:24-bookworm-slim stand-in
 * (standin-images.ts) and run the way users run it: config mounted at
 * /etc/orchestry/sidecar.yaml, admin address from ORCHESTRY_ADMIN_LISTEN. Host networking,
 * everything on 127.0.0.1 (no bridge exists here). Reports build time and image size.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { containerLogs, docker, removeTestContainers, requireDocker, testLabels, waitForHealthStatus } from '../helpers/docker.js';
import { freePort } from '../helpers/free-port.js';
import { buildSidecarImage, ensureNodeBaseImage, REPO_ROOT, run, SIDECAR_IMAGE } from '../helpers/standin-images.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = `image-${process.pid}`;
const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
const lock = JSON.parse(await readFile(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean; optional?: boolean }>;
};

let dir: string;
let backend: TestBackend;
let adminPort: number;
let container: Dockerode.Container;
let image: Dockerode.ImageInspectInfo;

/** `docker exec` as the container's configured user; stdout. */
async function exec(cmd: string[]): Promise<string> {
  return (await run('docker', ['exec', container.id, ...cmd])).trim();
}

beforeAll(async () => {
  await requireDocker();
  const base = await ensureNodeBaseImage();
  if (base.built) console.log(`node:24-bookworm-slim stand-in built in ${base.seconds.toFixed(0)} s`);
  const build = await buildSidecarImage();
  image = await docker.getImage(SIDECAR_IMAGE).inspect();
  console.log(
    `${SIDECAR_IMAGE}: ${(image.Size / 1e6).toFixed(1)} MB (${(image.Size / 2 ** 20).toFixed(1)} MiB), ` +
      `docker build ${build.seconds.toFixed(1)} s (layers cached when the tree is unchanged)`,
  );

  dir = await mkdtemp(join(tmpdir(), 'orchestry-image-'));
  await chmod(dir, 0o755); // the container's user reads the mounted config
  backend = await startBackend('web-1');
  adminPort = await freePort();
  // No nginx in this test: `true` stands in for nginx -t and nginx -s reload, so the full apply
  // path runs and the generated file lands in the image's /shared/conf.d volume.
  await writeFile(
    join(dir, 'sidecar.yaml'),
    `apps:
  web:
    backends: ["${backend.address}"]
    health: { initial_delay_seconds: 0, period_seconds: 2, timeout_seconds: 1 }
nginx:
  binary: /bin/true
  output_path: /shared/conf.d/orchestry-upstreams.conf
  coalesce_min_wait_seconds: 0
`,
    { mode: 0o644 },
  );
  container = await docker.createContainer({
    Image: SIDECAR_IMAGE,
    Env: [`ORCHESTRY_ADMIN_LISTEN=127.0.0.1:${adminPort}`],
    Labels: testLabels(SUITE),
    // The image's own HEALTHCHECK command, checked every second instead of every 15 s.
    Healthcheck: { Interval: 1e9, Timeout: 5e9, Retries: 3, StartPeriod: 0 },
    HostConfig: { NetworkMode: 'host', Binds: [`${join(dir, 'sidecar.yaml')}:/etc/orchestry/sidecar.yaml:ro`] },
  });
  await container.start();
}, 600_000);

afterAll(async () => {
  await removeTestContainers(SUITE).catch(() => undefined);
  await backend?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  // The image is kept: the next run rebuilds from cached layers in seconds.
});

describe('the container image', () => {
  it('answers /healthz and becomes healthy under its own HEALTHCHECK', async () => {
    const info = await waitForHealthStatus(container, 'healthy', 30_000).catch(async (err: Error) => {
      const health = (await container.inspect()).State.Health;
      throw new Error(`${err.message}\nhealth: ${JSON.stringify(health)}\n${await containerLogs(container)}`);
    });
    expect(info.State.Health?.Status).toBe('healthy');
    const res = await fetch(`http://127.0.0.1:${adminPort}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
  });

  it('probes the configured backend and writes the upstreams file into its volume', async () => {
    const apps = await waitFor(
      async () => {
        const body = (await (await fetch(`http://127.0.0.1:${adminPort}/api/v1/apps`)).json()) as {
          apps: Array<{ name: string; backends: Array<{ address: string; health: string }> }>;
        };
        return body.apps[0]?.backends[0]?.health === 'healthy' ? body.apps : null;
      },
      { what: 'the backend to be probed healthy', timeoutMs: 15_000 },
    );
    expect(apps[0]?.backends[0]?.address).toBe(backend.address);
    const ready = await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, { what: '/readyz' });
    expect(ready).toBe(true);
    const upstreams = await exec(['cat', '/shared/conf.d/orchestry-upstreams.conf']);
    expect(upstreams).toContain(`server ${backend.address}`);
    expect(await exec(['stat', '-c', '%u', '/shared/conf.d/orchestry-upstreams.conf'])).toBe('10001');
    // The state store lives in its own volume, writable by the sidecar's user.
    const body = (await (await fetch(`http://127.0.0.1:${adminPort}/api/v1/apps`)).json()) as { state_store: { state: string; path: string } };
    expect(body.state_store).toMatchObject({ state: 'ok', path: '/var/lib/orchestry/state.db' });
    expect(await exec(['stat', '-c', '%u', '/var/lib/orchestry/state.db'])).toBe('10001');
  });

  it('runs as the non-root orchestry user (uid 10001)', async () => {
    expect(image.Config.User).toBe('orchestry:orchestry');
    // pid 1 is the sidecar itself (node as the entrypoint, no shell in between).
    const status = await exec(['cat', '/proc/1/status']);
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe('10001');
    expect(await exec(['cat', '/proc/1/cmdline'])).toContain('/app/dist/cli.js');
  });

  it('prints the package version with --version', async () => {
    const labels = Object.entries(testLabels(SUITE)).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    const out = await run('docker', ['run', '--rm', '--network', 'none', ...labels, SIDECAR_IMAGE, '--version']);
    expect(out.trim()).toBe(pkg.version);
  });

  it('carries OCI labels, volumes and production dependencies only', async () => {
    const labels = image.Config.Labels ?? {};
    expect(labels['org.opencontainers.image.title']).toBe('orchestry-sidecar');
    expect(labels['org.opencontainers.image.version']).toBe(pkg.version);
    expect(labels['org.opencontainers.image.licenses']).toBe('MIT');
    expect(Object.keys(image.Config.Volumes ?? {}).sort()).toEqual(['/etc/orchestry', '/shared/conf.d', '/var/lib/orchestry']);
    expect(image.Config.Env).toContain('ORCHESTRY_CONFIG=/etc/orchestry/sidecar.yaml');
    expect(image.Config.Env).toContain('ORCHESTRY_STORE_PATH=/var/lib/orchestry/state.db');
    // Top-level packages in the image against package-lock.json: every production package, no
    // dev-only one and no optional one (--omit=optional).
    const listed = await exec(['sh', '-c', 'cd /app/node_modules && ls -d * @*/*']);
    const inImage = new Set(listed.split('\n').filter((n) => !n.startsWith('@') || n.includes('/')));
    const topLevel = Object.entries(lock.packages).flatMap(([path, p]) => {
      const name = /^node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(path)?.[1];
      return name ? [{ name, ...p }] : [];
    });
    const prod = topLevel.filter((p) => !p.dev && !p.optional).map((p) => p.name);
    expect(prod).toContain('undici');
    expect(prod.filter((n) => !inImage.has(n))).toEqual([]);
    expect(topLevel.filter((p) => p.dev || p.optional).map((p) => p.name).filter((n) => inImage.has(n))).toEqual([]);
    expect(await exec(['ls', '/app'])).not.toMatch(/\bsrc\b|\btest\b/);
  });

  it('stops gracefully on docker stop (SIGTERM): exit code 0 and a clean shutdown logged', async () => {
    expect((image.Config as { StopSignal?: string }).StopSignal).toBe('SIGTERM');
    await container.stop({ t: 10 });
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    expect(StatusCode).toBe(0);
    expect(await containerLogs(container, 5)).toContain('orchestry-sidecar stopped');
  });
});
