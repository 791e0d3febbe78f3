/**
 * nginx in a container (nginx.mode docker): the shared NginxControl suite, lookups by name and
 * by label, clear errors, and the render-reload applier driving containerised nginx.
 */
import Dockerode from 'dockerode';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRenderReloadApplier } from '../../src/nginx/applier.js';
import { createNginxControl } from '../../src/nginx/control.js';
import { createDockerNginxControl } from '../../src/nginx/docker-control.js';
import { createRenderer, type Renderer } from '../../src/nginx/render.js';
import { dumpedFiles } from '../../src/nginx/run.js';
import type { DesiredSet } from '../../src/upstream/types.js';
import { backendsForSuite } from '../helpers/backend-server.js';
import { ensureTestImages } from '../helpers/docker-images.js';
import { docker, removeTestContainers, requireDocker } from '../helpers/docker.js';
import { nginxConfig, runNginxControlSuite, upstreamFile } from '../helpers/nginx-control-suite.js';
import { waitFor } from '../helpers/wait.js';
import { INCLUDED_PATH, startNginxContainer, type NginxContainer } from '../helpers/nginx-container.js';

const SUITE = 'nginx-control-docker';
/** Unique per run, so a label lookup only ever sees this file's containers. */
const LABEL = `orchestry.test.nginx=${process.pid}-${Date.now()}`;
const labelled = (value = LABEL) => {
  const [key, v] = value.split('=') as [string, string];
  return { [key]: v };
};

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  await ensureTestImages();
}, 180_000);
afterAll(async () => {
  await removeTestContainers(SUITE);
});

runNginxControlSuite('nginx in a container, by name', async (upstreams) => {
  const n = await startNginxContainer({ suite: SUITE, upstreams });
  return harness(n, createDockerNginxControl({ docker, container: n.name }));
});

runNginxControlSuite('nginx in a container, by label', async (upstreams) => {
  const n = await startNginxContainer({ suite: SUITE, upstreams, labels: labelled() });
  return harness(n, createDockerNginxControl({ docker, label: LABEL }));
});

function harness(n: NginxContainer, control: ReturnType<typeof createDockerNginxControl>) {
  return {
    control,
    outputPath: n.outputPath,
    includedPath: INCLUDED_PATH,
    get: () => n.get(),
    settle: (reloads: number) => n.settle(reloads),
    stopNginx: () => n.stop(),
    close: () => n.remove(),
  };
}

