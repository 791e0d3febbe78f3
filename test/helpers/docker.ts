/**
 * Small shared helpers for tests against the real Docker Engine: one client, a check that the
 * engine answers (tests that need Docker fail, never skip, without it), labels that mark what a
 * test file created, clean-up by those labels, and waits on container state.
 *
 * Workplace rules baked in here: every container runs with host networking (dockerd runs with
 * no bridge; servers bind 127.0.0.1 and get their port by env), and carries
 * `orchestry.test=1` plus `orchestry.test.suite=<suite>` so a test file removes only its own.
 */
import Dockerode from 'dockerode';
import { execFile, spawn } from 'node:child_process';
import { open, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

export const DOCKER_SOCKET = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock';

/** The tests' Docker client. Creating it opens nothing; each call is one request. */
export const docker = new Dockerode({ socketPath: DOCKER_SOCKET });

/** Label on everything a test creates; `SUITE_LABEL` names the test file that did. */
export const TEST_LABEL = 'orchestry.test';
export const SUITE_LABEL = 'orchestry.test.suite';

/** The labels that mark a container as created by the test file `suite`. */
export function testLabels(suite: string): Record<string, string> {
  return { [TEST_LABEL]: '1', [SUITE_LABEL]: suite };
}

/** Throws a clear error when the Docker Engine does not answer (tests must fail, not skip). */
export async function requireDocker(client: Dockerode = docker): Promise<void> {
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
    });
    await Promise.race([client.ping(), timeout]).finally(() => clearTimeout(timer));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `Docker Engine unreachable at ${DOCKER_SOCKET} (${why}). These tests need a running dockerd: ` +
        'run scripts/setup.sh as root, which starts one.',
    );
  }
}

/** Force-removes every container (running or not) that carries `orchestry.test.suite=suite`. */
export async function removeTestContainers(suite: string, client: Dockerode = docker): Promise<void> {
  const list = await client.listContainers({ all: true, filters: { label: [`${SUITE_LABEL}=${suite}`] } });
  await Promise.all(
    list.map((c) =>
      client
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch((err: { statusCode?: number }) => {
          // Already gone (e.g. AutoRemove, or removed by the code under test) is fine.
          if (err.statusCode !== 404 && err.statusCode !== 409) throw err;
        }),
    ),
  );
}

export interface RunContainerOptions {
  image: string;
  /** Test file marker, see testLabels(). */
  suite: string;
  name?: string;
  env?: Record<string, string>;
  /** More labels, e.g. `orchestry.*` ones for discovery. */
  labels?: Record<string, string>;
  /** Bind mounts, `host:container[:ro]`. */
  binds?: string[];
  cmd?: string[];
  /** TCP ports the container exposes (as `--expose` or an image's EXPOSE would). */
  exposedPorts?: number[];
  /** Created but not started. */
  created?: boolean;
}

/** Creates and starts (unless `created`) a container with host networking and the suite's labels. */
export async function runContainer(opts: RunContainerOptions, client: Dockerode = docker): Promise<Dockerode.Container> {
  const container = await client.createContainer({
    Image: opts.image,
    ...(opts.name ? { name: opts.name } : {}),
    ...(opts.cmd ? { Cmd: opts.cmd } : {}),
    Env: Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Labels: { ...opts.labels, ...testLabels(opts.suite) },
    ...(opts.exposedPorts ? { ExposedPorts: Object.fromEntries(opts.exposedPorts.map((p) => [`${p}/tcp`, {}])) } : {}),
    HostConfig: { NetworkMode: 'host', ...(opts.binds ? { Binds: opts.binds } : {}) },
  });
  if (!opts.created) await container.start();
  return container;
}

let appSerial = 0;

/**
 * Runs the test app (examples/demo-app/server.mjs, in `image`) as a discoverable backend of
 * `app`: on a free loopback port, named `<suite>-<pid>-<n>`, with env PORT, NAME and GRACE_MS
 * (its shutdown grace) plus `env`, and the labels orchestry.enable, .app and .port plus `labels`.
 */
