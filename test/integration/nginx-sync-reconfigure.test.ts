/**
 * Changing where nginx's files are in a live config (issue 11 item 9): the nginx stage writes the
 * new file, tests it and reloads nginx at once, not at the next routing change; the old file is
 * left as it was. A real private nginx and the real nginx stage.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../src/clock.js';
import { createSidecarBus } from '../../src/events/sidecar-events.js';
import { createNginxSync, type NginxSync } from '../../src/nginx/sync.js';
import type { ApplyOutcome } from '../../src/nginx/applier.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { webSet } from '../helpers/applier-suite.js';
import { nginxConf, UPSTREAM_KEEPALIVE } from '../helpers/fixtures.js';
import { startNginx, type NginxInstance } from '../helpers/nginx-instance.js';
import { waitFor } from '../helpers/wait.js';

let a: TestBackend;
let nginx: NginxInstance | null = null;
let sync: NginxSync | null = null;

beforeAll(async () => {
  a = await startBackend('a');
});
afterAll(async () => {
  await a.close();
});
afterEach(async () => {
  await sync?.stop();
  sync = null;
  await nginx?.stop();
  nginx = null;
});

describe('nginx stage reconfigured with other files', () => {
  it('writes, tests and reloads a new nginx.output_path at once, without a routing change, and leaves the old file', async () => {
    const n = (nginx = await startNginx({ upstreams: 'upstream web { server 127.0.0.1:9 down; }\n' }));
    const outcomes: ApplyOutcome[] = [];
    const bus = createSidecarBus(() => undefined);
    bus.on('apply', (o) => void outcomes.push(o));
    const s = (sync = createNginxSync({ clock: createSystemClock(), bus, nginx: n.config(), docker: undefined }));
    await s.start();
    s.update(webSet([{ address: a.address }]));
    await s.flush();
    await waitFor(() => outcomes.some((o) => o.result === 'applied'), { what: 'the first update' });
    const oldText = await readFile(n.outputPath, 'utf8');
    const reloads = await n.reloadCount();

    // The operator moves the include to another directory, then points output_path there.
    const moved = join(n.dir, 'upstreams', 'web.conf');
    await mkdir(join(n.dir, 'upstreams'));
    await writeFile(
      n.configPath,
      nginxConf({ dir: n.dir, include: 'upstreams/web.conf', accessLog: true, http: [...UPSTREAM_KEEPALIVE, `server { listen 127.0.0.1:${n.port}; location / { proxy_pass http://web; } }`] }),
    );
    s.reconfigure(n.config({ output_path: moved }));

    const text = await waitFor(() => readFile(moved, 'utf8').catch(() => null), { what: `${moved} to be written` });
    expect(text).toBe(oldText);
    await waitFor(async () => (await n.reloadCount()) > reloads, { what: 'nginx to reload with the new file' });
    expect(outcomes.at(-1)).toMatchObject({ result: 'applied', reloaded: true });
    expect(await readFile(n.outputPath, 'utf8')).toBe(oldText);
    await n.settle(reloads + 1);
    expect((await n.get()).body).toBe('a');
  });
});
