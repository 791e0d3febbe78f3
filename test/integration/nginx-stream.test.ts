/**
 * TCP apps (issue 11 item 20): apps with `upstream.context: stream` go to their own file, which
 * nginx's `stream {}` includes (no keepalive there), http apps stay in output_path; a real nginx
 * routes a TCP connection to the stream app's backend and follows a change of it.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRenderReloadApplier } from '../../src/nginx/applier.js';
import { parseConfigText } from '../../src/config/load.js';
import { createRenderer, type Renderer } from '../../src/nginx/render.js';
import { buildDesiredSet } from '../../src/upstream/desired.js';
import type { DesiredSet, DesiredUpstream } from '../../src/upstream/types.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { nginxConf, nginxPaths, privateTempPaths, UPSTREAM_KEEPALIVE, views } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { httpGet, launchNginx, makeNginxDir, nginxSettled, privateNginxConfig } from '../helpers/nginx-instance.js';
import { waitFor } from '../helpers/wait.js';

/** Debian builds the stream module as a dynamic module. */
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

interface TcpBackend {
  address: string;
  close(): Promise<void>;
}

/** A TCP server that writes its name to every connection and closes it. */
async function startTcpBackend(name: string): Promise<TcpBackend> {
  const server: Server = createServer((socket) => socket.end(name));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { address: `127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** What a TCP connection to `port` reads until nginx (or the backend) closes it. */
function readTcp(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

let web: TestBackend;
let tcpA: TcpBackend;
let tcpB: TcpBackend;
let renderer: Renderer;
let cleanup: Array<() => Promise<void>> = [];

beforeAll(async () => {
  web = await startBackend('web');
  tcpA = await startTcpBackend('tcp-a');
  tcpB = await startTcpBackend('tcp-b');
  renderer = createRenderer({ templatePath: null });
  await renderer.load();
});
afterAll(async () => {
  await web.close();
  await tcpA.close();
  await tcpB.close();
});
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const upstream = (name: string, address: string, context?: 'stream'): DesiredUpstream => ({
  name,
  keepalive: 16,
  balance: 'least_conn',
  panic: false,
  ...(context ? { context } : {}),
  servers: [{ address, weight: 1, backup: false, down: false }],
});

const setWith = (tcpAddress: string): DesiredSet => ({
  upstreams: [upstream('web', web.address), upstream('db', tcpAddress, 'stream')],
});

/** A private nginx with an http server for `web` and a stream server for `db`, each file its own include. */
async function startNginxWithStream() {
  const dir = await makeNginxDir();
  await mkdir(join(dir, 'stream.d'));
  const httpPort = await freePort();
  const tcpPort = await freePort();
  const paths = nginxPaths(dir);
  const streamOutput = join(dir, 'stream.d', 'orchestry-stream.conf');
  await writeFile(paths.outputPath, 'upstream web { server 127.0.0.1:9 down; }\n');
  await writeFile(streamOutput, 'upstream db { server 127.0.0.1:9 down; }\n');
  const conf = nginxConf({
    dir,
    http: [...UPSTREAM_KEEPALIVE, `server { listen 127.0.0.1:${httpPort}; location / { proxy_pass http://web; } }`],
  });
  await writeFile(
    paths.configPath,
    [
      `load_module ${STREAM_MODULE};`,
      conf,
      'stream {',
      '  include stream.d/orchestry-stream.conf;',
      `  server { listen 127.0.0.1:${tcpPort}; proxy_pass db; proxy_connect_timeout 1s; }`,
      '}',
      '',
    ].join('\n'),
  );
  const proc = await launchNginx({ dir, probePort: httpPort });
  cleanup.push(async () => {
    await proc.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const config = { ...privateNginxConfig(dir), stream_output_path: streamOutput };
  return { dir, tcpPort, httpPort, paths, streamOutput, config, errorLog: paths.errorLog };
}

describe('stream (TCP) apps', () => {
  it('renders http and stream apps to their own files, and nginx routes a TCP connection to the stream app', async () => {
    const n = await startNginxWithStream();
    const applier = createRenderReloadApplier({ nginx: n.config, renderer });

    const outcome = await applier.apply(setWith(tcpA.address));

    expect(outcome).toMatchObject({ result: 'applied', reloaded: true });
    const httpText = await readFile(n.paths.outputPath, 'utf8');
    const streamText = await readFile(n.streamOutput, 'utf8');
    expect(httpText).toContain('upstream web {');
    expect(httpText).toContain('keepalive 16;');
    expect(httpText).not.toContain('upstream db');
    expect(streamText).toContain('upstream db {');
    expect(streamText).toContain(`server ${tcpA.address};`);
    expect(streamText).toContain('least_conn;');
    // nginx has no keepalive in stream {}: nginx -t would refuse it.
    expect(streamText).not.toContain('keepalive');
    expect(streamText).not.toContain('upstream web');
    expect(outcome.streamText).toBe(streamText);
    // Both files were tested in a copy before the swap (no fallback to testing in place).
    expect(outcome.warnings).toBeUndefined();
    await nginxSettled(n.errorLog, 1);
    expect(await readTcp(n.tcpPort)).toBe('tcp-a');

    expect(await applier.apply(setWith(tcpB.address))).toMatchObject({ result: 'applied' });
    await nginxSettled(n.errorLog, 2);
    await waitFor(async () => (await readTcp(n.tcpPort)) === 'tcp-b', { what: 'nginx to route the TCP app to tcp-b' });
  });

  it('refuses a stream app when nginx.stream_output_path is not set, naming the setting, and writes nothing', async () => {
    const n = await startNginxWithStream();
    const before = await readFile(n.paths.outputPath, 'utf8');
    const applier = createRenderReloadApplier({ nginx: { ...n.config, stream_output_path: null }, renderer });

    const outcome = await applier.apply(setWith(tcpA.address));

    expect(outcome).toMatchObject({ result: 'failed', stage: 'render' });
    expect(outcome.error).toContain('db: upstream.context is stream, but nginx.stream_output_path is not set');
    expect(await readFile(n.paths.outputPath, 'utf8')).toBe(before);
  });
});

describe('examples/tcp', () => {
  const example = (name: string) => new URL(`../../examples/tcp/${name}`, import.meta.url);
  const rewrite = (text: string, from: string | RegExp, to: string) => {
    expect(text).toMatch(from);
    return text.replace(from, to);
  };

  it('sidecar.yaml loads with db as a stream app, and nginx.conf takes both rendered files and routes both apps', async () => {
    const config = parseConfigText(await readFile(example('sidecar.yaml'), 'utf8'), '/etc/orchestry/sidecar.yaml');
    expect(config.nginx.stream_output_path).toBe('/etc/nginx/stream.d/orchestry-stream.conf');
    expect(config.apps.find((a) => a.name === 'db')?.upstream.context).toBe('stream');
    // The example's apps, with this test's backends in place of the example's addresses.
    const apps = config.apps.map((a) => {
      const address = (a.name === 'db' ? tcpA : web).address.split(':');
      return { ...a, backends: [{ ...a.backends[0]!, host: address[0]!, port: Number(address[1]) }] };
    });
    const { set } = buildDesiredSet(apps, apps.flatMap((a) => views(a)));

    const dir = await makeNginxDir();
    await mkdir(join(dir, 'stream.d'));
    const [httpPort, tcpPort] = [await freePort(), await freePort()];
    let conf = await readFile(example('nginx.conf'), 'utf8');
    conf = rewrite(conf, '# load_module modules/ngx_stream_module.so;', `load_module ${STREAM_MODULE};\nerror_log ${join(dir, 'logs', 'error.log')} notice;`);
    conf = rewrite(conf, 'pid /run/nginx.pid;', `pid ${join(dir, 'nginx.pid')};`);
    conf = rewrite(conf, 'worker_processes auto;', 'worker_processes 1;');
    conf = rewrite(conf, 'listen 80;', `listen 127.0.0.1:${httpPort};`);
    conf = rewrite(conf, 'listen 5432;', `listen 127.0.0.1:${tcpPort};`);
    conf = rewrite(conf, /^http \{$/m, `http {\n    access_log off;\n${privateTempPaths(dir)}`);
    await writeFile(join(dir, 'nginx.conf'), conf);
    const nginx = { ...privateNginxConfig(dir), output_path: join(dir, 'conf.d', 'orchestry-upstreams.conf'), stream_output_path: join(dir, 'stream.d', 'orchestry-stream.conf') };
    // What nginx starts with before the sidecar's first update: each upstream, as a placeholder.
    await writeFile(nginx.output_path, 'upstream web { server 127.0.0.1:9 down; }\n');
    await writeFile(nginx.stream_output_path, 'upstream db { server 127.0.0.1:9 down; }\n');
    const proc = await launchNginx({ dir, probePort: httpPort });
    cleanup.push(async () => {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    });

    const outcome = await createRenderReloadApplier({ nginx, renderer }).apply(set);

    expect(outcome).toMatchObject({ result: 'applied', reloaded: true });
    expect(outcome.warnings).toBeUndefined();
    await nginxSettled(join(dir, 'logs', 'error.log'), 1);
    expect(await readTcp(tcpPort)).toBe('tcp-a');
    expect((await httpGet(httpPort)).body).toBe('web');
  });
});