describe('docker nginx control', () => {
  const backends = backendsForSuite('a', 'b');
  const started: NginxContainer[] = [];
  const start = async (opts: { labels?: Record<string, string> } = {}) => {
    const n = await startNginxContainer({ suite: SUITE, upstreams: upstreamFile(backends.a.address), ...opts });
    started.push(n);
    return n;
  };

  afterEach(async () => {
    await Promise.all(started.splice(0).map((n) => n.remove()));
  });

  it('needs a container name or a label', () => {
    expect(() => createDockerNginxControl({ docker })).toThrow(
      'nginx.container: must be set (or nginx.container_label) when nginx.mode is docker',
    );
  });

  it('reports a container that does not exist, naming the setting', async () => {
    const control = createDockerNginxControl({ docker, container: 'orchestry-test-no-such-nginx' });
    const expected = {
      code: 'NGINX_CONTAINER_NOT_FOUND',
      message: 'nginx container "orchestry-test-no-such-nginx" not found (nginx.container)',
    };
    await expect(control.validate()).rejects.toMatchObject(expected);
    await expect(control.reload()).rejects.toMatchObject(expected);
    expect(control.describe()).toBe('nginx in container "orchestry-test-no-such-nginx"');
  });

  it('reports a stopped container as not running, for validate as well as reload', async () => {
    const n = await start();
    await n.stop();
    const control = createDockerNginxControl({ docker, container: n.name });
    const expected = {
      code: 'NGINX_NOT_RUNNING',
      message: `nginx is not running: container "${n.name}" is exited (nginx.container)`,
    };
    await expect(control.validate()).rejects.toMatchObject(expected);
    await expect(control.reload()).rejects.toMatchObject(expected);
  });

  it('by label: none, none running, or more than one running is a clear error', async () => {
    const label = `${LABEL}-lookup`;
    const control = createDockerNginxControl({ docker, label });
    await expect(control.reload()).rejects.toMatchObject({
      code: 'NGINX_CONTAINER_NOT_FOUND',
      message: `nginx container with label "${label}" not found (nginx.container_label)`,
    });

    const first = await start({ labels: labelled(label) });
    await expect(control.validate()).resolves.toBeUndefined();
    const second = await start({ labels: labelled(label) });
    const ambiguous = await control.reload().then(() => null, (e: unknown) => e);
    expect(ambiguous).toMatchObject({ code: 'NGINX_CONTAINER_AMBIGUOUS' });
    expect((ambiguous as Error).message).toMatch(/^2 running containers have label ".+" \(.+, .+\); nginx.container_label must match exactly one$/);
    expect((ambiguous as Error).message).toContain(first.name);
    expect((ambiguous as Error).message).toContain(second.name);

    await first.stop();
    await second.stop();
    await expect(control.reload()).rejects.toMatchObject({
      code: 'NGINX_NOT_RUNNING',
      message: expect.stringMatching(/^nginx is not running: no container labelled ".+" is running \(.+ exited, .+ exited\) \(nginx.container_label\)$/),
    });
  });

  it('finds an nginx container again after it was recreated with the same name', async () => {
    const n = await start();
    const control = createDockerNginxControl({ docker, container: n.name });
    await control.validate();
    const oldId = n.container.id;

    await n.recreate();
    expect(n.container.id).not.toBe(oldId);
    await writeFile(n.outputPath, upstreamFile(backends.b.address));
    await control.validate();
    await control.reload();

    await n.settle(1);
    expect((await n.get()).body).toBe('b');
  });

  it('reports an nginx binary the container does not have', async () => {
    const n = await start();
    const control = createDockerNginxControl({ docker, container: n.name, binary: 'no-such-nginx' });
    await expect(control.validate()).rejects.toMatchObject({
      code: 'NGINX_NOT_FOUND',
      message: expect.stringContaining(`cannot run nginx binary "no-such-nginx" in nginx container "${n.name}" (nginx.binary)`),
    });
  });

  it('says whether a file exists in the container and leaves no connection to the Engine keeping the daemon alive', async () => {
    const n = await start();
    const control = createDockerNginxControl({ docker, container: n.name });
    const open = () => process.getActiveResourcesInfo().filter((r) => r === 'PipeWrap').length;
    const before = open();
    expect(await control.files!.exists('/etc/nginx/nginx.conf')).toBe(true);
    expect(await control.files!.exists('/etc/nginx/conf.d/.orchestry-no-such-file')).toBe(false);
    // A HEAD answered 404 used to leave its socket open: the daemon then never exited at stop.
    await waitFor(() => open() <= before, { timeoutMs: 2_000, what: 'no Engine socket left open' });
  });

  it("dump gives nginx -T's stdout alone: every file it read, however the Engine interleaves stderr", async () => {
    // The Engine copies stdout and stderr separately; taken as one text, nginx's "test is
    // successful" landed inside a `# configuration file <path>:` line in ~2 % of dumps (8 at once,
    // 8 files), and test-copy.ts then missed a file nginx had read. 20 files, 8 at a time, 200
    // dumps: the old one-text output failed this in 3 runs of 3 (4-5 dumps each).
    const n = await start();
    const names = Array.from({ length: 20 }, (_, i) => `extra-${String(i).padStart(2, '0')}.conf`);
    for (const name of names) await writeFile(join(n.dir, 'conf.d', name), `upstream ${name.replace(/\W/g, '_')} { server 127.0.0.1:9 down; }\n`);
    const expected = ['/etc/nginx/nginx.conf', ...[...names, 'orchestry-upstreams.conf'].sort().map((f) => `/etc/nginx/conf.d/${f}`)];
    const control = createDockerNginxControl({ docker, container: n.name });
    const wrong: string[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 25; i++) {
          const dump = await control.dump!('/etc/nginx/nginx.conf');
          if (JSON.stringify(dumpedFiles(dump)) !== JSON.stringify(expected)) wrong.push(dump);
        }
      }),
    );
    expect(wrong.length, wrong[0]).toBe(0);
  }, 120_000);

  it('reports an unreachable Docker Engine as DOCKER_UNAVAILABLE', async () => {
    const socketPath = join(tmpdir(), `orchestry-no-docker-${process.pid}.sock`);
    const control = createDockerNginxControl({ docker: new Dockerode({ socketPath }), container: 'nginx' });
    await expect(control.reload()).rejects.toMatchObject({
      code: 'DOCKER_UNAVAILABLE',
      message: expect.stringContaining('cannot inspect nginx container "nginx": cannot reach the Docker Engine'),
    });
  });

  it('createNginxControl maps nginx.mode docker, passing config_path as -c inside the container', async () => {
    const n = await start();
    const good = createNginxControl(nginxConfig({ mode: 'docker', container: n.name }), docker);
    expect(good.describe()).toBe(`nginx in container "${n.name}"`);
    await expect(good.validate()).resolves.toBeUndefined();

    const wrong = createNginxControl(
      nginxConfig({ mode: 'docker', container_label: LABEL, config_path: '/etc/nginx/missing.conf' }),
      docker,
    );
    expect(wrong.describe()).toBe(`nginx in the container labelled "${LABEL}"`);
    await expect(wrong.validate()).rejects.toMatchObject({ code: 'NGINX_CONTAINER_NOT_FOUND' });
    const labelledNginx = await start({ labels: labelled() });
    const err = await wrong.validate().then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'NGINX_FAILED' });
    expect((err as Error).message).toBe(
      `nginx -t -c /etc/nginx/missing.conf in nginx container "${labelledNginx.name}" failed (exit 1): ` +
        '[emerg] open() "/etc/nginx/missing.conf" failed (2: No such file or directory)',
    );
  });
});

