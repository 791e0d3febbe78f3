/** The render -> write -> nginx -t -> reload applier against a real private nginx. */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRenderReloadApplier } from '../../src/nginx/applier.js';
import { configLoadedAt, reloadNginx } from '../../src/nginx/reload.js';
import { createRenderer, type Renderer } from '../../src/nginx/render.js';
import type { DesiredSet } from '../../src/upstream/types.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { startNginx, type NginxInstance } from '../helpers/nginx-instance.js';
import { NGINX_BIN } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { webSet } from '../helpers/applier-suite.js';

/** Larger than the largest possible Linux pid_max (2^22), so no process can have it. */
const NO_SUCH_PID = 4_194_305;

let a: TestBackend;
let b: TestBackend;
let renderer: Renderer;
let nginx: NginxInstance | null = null;
let scratch: string;

beforeAll(async () => {
  a = await startBackend('a');
  b = await startBackend('b');
  renderer = createRenderer({ templatePath: null });
  await renderer.load();
  scratch = await mkdtemp(join(tmpdir(), 'orchestry-applier-'));
});
afterAll(async () => {
  await a.close();
  await b.close();
  await rm(scratch, { recursive: true, force: true });
});
afterEach(async () => {
  await nginx?.stop();
  nginx = null;
});

function setFor(...addresses: string[]): DesiredSet {
  return webSet(addresses.map((address) => ({ address })));
}

/** An upstreams file routing to `address`, as a previous sidecar run might have left it. */
const initialFile = (address: string) => `upstream web {\n    server ${address};\n}\n`;

async function start(address: string): Promise<NginxInstance> {
  nginx = await startNginx({ upstreams: initialFile(address) });
  return nginx;
}

/** Waits until nginx answers `/` from the named backend. */
const servedBy = (n: NginxInstance, name: string) =>
  waitFor(async () => (await n.get()).body === name, { what: `nginx to route to ${name}` });

async function customRenderer(name: string, text: string): Promise<Renderer> {
  const path = join(scratch, name);
  await writeFile(path, text);
  const r = createRenderer({ templatePath: path });
  await r.load();
  return r;
}

