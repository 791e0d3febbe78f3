/**
 * How the render-reload applier writes nginx's files (issue 11 items 2 and 8), against a real
 * private nginx: no link planted in the output directory is written through, the temporary file
 * keeps the target's mode, `nginx -t` runs on a copy so the live file only ever holds text that
 * passed, and a (re)started sidecar cleans a killed one's leftovers and repairs a broken file.
 */
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRenderReloadApplier } from '../../src/nginx/applier.js';
import { createLocalNginxControl, type NginxControl } from '../../src/nginx/control.js';
import { lastGoodPath } from '../../src/nginx/output-file.js';
import { createRenderer, type Renderer } from '../../src/nginx/render.js';
import { backendsForSuite } from '../helpers/backend-server.js';
import { webSet } from '../helpers/applier-suite.js';
import { startNginx, type NginxInstance } from '../helpers/nginx-instance.js';
import { waitFor } from '../helpers/wait.js';

const backends = backendsForSuite('a', 'b');
let renderer: Renderer;
let scratch: string;
let nginx: NginxInstance | null = null;

beforeAll(async () => {
  renderer = createRenderer({ templatePath: null });
  await renderer.load();
  scratch = await mkdtemp(join(tmpdir(), 'orchestry-output-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});
afterEach(async () => {
  await nginx?.stop();
  nginx = null;
});

/** The sidecar's temporary files and test directories among `names`. */
const temporaries = (names: string[]) => names.filter((name) => /^\.orchestry-(tmp|test)-/.test(name));

const initialFile = (address: string) => `upstream web {\n    server ${address};\n}\n`;

async function start(): Promise<NginxInstance> {
  nginx = await startNginx({ upstreams: initialFile(backends.a.address) });
  return nginx;
}

/** The default template plus a directive nginx does not know: every rendering fails nginx -t. */
async function brokenRenderer(): Promise<Renderer> {
  const path = join(scratch, `broken-${Date.now()}.hbs`);
  await writeFile(path, 'no_such_directive on;\n{{#each upstreams}}upstream {{name}} { server 127.0.0.1:9; }\n{{/each}}');
  const r = createRenderer({ templatePath: path });
  await r.load();
  return r;
}

/** The local control, recording what the live file holds whenever nginx is asked to test. */
function watchingControl(n: NginxInstance, seen: string[]): NginxControl {
  const real = createLocalNginxControl(n.config());
  const record = async () => void seen.push(await readFile(n.outputPath, 'utf8'));
  return {
    ...real,
    validate: async () => {
      await record();
      return real.validate();
    },
    dump: async (configPath) => {
      await record();
      return real.dump!(configPath);
    },
  };
}

describe('writing the output file (item 2)', () => {
  it('never writes through a link planted at the name the old sidecar used, and the output stays a regular file', async () => {
    const n = await start();
    const victim = join(scratch, 'victim');
    await writeFile(victim, 'precious\n');
    // The name writes went to before: `.<output>.tmp-<pid>`, which anyone could guess.
    await symlink(victim, join(dirname(n.outputPath), `.orchestry-upstreams.conf.tmp-${process.pid}`));
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer });

    const outcome = await applier.apply(webSet([{ address: backends.b.address }]));

    expect(outcome).toMatchObject({ result: 'applied' });
    expect(await readFile(victim, 'utf8')).toBe('precious\n');
    expect((await lstat(n.outputPath)).isFile()).toBe(true);
    expect(await readFile(n.outputPath, 'utf8')).toContain(`server ${backends.b.address};`);
    await waitFor(async () => (await n.get()).body === 'b', { what: 'nginx to route to b' });
  });

  it('refuses an output path that is a symbolic link, naming the setting, and leaves its target alone', async () => {
    const n = await start();
    const real = join(scratch, 'real-upstreams.conf');
    await writeFile(real, initialFile(backends.a.address));
    await rm(n.outputPath);
    await symlink(real, n.outputPath);
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer });

    const outcome = await applier.apply(webSet([{ address: backends.b.address }]));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'write', code: 'OUTPUT_IS_SYMLINK' });
    expect(outcome.error).toContain('nginx.output_path');
    expect((await lstat(n.outputPath)).isSymbolicLink()).toBe(true);
    expect(await readFile(real, 'utf8')).toBe(initialFile(backends.a.address));
  });

  it("keeps the mode of the file it replaces and leaves no temporary file behind", async () => {
    const n = await start();
    await chmod(n.outputPath, 0o640);
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer });

    expect(await applier.apply(webSet([{ address: backends.b.address }]))).toMatchObject({ result: 'applied' });

    expect((await stat(n.outputPath)).mode & 0o777).toBe(0o640);
    expect(temporaries(await readdir(dirname(n.outputPath)))).toEqual([]);
  });
});

