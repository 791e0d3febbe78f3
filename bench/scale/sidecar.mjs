// The sidecar of bench/scale.mjs as users run it: the built CLI (`node <flags> dist/cli.js run`,
// with the node flags of its shebang, which `npm start` repeats) managing a private nginx 1.22 in
// reload mode; everything else at the sidecar's defaults but the probe period (1 s, as HAProxy's
// `inter 1s`) and the store (on, or off for the store-off phase).
//
// What the sidecar did is read from its own log (every transition and every nginx update is a
// JSON line there) and from the file it writes for nginx; the bench never asks the daemon for
// more than a user could.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { superviseChild } from '../failover/child.mjs';
import { freePort, launchNginx } from '../failover/nginx.mjs';

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;
const PACKAGE = new URL('../../package.json', import.meta.url).pathname;

/**
 * The node flags users get: those of dist/cli.js's `#!/usr/bin/env -S node …` line, which must
 * be the ones package.json's `start` script passes (the bench says so when they differ).
 */
export function sidecarNodeFlags() {
  const shebang = readFileSync(CLI, 'utf8').slice(0, 300).split('\n')[0];
  const fromShebang = /^#!\/usr\/bin\/env -S node\b(.*)$/.exec(shebang)?.[1].trim().split(/\s+/).filter(Boolean);
  if (!fromShebang) throw new Error(`dist/cli.js has no "#!/usr/bin/env -S node" line: ${shebang}`);
  const start = JSON.parse(readFileSync(PACKAGE, 'utf8')).scripts?.start ?? '';
  const fromStart = start.split(/\s+/).filter((w) => w.startsWith('--'));
  return { flags: fromShebang, startDiffers: fromStart.join(' ') !== fromShebang.join(' ') ? start : null };
}

/** The environment of the sidecar: ours without ORCHESTRY_* (they would override the config). */
function sidecarEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ORCHESTRY_')));
}

/** A run directory nginx's workers can read, with conf.d, logs and tmp. */
export function makeRunDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  for (const d of ['conf.d', 'logs', 'tmp', 'prof']) mkdirSync(join(dir, d));
  return dir;
}

/** Backend i belongs to app `a<floor(i / appSize)>`. */
export function appOf(index, appSize) {
  return `a${Math.floor(index / appSize)}`;
}

/** The sidecar's YAML: N backends in apps of `appSize`, probed every second; store on or off. */
export function scaleYaml({ dir, ports, appSize, adminPort, nginxBinary, store, timeoutSeconds }) {
  const apps = [];
  for (let start = 0; start < ports.length; start += appSize) {
    const list = ports.slice(start, start + appSize).map((p) => `"127.0.0.1:${p}"`);
    apps.push(`  ${appOf(start, appSize)}:\n    backends: [${list.join(', ')}]`);
  }
  return `apps:
${apps.join('\n')}
defaults:
  health: { period_seconds: 1, timeout_seconds: ${timeoutSeconds} }
nginx:
  binary: ${nginxBinary}
  prefix: ${dir}
  config_path: ${join(dir, 'nginx.conf')}
  output_path: ${join(dir, 'conf.d', 'orchestry-upstreams.conf')}
  pid_path: ${join(dir, 'nginx.pid')}
  update_via: reload
admin: { listen: "127.0.0.1:${adminPort}" }
passive: { listen: "127.0.0.1:0" }
store: { enabled: ${store}, path: ${join(dir, 'sidecar.db')} }
`;
}

/** `check-config`: throws with the CLI's own words when it refuses the bench's config. */
export function checkConfig(file) {
  const r = spawnSync(process.execPath, [CLI, 'check-config', '--config', file], { encoding: 'utf8', env: sidecarEnv() });
  if (r.status !== 0) throw new Error(`check-config refuses the bench's config: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
}

/**
 * A private nginx 1.22 for the run: one worker (nginx only has to reload here; it carries no
 * traffic), notice-level error log (its "reconfiguring" lines count the reloads), and an include
 * of the file the sidecar writes, empty at first (as on a first start).
 */
export async function startNginx({ dir, binary }) {
  const port = await freePort();
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${join(dir, 'tmp', t)};`);
  writeFileSync(join(dir, 'conf.d', 'orchestry-upstreams.conf'), '');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} notice;
