/**
 * Failover in DNS mode, every part real: the built CLI as a child process, nginx >= 1.27.3
 * resolving each app's servers from the sidecar's DNS server, and nginx's access log sent to the
 * sidecar over syslog (passive evidence). Ejection and readmission must never reload nginx:
 * its master and worker pids stay the same and its error log shows no reconfiguration.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { currentNginx } from '../helpers/nginx-current.js';
import { privateTempPaths } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { answeredBy, childPids, launchNginx, makeNginxDir, nginxLogCounts } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

interface BackendJson {
  address: string;
  health: string;
  breaker: string;
  ejected: boolean;
}
interface AppsJson {
  apps: Array<{ name: string; backends: BackendJson[] }>;
  nginx: { update_via: string; reason: string } | null;
  passive: { listen: string; parsed: number } | null;
}

let dir: string;
let nginx: { pid: number; stop(): Promise<void> };
let nginxPort: number;
let sidecar: SidecarProcess;
let web: TestBackend[];
const errorLog = () => join(dir, 'logs', 'error.log');

async function apps(): Promise<AppsJson> {
  return (await sidecar.api<AppsJson>('/api/v1/apps')).body;
}
async function backendOf(b: TestBackend): Promise<BackendJson | undefined> {
  return (await apps()).apps.find((a) => a.name === 'web')?.backends.find((x) => x.address === b.address);
}
/** Who answered `n` requests through nginx. */
const spread = (n: number) => answeredBy(nginxPort, n);
/** nginx as it is now: reloads logged and worker pids. Ejection and readmission must not change it. */
async function nginxState() {
  return { reloads: (await nginxLogCounts(errorLog())).reloads, workers: await childPids(nginx.pid) };
}

beforeAll(async () => {
  const { binary } = await currentNginx();
  dir = await makeNginxDir();
  web = await Promise.all(['web-1', 'web-2', 'web-3'].map((n) => startBackend(n)));
  nginxPort = await freePort();
  const adminPort = await freePort();
  const syslogPort = await freePort();
  const output = join(dir, 'conf.d', 'orchestry-upstreams.conf');
  await writeFile(output, '# written by the sidecar\n');
  await writeFile(
    join(dir, 'nginx.conf'),
    `pid ${join(dir, 'nginx.pid')};
error_log ${errorLog()} notice;
worker_processes 1;
events { worker_connections 128; }
http {
${privateTempPaths(dir)}
  log_format orchestry escape=json
    '{"time":"$time_iso8601","upstream":"$proxy_host","status":$status,"request_time":$request_time,'
    '"upstream_addr":"$upstream_addr","upstream_status":"$upstream_status",'
    '"upstream_response_time":"$upstream_response_time","upstream_connect_time":"$upstream_connect_time"}';
  access_log syslog:server=127.0.0.1:${syslogPort},tag=orchestry,nohostname orchestry;
  include conf.d/*.conf;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_connect_timeout 1s;
  proxy_read_timeout 3s;
  proxy_next_upstream error timeout http_500 http_502 http_503 http_504;
  server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://web; } }
}
`,
  );
  // nginx starts before the sidecar: its upstream does not exist yet, so a first config with an
  // empty include would fail `proxy_pass http://web`; give it a placeholder upstream.
  await writeFile(output, 'upstream web { server 127.0.0.1:9 down; }\n');
  nginx = await launchNginx({ dir, configPath: join(dir, 'nginx.conf'), pidPath: join(dir, 'nginx.pid'), probePort: nginxPort, binary });
  const configPath = join(dir, 'sidecar.yaml');
  await writeFile(
    configPath,
    `apps:
  web:
    backends: [${web.map((b) => `"${b.address}"`).join(', ')}]
    health: { path: /health, initial_delay_seconds: 0, period_seconds: 1, timeout_seconds: 0.5, failure_threshold: 2, success_threshold: 2 }
breaker: { recovery_timeout_seconds: 1, slow_start_seconds: 4 }
passive: { listen: "127.0.0.1:${syslogPort}", consecutive_5xx: 3, base_ejection_time_seconds: 3 }
nginx:
  binary: ${binary}
  prefix: ${dir}
  config_path: ${join(dir, 'nginx.conf')}
  output_path: ${output}
  pid_path: ${join(dir, 'nginx.pid')}
  update_via: auto
  dns_listen: 127.0.0.1:0
  coalesce_min_wait_seconds: 0.05
admin: { listen: "127.0.0.1:${adminPort}" }
store: { enabled: false }
`,
  );
  sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);
  await waitFor(async () => JSON.stringify(Object.keys(await spread(12)).sort()) === '["web-1","web-2","web-3"]', { what: 'traffic on all three' });
});