export async function runTestApp(opts: {
  image: string;
  suite: string;
  app: string;
  graceMs: number;
  env?: Record<string, string>;
  /** Labels to add, or a function of the port that returns them. */
  labels?: Record<string, string> | ((port: number) => Record<string, string>);
}): Promise<{ container: Dockerode.Container; name: string; port: number }> {
  const port = await freePort();
  const name = `${opts.suite}-${process.pid}-${++appSerial}`;
  const container = await runContainer({
    image: opts.image,
    suite: opts.suite,
    name,
    env: { PORT: String(port), NAME: name, GRACE_MS: String(opts.graceMs), ...opts.env },
    labels: {
      'orchestry.enable': 'true',
      'orchestry.app': opts.app,
      'orchestry.port': String(port),
      ...(typeof opts.labels === 'function' ? opts.labels(port) : opts.labels),
    },
  });
  return { container, name, port };
}

/** Polls `docker inspect` until `check` accepts the container's state. */
export async function waitForContainer(
  container: Dockerode.Container,
  check: (info: Dockerode.ContainerInspectInfo) => boolean,
  opts: { what: string; timeoutMs?: number },
): Promise<Dockerode.ContainerInspectInfo> {
  return waitFor(
    async (): Promise<Dockerode.ContainerInspectInfo | null> => {
      const info = await container.inspect();
      return check(info) ? info : null;
    },
    { what: opts.what, timeoutMs: opts.timeoutMs ?? 30_000, intervalMs: 100 },
  );
}

