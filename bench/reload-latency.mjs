#!/usr/bin/env node
// Transition -> nginx reloaded: how long after a backend's health transition the reload signal
// goes out (coalescing wait + render + write + nginx -t + signal), with a real private nginx and
// the real sidecar pipeline (dist/). Prints p50/p95/max over ROUNDS ejections and readmissions.
// Target: the reload signal under 250 ms after the transition.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startSidecar } from '../dist/main.js';
import { createLogger } from '../dist/observability/logger.js';

const ROUNDS = Number(process.env.ROUNDS ?? 10);
const NGINX = process.env.NGINX_BIN ?? '/usr/sbin/nginx';
const dir = mkdtempSync(join(tmpdir(), 'orchestry-bench-reload-'));
for (const d of ['conf.d', 'logs', 'tmp']) mkdirSync(join(dir, d));

const listen = (handler) =>
  new Promise((resolve) => {
    const s = createServer(handler);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
let failing = false;
const backends = await Promise.all(
  [0, 1, 2].map((i) =>
    listen((req, res) => {
      res.statusCode = i === 1 && failing && req.url === '/health' ? 503 : 200;
      res.end('ok');
    }),
  ),
);
const addrs = backends.map((s) => `127.0.0.1:${s.address().port}`);
async function freePort() {
  const s = await listen(() => {});
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}
const nginxPort = await freePort();
const adminPort = await freePort();

writeFileSync(
  join(dir, 'nginx.conf'),
  `pid ${dir}/nginx.pid; error_log ${dir}/logs/error.log warn; worker_processes 1;
events { worker_connections 64; }
http { access_log off;
  client_body_temp_path ${dir}/tmp/b; proxy_temp_path ${dir}/tmp/p; fastcgi_temp_path ${dir}/tmp/f;
  uwsgi_temp_path ${dir}/tmp/u; scgi_temp_path ${dir}/tmp/s;
  include conf.d/orchestry-upstreams.conf;
  server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://web; } } }
`,
);
writeFileSync(join(dir, 'conf.d', 'orchestry-upstreams.conf'), `upstream web { ${addrs.map((a) => `server ${a};`).join(' ')} }\n`);
writeFileSync(
  join(dir, 'sidecar.yaml'),
  `apps:
  web:
    backends: [${addrs.map((a) => `"${a}"`).join(', ')}]
    health: { initial_delay_seconds: 0, period_seconds: 2, timeout_seconds: 1, failure_threshold: 1, success_threshold: 1 }
nginx:
  binary: ${NGINX}
  prefix: ${dir}
  config_path: ${dir}/nginx.conf
  output_path: ${dir}/conf.d/orchestry-upstreams.conf
  pid_path: ${dir}/nginx.pid
admin: { listen: "127.0.0.1:${adminPort}" }
`,
);
execFileSync(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')]);

const events = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    for (const line of chunk.toString().split('\n').filter(Boolean)) events.push(JSON.parse(line));
    cb();
  },
});
const sidecar = await startSidecar({ configPath: join(dir, 'sidecar.yaml'), logger: createLogger({ level: 'info', destination: sink }) });

const wait = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms = 10_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const hit = pred();
    if (hit) return hit;
    await wait(10);
  }
  throw new Error('timed out');
}
const samples = [];
const stages = { render: [], write: [], validate: [], reload: [] };
await until(() => events.some((e) => e.msg === 'health unknown -> healthy'));
for (let round = 0; round < ROUNDS * 2; round++) {
  const from = events.length;
  failing = round % 2 === 0;
  const t = await until(() => events.slice(from).find((e) => e.msg?.startsWith('health ') && e.backend?.endsWith(addrs[1])));
  const applied = await until(() => events.slice(from).find((e) => e.msg === 'nginx upstreams updated'));
  samples.push(new Date(applied.time).getTime() - new Date(t.time).getTime());
  for (const k of Object.keys(stages)) if (applied.timings?.[k] !== undefined) stages[k].push(applied.timings[k]);
}
await sidecar.stop();
try {
  process.kill(Number(readFileSync(join(dir, 'nginx.pid'), 'utf8')), 'SIGQUIT');
} catch {}
for (const s of backends) s.close();
setTimeout(() => rmSync(dir, { recursive: true, force: true }), 500);

const pct = (arr, p) => {
  const s = [...arr].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))];
};
const fmt = (arr) => `p50 ${pct(arr, 0.5).toFixed(1)} ms  p95 ${pct(arr, 0.95).toFixed(1)} ms  max ${Math.max(...arr).toFixed(1)} ms`;
const nginxVersion = spawnSync(NGINX, ['-v'], { encoding: 'utf8' }).stderr.trim();
console.log(`reload latency over ${samples.length} transitions (${nginxVersion})`);
console.log(`  transition -> reload signal sent: ${fmt(samples)}  ${pct(samples, 0.95) < 250 ? 'PASS' : 'MISS'} (target < 250 ms)`);
for (const [k, v] of Object.entries(stages)) if (v.length) console.log(`  ${k.padEnd(8)} ${fmt(v)}`);
console.log('  (includes nginx.coalesce_min_wait_seconds, default 0.1 s, which lets bursts share one reload)');
