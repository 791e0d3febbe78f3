/**
 * A private Docker Swarm for integration tests: several dockerd processes on this machine, each
 * a node with its own socket, data root, exec root and pid file (ENVIRONMENT.md "Docker Swarm on
 * one machine"). The shared engine runs with --live-restore, which Swarm refuses: it is never
 * touched, except to read the test images from it.
 *
 * - Nodes advertise 127.0.0.1 on free ports; every service runs with host networking, its tasks
 *   listening on 127.0.0.1:<port built from the task's slot> (swarm-services.ts).
 * - Engines run with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1, as Docker's own test daemons do: a
 *   task uses the node's local image instead of first trying a registry (no traffic leaves the
 *   machine, and a task starts a registry round-trip sooner).
 * - Start-up is what tests pay most for, so the slow part is cached between test files: a node's
 *   data root lives in a cache slot (/tmp/orchestry-swarm-cache/node-N) that keeps the loaded
 *   images. A slot is locked by the test process using it (another process takes another slot),
 *   and is reused only after a clean stop (marker file); otherwise it is wiped and the images
 *   loaded again. Daemons that a crashed run left behind are stopped by the pid it recorded,
 *   after checking that the process is a dockerd on that slot.
 * - stop(): every node leaves the swarm (--force), its containers are removed, the daemons get
 *   SIGTERM by pid and are waited for.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import Dockerode from 'dockerode';
import { docker as sharedEngine } from './docker.js';
import { ensureTestImages, NGINX_REPO, NODE_APP_REPO } from './docker-images.js';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

export const SWARM_CACHE = process.env.ORCHESTRY_SWARM_CACHE ?? '/tmp/orchestry-swarm-cache';
/** Cache slots a test process may take; more nodes than free slots get uncached data roots. */
const SLOTS = 8;
const DOCKERD_FLAGS = ['--bridge=none', '--iptables=false', '--ip-masq=false', '--shutdown-timeout=2', '--log-level=warn'];

/** One engine of the private swarm. */
export interface SwarmNodeHandle {
  /** 1-based, in start order; node 1 initialised the swarm. */
  index: number;
  role: 'manager' | 'worker';
  socketPath: string;
  docker: Dockerode;
  /** The Swarm node id. */
  nodeId: string;
  /** host:port the node advertises. */
  address: string;
  pid: number;
  log: string;
}

/** Milliseconds spent in each step of start(). */
export interface SwarmTimings {
  daemons: number;
  swarm: number;
  images: number;
  total: number;
  /** How many nodes found their images already in their cached data root. */
  cachedNodes: number;
}

export interface PrivateSwarm {
  nodes: SwarmNodeHandle[];
  /** Node 1's client: a manager (the leader). */
  manager: Dockerode;
  /** Images present on every node (the test images of docker-images.ts). */
  images: { nodeApp: string; nginx: string };
  timings: SwarmTimings;
  /** The node handle for a Swarm node id. */
  node(nodeId: string): SwarmNodeHandle;
  stop(): Promise<{ ms: number }>;
}

interface Slot {
  dir: string;
  data: string;
  /** Whether the data root is a cache slot (kept for the next run) or this run's own. */
  cached: boolean;
  /** The data root was left clean by the last run: its images can be trusted. */
  warm: boolean;
}

interface Started extends Slot {
  index: number;
  socketPath: string;
  pid: number;
  log: string;
  docker: Dockerode;
  /** Node saw the daemon exit and reaped it (until then its pid is a zombie, which kill(pid, 0) still finds). */
  reaped: () => boolean;
}

/**
 * Starts `nodes` engines (the first `managers` of them managers), forms a swarm on loopback and
 * makes the test images present on each. Throws (after stopping what it started) when any step
 * fails, with the engine's log tail.
 */