describe('testing before the swap (item 8)', () => {
  it('runs nginx -t on a copy: the live file never holds a text that did not pass', async () => {
    const n = await start();
    const seen: string[] = [];
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer: await brokenRenderer(), control: watchingControl(n, seen) });

    const outcome = await applier.apply(webSet([{ address: backends.b.address }]));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'validate', reloaded: false });
    expect(outcome.error).toContain('no_such_directive');
    // The error names the real file, not the test copy's.
    expect(outcome.error).toContain(n.outputPath);
    expect(outcome.warnings).toBeUndefined();
    expect(seen.length).toBeGreaterThan(0);
    for (const text of seen) expect(text).toBe(initialFile(backends.a.address));
    expect(await readFile(n.outputPath, 'utf8')).toBe(initialFile(backends.a.address));
    expect((await n.get()).body).toBe('a');
  });

  it('tests a good text on the copy first, then swaps it in and reloads', async () => {
    const n = await start();
    const seen: string[] = [];
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer, control: watchingControl(n, seen) });

    const outcome = await applier.apply(webSet([{ address: backends.b.address }]));

    expect(outcome).toMatchObject({ result: 'applied', reloaded: true });
    expect(outcome.warnings).toBeUndefined();
    for (const text of seen) expect(text).toBe(initialFile(backends.a.address));
    await waitFor(async () => (await n.get()).body === 'b', { what: 'nginx to route to b' });
  });

  it('removes what a killed sidecar left in the output directory at its first update', async () => {
    const n = await start();
    const dir = dirname(n.outputPath);
    await writeFile(join(dir, '.orchestry-tmp-0123456789abcdef'), 'upstream half {');
    await mkdir(join(dir, '.orchestry-test-fedcba9876543210', 'd'), { recursive: true });
    const applier = createRenderReloadApplier({ nginx: n.config(), renderer });

    expect(await applier.apply(webSet([{ address: backends.b.address }]))).toMatchObject({ result: 'applied' });

    const names = await readdir(dir);
    expect(temporaries(names)).toEqual([]);
    // The last-good copy is no leftover, though its name also starts with .orchestry-.
    expect(names).toContain('.orchestry-upstreams.conf.last-good');
  });

  it('a sidecar starting next to a file that fails nginx -t puts back the last copy that passed', async () => {
    const n = await start();
    const first = createRenderReloadApplier({ nginx: n.config(), renderer });
    const good = await first.apply(webSet([{ address: backends.b.address }]));
    expect(good).toMatchObject({ result: 'applied' });
    expect(await readFile(lastGoodPath(n.outputPath), 'utf8')).toBe(good.text);
    // What a crash in the middle of an in-place test would have left: a file nginx refuses.
    await writeFile(n.outputPath, 'upstream web { server 127.0.0.1:1 bogus; }\n');

    // The restarted sidecar's first update fails (a broken template), but nginx -t passes again.
    const restarted = createRenderReloadApplier({ nginx: n.config(), renderer: await brokenRenderer() });
    const outcome = await restarted.apply(webSet([{ address: backends.a.address }]));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'validate' });
    expect(outcome.warnings?.join('\n')).toContain('put back the last copy');
    expect(await readFile(n.outputPath, 'utf8')).toBe(good.text);
    await expect(createLocalNginxControl(n.config()).validate()).resolves.toBeUndefined();
  });
});
