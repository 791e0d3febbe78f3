#!/usr/bin/env node
// `npm run demo`: a private nginx on 127.0.0.1:8080, three demo backends, and the sidecar,
// all on loopback, in a temporary directory. Ctrl-C stops everything.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'orchestry-demo-'));
const NGINX_PORT = Number(process.env.DEMO_NGINX_PORT ?? 8080);
const ADMIN_PORT = Number(process.env.DEMO_ADMIN_PORT ?? 9180);
const BACKEND_PORTS = [8101, 8102, 8103];

function findNginx() {
  for (const candidate of ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx']) {
    try {
      execFileSync(candidate, ['-v'], { stdio: 'ignore' });
      return candidate;
    } catch {}
  }
  console.error('demo: no nginx found on PATH or in /usr/sbin (install it: apt-get install nginx)');
  process.exit(1);
}
const nginxBin = findNginx();

// --- three demo backends: GET / says who answered; POST /fail, /hang, /heal flip /health ---
const servers = BACKEND_PORTS.map((port, i) => {
  let mode = 'ok';
  const server = createServer((req, res) => {
    if (req.method === 'POST' && ['/fail', '/hang', '/heal'].includes(req.url)) {
      mode = req.url === '/heal' ? 'ok' : req.url.slice(1);
      res.end(`backend-${i + 1} health is now ${mode}\n`);
      return;
    }
    if (req.url === '/health') {
      if (mode === 'hang') return;
      res.statusCode = mode === 'ok' ? 200 : 503;
      res.end(mode);
      return;
    }
    res.end(`hello from backend-${i + 1} (127.0.0.1:${port})\n`);
  });
  server.listen(port, '127.0.0.1');
  return server;
});

// --- nginx and sidecar config -------------------------------------------------------------------
for (const d of ['logs', 'conf', 'temp']) mkdirSync(join(dir, d), { recursive: true });
writeFileSync(
  join(dir, 'conf', 'nginx.conf'),
  `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/temp/body; proxy_temp_path ${dir}/temp/proxy;
  fastcgi_temp_path ${dir}/temp/fastcgi; uwsgi_temp_path ${dir}/temp/uwsgi; scgi_temp_path ${dir}/temp/scgi;
  include ${dir}/conf/orchestry-upstreams.conf;
  server {
    listen 127.0.0.1:${NGINX_PORT};
    location / {
      proxy_pass http://demo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 http_504;
      proxy_connect_timeout 1s;
    }
  }
}
`,
);
// nginx refuses to start while the included file is missing: begin with every backend routed.
writeFileSync(
  join(dir, 'conf', 'orchestry-upstreams.conf'),
  `upstream demo {\n${BACKEND_PORTS.map((p) => `  server 127.0.0.1:${p};`).join('\n')}\n}\n`,
);
writeFileSync(
  join(dir, 'sidecar.yaml'),
  `apps:
  demo:
    backends: [${BACKEND_PORTS.map((p) => `"127.0.0.1:${p}"`).join(', ')}]
    health: { path: /health, initial_delay_seconds: 0, period_seconds: 2, timeout_seconds: 1, failure_threshold: 2, success_threshold: 1 }
nginx:
  binary: ${nginxBin}
  config_path: ${dir}/conf/nginx.conf
  output_path: ${dir}/conf/orchestry-upstreams.conf
  pid_path: ${dir}/nginx.pid
  coalesce_min_wait_seconds: 0.2
admin:
  listen: 127.0.0.1:${ADMIN_PORT}
`,
);

const children = [];
execFileSync(nginxBin, ['-p', dir, '-c', join(dir, 'conf', 'nginx.conf')], { stdio: 'inherit' });
const sidecar = spawn(process.execPath, [join(root, 'dist', 'cli.js'), 'run', '--config', join(dir, 'sidecar.yaml')], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(sidecar);
sidecar.stdout.on('data', (d) => {
  for (const line of d.toString().split('\n').filter(Boolean)) {
    try {
      const j = JSON.parse(line);
      const extra = ['app', 'backend', 'from', 'to', 'reason', 'err'].filter((k) => j[k] !== undefined).map((k) => `${k}=${j[k]}`);
      console.log(`[sidecar] ${j.msg} ${extra.join(' ')}`);
    } catch {
      console.log(`[sidecar] ${line}`);
    }
  }
});

console.log(`
orchestry-sidecar demo (files in ${dir})

  nginx:      curl http://127.0.0.1:${NGINX_PORT}/          (round robin over 3 backends)
  status:     curl http://127.0.0.1:${ADMIN_PORT}/api/v1/apps
  metrics:    curl http://127.0.0.1:${ADMIN_PORT}/metrics
  upstreams:  cat ${dir}/conf/orchestry-upstreams.conf

  break one:  curl -X POST http://127.0.0.1:${BACKEND_PORTS[1]}/fail    (or /hang)
              then: for i in $(seq 6); do curl -s http://127.0.0.1:${NGINX_PORT}/; done
              backend-2 is marked down within ~4 s and nginx stops sending it traffic
  heal it:    curl -X POST http://127.0.0.1:${BACKEND_PORTS[1]}/heal
  report:     node ${join(root, 'dist', 'cli.js')} report demo --config ${dir}/sidecar.yaml
              (uptime, checks, p95, errors, ejections so far, kept in ${dir}/orchestry-sidecar.db)

Ctrl-C stops nginx, the backends and the sidecar.
`);

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  try {
    const pid = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8'));
    if (pid > 0 && existsSync(join(dir, 'nginx.pid'))) process.kill(pid, 'SIGQUIT');
  } catch {}
  for (const s of servers) s.close();
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
sidecar.on('exit', (code) => {
  if (!stopping) {
    console.error(`sidecar exited (${code}); stopping the demo`);
    stop();
  }
});