describe('render-reload applier with nginx in a container', () => {
  const backends = backendsForSuite('a', 'b');
  let renderer: Renderer;
  let scratch: string;
  let n: NginxContainer | null = null;

  beforeAll(async () => {
    renderer = createRenderer({ templatePath: null });
    await renderer.load();
    scratch = await mkdtemp(join(tmpdir(), 'orchestry-docker-applier-'));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });
  afterEach(async () => {
    await n?.remove();
    n = null;
  });

  const setFor = (address: string): DesiredSet => ({
    upstreams: [
      {
        name: 'web',
        keepalive: 8,
        balance: 'round_robin',
        panic: false,
        servers: [{ address, weight: 1, backup: false, down: false }],
      },
    ],
  });

  const applierFor = (container: NginxContainer, r: Renderer) => {
    const cfg = nginxConfig({ mode: 'docker', container: container.name, output_path: container.outputPath });
    return createRenderReloadApplier({ nginx: cfg, renderer: r, control: createNginxControl(cfg, docker) });
  };

  it('writes the shared file, validates by exec, reloads by SIGHUP, and traffic reaches the new backend', async () => {
    n = await startNginxContainer({ suite: SUITE, upstreams: upstreamFile(backends.a.address) });
    expect((await n.get()).body).toBe('a');

    const outcome = await applierFor(n, renderer).apply(setFor(backends.b.address));

    expect(outcome).toMatchObject({ result: 'applied', reloaded: true });
    // Tested in a copy inside the container (read through the archive API), not in place.
    expect(outcome.warnings).toBeUndefined();
    expect(await readFile(n.outputPath, 'utf8')).toBe(outcome.text);
    await n.settle(1);
    expect((await n.get()).body).toBe('b');
  });

  it('tests a copy in the container, so the live file never holds a rendering nginx rejects, and nginx keeps serving', async () => {
    n = await startNginxContainer({ suite: SUITE, upstreams: upstreamFile(backends.a.address) });
    const badPath = join(scratch, 'bad.hbs');
    await writeFile(badPath, '{{#each upstreams}}upstream {{name}} {\n    bogus_directive on;\n}\n{{/each}}');
    const bad = createRenderer({ templatePath: badPath });
    await bad.load();

    const cfg = nginxConfig({ mode: 'docker', container: n.name, output_path: n.outputPath });
    const real = createNginxControl(cfg, docker);
    // What the shared file holds whenever nginx in the container is asked to test.
    const seen: string[] = [];
    const record = async () => void seen.push(await readFile(n!.outputPath, 'utf8'));
    const control = {
      ...real,
      validate: async () => (await record(), real.validate()),
      dump: async (configPath: string) => (await record(), real.dump!(configPath)),
    };

    const outcome = await createRenderReloadApplier({ nginx: cfg, renderer: bad, control }).apply(setFor(backends.b.address));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'validate', code: 'NGINX_FAILED', reloaded: false });
    // nginx -T ran on a copy in the container: the live file never held the rejected text.
    expect(outcome.warnings).toBeUndefined();
    expect(seen.length).toBeGreaterThan(0);
    for (const text of seen) expect(text).toBe(upstreamFile(backends.a.address));
    expect(outcome.error).toContain(`unknown directive "bogus_directive" in ${INCLUDED_PATH}:2`);
    expect(await readFile(n.outputPath, 'utf8')).toBe(upstreamFile(backends.a.address));
    expect(await readdir(join(n.dir, 'conf.d'))).toEqual(['orchestry-upstreams.conf']);
    expect((await n.get()).body).toBe('a');
    expect(await n.reloadCount()).toBe(0);
  });
});