describe('render-reload applier', () => {
  it('writes the file, passes nginx -t, reloads by SIGHUP, and traffic reaches the new backend', async () => {
    const n = await start(a.address);
    expect((await n.get()).body).toBe('a');
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer });

    const outcome = await applier.apply(setFor(b.address));

    expect(outcome).toMatchObject({ result: 'applied', reloaded: true });
    expect(outcome.stage).toBeUndefined();
    expect(Object.keys(outcome.timings ?? {})).toEqual(['render', 'validate', 'write', 'reload']);
    const onDisk = await readFile(n.outputPath, 'utf8');
    expect(onDisk).toBe(outcome.text);
    expect(onDisk).toContain(`server ${b.address};`);
    expect(applier.lastGood).toBe(onDisk);
    await n.settle(1);
    expect(await n.reloadCount()).toBe(1);
    expect((await n.get()).body).toBe('b');
  });

  it('reloads with `nginx -s reload` when no pid file is configured', async () => {
    const n = await start(a.address);
    const applier = createRenderReloadApplier({ nginx: n.config({ pid_path: null }), renderer });
    expect(await applier.apply(setFor(b.address))).toMatchObject({ result: 'applied', reloaded: true });
    await n.settle(1);
    expect((await n.get()).body).toBe('b');
  });

  it('neither writes nor reloads when the rendered text is unchanged', async () => {
    const n = await start(a.address);
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer });
    expect((await applier.apply(setFor(b.address))).result).toBe('applied');
    await n.settle(1);
    const before = await stat(n.outputPath);

    const again = await applier.apply(setFor(b.address));

    expect(again).toMatchObject({ result: 'unchanged', reloaded: false, text: applier.lastGood });
    expect(Object.keys(again.timings ?? {})).toEqual(['render']);
    expect((await stat(n.outputPath)).mtimeMs).toBe(before.mtimeMs);
    expect((await n.get()).body).toBe('b');
    expect(await n.reloadCount()).toBe(1);
  });

  it('a (re)started sidecar next to an nginx that already runs its rendering does not reload it', async () => {
    const n = await start(a.address);
    const before = createRenderReloadApplier({ nginx: n.config(), renderer });
    expect((await before.apply(setFor(b.address))).result).toBe('applied');
    await n.settle(1);

    // The file was written a moment before the reload that loaded it, well within a second:
    // a boot time read in whole seconds once took that for a file written after nginx loaded it.
    const restarted = createRenderReloadApplier({ nginx: n.config(), renderer });
    expect(await restarted.apply(setFor(b.address))).toMatchObject({ result: 'unchanged', reloaded: false });
    expect(await n.reloadCount()).toBe(1);
  });

  it('reloads at start an nginx that loaded its rendering before `loadedSince` (DNS mode: before its DNS server answered)', async () => {
    const n = await start(a.address);
    const before = createRenderReloadApplier({ nginx: n.config(), renderer });
    await before.apply(setFor(b.address));
    await n.settle(1);
    await waitFor(async () => Date.now() - ((await configLoadedAt(n.pidPath)) ?? Infinity) > 200, { what: 'time to pass' });

    const restarted = createRenderReloadApplier({ nginx: n.config(), renderer, loadedSince: Date.now() });
    expect(await restarted.apply(setFor(b.address))).toMatchObject({ result: 'applied', reloaded: true });
    await n.settle(2);
    expect(await n.reloadCount()).toBe(2);
  });

  it("does not reload at start an nginx loaded before `loadedSince` that a DNS server of the sidecar answered after it loaded (a restarted sidecar in DNS mode)", async () => {
    const n = await start(a.address);
    const before = createRenderReloadApplier({ nginx: n.config(), renderer });
    await before.apply(setFor(b.address));
    await n.settle(1);
    const loadedAt = (await configLoadedAt(n.pidPath))!;
    await waitFor(() => Date.now() - loadedAt > 400, { what: 'time to pass' });
    // The previous process's DNS server answered nginx 200 ms after nginx loaded; this one's began later.
    const restarted = createRenderReloadApplier({ nginx: n.config(), renderer, loadedSince: Date.now(), answeredAt: () => loadedAt + 200 });
    expect(await restarted.apply(setFor(b.address))).toMatchObject({ result: 'unchanged', reloaded: false });
    expect(await n.reloadCount()).toBe(1);

    // Answered only before it loaded (an nginx restarted since): it may hold no servers, so reload.
    const again = createRenderReloadApplier({ nginx: n.config(), renderer, loadedSince: Date.now(), answeredAt: () => loadedAt - 1000 });
    expect(await again.apply(setFor(b.address))).toMatchObject({ result: 'applied', reloaded: true });
    await n.settle(2);
    expect(await n.reloadCount()).toBe(2);
  });

  it('reloads at start when the file holds its rendering but nginx loaded it before that was written', async () => {
    const n = await start(a.address);
    const before = createRenderReloadApplier({ nginx: n.config(), renderer });
    await before.apply(setFor(b.address));
    const textB = before.lastGood!;
    await before.apply(setFor(a.address));
    await n.settle(2);
    await servedBy(n, 'a');
    // Well clear of the last reload, as a sidecar killed between its write and its reload leaves it.
    await waitFor(async () => Date.now() - ((await configLoadedAt(n.pidPath)) ?? Infinity) > 200, { what: 'time to pass' });
    await writeFile(n.outputPath, textB);

    const restarted = createRenderReloadApplier({ nginx: n.config(), renderer });
    expect(await restarted.apply(setFor(b.address))).toMatchObject({ result: 'applied', reloaded: true });
    await servedBy(n, 'b');
  });

  it('puts back the previous file when nginx -t rejects the rendering, and nginx keeps serving', async () => {
    const n = await start(a.address);
    const bad = await customRenderer(
      'unknown-directive.hbs',
      `{{#each upstreams}}
upstream {{name}} {
    bogus_directive on;
{{#each servers}}
    server {{address}};
{{/each}}
}
{{/each}}`,
    );
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer: bad });

    const outcome = await applier.apply(setFor(b.address));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'validate', code: 'NGINX_FAILED', reloaded: false });
    expect(outcome.error).toContain('unknown directive "bogus_directive"');
    expect(outcome.error).toContain(n.outputPath);
    expect(outcome.text).toContain('bogus_directive');
    expect(await readFile(n.outputPath, 'utf8')).toBe(initialFile(a.address));
    expect(await readdir(join(n.dir, 'conf.d'))).toEqual(['orchestry-upstreams.conf']);
    expect(applier.lastGood).toBeNull();
    expect((await n.get()).body).toBe('a');
    expect(await n.reloadCount()).toBe(0);
  });

  it('rolls back to its own last good file after a template change that nginx rejects', async () => {
    const n = await start(a.address);
    const good = createRenderReloadApplier({ nginx: n.config(), renderer });
    expect((await good.apply(setFor(b.address))).result).toBe('applied');
    await n.settle(1);
    const bad = await customRenderer(
      'bad-param.hbs',
      `{{#each upstreams}}
upstream {{name}} {
{{#each servers}}
    server {{address}} heavy;
{{/each}}
}
{{/each}}`,
    );
    const next = createRenderReloadApplier({ nginx: n.config(), renderer: bad, previous: good });

    const outcome = await next.apply(setFor(a.address));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'validate' });
    expect(outcome.error).toContain('invalid parameter "heavy"');
    expect(await readFile(n.outputPath, 'utf8')).toBe(good.lastGood);
    expect(next.lastGood).toBe(good.lastGood);
    expect((await n.get()).body).toBe('b');
    expect(await n.reloadCount()).toBe(1);
  });

  it('keeps the previous file when a new template carried over with `previous` renders identically', async () => {
    const n = await start(a.address);
    const first = createRenderReloadApplier({ nginx: n.config(), renderer });
    expect((await first.apply(setFor(b.address))).result).toBe('applied');
    const second = createRenderReloadApplier({ nginx: n.config(), renderer, previous: first });
    expect((await second.apply(setFor(b.address))).result).toBe('unchanged');
  });

  it('fails at reload with NGINX_NOT_RUNNING when the pid file names no process, and retries next time', async () => {
    const n = await start(a.address);
    const pidPath = join(scratch, 'stale.pid');
    await writeFile(pidPath, `${NO_SUCH_PID}\n`);
    const applier = createRenderReloadApplier({ nginx: n.config({ pid_path: pidPath }), renderer });

    const outcome = await applier.apply(setFor(b.address));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'reload', code: 'NGINX_NOT_RUNNING', reloaded: false });
    expect(outcome.error).toBe(`nginx is not running: pid file ${pidPath} names pid ${NO_SUCH_PID}, which does not exist`);
    // The file passed nginx -t, so it stays for nginx's next start.
    expect(await readFile(n.outputPath, 'utf8')).toBe(outcome.text);
    expect(applier.lastGood).toBeNull();
    expect((await applier.apply(setFor(b.address))).stage).toBe('reload');
  });

  it('reports a missing nginx binary clearly and leaves the file as it was', async () => {
    const n = await start(a.address);
    const missing = join(scratch, 'no-such-nginx');
    const applier = createRenderReloadApplier({ nginx: n.config({ binary: missing }), renderer });

    const outcome = await applier.apply(setFor(b.address));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'validate', code: 'NGINX_NOT_FOUND' });
    expect(outcome.error).toBe(`nginx binary not found: "${missing}" (nginx.binary)`);
    expect(await readFile(n.outputPath, 'utf8')).toBe(initialFile(a.address));

    const noTest = createRenderReloadApplier({
      nginx: n.config({ binary: missing, validate: false, pid_path: null }),
      renderer,
    });
    expect(await noTest.apply(setFor(b.address))).toMatchObject({ result: 'failed', stage: 'reload', code: 'NGINX_NOT_FOUND' });
  });

  it('leaves everything untouched when a value fails validation at render', async () => {
    const n = await start(a.address);
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer });
    const set = setFor(b.address);
    set.upstreams[0]!.name = 'web;}';

    const outcome = await applier.apply(set);

    expect(outcome).toMatchObject({ result: 'failed', stage: 'render', code: 'RENDER_INVALID_VALUE', reloaded: false });
    expect(outcome.error).toContain('"web;}"');
    expect(outcome.text).toBeUndefined();
    expect(await readFile(n.outputPath, 'utf8')).toBe(initialFile(a.address));
    expect(await readdir(join(n.dir, 'conf.d'))).toEqual(['orchestry-upstreams.conf']);
  });

  it('fails at write when the output directory does not exist', async () => {
    const n = await start(a.address);
    const applier = createRenderReloadApplier({
      nginx: n.config({ output_path: join(scratch, 'missing-dir', 'upstreams.conf') }),
      renderer,
    });
    const outcome = await applier.apply(setFor(b.address));
    expect(outcome).toMatchObject({ result: 'failed', stage: 'write', reloaded: false });
    expect(outcome.error).toContain('ENOENT');
  });

  it('runs concurrent applies one after another; the last one wins', async () => {
    const n = await start(a.address);
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer });
    const outcomes = await Promise.all([
      applier.apply(setFor(a.address, b.address)),
      applier.apply(setFor(a.address)),
      applier.apply(setFor(b.address)),
    ]);
    expect(outcomes.map((o) => o.result)).toEqual(['applied', 'applied', 'applied']);
    expect(await readFile(n.outputPath, 'utf8')).toBe(outcomes[2]!.text);
    await servedBy(n, 'b');
  });
});

