/**
 * A private nginx for integration tests: everything it writes (pid, logs, temp dirs) lives in
 * one temp dir, it listens on a free 127.0.0.1 port, runs in the foreground as our child and is
 * stopped by its pid. Never touches the system nginx.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NginxConfig } from '../../src/config/types.js';
import { NGINX_BIN, nginxConf, nginxPaths, UPSTREAM_KEEPALIVE } from './fixtures.js';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

/** A temp dir for one nginx, readable by its workers (they may run as nobody under root). */
export async function makeNginxDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'orchestry-nginx-'));
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'conf.d'));
  await mkdir(join(dir, 'logs'));
  await mkdir(join(dir, 'tmp'));
  return dir;
}

export interface NginxInstance {
  dir: string;
  port: number;
  configPath: string;
  pidPath: string;
  /** The generated upstreams file the main config includes. */
  outputPath: string;
  /** The master's pid. */
  pid: number;
  /** An NginxConfig pointing at this instance. */
  config(overrides?: Partial<NginxConfig>): NginxConfig;
  /** GET through nginx; `body` is the backend's name (see backend-server.ts). */
  get(path?: string, host?: string): Promise<{ status: number; body: string }>;
  /** How many reload signals the master has logged so far. */
  reloadCount(): Promise<number>;
  /**
   * Waits until at least `reloads` reloads were logged and every worker they replaced has
   * exited: until then an old worker can still accept a connection with the old upstreams.
   */
  settle(reloads: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `nginx -p dir -c dir/nginx.conf` proxying `/` to upstream `app`, with `upstreams`
 * as the initial content of the included upstreams file.
 */
export async function startNginx(opts: { upstreams: string; app?: string; binary?: string }): Promise<NginxInstance> {
  const dir = await makeNginxDir();
  const port = await freePort();
  const { configPath, pidPath, outputPath, errorLog } = nginxPaths(dir);
  await writeFile(outputPath, opts.upstreams);
  await writeFile(
    configPath,
    nginxConf({
      dir,
      include: 'conf.d/*.conf',
      accessLog: true,
      http: [
        ...UPSTREAM_KEEPALIVE,
        `server { listen 127.0.0.1:${port}; location / { proxy_pass http://${opts.app ?? 'web'}; } }`,
      ],
    }),
  );
  const binary = opts.binary ?? NGINX_BIN;
  const proc = await launchNginx({ dir, configPath, pidPath, probePort: port, binary }).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    dir,
    port,
    configPath,
    pidPath,
    outputPath,
    pid: proc.pid,
    config: (overrides = {}) => ({ ...privateNginxConfig(dir, binary), ...overrides }),
    get: (path = '/', host) => httpGet(port, path, host),
    async reloadCount() {
      return (await nginxLogCounts(errorLog)).reloads;
    },
    settle: (reloads) => nginxSettled(errorLog, reloads),
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The nginx settings of a private nginx in `dir` (nginx.conf, nginx.pid and
 * conf.d/orchestry-upstreams.conf there, as nginxPaths names them), reloaded by its pid.
 */
export function privateNginxConfig(dir: string, binary = NGINX_BIN): NginxConfig {
  const { configPath, pidPath, outputPath } = nginxPaths(dir);
  return {
    mode: 'local',
    container: null,
    container_label: null,
    binary,
    config_path: configPath,
    prefix: dir,
    output_path: outputPath,
    stream_output_path: null,
    template_path: null,
    pid_path: pidPath,
    ejected: 'down',
    coalesce_min_wait_seconds: 0.2,
    coalesce_max_wait_seconds: 2,
    validate: true,
    update_via: 'reload',
    dns_listen: '127.0.0.1:0',
    dns_resolver: null,
    dns_zone: 'orchestry.internal',
    leave_to_nginx: [],
    proxy_read_timeout_seconds: 0,
  };
}

/**
 * Runs `nginx -p dir -c configPath` in the foreground as our child and waits until it wrote
 * its pid and answers on `probePort`. stop() sends SIGTERM to that pid and waits for the exit.
 * configPath and pidPath default to dir/nginx.conf and dir/nginx.pid (fixtures.ts nginxPaths).
 */
export async function launchNginx(options: {
  dir: string;
  configPath?: string;
  pidPath?: string;
  probePort: number;
  /** Default NGINX_BIN; nginx-current.ts gives one >= 1.27.3. */
  binary?: string;
}): Promise<{ pid: number; stop(): Promise<void> }> {
  const opts = { ...nginxPaths(options.dir), ...options };
  const child: ChildProcess = spawn(opts.binary ?? NGINX_BIN, ['-p', opts.dir, '-c', opts.configPath, '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let running = true;
  const exited = new Promise<void>((r) =>
    child.once('exit', () => {
      running = false;
      r();
    }),
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${opts.binary ?? NGINX_BIN}`);
  const stop = async () => {
    if (running) {
      process.kill(pid, 'SIGTERM');
      await exited;
    }
  };
  try {
    await Promise.race([
      waitFor(
        async () => {
          const pidText = await readFile(opts.pidPath, 'utf8').catch(() => '');
          return pidText.trim() === String(pid) && (await httpGet(opts.probePort).then(() => true));
        },
        { what: 'private nginx to start', timeoutMs: 10_000 },
      ),
      exited.then(() => {
        throw new Error(`nginx exited: ${stderr.trim()}`);
      }),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid, stop };
}

/**
 * From an nginx error log (level notice): reloads it began (`reconfiguring`) and workers that
 * exited. Old workers keep the old upstreams until they exit, so a reload is complete when as many
 * workers exited as reloads began (worker_processes 1).
 */
export async function nginxLogCounts(errorLog: string): Promise<{ reloads: number; exitedWorkers: number }> {
  const lines = (await readFile(errorLog, 'utf8').catch(() => '')).split('\n');
  return {
    reloads: lines.filter((l) => l.endsWith(': reconfiguring')).length,
    exitedWorkers: lines.filter((l) => /: worker process \d+ exited/.test(l)).length,
  };
}

/**
 * Waits until at least `reloads` reloads were logged and every worker they replaced has exited
 * (worker_processes 1: each reload replaces exactly one): until then an old worker can still
 * accept a connection with the old upstreams.
 */
export async function nginxSettled(errorLog: string, reloads = 0): Promise<void> {
  await waitFor(
    async () => {
      const counts = await nginxLogCounts(errorLog);
      return counts.reloads >= reloads && counts.exitedWorkers >= counts.reloads;
    },
    { what: `${reloads || 'every'} reload(s) to complete` },
  );
}

/** How the upstreams file at `path` lists 127.0.0.1:port. */
export async function serverInFile(path: string, port: number): Promise<'up' | 'down' | 'absent'> {
  const text = await readFile(path, 'utf8');
  const m = new RegExp(`server 127\\.0\\.0\\.1:${port}( [^;]*)?;`).exec(text);
  return m ? (/ down$/.test(m[1] ?? '') ? 'down' : 'up') : 'absent';
}

/** GET http://127.0.0.1:port/path with an optional Host header. */
export function httpGet(port: number, path = '/', host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, headers: host ? { host } : {}, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

/**
 * Who answered `n` GETs of http://127.0.0.1:port/path, one after another, each on a new
 * connection: a backend's body (the test backends answer their name) or `status N`.
 */
export async function answeredBy(port: number, n: number, opts: { path?: string; host?: string } = {}): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await httpGet(port, opts.path ?? '/', opts.host);
    const key = res.status === 200 ? res.body.trim() : `status ${res.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** The `log_format orchestry` directive exactly as the shipped nginx/nginx.conf has it. */
export async function shippedLogFormat(): Promise<string> {
  const example = await readFile(new URL('../../nginx/nginx.conf', import.meta.url), 'utf8');
  const logFormat = /^ {4}log_format orchestry [\s\S]*?';$/m.exec(example)?.[0];
  if (!logFormat) throw new Error('log_format orchestry not found in nginx/nginx.conf');
  return logFormat.trim();
}

/** The pids of a process's children (nginx's workers under its master), from /proc. */
export async function childPids(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(/\s+/).filter(Boolean).map(Number).sort((x, y) => x - y);
}
