/**
 * Reload mode (nginx < 1.27.3) with passive evidence, every part real: the built CLI as a child
 * process, the machine's nginx 1.22 reloaded by the sidecar, and nginx's access log sent to the
 * sidecar over syslog. A reload resets clients' kept-alive connections, so a backend answering
 * 500 is left to nginx (nginx.leave_to_nginx's default) only while nginx's log shows nginx
 * retrying its 500s on another server; once one reaches a client, it is taken out by reload.
 * One nginx, two front ports on the same upstream: one retries 5xx, the other does not.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { nginxConf, nginxPaths, nginxSection, sidecarYaml, UPSTREAM_KEEPALIVE } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { answeredBy, launchNginx, makeNginxDir, nginxLogCounts, nginxSettled, serverInFile, shippedLogFormat } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';


let dir: string;
let nginx: { pid: number; stop(): Promise<void> };
let retrying: number;
let notRetrying: number;
let sidecar: SidecarProcess;
let web: TestBackend[];

interface BackendJson {
  address: string;
  breaker: string;
  ejected: boolean;
}

async function backendOf(b: TestBackend): Promise<BackendJson | undefined> {
  const body = (await sidecar.api<{ apps: Array<{ name: string; backends: BackendJson[] }> }>('/api/v1/apps')).body;
  return body.apps.find((a) => a.name === 'web')?.backends.find((x) => x.address === b.address);
}

/** Who answered `n` requests through nginx's `port`: a backend's name, or `status N`. */
const spread = (port: number, n: number) => answeredBy(port, n);

const reloads = async () => (await nginxLogCounts(nginxPaths(dir).errorLog)).reloads;
/** The generated file's line for `b`, or undefined when it is not there. */
const inFile = (b: TestBackend) => serverInFile(nginxPaths(dir).outputPath, b.port);

beforeAll(async () => {
  web = await Promise.all(['web-1', 'web-2', 'web-3'].map((n) => startBackend(n)));
  const logFormat = await shippedLogFormat();
  dir = await makeNginxDir();
  [retrying, notRetrying] = [await freePort(), await freePort()];
  const adminPort = await freePort();
  const syslogPort = await freePort();
  await writeFile(
    nginxPaths(dir).configPath,
    nginxConf({
      dir,
      workerConnections: 256,
      accessLog: [logFormat, `access_log syslog:server=127.0.0.1:${syslogPort},tag=orchestry,nohostname orchestry;`],
      http: [
        ...UPSTREAM_KEEPALIVE,
        'proxy_connect_timeout 1s;',
        `server { listen 127.0.0.1:${retrying}; location / { proxy_next_upstream error timeout http_500 http_502 http_503 http_504; proxy_pass http://web; } }`,
        `server { listen 127.0.0.1:${notRetrying}; location / { proxy_next_upstream error timeout; proxy_pass http://web; } }`,
      ],
    }),
  );
  // nginx starts before the sidecar; its first config needs the upstream to exist.
  await writeFile(nginxPaths(dir).outputPath, 'upstream web { server 127.0.0.1:9 down; }\n');
  nginx = await launchNginx({ dir, probePort: retrying });
  const nginxKeys = nginxSection(dir, { update_via: 'reload', coalesce_min_wait_seconds: 0.05 });
  delete nginxKeys.leave_to_nginx; // the default is what is tested
  const configPath = join(dir, 'sidecar.yaml');
  await writeFile(
    configPath,
    sidecarYaml({
      apps: { web: { backends: web.map((b) => b.address), health: { path: '/health', initial_delay_seconds: 0, period_seconds: 1, timeout_seconds: 0.5 } } },
      passive: { listen: `127.0.0.1:${syslogPort}`, consecutive_5xx: 3, base_ejection_time_seconds: 60 },
      nginx: nginxKeys,
      admin: { listen: `127.0.0.1:${adminPort}` },
      store: { enabled: false },
    }),
  );
  sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);
  await waitFor(async () => Object.keys(await spread(retrying, 12)).sort().join() === 'web-1,web-2,web-3', { what: 'traffic on all three' });
  await nginxSettled(nginxPaths(dir).errorLog);
});

afterAll(async () => {
  await sidecar?.stop();
  await nginx?.stop();
  await Promise.all((web ?? []).map((b) => b.close()));
});

describe('reload mode: 5xx left to nginx while nginx retries them', () => {
  it('ejects a backend answering 500 without a reload while every 500 of it is retried: no client sees one', async () => {
    const before = await reloads();
    web[0]!.setMode('errors');
    const seen: Record<string, number> = {};
    await waitFor(
      async () => {
        for (const [k, n] of Object.entries(await spread(retrying, 10))) seen[k] = (seen[k] ?? 0) + n;
        return (await backendOf(web[0]!))?.breaker === 'open';
      },
      { what: 'web-1 ejected by passive evidence' },
    );
    // Another backend's failing health check is taken out by reload (no log shows nginx
    // retrying it): the file that reload wrote was decided after web-1's ejection, and keeps it.
    web[1]!.setMode('fail');
    await waitFor(async () => (await inFile(web[1]!)) !== 'up', { what: 'web-2 out of the file' });
    await waitFor(async () => (await reloads()) > before, { what: 'the reload that takes web-2 out' });
    expect(await inFile(web[0]!)).toBe('up');
    for (const [k, n] of Object.entries(await spread(retrying, 30))) seen[k] = (seen[k] ?? 0) + n;
    expect(Object.keys(seen).every((k) => k === 'web-2' || k === 'web-3')).toBe(true);
    web[1]!.setMode('ok');
  });

  it('takes it out by reload once one of its 500s reaches a client', async () => {
    const before = await reloads();
    await waitFor(async () => (await spread(notRetrying, 5))['status 500'] !== undefined, { what: 'a 500 from web-1 through the port that does not retry' });
    await waitFor(async () => (await reloads()) > before, { what: 'a reload' });
    await nginxSettled(nginxPaths(dir).errorLog);
    expect(await inFile(web[0]!)).not.toBe('up');
    const after = await spread(notRetrying, 30);
    expect(after['web-1']).toBeUndefined();
    expect(after['status 500']).toBeUndefined();
  });
});
