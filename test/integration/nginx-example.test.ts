/** The shipped example nginx.conf, the golden renderings and the example template vs real nginx. */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRenderer } from '../../src/nginx/render.js';
import { validateNginx } from '../../src/nginx/validate.js';
import { toViewModel } from '../../src/nginx/view-model.js';
import { buildDesiredSet } from '../../src/upstream/desired.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { app, goldenSets, views } from '../helpers/fixtures.js';
import { httpGet, launchNginx, makeNginxDir } from '../helpers/nginx-instance.js';
import { NGINX_BIN, privateTempPaths } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';

const EXAMPLE = new URL('../../nginx/nginx.conf', import.meta.url);
const EXAMPLE_TEMPLATE = new URL('../../templates/examples/upstreams-zone.conf.hbs', import.meta.url);
const GOLDEN_DIR = new URL('../golden/', import.meta.url);

let dir: string;
beforeAll(async () => {
  dir = await makeNginxDir();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Replaces every `from` (which must occur) with `to`, so the test never writes to system paths. */
function rewrite(text: string, from: string | RegExp, to: string): string {
  expect(text).toMatch(from);
  return text.replaceAll(from, to);
}

describe('example nginx/nginx.conf', () => {
  let web: TestBackend;
  let api: TestBackend;
  beforeAll(async () => {
    web = await startBackend('web-backend');
    api = await startBackend('api-backend');
  });
  afterAll(async () => {
    await web.close();
    await api.close();
  });

  it('passes nginx -t with generated upstreams and serves two apps by server_name on one listener', async () => {
    const port = await freePort();
    let conf = await readFile(EXAMPLE, 'utf8');
    conf = rewrite(conf, '/var/run/nginx.pid', join(dir, 'nginx.pid'));
    conf = rewrite(conf, '/var/log/nginx/', `${join(dir, 'logs')}/`);
    conf = rewrite(conf, /listen 80\b/g, `listen 127.0.0.1:${port}`);
    conf = rewrite(conf, /^http \{$/gm, `http {\n${privateTempPaths(dir)}`);
    const configPath = join(dir, 'nginx.conf');
    await writeFile(configPath, conf);

    const apps = [app('web', [web.address]), app('api', [api.address])];
    const { set } = buildDesiredSet(apps, apps.flatMap((a) => views(a)));
    const renderer = createRenderer({ templatePath: null });
    await renderer.load();
    // The include in the example is relative to the main config's directory.
    await writeFile(join(dir, 'conf.d', 'orchestry-upstreams.conf'), renderer.render(toViewModel(set)));

    await validateNginx({ binary: NGINX_BIN, prefix: dir, config_path: configPath });

    const nginx = await launchNginx({ dir, configPath, pidPath: join(dir, 'nginx.pid'), probePort: port });
    try {
      expect(await httpGet(port, '/', 'web.example.com')).toEqual({ status: 200, body: 'web-backend' });
      expect(await httpGet(port, '/', 'api.example.com')).toEqual({ status: 200, body: 'api-backend' });
      expect((await httpGet(port, '/', 'unknown.example.com')).status).toBe(404);
    } finally {
      await nginx.stop();
    }

    // The access log carries what passive checks need, one JSON object per request.
    const lines = (await readFile(join(dir, 'logs', 'access.log'), 'utf8')).trim().split('\n');
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(entries.find((e) => e.host === 'api.example.com')).toMatchObject({
      upstream: 'api',
      status: 200,
      upstream_addr: api.address,
      upstream_status: '200',
    });
    expect(entries.find((e) => e.host === 'web.example.com')?.upstream_response_time).toMatch(/^\d+\.\d{3}$/);
  });
});

describe('rendered upstreams accepted by nginx -t', () => {
  const checkUpstreams = async (name: string, upstreams: string) => {
    const configPath = join(dir, `${name}.conf`);
    const included = join(dir, 'conf.d', `${name}.upstreams`);
    await writeFile(included, upstreams);
    await writeFile(
      configPath,
      `pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, 'logs', 'error.log')};
events {}
http {
    access_log off;
${privateTempPaths(dir)}
    include ${included};
}
`,
    );
    await validateNginx({ binary: NGINX_BIN, prefix: dir, config_path: configPath });
  };

  it.each(Object.keys(goldenSets()))('accepts test/golden/%s.conf', async (name) => {
    await expect(checkUpstreams(name, await readFile(new URL(`${name}.conf`, GOLDEN_DIR), 'utf8'))).resolves.toBeUndefined();
  });

  it.each(Object.entries(goldenSets()))('accepts the example zone template for %s', async (name, set) => {
    const renderer = createRenderer({ templatePath: EXAMPLE_TEMPLATE.pathname });
    await renderer.load();
    const text = renderer.render(toViewModel(set));
    expect(text).toContain(`zone ${set.upstreams[0]!.name} 64k;`);
    await expect(checkUpstreams(`zone-${name}`, text)).resolves.toBeUndefined();
  });

  it('rejects what nginx rejects, naming the file and line', async () => {
    const err = await checkUpstreams('bad', 'upstream web {\n    server 127.0.0.1:80 backup;\n}\n').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NGINX_FAILED' });
    expect((err as Error).message).toContain(`[emerg] no servers in upstream "web" in ${join(dir, 'conf.d', 'bad.upstreams')}:1`);
  });
});
