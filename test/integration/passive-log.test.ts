/**
 * Passive evidence end to end: a real nginx 1.22 proxies to real loopback backends and sends its
 * access log, in the shipped `orchestry` log_format, over syslog to the receiver; the outcomes
 * go through the outlier reducer. Also: hostile datagrams sent straight to the port.
 */
import { createSocket } from 'node:dgram';
import { rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PASSIVE_CONFIG } from '../../src/passive/config.js';
import { groupOutcomesByApp, initialAppOutliers, stepOutliers, type OutlierBackend } from '../../src/passive/outlier.js';
import { createAccessLogReceiver, type AccessLogReceiver } from '../../src/passive/receiver.js';
import type { Outcome } from '../../src/passive/types.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { httpGet, launchNginx, makeNginxDir, shippedLogFormat } from '../helpers/nginx-instance.js';
import { freePort } from '../helpers/free-port.js';
import { UPSTREAM_KEEPALIVE, nginxConf, nginxPaths } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';


/** A loopback server that answers every request with `status`, or never answers (null). */
async function fixedServer(status: number | null): Promise<{ server: Server; address: string }> {
  const server = createServer((_req, res) => {
    if (status === null) return;
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(`status ${status}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  if (!a || typeof a !== 'object') throw new Error('no address');
  return { server, address: `127.0.0.1:${a.port}` };
}

let dir: string;
let nginx: { pid: number; stop(): Promise<void> };
let port: number;
let receiver: AccessLogReceiver;
let hostnameReceiver: AccessLogReceiver;
const outcomes: Outcome[] = [];
const hostnameOutcomes: Outcome[] = [];
let good1: TestBackend;
let good2: TestBackend;
let dead: TestBackend;
let failing: { server: Server; address: string };
let hanging: { server: Server; address: string };
let receiverPort: number;

beforeAll(async () => {
  receiver = createAccessLogReceiver({ listen: '127.0.0.1:0', onOutcomes: (o) => outcomes.push(...o) });
  receiverPort = (await receiver.start()).port;
  // The same log sent with nginx's default framing (host name included) under another tag.
  hostnameReceiver = createAccessLogReceiver({ listen: '127.0.0.1:0', tag: 'with_host', onOutcomes: (o) => hostnameOutcomes.push(...o) });
  const hostnamePort = (await hostnameReceiver.start()).port;

  good1 = await startBackend('good1');
  good2 = await startBackend('good2');
  dead = await startBackend('dead');
  await dead.stop(); // its port now refuses connections
  failing = await fixedServer(500);
  hanging = await fixedServer(null);

  // The log_format exactly as shipped in nginx/nginx.conf.
  const logFormat = await shippedLogFormat();

  dir = await makeNginxDir();
  port = await freePort();
  // max_fails=0: nginx keeps sending to a failing server, so the sidecar sees every failure.
  const servers = (...list: { address: string }[]) => list.map((b) => `server ${b.address} max_fails=0;`).join(' ');
  await writeFile(
    nginxPaths(dir).configPath,
    nginxConf({
      dir,
      include: null,
      accessLog: [
        logFormat,
        `access_log syslog:server=127.0.0.1:${receiverPort},tag=orchestry,nohostname orchestry;`,
        `access_log syslog:server=127.0.0.1:${hostnamePort},tag=with_host orchestry;`,
      ],
      http: [
        ...UPSTREAM_KEEPALIVE,
        'proxy_connect_timeout 1s;',
        `upstream web { ${servers(good1, good2, failing, dead)} }`,
        `upstream retry { ${servers(dead, good1)} }`,
        `upstream hang { ${servers(hanging)} }`,
        'server {',
        `  listen 127.0.0.1:${port};`,
        '  location / { proxy_pass http://web; }',
        '  location /retry { proxy_pass http://retry; }',
        '  location /hang { proxy_read_timeout 300ms; proxy_next_upstream off; proxy_pass http://hang; }',
        '  location /static { return 204; }',
        '}',
      ],
    }),
  );
  nginx = await launchNginx({ dir, probePort: port });
});

afterAll(async () => {
  await nginx?.stop();
  await rm(dir, { recursive: true, force: true });
  await receiver?.stop();
  await hostnameReceiver?.stop();
  for (const b of [good1, good2, dead]) await b?.close();
  for (const s of [failing, hanging]) await new Promise((r) => s?.server.close(r));
});

const forApp = (app: string) => outcomes.filter((o) => o.app === app);

describe('passive evidence from a real nginx', () => {
  it('turns 500s, refused connections and retries into per-backend outcomes, and ejects only the bad backends', async () => {
    for (let i = 0; i < 40; i++) await httpGet(port, `/?i=${i}`);
    await waitFor(() => forApp('web').filter((o) => o.kind === 'ok').length >= 20, { what: 'outcomes of app web' });
    const web = forApp('web');

    const ofFailing = web.filter((o) => o.address === failing.address);
    expect(ofFailing.length).toBeGreaterThanOrEqual(5);
    expect(ofFailing.every((o) => o.status === 500 && o.kind === '5xx')).toBe(true);

    const ofDead = web.filter((o) => o.address === dead.address);
    expect(ofDead.length).toBeGreaterThanOrEqual(5);
    // A refused connection: nginx reports 502 and no connect time.
    expect(ofDead.every((o) => o.status === 502 && o.kind === 'gateway' && o.connectTimeMs === null)).toBe(true);

    for (const good of [good1, good2]) {
      const ofGood = web.filter((o) => o.address === good.address);
      expect(ofGood.length).toBeGreaterThan(0);
      expect(ofGood.every((o) => o.status === 200 && o.kind === 'ok' && o.responseTimeMs !== null)).toBe(true);
    }

    const backends = new Map<string, OutlierBackend>(
      [good1.address, good2.address, failing.address, dead.address].map((a) => [a, { id: `web/${a}`, address: a, routable: true }]),
    );
    const step = stepOutliers(initialAppOutliers(), { app: 'web', backends, outcomes: groupOutcomesByApp(web).get('web') }, DEFAULT_PASSIVE_CONFIG, Date.now());
    const ejected = step.verdicts.filter((v) => v.kind === 'eject').map((v) => [v.address, v.rule]);
    expect(ejected.sort()).toEqual(
      [
        [failing.address, 'consecutive_5xx'],
        [dead.address, 'consecutive_gateway_failure'],
      ].sort(),
    );
    expect(step.verdicts.filter((v) => v.kind !== 'eject')).toEqual([]);
  });

  it('gives two outcomes for one request that nginx retried on the next server', async () => {
    const res = await httpGet(port, '/retry');
    expect(res).toEqual({ status: 200, body: 'good1' });
    const retry = await waitFor(() => (forApp('retry').length >= 2 ? forApp('retry') : null), { what: 'outcomes of app retry' });
    expect(retry.map((o) => [o.address, o.status, o.kind])).toEqual([
      [dead.address, 502, 'gateway'],
      [good1.address, 200, 'ok'],
    ]);
    // One log line: both attempts were received together.
    expect(retry[0]!.at).toBe(retry[1]!.at);
  });

  it('reports a read timeout as a 504 gateway failure after a connection was made', async () => {
    const res = await httpGet(port, '/hang');
    expect(res.status).toBe(504);
    const [o] = await waitFor(() => (forApp('hang').length > 0 ? forApp('hang') : null), { what: 'outcome of app hang' });
    expect(o).toMatchObject({ address: hanging.address, status: 504, kind: 'gateway' });
    expect(o!.connectTimeMs).not.toBeNull();
    expect(o!.responseTimeMs).toBeGreaterThanOrEqual(300);
  });

  it('skips requests nginx answered itself', async () => {
    const before = receiver.stats().skipped.not_proxied;
    await httpGet(port, '/static');
    await waitFor(() => receiver.stats().skipped.not_proxied > before, { what: 'a skipped line' });
  });

  it('reads the same log framed with nginx default host name', async () => {
    await waitFor(() => hostnameOutcomes.length >= outcomes.length, { what: 'the host-name framed copy' });
    expect(hostnameOutcomes.map((o) => [o.app, o.address, o.status])).toEqual(outcomes.map((o) => [o.app, o.address, o.status]));
  });
});

describe('hostile datagrams sent straight to the port', () => {
  it('are counted by reason and dropped while valid lines still come through', async () => {
    const before = receiver.stats();
    const header = '<190>Jan  2 03:04:05 orchestry: ';
    const valid = (n: number) =>
      header + JSON.stringify({ upstream: 'hostile_test', upstream_addr: `127.0.0.1:${9000 + n}`, upstream_status: '200', upstream_response_time: '0.001' });
    const hostile: Buffer[] = [
      Buffer.alloc(60_000, 'x'), // oversized
      Buffer.from(header + '{"upstream":'), // truncated
      Buffer.from(header + '{"a":' + '['.repeat(3000) + ']'.repeat(3000) + '}'), // deep, wrong types
      Buffer.from('<190>Jan  2 03:04:05 nginx: [error] something'), // another tag
      Buffer.from([0x00, 0xff, 0xfe, 0x1b, 0x5b, 0x32, 0x4a]), // binary and an escape sequence
      Buffer.from(header + JSON.stringify({ upstream: 'x', upstream_addr: '1.1.1.1:1', upstream_status: '200, 502' })), // mismatched
      Buffer.from(header + JSON.stringify({ upstream: 'x', upstream_addr: '1.1.1.1:1', upstream_status: 200 })), // wrong type
      Buffer.from(''), // empty datagram
    ];
    const socket = createSocket('udp4');
    // One at a time: a burst of 60 KB datagrams overflows the kernel's socket buffer, which
    // drops them before the receiver sees them (that loss is the kernel's, not counted here).
    const send = async (b: Buffer) => {
      const received = receiver.stats().received;
      await new Promise<void>((r, j) => socket.send(b, receiverPort, '127.0.0.1', (e) => (e ? j(e) : r())));
      await waitFor(() => receiver.stats().received > received, { what: 'the datagram to arrive', intervalMs: 5 });
    };
    for (let round = 0; round < 5; round++) {
      for (const b of hostile) await send(b);
      await send(Buffer.from(valid(round)));
    }
    socket.close();
    await waitFor(() => forApp('hostile_test').length === 5, { what: 'the five valid lines' });
    const after = receiver.stats();
    const delta = (k: keyof typeof after.dropped) => after.dropped[k] - before.dropped[k];
    expect({
      oversized: delta('oversized'),
      not_json: delta('not_json'),
      wrong_types: delta('wrong_types'),
      wrong_tag: delta('wrong_tag'),
      bad_syslog_header: delta('bad_syslog_header'),
      mismatched_lists: delta('mismatched_lists'),
    }).toEqual({ oversized: 5, not_json: 5, wrong_types: 10, wrong_tag: 5, bad_syslog_header: 10, mismatched_lists: 5 });
    expect(forApp('hostile_test').map((o) => o.address)).toEqual([0, 1, 2, 3, 4].map((n) => `127.0.0.1:${9000 + n}`));
    // nginx's own lines still come through afterwards.
    const n = forApp('web').length;
    await httpGet(port, '/');
    await waitFor(() => forApp('web').length > n, { what: 'a line from nginx after the hostile ones' });
  });
});