describe('reloadNginx with a pid file', () => {
  const target = (pidPath: string) => ({ binary: NGINX_BIN, prefix: null, config_path: '/unused', pid_path: pidPath });

  it('reports a missing pid file as not running', async () => {
    const pidPath = join(scratch, 'absent.pid');
    await expect(reloadNginx(target(pidPath))).rejects.toMatchObject({
      code: 'NGINX_NOT_RUNNING',
      message: `nginx is not running: pid file ${pidPath} does not exist`,
    });
  });

  it.each([['garbage'], ['0'], ['-1'], ['']])('reports the pid file content %j as not running', async (content) => {
    const pidPath = join(scratch, 'garbage.pid');
    await writeFile(pidPath, content);
    await expect(reloadNginx(target(pidPath))).rejects.toMatchObject({
      code: 'NGINX_NOT_RUNNING',
      message: `nginx is not running: pid file ${pidPath} holds ${JSON.stringify(content)}, not a pid`,
    });
  });

  it('refuses to signal a live process that is not nginx', async () => {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const pidPath = join(scratch, 'other.pid');
      await writeFile(pidPath, String(sleeper.pid));
      await expect(reloadNginx(target(pidPath))).rejects.toMatchObject({
        code: 'NGINX_NOT_RUNNING',
        message: `nginx is not running: pid file ${pidPath} names pid ${sleeper.pid}, which is not nginx ("sleep 30")`,
      });
    } finally {
      sleeper.kill();
    }
  });
});