/** Waits until Docker's HEALTHCHECK reports `status` (healthy, unhealthy). */
export function waitForHealthStatus(
  container: Dockerode.Container,
  status: 'healthy' | 'unhealthy',
  timeoutMs?: number,
): Promise<Dockerode.ContainerInspectInfo> {
  return waitForContainer(container, (info) => info.State.Health?.Status === status, {
    what: `container ${container.id.slice(0, 12)} to become ${status}`,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
}

/** POST /control/<action> to the test app (examples/demo-app/server.mjs) on 127.0.0.1:port. */
export function controlApp(port: number, action: string): Promise<{ status: number; body: string }> {
  return appRequest(port, 'POST', `/control/${action}`);
}

/**
 * Until the test app on 127.0.0.1:port answers GET /health with 200: before that its SIGTERM
 * handler may not be installed (pid 1 ignores SIGTERM).
 */
export async function appAnswers(port: number): Promise<void> {
  await waitFor(async () => (await appRequest(port, 'GET', '/health')).status === 200, { what: `GET /health on 127.0.0.1:${port}` });
}

/** One request to the test app on its own connection (none is kept open to delay its shutdown). */
function appRequest(port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        // exit and crash end the process right after answering; the body may be cut short.
        res.on('error', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

/** Whether the Engine no longer knows the container (inspect answers 404). */
export function isGone(id: string, client: Dockerode = docker): Promise<boolean> {
  return client
    .getContainer(id)
    .inspect()
    .then(
      () => false,
      (err: { statusCode?: number }) => err.statusCode === 404,
    );
}

/**
 * The last `tail` lines (or all) a container wrote to stdout and stderr, or to the one `stream`
 * given, as text (for error messages, and e.g. nginx's `error_log stderr`).
 */
export async function containerLogs(container: Dockerode.Container, tail: number | 'all' = 20, stream?: 'stdout' | 'stderr'): Promise<string> {
  const buf = await container
    .logs({ stdout: stream !== 'stderr', stderr: stream !== 'stdout', ...(tail === 'all' ? {} : { tail }) })
    .catch(() => null);
  if (!buf) return '(no logs)';
  // Without a TTY each chunk has an 8-byte header: stream type, 3 zero bytes, length (BE).
  let text = '';
  for (let at = 0; at + 8 <= buf.length; ) {
    const size = buf.readUInt32BE(at + 4);
    text += buf.subarray(at + 8, at + 8 + size).toString('utf8');
    at += 8 + size;
  }
  return text.trim();
}

/** Where scripts/setup.sh records the pid of the dockerd it started, and its log. */
export const DOCKERD_PID_FILE = '/tmp/orchestry-dockerd.pid';
export const DOCKERD_LOG = '/tmp/orchestry-dockerd.log';
/** The flags setup.sh starts dockerd with (ENVIRONMENT.md); --live-restore keeps containers up across a restart. */
const DOCKERD_ARGS = ['--bridge=none', '--iptables=false', '--ip-masq=false', '--live-restore'];

/** `docker info` succeeds. */
function engineAnswers(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('docker', ['info'], { timeout: 5000 }, (err) => resolve(err === null));
  });
}

/** The process exists and is not a zombie (an unreaped dockerd has exited all the same). */
async function processAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  // "pid (comm) S ...": the state follows the last ')', comm may itself contain one.
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/**
 * Starts dockerd the way scripts/setup.sh does: in its own session (so it outlives the test
 * process), with the same flags, appending to the same log, its pid in the same file; resolves
 * once `docker info` answers (at most 60 s). Starts nothing when an engine already answers.
 */
export async function startDockerd(): Promise<void> {
  if (await engineAnswers()) return;
  const log = await open(DOCKERD_LOG, 'a');
  let child;
  try {
    // detached = setsid(): what `setsid dockerd` does in setup.sh, and child.pid is dockerd's own.
    child = spawn('dockerd', DOCKERD_ARGS, {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin` },
    });
  } finally {
    await log.close(); // the child holds its own copy of the descriptor
  }
  const started = child;
  let spawnError: Error | null = null;
  started.on('error', (err) => (spawnError = err));
  started.unref();
  if (started.pid === undefined) throw new Error('cannot start dockerd (not installed? run scripts/setup.sh)');
  await writeFile(DOCKERD_PID_FILE, `${started.pid}\n`);
  await waitFor(
    async () => {
      if (spawnError) throw spawnError;
      if (started.exitCode !== null) throw new Error(`dockerd exited with ${started.exitCode}; see ${DOCKERD_LOG}`);
      return engineAnswers();
    },
    { timeoutMs: 60_000, intervalMs: 250, what: `dockerd to answer (log ${DOCKERD_LOG})` },
  );
}

/**
 * Restarts the Docker Engine started by scripts/setup.sh: SIGTERM to the pid in
 * DOCKERD_PID_FILE, waits until it has exited and `docker info` fails, runs `whileDown`, then
 * starts dockerd again (startDockerd), even when `whileDown` throws.
 */
export async function restartDockerd(opts: { whileDown?: () => Promise<void> } = {}): Promise<void> {
  const text = await readFile(DOCKERD_PID_FILE, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 1 || !(await processAlive(pid))) {
    throw new Error(`no running dockerd with the pid in ${DOCKERD_PID_FILE} (${JSON.stringify(text.trim())}): run scripts/setup.sh`);
  }
  process.kill(pid, 'SIGTERM');
  await waitFor(async () => !(await processAlive(pid)), { timeoutMs: 60_000, intervalMs: 100, what: `dockerd (pid ${pid}) to exit` });
  await waitFor(async () => !(await engineAnswers()), { timeoutMs: 10_000, what: '`docker info` to fail' });
  try {
    await opts.whileDown?.();
  } finally {
    await startDockerd();
  }
}

/** Leaves a Docker Engine running: waits for one that is starting, or starts one. */
export async function ensureDockerd(): Promise<void> {
  if (await engineAnswers()) return;
  const pid = Number((await readFile(DOCKERD_PID_FILE, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(pid) && pid > 1 && (await processAlive(pid))) {
    const up = await waitFor(engineAnswers, { timeoutMs: 60_000, intervalMs: 250, what: 'dockerd to answer' }).catch(() => false);
    if (up) return;
    throw new Error(`dockerd (pid ${pid}) is running but does not answer; see ${DOCKERD_LOG}`);
  }
  await startDockerd();
}