events { worker_connections 1024; }
http {
${temp.join('\n')}
    access_log off;
    include conf.d/orchestry-upstreams.conf;
    server {
        listen 127.0.0.1:${port};
        location / { return 204; }
    }
}
`,
  );
  return launchNginx({ binary, dir, port });
}

/**
 * Starts the sidecar (`extraFlags` before the CLI: profiling) with its output in dir/sidecar.log.
 * Returns {pid, startedAt (epoch ms), startedMono (monotonic ms), running(), exited, stop()}.
 */
export function spawnSidecar({ dir, flags, extraFlags = [] }) {
  const log = openSync(join(dir, 'sidecar.log'), 'a');
  const startedMono = monotonicMs();
  const startedAt = Date.now();
  const child = spawn(process.execPath, [...flags, ...extraFlags, CLI, 'run', '--config', join(dir, 'sidecar.yaml')], {
    cwd: dir,
    stdio: ['ignore', log, log],
    env: sidecarEnv(),
  });
  closeSync(log);
  const supervised = superviseChild(child, 'SIGTERM', 120_000);
  return { pid: child.pid, startedAt, startedMono, child, ...supervised };
}

/** CLOCK_MONOTONIC in ms: the clock of V8's CPU profiles (their µs timestamps / 1000). */
export function monotonicMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Follows the sidecar's log: every health and breaker transition, every nginx update, errors.
 * `poll()` reads what was appended. State per port: health, breaker; `ejections` (to unhealthy
 * or open, with time and reason), `applies` ({at, durationMs, reloaded, timings}).
 */
export function followLog(file, portOf) {
  let offset = 0;
  let rest = '';
  const buf = Buffer.alloc(1 << 20);
  const state = {
    health: new Map(),
    breaker: new Map(),
    transitions: 0,
    lastTransitionAt: 0,
    ejections: [],
    applies: [],
    failures: [],
    errors: [],
    healthyCount: 0,
  };
  const onLine = (line) => {
    if (!line.startsWith('{')) {
      // Node's own notices (the inspector's address in the profiling phase) are not the sidecar's errors.
      if (line.trim() && !/^(Debugger listening|For help, see|Debugger attached)/.test(line)) state.errors.push(line.slice(0, 300));
      return;
    }
    let e;
    try {
      e = JSON.parse(line);
    } catch {
      return;
    }
    // pino writes the time as an ISO string here (logger.ts), epoch ms elsewhere.
    e.time = typeof e.time === 'string' ? Date.parse(e.time) : e.time;
    const m = typeof e.msg === 'string' && e.backend && /^(health|breaker) (\w+) -> (\w+)$/.exec(e.msg);
    if (m) {
      const port = portOf(e.backend);
      const map = m[1] === 'health' ? state.health : state.breaker;
      if (m[1] === 'health') state.healthyCount += (m[3] === 'healthy' ? 1 : 0) - (map.get(port) === 'healthy' ? 1 : 0);
      map.set(port, m[3]);
      state.transitions++;
      state.lastTransitionAt = e.time;
      if (m[3] === 'unhealthy' || m[3] === 'open') state.ejections.push({ port, at: e.time, kind: m[1], from: m[2], to: m[3], reason: e.reason });
    } else if (e.msg === 'nginx upstreams updated') {
      state.applies.push({ at: e.time, durationMs: e.durationMs, reloaded: e.reloaded, timings: e.timings });
    } else if (e.msg === 'nginx update failed; last good config kept') {
      state.failures.push({ at: e.time, stage: e.stage, err: String(e.err).slice(0, 300) });
    } else if (e.level === 'error' || e.level === 'fatal' || e.level >= 50) {
      state.errors.push(`${e.msg}: ${String(e.err ?? '').slice(0, 300)}`);
    }
  };
  return {
    state,
    poll() {
      let fd;
      try {
        fd = openSync(file, 'r');
      } catch {
        return;
      }
      try {
        for (;;) {
          const n = readSync(fd, buf, 0, buf.length, offset);
          if (n <= 0) break;
          offset += n;
          const lines = (rest + buf.toString('utf8', 0, n)).split('\n');
          rest = lines.pop();
          for (const l of lines) onLine(l);
        }
      } finally {
        closeSync(fd);
      }
    },
  };
}

/**
 * The servers of the file the sidecar writes for nginx: `{servers, down: Set of ports, mtimeMs}`;
 * re-read only when the file changed.
 */
export function followUpstreams(file) {
  let last = { servers: 0, down: new Set(), mtimeMs: 0 };
  return {
    read() {
      let st;
      try {
        st = statSync(file);
      } catch {
        return last;
      }
      if (st.mtimeMs === last.mtimeMs) return last;
      const text = readFileSync(file, 'utf8');
      const down = new Set();
      let servers = 0;
      for (const m of text.matchAll(/^\s*server 127\.0\.0\.1:(\d+)([^;\n]*);/gm)) {
        servers++;
        if (/\bdown\b/.test(m[2])) down.add(Number(m[1]));
      }
      last = { servers, down, mtimeMs: st.mtimeMs };
      return last;
    },
  };
}
