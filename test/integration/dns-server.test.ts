/**
 * The DNS server as nginx >= 1.27.3 sees it: a real nginx resolves
 * `server orchestry.internal service=_http._tcp.<app> resolve` in zone upstreams through
 * `resolver 127.0.0.1:<port>`, and every change of the records reaches its traffic without a
 * reload. Synchronised on nginx's own queries (the server reports each one), not on sleeps:
 * two SRV queries after a publication mean nginx has resolved and applied the new answer once.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDnsServer, type DnsReplyEvent, type DnsServer } from '../../src/nginx/dns/server.js';
import { nameKey } from '../../src/nginx/dns/wire.js';
import type { DesiredUpstream } from '../../src/upstream/types.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { desiredUpstream } from '../helpers/dns-messages.js';
import { currentNginx } from '../helpers/nginx-current.js';
import { answeredBy, httpGet, launchNginx, makeNginxDir, nginxLogCounts } from '../helpers/nginx-instance.js';
import { freePort } from '../helpers/free-port.js';
import { UPSTREAM_KEEPALIVE, nginxConf, nginxPaths } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';

const APPS = ['web', 'failover', 'big'] as const;
type App = (typeof APPS)[number];
type Entry = { b: TestBackend; weight?: number; backup?: boolean };

let dns: DnsServer;
const events: DnsReplyEvent[] = [];
let nginx: { pid: number; stop(): Promise<void> };
let dir: string;
let port: number;
const backends: Record<string, TestBackend> = {};
const records: Record<App, Entry[]> = { web: [], failover: [], big: [] };

beforeAll(async () => {
  const { binary, version } = await currentNginx();
  for (const name of ['a', 'b', 'c', 'd', 'primary', 'backup']) backends[name] = await startBackend(name);
  for (let i = 1; i <= 30; i++) backends[`big${i}`] = await startBackend(`big${i}`);
  dns = createDnsServer({ host: '127.0.0.1', port: 0, onReply: (e) => events.push(e) });
  const { port: dnsPort } = await dns.start();
  const { a, b, c } = backends as Record<string, TestBackend>;
  records.web = [{ b: a! }, { b: b! }, { b: c! }];
  await publish(); // before nginx starts, so its first resolution finds the records

  dir = await makeNginxDir();
  port = await freePort();
  // As the research note measured: TTL 0 from the server and no `valid=`, so nginx asks again
  // every second; resolver_timeout short, so one lost answer does not freeze updates for 30 s.
  const upstreams = APPS.map(
    (app) => `upstream ${app} { zone ${app} 64k; server orchestry.internal service=_http._tcp.${app} resolve; keepalive 8; }`,
  );
  const locations = APPS.map((app) => `location /${app}/ { proxy_pass http://${app}; }`);
  await writeFile(
    nginxPaths(dir).configPath,
    nginxConf({
      dir,
      include: null,
      workerConnections: 256,
      http: [
        `resolver 127.0.0.1:${dnsPort} ipv6=off;`,
        'resolver_timeout 2s;',
        ...UPSTREAM_KEEPALIVE,
        ...upstreams,
        `server { listen 127.0.0.1:${port}; ${locations.join(' ')} }`,
      ],
    }),
  );
  nginx = await launchNginx({ dir, probePort: port, binary });
  console.log(`nginx ${version} (pid ${nginx.pid}) resolving through 127.0.0.1:${dnsPort}`);
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await dns?.stop();
  await Promise.all(Object.values(backends).map((b) => b.close()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

function upstream(app: App): DesiredUpstream {
  return { ...desiredUpstream(app, records[app].map((e) => ({ address: e.b.address, weight: e.weight ?? 1, backup: e.backup ?? false }))), keepalive: 8 };
}

/** Publishes every app's current records; resolves once nginx has resolved them twice since. */
async function publish(): Promise<void> {
  const since = events.length;
  const build = dns.publish({ upstreams: APPS.map(upstream) });
  expect(build.problems).toEqual([]);
  if (!nginx) return;
  await Promise.all(
    APPS.map((app) =>
      waitFor(() => srvQueries(app, since) >= 2, { what: `nginx to ask for ${app}'s SRV records twice`, timeoutMs: 10_000 }),
    ),
  );
}

function srvQueries(app: App, since = 0): number {
  const owner = `_http._tcp.${app}.orchestry.internal`;
  return events.slice(since).filter((e) => e.type === 33 && e.name?.toLowerCase() === owner).length;
}

/** Sends `n` requests one after another; counts answers by backend name (or `status <code>`). */
const spread = (app: App, n: number) => answeredBy(port, n, { path: `/${app}/` });

async function processes(): Promise<{ master: number; workers: string }> {
  const workers = (await readFile(`/proc/${nginx.pid}/task/${nginx.pid}/children`, 'utf8')).trim();
  return { master: nginx.pid, workers };
}

const reloads = async () => (await nginxLogCounts(join(dir, 'logs', 'error.log'))).reloads;