export async function startSwarm(opts: { nodes?: number; managers?: number } = {}): Promise<PrivateSwarm> {
  const count = opts.nodes ?? 2;
  const managers = Math.max(1, Math.min(opts.managers ?? 1, count));
  const t0 = Date.now();
  const images = await ensureTestImages();
  const run = await mkdtemp('/tmp/osw-'); // short: unix socket paths are limited to 107 bytes
  const started: Started[] = [];
  try {
    const slots = await takeSlots(count, run);
    started.push(...(await Promise.all(slots.map((slot, i) => startDaemon(slot, i + 1, run)))));
    const t1 = Date.now();
    const [nodes, imagesMs] = await Promise.all([
      formSwarm(started, managers),
      timed(() => Promise.all(started.map((n) => ensureImages(n, [images.nodeApp, images.nginx])))),
    ]);
    const t2 = Date.now();
    const swarm: PrivateSwarm = {
      nodes,
      manager: nodes[0]!.docker,
      images,
      timings: { daemons: t1 - t0, swarm: t2 - t1, images: imagesMs, total: t2 - t0, cachedNodes: started.filter((s) => s.warm).length },
      node(nodeId) {
        const found = nodes.find((n) => n.nodeId === nodeId);
        if (!found) throw new Error(`no node ${nodeId} in this swarm`);
        return found;
      },
      stop: () => stopAll(started, run),
    };
    return swarm;
  } catch (err) {
    const logs = await Promise.all(started.map(async (n) => `node ${n.index}: ${await tail(n.log)}`));
    await stopAll(started, run).catch(() => undefined);
    throw new Error(`private swarm did not start: ${err instanceof Error ? err.message : String(err)}\n${logs.join('\n')}`);
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const t = Date.now();
  await work();
  return Date.now() - t;
}

/** Cache slots for `count` nodes; where none is free, a data root inside this run's dir. */
async function takeSlots(count: number, run: string): Promise<Slot[]> {
  const slots: Slot[] = [];
  for (let n = 1; n <= SLOTS && slots.length < count; n++) {
    const slot = await tryLock(join(SWARM_CACHE, `node-${n}`));
    if (slot) slots.push(slot);
  }
  while (slots.length < count) {
    const dir = join(run, `uncached-${slots.length + 1}`);
    slots.push({ dir, data: join(dir, 'data'), cached: false, warm: false });
  }
  return slots;
}

/** The slot in `dir` if no live test process holds it; a dead holder's daemon is stopped first. */
async function tryLock(dir: string): Promise<Slot | null> {
  await mkdir(dir, { recursive: true });
  const lock = join(dir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lock, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (holder === process.pid || (await alive(holder))) return null;
      await stopStaleDaemon(dir);
      await rm(lock, { force: true });
      if (attempt === 1) return null;
    }
  }
  const data = join(dir, 'data');
  const marker = join(dir, 'clean');
  const warm = await stat(marker).then(() => true, () => false);
  await rm(marker, { force: true });
  if (!warm) await rm(data, { recursive: true, force: true });
  return { dir, data, cached: true, warm };
}

/** A dockerd a crashed run left on this slot: ours (its command line names the slot), so stopped by its pid. */
async function stopStaleDaemon(dir: string): Promise<void> {
  const pid = Number((await readFile(join(dir, 'dockerd.pid'), 'utf8').catch(() => '')).trim());
  if (!(await alive(pid))) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.startsWith('dockerd') || !cmdline.includes(join(dir, 'data'))) return;
  process.kill(pid, 'SIGTERM');
  await waitFor(async () => !(await alive(pid)), { timeoutMs: 30_000, intervalMs: 100, what: `stale dockerd ${pid} to exit` });
}

/** The process exists and is not a zombie. */
async function alive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

