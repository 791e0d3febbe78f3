// The private nginx of one bench run: its config (the proxy settings of the project's own
// nginx/nginx.conf, read from that file so the bench follows it), start and stop as our child,
// and what its logs say (reloads; every attempt on every upstream server).
// Reimplements the few bits of test/helpers/nginx-instance.ts it needs (no vitest here).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { superviseChild } from './child.mjs';

const SHIPPED_CONF = new URL('../../nginx/nginx.conf', import.meta.url).pathname;

/** The bench's access log: one line per request, every attempt on an upstream server in it. */
const BENCH_LOG_FORMAT =
  `log_format failover_bench '$msec $request_time "$upstream_addr" "$upstream_status" "$upstream_response_time" $status';`;

/**
 * A port that was free a moment ago, below the kernel's ephemeral range (a port from that range
 * can be taken by an outgoing connection, e.g. nginx's to a backend, before it is bound).
 */
export async function freePort(taken = new Set()) {
  const range = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  const low = Number(range.trim().split(/\s+/)[0]) || 32768;
  const base = Math.min(20_000, low - 1000);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = base + Math.floor(Math.random() * (low - base));
    if (!taken.has(port) && (await canListen(port))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port below the ephemeral range');
}

function canListen(port) {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * The statements of the shipped nginx.conf that decide failover, from its `http` block (not
 * inside server or upstream blocks): every `proxy_*` directive, `log_format`, and, when
 * `syslogPort` is given, its `access_log` to syslog (the passive reader's) pointed at that port.
 * `proxy_read_timeout` and any `drop` names are left out: the caller sets its own. Returns nginx
 * statements, one a line.
 */
export function shippedHttpDirectives({ drop = [], syslogPort = null } = {}) {
  const text = readFileSync(SHIPPED_CONF, 'utf8').replace(/#[^\n]*/g, '');
  const out = [];
  for (const stmt of topLevelHttpStatements(text)) {
    const name = stmt.split(/\s+/)[0];
    if (name === 'proxy_read_timeout' || drop.includes(name)) continue;
    if (name.startsWith('proxy_') || name === 'log_format') out.push(`${stmt};`);
    else if (name === 'access_log' && /\ssyslog:/.test(stmt) && syslogPort !== null) {
      out.push(`${stmt.replace(/server=[^,\s]+/, `server=127.0.0.1:${syslogPort}`)};`);
    }
  }
  if (syslogPort !== null && !out.some((d) => d.startsWith('access_log'))) {
    throw new Error(`${SHIPPED_CONF} has no access_log to syslog: the sidecar rows' passive evidence needs it`);
  }
  return out;
}

function topLevelHttpStatements(text) {
  const start = text.search(/\bhttp\s*\{/);
  if (start < 0) throw new Error(`${SHIPPED_CONF}: no http block`);
  const out = [];
  let depth = 0;
  let current = '';
  let quote = null;
  for (const ch of text.slice(text.indexOf('{', start) + 1)) {
    if (quote) {
      if (ch === quote) quote = null;
      if (depth === 0) current += ch;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    if (ch === '{') depth++;
    else if (ch === '}') {
      if (depth === 0) break;
      depth--;
      current = '';
      continue;
    }
    if (depth > 0) continue;
    if (ch === ';') {
      out.push(current.trim().replace(/\s+/g, ' '));
      current = '';
    } else current += ch;
  }
  return out.filter(Boolean);
}

/**
 * The main config of one run: the shipped settings (`directives`), the bench's access log and
 * error log (notice, for the "reconfiguring" lines), `include` of the generated upstreams file,
 * and one server proxying `/` to upstream `web`.
 */
export function mainConfig({ dir, port, directives, readTimeoutSeconds }) {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${join(dir, 'tmp', t)};`);
  return `worker_processes auto;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} notice;
events { worker_connections 1024; }
http {
${temp.join('\n')}
    ${BENCH_LOG_FORMAT}
    access_log ${join(dir, 'logs', 'bench.log')} failover_bench buffer=64k flush=1s;
${directives.map((d) => `    ${d}`).join('\n')}
    proxy_read_timeout ${readTimeoutSeconds}s;
    include conf.d/orchestry-upstreams.conf;
    server {
        listen 127.0.0.1:${port};
        location / { proxy_pass http://web; }
    }
}
`;
}

/**
 * `nginx -p dir -c dir/nginx.conf -g 'daemon off;'` as our child; resolves once its pid file
 * names it and it answers on `port`. stop() asks for a graceful stop (SIGQUIT: the access log
 * buffer is written out) and waits for the exit.
 */
export async function launchNginx({ binary, dir, port }) {
  const child = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const { running, stop } = superviseChild(child, 'SIGQUIT');
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!running()) throw new Error(`nginx exited: ${stderr.trim()}`);
    const pidText = await readFile(join(dir, 'nginx.pid'), 'utf8').catch(() => '');
    if (pidText.trim() === String(child.pid) && (await answers(port))) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not start: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid, stop };
}

/** Whether something answers HTTP on 127.0.0.1:port (any status). */
export function answers(port) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(true));
    });
    req.on('error', () => resolve(false));
    req.setTimeout(2000, () => req.destroy());
    req.end();
  });
}

/** From the error log (level notice): reloads begun ("reconfiguring") and worker processes exited. */
export async function errorLogCounts(dir) {
  const lines = (await readFile(join(dir, 'logs', 'error.log'), 'utf8').catch(() => '')).split('\n');
  return {
    reloads: lines.filter((l) => l.endsWith(': reconfiguring')).length,
    exitedWorkers: lines.filter((l) => /: worker process \d+ exited/.test(l)).length,
  };
}

/**
 * Every attempt nginx made on an upstream server, from the bench's access log:
 * {addr, start and end (wall ms), status (a number, or 0 when there was no response)}.
 * nginx logs a request when it ends; an attempt's start is the request's start ($msec minus
 * $request_time) plus the response times of the attempts before it (retries run one after the
 * other), to the log's millisecond.
 */
export async function upstreamAttempts(dir) {
  const text = await readFile(join(dir, 'logs', 'bench.log'), 'utf8').catch(() => '');
  const attempts = [];
  const re = /^(\d+\.\d+) (\d+\.\d+) "([^"]*)" "([^"]*)" "([^"]*)" (\d+)$/;
  for (const line of text.split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    const addrs = m[3].split(/, | : /);
    const statuses = m[4].split(/, | : /);
    const times = m[5].split(/, | : /);
    let t = Number(m[1]) * 1000 - Number(m[2]) * 1000;
    addrs.forEach((addr, i) => {
      const start = t;
      t += (Number(times[i]) || 0) * 1000;
      attempts.push({ addr, start, end: t, status: Number(statuses[i]) || 0 });
    });
  }
  return attempts;
}
