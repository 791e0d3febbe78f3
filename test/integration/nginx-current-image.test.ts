/**
 * The nginx >= 1.27.3 image (test/helpers/nginx-current.ts) that DNS-mode tests with nginx in a
 * container use: built from the sid root, tagged by content and as the `nginx:<major.minor>`
 * stand-in, and resolving SRV records from a DNS server on the host's loopback.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsServer, type DnsServer } from '../../src/nginx/dns/server.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { desiredUpstream } from '../helpers/dns-messages.js';
import { containerLogs, docker, removeTestContainers, requireDocker, runContainer, waitForContainer } from '../helpers/docker.js';
import { containerNginxConf, runNginxContainer } from '../helpers/nginx-container.js';
import { currentNginx, ensureCurrentNginxImage } from '../helpers/nginx-current.js';
import { httpGet, makeNginxDir, nginxLogCounts } from '../helpers/nginx-instance.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = 'nginx-current-image';
let images: { image: string; standin: string };
let version: string;

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  ({ version } = await currentNginx());
  const started = Date.now();
  images = await ensureCurrentNginxImage();
  const size = (await docker.getImage(images.image).inspect()).Size / 1e6;
  console.log(`${images.image} (${images.standin}) ready in ${Date.now() - started} ms, ${size.toFixed(0)} MB`);
}, 180_000);
afterAll(async () => {
  await removeTestContainers(SUITE);
});

describe('the nginx >= 1.27.3 test image', () => {
  it('is tagged by content and as the nginx:<major.minor> of the binary inside, and reused', async () => {
    expect(images.image).toMatch(/^orchestry-test\/nginx-current:[0-9a-f]{16}$/);
    expect(images.standin).toBe(`nginx:${version.split('.').slice(0, 2).join('.')}`);
    const [built, standin] = await Promise.all([images.image, images.standin].map((n) => docker.getImage(n).inspect()));
    expect(standin!.Id).toBe(built!.Id);
    expect(built!.Config.Labels).toMatchObject({ 'orchestry.test': '1' });
    const again = Date.now();
    expect(await ensureCurrentNginxImage()).toEqual(images);
    expect(Date.now() - again).toBeLessThan(5000);
  });

  it('runs the same nginx version as the host binary', async () => {
    const container = await runContainer({ image: images.standin, suite: SUITE, cmd: ['-v'] });
    const info = await waitForContainer(container, (i) => !i.State.Running, { what: 'nginx -v to exit' });
    expect(info.State.ExitCode).toBe(0);
    expect(await containerLogs(container)).toContain(`nginx/${version}`);
  });

  describe('in a container, resolving through a DNS server on the host', () => {
    let dns: DnsServer;
    let dir: string;
    const backends: TestBackend[] = [];

    beforeAll(async () => {
      for (const name of ['one', 'two']) backends.push(await startBackend(name));
      dns = createDnsServer({ port: 0 });
      const { port: dnsPort } = await dns.start();
      publish(backends);
      dir = await makeNginxDir();
      const port = await freePort();
      await writeFile(
        join(dir, 'nginx.conf'),
        containerNginxConf([
          'access_log off;',
          `resolver 127.0.0.1:${dnsPort} ipv6=off;`,
          'resolver_timeout 2s;',
          'upstream web { zone web 64k; server orchestry.internal service=_http._tcp.web resolve; }',
          `server { listen 127.0.0.1:${port}; location / { proxy_pass http://web; } }`,
        ]),
      );
      await runNginxContainer({ image: images.standin, suite: SUITE, dir, port, answered: (status) => status === 200 });
      get = () => httpGet(port);
    });
    afterAll(async () => {
      await dns?.stop();
      await Promise.all(backends.map((b) => b.close()));
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    let get: () => Promise<{ status: number; body: string }>;
    function publish(list: TestBackend[]): void {
      dns.publish({ upstreams: [desiredUpstream('web', list.map((b) => ({ address: b.address })))] });
    }

    it('routes to the records and follows a change without a reload', async () => {
      await waitFor(async () => new Set(await Promise.all([get(), get(), get(), get()].map(async (r) => (await r).body))).size === 2, {
        what: 'both backends to answer',
      });
      publish([backends[0]!]);
      await waitFor(async () => (await Promise.all([get(), get(), get(), get()])).every((r) => r.body === 'one'), {
        what: 'traffic to leave the dropped backend',
        timeoutMs: 5000,
      });
      expect((await nginxLogCounts(join(dir, 'logs', 'error.log'))).reloads).toBe(0);
    });
  });
});