async function startDaemon(slot: Slot, index: number, run: string): Promise<Started> {
  const own = join(run, `n${index}`);
  await mkdir(own, { recursive: true });
  await mkdir(slot.data, { recursive: true });
  const socketPath = join(own, 'docker.sock');
  const log = join(own, 'dockerd.log');
  // An empty config file: a daemon.json on the host (live-restore, say) must not apply here.
  const configFile = join(own, 'daemon.json');
  await writeFile(configFile, '{}\n');
  const args = [
    '-H', `unix://${socketPath}`, '--data-root', slot.data, '--exec-root', join(own, 'x'),
    '--pidfile', join(own, 'docker.pid'), '--config-file', configFile, ...DOCKERD_FLAGS,
  ];
  const out = await open(log, 'a');
  let pid: number | undefined;
  let exited: number | null = null;
  try {
    const child = spawn('dockerd', args, {
      detached: true,
      stdio: ['ignore', out.fd, out.fd],
      env: { ...process.env, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: '1', PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin` },
    });
    child.on('error', () => undefined);
    child.on('exit', (code) => (exited = code ?? -1));
    child.unref();
    pid = child.pid;
  } finally {
    await out.close();
  }
  if (pid === undefined) throw new Error('cannot start dockerd (is docker.io installed?)');
  if (slot.cached) await writeFile(join(slot.dir, 'dockerd.pid'), `${pid}\n`);
  const docker = new Dockerode({ socketPath });
  const node: Started = { ...slot, index, socketPath, pid, log, docker, reaped: () => exited !== null };
  await waitFor(
    async () => {
      if (exited !== null) throw new Error(`dockerd exited with ${exited}`);
      return docker.ping().then(() => true, () => false);
    },
    { timeoutMs: 30_000, intervalMs: 50, what: `dockerd of node ${index} to answer on ${socketPath}` },
  );
  return node;
}

/** `swarm init` on node 1, then the other managers one by one and the workers together. */
async function formSwarm(started: Started[], managers: number): Promise<SwarmNodeHandle[]> {
  const ports = await Promise.all(started.map(() => freePort()));
  const addr = (i: number) => `127.0.0.1:${ports[i]}`;
  const first = started[0]!;
  await first.docker.swarmInit({ ListenAddr: addr(0), AdvertiseAddr: addr(0), DataPathPort: await freePort() });
  const tokens = ((await first.docker.swarmInspect()) as { JoinTokens: { Worker: string; Manager: string } }).JoinTokens;
  const join = (i: number, token: string) =>
    started[i]!.docker.swarmJoin({ ListenAddr: addr(i), AdvertiseAddr: addr(i), RemoteAddrs: [addr(0)], JoinToken: token });
  // Managers one at a time: each one changes the Raft membership the next one joins.
  for (let i = 1; i < managers; i++) await join(i, tokens.Manager);
  await Promise.all(started.slice(managers).map((_, k) => join(managers + k, tokens.Worker)));
  const ids = await Promise.all(
    started.map(async (n) => ((await n.docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID),
  );
  await waitFor(
    async () => {
      const list = (await first.docker.listNodes()) as Array<{ ID: string; Status: { State: string } }>;
      return ids.every((id) => list.some((n) => n.ID === id && n.Status.State === 'ready'));
    },
    { timeoutMs: 30_000, intervalMs: 50, what: `all ${started.length} nodes ready` },
  );
  return started.map((n, i) => ({
    index: n.index,
    role: i < managers ? 'manager' : 'worker',
    socketPath: n.socketPath,
    docker: n.docker,
    nodeId: ids[i]!,
    address: addr(i),
    pid: n.pid,
    log: n.log,
  }));
}

/** Loads into the node each image it lacks (from a tar saved once from the shared engine); drops stale test images. */
async function ensureImages(node: Started, wanted: string[]): Promise<void> {
  const have = await node.docker.listImages({ filters: { reference: [NODE_APP_REPO, NGINX_REPO] } });
  const tags = new Set(have.flatMap((i) => i.RepoTags ?? []));
  for (const name of wanted) {
    if (tags.has(name)) continue;
    const progress = await node.docker.loadImage(createReadStream(await savedImage(name)), { quiet: true });
    await new Promise((resolve, reject) => node.docker.modem.followProgress(progress, (err: Error | null) => (err ? reject(err) : resolve(null))));
  }
  const stale = [...tags].filter((t) => !wanted.includes(t));
  await Promise.all(stale.map((t) => node.docker.getImage(t).remove().catch(() => undefined)));
}

const saving = new Map<string, Promise<string>>();

/** `docker save name` of the shared engine into the cache, once (the tag is a content hash). */
function savedImage(name: string): Promise<string> {
  let pending = saving.get(name);
  if (!pending) {
    pending = (async () => {
      const dir = join(SWARM_CACHE, 'images');
      await mkdir(dir, { recursive: true });
      const file = join(dir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.tar`);
      if (await stat(file).then(() => true, () => false)) return file;
      const tmp = `${file}.${process.pid}.tmp`;
      await pipeline(await sharedEngine.getImage(name).get(), createWriteStream(tmp));
      await rename(tmp, file);
      return file;
    })();
    saving.set(name, pending);
    pending.catch(() => saving.delete(name));
  }
  return pending;
}

/**
 * Leaves the swarm on every node, removes every container, stops the daemons by pid and waits
 * for them; a slot left this way is marked clean for the next run.
 */
async function stopAll(started: Started[], run: string): Promise<{ ms: number }> {
  const t0 = Date.now();
  const cleaned = await Promise.all(
    started.map(async (n) => {
      try {
        await n.docker.swarmLeave({ force: true }).catch((err: { statusCode?: number }) => {
          if (err.statusCode !== 503) throw err; // 503: not part of a swarm
        });
        const containers = await n.docker.listContainers({ all: true });
        await Promise.all(containers.map((c) => n.docker.getContainer(c.Id).remove({ force: true, v: true })));
        return true;
      } catch {
        return false;
      }
    }),
  );
  await Promise.all(
    started.map(async (n) => {
      if (await alive(n.pid)) process.kill(n.pid, 'SIGTERM');
      await waitFor(async () => n.reaped() || !(await alive(n.pid)), { timeoutMs: 30_000, intervalMs: 50, what: `dockerd ${n.pid} to exit` });
      // Exited but not yet reaped: a zombie for a moment, whose pid the test still finds (CI saw it).
      await waitFor(() => n.reaped(), { timeoutMs: 5_000, intervalMs: 20, what: `dockerd ${n.pid} to be reaped` });
    }),
  );
  await Promise.all(
    started.map(async (n, i) => {
      if (!n.cached) return;
      if (cleaned[i]) await writeFile(join(n.dir, 'clean'), '');
      await rm(join(n.dir, 'dockerd.pid'), { force: true });
      await rm(join(n.dir, 'lock'), { force: true });
    }),
  );
  await rm(run, { recursive: true, force: true }).catch(() => undefined);
  return { ms: Date.now() - t0 };
}

async function tail(file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '(no log)');
  return text.trim().split('\n').slice(-lines).join('\n');
}