afterAll(async () => {
  await sidecar?.stop();
  await nginx?.stop();
  await Promise.all((web ?? []).map((b) => b.close()));
});

describe('DNS mode with passive evidence, against nginx >= 1.27.3', () => {
  it('chose DNS mode by itself from nginx -v, and listens for the access log', async () => {
    const body = await apps();
    expect(body.nginx?.update_via).toBe('dns');
    expect(body.nginx?.reason).toMatch(/nginx 1\.\d+\.\d+ re-resolves SRV records/);
    expect(body.passive?.listen).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("ejects a backend that answers 500 to real requests while its health check passes, on nginx's log alone, without a reload", async () => {
    const before = await nginxState();
    web[0]!.setMode('errors');
    // nginx's own max_fails keeps a failing server out for a second after each failed attempt
    // (fail_timeout=1s), so it sees web-1 about once a second: keep traffic flowing meanwhile.
    await waitFor(
      async () => {
        await spread(10);
        const body = await apps();
        const b = body.apps.find((a) => a.name === 'web')?.backends.find((x) => x.address === web[0]!.address);
        if (b?.ejected !== true) throw new Error(JSON.stringify({ passive: body.passive, b }));
        return true;
      },
      { what: 'web-1 ejected by passive evidence' },
    );
    expect(await backendOf(web[0]!)).toMatchObject({ health: 'healthy', breaker: 'open' });
    const events = (await sidecar.api<{ events: Array<{ message: string; data: { reason?: string } }> }>('/api/v1/events?kind=transition&app=web')).body.events;
    expect(events.some((e) => e.data.reason?.startsWith('passive: 3 consecutive 5xx'))).toBe(true);
    await waitFor(async () => !(await spread(12))['web-1'], { what: 'no traffic to web-1' });
    expect(await nginxState()).toEqual(before);
    web[0]!.setMode('ok');
  });

  it('takes a dead backend out and brings it back after it restarts, slow start included, without a reload', async () => {
    await waitFor(async () => (await backendOf(web[0]!))?.breaker === 'closed', { what: 'web-1 back from the previous test', timeoutMs: 20_000 });
    const before = await nginxState();
    await web[1]!.stop();
    await waitFor(async () => (await backendOf(web[1]!))?.ejected === true, { what: 'web-2 ejected' });
    await waitFor(async () => !(await spread(12))['web-2'], { what: 'no traffic to web-2' });
    await web[1]!.resume();
    await waitFor(async () => (await backendOf(web[1]!))?.breaker === 'half_open', { what: 'web-2 readmitted half-open' });
    await waitFor(async () => (await spread(12))['web-2'], { what: 'traffic to web-2 again' });
    await waitFor(async () => (await backendOf(web[1]!))?.breaker === 'closed', { what: 'web-2 at full weight', timeoutMs: 15_000 });
    expect(await nginxState()).toEqual(before);
  });

  it('holds a backend that fails again right after readmission out for longer (flap damping)', async () => {
    await web[2]!.stop();
    await waitFor(async () => (await backendOf(web[2]!))?.ejected === true, { what: 'web-3 ejected' });
    await web[2]!.resume();
    await waitFor(async () => (await backendOf(web[2]!))?.breaker === 'half_open', { what: 'web-3 half-open' });
    await web[2]!.stop();
    const reopened = await waitFor(
      async () => {
        const events = (await sidecar.api<{ events: Array<{ data: { to?: string; reason?: string; backend?: string } }> }>('/api/v1/events?kind=transition&app=web')).body.events;
        return events.find((e) => e.data.to === 'open' && e.data.reason?.includes('ejection 2')) ?? null;
      },
      { what: 'web-3 reopened as its second ejection' },
    );
    expect(reopened.data.reason).toMatch(/ejection 2, held 2s/);
    await web[2]!.resume();
  });
});