describe('nginx >= 1.27.3 resolving SRV records from the DNS server', () => {
  it('routes to exactly the backends the records list', async () => {
    await waitFor(async () => Object.keys(await spread('web', 6)).length === 3, { what: 'all three web backends to answer' });
    expect(Object.keys(await spread('web', 30)).sort()).toEqual(['a', 'b', 'c']);
    expect(backends.d!.hits).toBe(0);
  });

  it('stops sending to a backend dropped from the records within ~2 s, without a reload', async () => {
    const before = await processes();
    const c = backends.c!;
    records.web = records.web.filter((e) => e.b !== c);
    const published = Date.now();
    let lastHit = -1;
    const traffic = (async () => {
      // Steady traffic while nginx catches up, noting when c last answered.
      while (Date.now() - published < 3000) {
        const res = await httpGet(port, '/web/');
        if (res.body === 'c') lastHit = Date.now() - published;
      }
    })();
    await publish();
    await traffic;
    console.log(`last request to the dropped backend: ${lastHit} ms after the publication`);
    expect(lastHit).toBeLessThan(2500);
    const hits = c.hits;
    expect(Object.keys(await spread('web', 30)).sort()).toEqual(['a', 'b']);
    expect(c.hits).toBe(hits);
    expect(await processes()).toEqual(before);
    expect(await reloads()).toBe(0);
  });

  it('honours SRV weights 5/1/1', async () => {
    const { a, b, c } = backends;
    records.web = [{ b: a!, weight: 5 }, { b: b! }, { b: c! }];
    await publish();
    const counts = await spread('web', 350);
    console.log('weights 5/1/1 ->', counts);
    expect(counts.a! / 350).toBeGreaterThan(0.6);
    expect(counts.a! / 350).toBeLessThan(0.82);
    for (const name of ['b', 'c']) {
      expect(counts[name]! / 350).toBeGreaterThan(0.07);
      expect(counts[name]! / 350).toBeLessThan(0.22);
    }
  });

  it('sends to a backup record only when the primaries are gone', async () => {
    const primary = backends.primary!;
    const backup = backends.backup!;
    records.failover = [{ b: primary }, { b: backup, backup: true }];
    await publish();
    expect(await spread('failover', 20)).toEqual({ primary: 20 });
    expect(backup.hits).toBe(0);
    await primary.stop(); // still listed: nginx fails over to the backup tier by itself
    expect(await spread('failover', 10)).toEqual({ backup: 10 });
    records.failover = [{ b: backup, backup: true }]; // primaries gone from the records too
    await publish();
    expect(await spread('failover', 10)).toEqual({ backup: 10 });
    await primary.resume();
  });

  it('answers an app with no routable server with the placeholder (502), and recovers when one returns', async () => {
    records.failover = [];
    await publish();
    expect(dns.table.srv.get(nameKey('_http._tcp.failover.orchestry.internal'.split('.')))?.placeholder).toBe(true);
    expect(await spread('failover', 5)).toEqual({ 'status 502': 5 });
    records.failover = [{ b: backends.backup! }];
    await publish();
    expect(await spread('failover', 5)).toEqual({ backup: 5 });
    expect(await reloads()).toBe(0);
  });

  it('gets an answer larger than 512 bytes over TCP and routes to all 30 backends', async () => {
    const tcpBefore = dns.stats().queries.tcp;
    records.big = Array.from({ length: 30 }, (_, i) => ({ b: backends[`big${i + 1}`]! }));
    await publish();
    const counts = await spread('big', 60);
    expect(Object.keys(counts)).toHaveLength(30);
    const bigOverTcp = events.filter((e) => e.transport === 'tcp' && e.type === 33 && e.name?.toLowerCase().includes('.big.'));
    const truncated = events.filter((e) => e.truncated && e.name?.toLowerCase().includes('.big.'));
    console.log(`big: ${truncated.length} truncated UDP answers, ${dns.stats().queries.tcp - tcpBefore} TCP queries`);
    expect(truncated.length).toBeGreaterThan(0);
    expect(bigOverTcp.length).toBeGreaterThan(0);
  });

  it('keeps routing to the last set when the DNS server goes away', async () => {
    const errorLog = join(dir, 'logs', 'error.log');
    const failures = async () => (await readFile(errorLog, 'utf8')).split('\n').filter((l) => /could not be resolved/.test(l));
    const before = (await failures()).length;
    const pids = await processes();
    await dns.stop();
    // nginx noticed: a failed resolution of the records is in its log.
    const failed = await waitFor(async () => (await failures()).slice(before)[0], { what: 'nginx to fail resolving', timeoutMs: 10_000 });
    console.log(`nginx after the DNS server stopped: ${failed.replace(/^.*\[error\] /, '')}`);
    expect(Object.keys(await spread('web', 30)).sort()).toEqual(['a', 'b', 'c']);
    expect(await processes()).toEqual(pids);
  });
});
