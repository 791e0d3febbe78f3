/**
 * A sidecar restarted next to the nginx (>= 1.27.3) its DNS server answered: nginx keeps the
 * servers it resolved while the DNS server is away and asks the new one by itself, so the new
 * process must not reload it (a reload under keep-alive load resets client connections). Every
 * part real: the built CLI as a child process, twice, on the same DNS address; nginx's master and
 * worker pids and its error log say whether it was reloaded.
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answeredMarkerPath } from '../../src/nginx/dns/answered-marker.js';
import { configLoadedAt } from '../../src/nginx/reload.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { currentNginx } from '../helpers/nginx-current.js';
import { frontNginxConf, nginxPaths, nginxSection, sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { answeredBy, childPids, launchNginx, makeNginxDir, nginxLogCounts } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let nginx: { pid: number; stop(): Promise<void> };
let nginxPort: number;
let adminPort: number;
let configPath: string;
let output: string;
let sidecar: SidecarProcess | undefined;
let web: TestBackend[];
const errorLog = () => nginxPaths(dir).errorLog;
const spread = (n: number) => answeredBy(nginxPort, n);
const nginxState = async () => ({ reloads: (await nginxLogCounts(errorLog())).reloads, workers: await childPids(nginx.pid) });
const start = () => startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);

beforeAll(async () => {
  const { binary } = await currentNginx();
  dir = await makeNginxDir();
  web = await Promise.all(['web-1', 'web-2', 'web-3'].map((n) => startBackend(n)));
  nginxPort = await freePort();
  adminPort = await freePort();
  const dnsPort = await freePort();
  output = nginxPaths(dir).outputPath;
  await writeFile(
    nginxPaths(dir).configPath,
    frontNginxConf(dir, ['proxy_next_upstream error timeout http_502 http_503 http_504;', `server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://web; } }`]),
  );
  await writeFile(output, 'upstream web { server 127.0.0.1:9 down; }\n');
  nginx = await launchNginx({ dir, configPath: nginxPaths(dir).configPath, pidPath: nginxPaths(dir).pidPath, probePort: nginxPort, binary });
  configPath = join(dir, 'sidecar.yaml');
  await writeFile(
    configPath,
    sidecarYaml({
      apps: { web: { backends: web.map((b) => b.address), health: { path: '/health', period_seconds: 1, timeout_seconds: 0.5 } } },
      // A fixed DNS address: the restarted process renders the same `resolver` line.
      nginx: nginxSection(dir, { binary, update_via: 'dns', dns_listen: `127.0.0.1:${dnsPort}`, leave_to_nginx: ['refused', '5xx'] }),
      admin: { listen: `127.0.0.1:${adminPort}` },
      store: { enabled: false },
    }),
  );
});

afterAll(async () => {
  await sidecar?.stop();
  await nginx?.stop();
  await Promise.all((web ?? []).map((b) => b.close()));
});

describe('a sidecar restarted in DNS mode', () => {
  it('reloads at its first start the nginx that loaded before any DNS server answered it, and marks when nginx is answered', async () => {
    sidecar = await start();
    await waitFor(async () => JSON.stringify(Object.keys(await spread(12)).sort()) === '["web-1","web-2","web-3"]', { what: 'traffic on all three' });
    expect((await nginxState()).reloads).toBe(1);
    const loadedAt = (await configLoadedAt(nginxPaths(dir).pidPath))!;
    await waitFor(async () => ((await stat(answeredMarkerPath(output)).catch(() => null))?.mtimeMs ?? 0) > loadedAt + 100, { what: "nginx's answers after the reload marked" });
  });

  it('does not reload the nginx its previous process answered, and goes on routing it through DNS', async () => {
    const before = await nginxState();
    expect(await sidecar!.stop()).toBe(0);
    sidecar = await start();
    await waitFor(async () => (await sidecar!.api('/readyz')).status === 200, { what: 'the new process ready' });
    expect(sidecar.logs().filter((l) => l.msg === 'nginx upstreams updated' && l.reloaded !== false)).toEqual([]);
    expect(JSON.stringify(Object.keys(await spread(12)).sort())).toBe('["web-1","web-2","web-3"]');

    // The new DNS server is the one nginx follows: an ejection reaches traffic, still without a reload.
    await web[0]!.stop();
    await waitFor(async () => (await sidecar!.backends('web')).find((b) => b.address === web[0]!.address)?.ejected === true, { what: 'web-1 ejected' });
    await waitFor(async () => !(await spread(12))['web-1'], { what: 'no traffic to web-1' });
    await web[0]!.resume();
    expect(await nginxState()).toEqual(before);
  });
});
