/**
 * The compose stack of docker-compose.yml, brought up for real with docker-compose.ci.yml (host
 * networking on 127.0.0.1, no bridge here) and the local stand-ins of the images it names (nginx
 * 1.30: Debian sid's nginx, test/helpers/nginx-current.ts): the sidecar tells nginx in DNS mode
 * (update_via auto) and receives its access log; requests through nginx reach every replica; a
 * replica whose health check fails is ejected and traffic goes around it, with no nginx reload;
 * healed, it is routed to again, still without one; one that exits is recreated by the sidecar's
 * recovery. Reports start-to-first-routed-request.
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { containerLogs, controlApp, docker, requireDocker } from '../helpers/docker.js';
import { ensureCurrentNginxImage } from '../helpers/nginx-current.js';
import { answeredBy, httpGet } from '../helpers/nginx-instance.js';
import { ensureNodeBaseImage, REPO_ROOT, run } from '../helpers/standin-images.js';
import { waitFor } from '../helpers/wait.js';

const PROJECT = 'orchestry-ci';
/** The ports docker-compose.ci.yml and examples/compose/nginx.ci.conf use. */
const NGINX_PORT = 18080;
const ADMIN = 'http://127.0.0.1:18180';
const APP_PORTS = { 'app-1': 18101, 'app-2': 18102, 'app-3': 18103 } as const;
const BROKEN = 'app-2';
const BROKEN_ADDRESS = `127.0.0.1:${APP_PORTS[BROKEN]}`;
/** The sidecar's DNS server and access-log receiver (examples/compose/sidecar.ci.yaml). */
const DNS_PORT = 18153;
const SYSLOG_PORT = 18154;

/** `docker compose` (v2 plugin) when present, else Debian's docker-compose 1.29. */
let compose: string[];
const composeArgs = ['-f', 'docker-compose.yml', '-f', 'docker-compose.ci.yml', '-p', PROJECT];
// Both builds go through the classic builder: `network: host` in the override is what lets
// `npm ci` reach the registry here.
const composeEnv = { ...process.env, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' };
const composeRun = (...args: string[]) =>
  run(compose[0]!, [...compose.slice(1), ...composeArgs, ...args], { cwd: REPO_ROOT, env: composeEnv });

interface AppsBody {
  apps: Array<{ name: string; backends: Array<{ address: string; health: string; ejected: boolean }> }>;
  nginx: { update_via: string; reason: string } | null;
  passive: { listen: string; parsed: number } | null;
}
interface EventsBody {
  events: Array<{ seq: number; kind: string; backend: string | null; message: string; data: Record<string, unknown> }>;
}
const api = async <T>(path: string): Promise<T> => (await (await fetch(ADMIN + path)).json()) as T;
const demoBackends = async () => (await api<AppsBody>('/api/v1/apps')).apps.find((a) => a.name === 'demo')?.backends ?? [];
const backendOf = async (address: string) => (await demoBackends()).find((b) => b.address === address);

/** `n` requests through nginx, one connection each; how many each replica answered. */
const spread = (n: number) => answeredBy(NGINX_PORT, n);

/** The ports of the demo app's SRV answer from the sidecar's DNS server (what nginx resolves). */
async function srvPorts(): Promise<number[]> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${DNS_PORT}`]);
  const records = await resolver.resolveSrv('_http._tcp.demo.orchestry.internal');
  return records.map((r) => r.port).sort((a, b) => a - b);
}

/** The stack's nginx container. */
async function nginxContainer() {
  const [info] = await docker.listContainers({ filters: { label: [`com.docker.compose.project=${PROJECT}`, 'orchestry.role=lb'] } });
  if (!info) throw new Error('no running nginx container in the compose project');
  return docker.getContainer(info.Id);
}

/** nginx's reloads so far (`reconfiguring` in its error log, which goes to stderr) and its worker pids. */
async function nginxReloadsAndWorkers(): Promise<{ reloads: number; workers: string[] }> {
  const container = await nginxContainer();
  const errors = await containerLogs(container, 'all', 'stderr');
  const top = await container.top();
  const cmd = top.Titles.findIndex((t: string) => t === 'CMD' || t === 'COMMAND');
  const pid = top.Titles.indexOf('PID');
  const workers = top.Processes.filter((p: string[]) => p[cmd]?.includes('worker process')).map((p: string[]) => p[pid]!);
  return { reloads: errors.match(/reconfiguring$/gm)?.length ?? 0, workers: workers.sort() };
}

/** The image docker-compose.yml names for `service`. */
async function composeImage(service: string): Promise<string> {
  const doc = parse(await readFile(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { image?: string }> };
  const image = doc.services[service]?.image;
  if (!image) throw new Error(`docker-compose.yml names no image for ${service}`);
  return image;
}

async function detectCompose(): Promise<string[]> {
  const works = (cmd: string, args: string[]) =>
    promisify(execFile)(cmd, args, { timeout: 10_000 }).then(
      () => true,
      () => false,
    );
  if (await works('docker', ['compose', 'version'])) return ['docker', 'compose'];
  if (await works('docker-compose', ['version'])) return ['docker-compose'];
  throw new Error('neither `docker compose` nor `docker-compose` works: run scripts/setup.sh (installs docker-compose)');
}

/**
 * The stack's sidecar discovers every container labelled orchestry.enable=true on the engine,
 * and heals what fails: another test's containers must not be running meanwhile.
 */
async function waitForForeignAppContainers(): Promise<void> {
  await waitFor(
    async () => {
      const list = await docker.listContainers({ filters: { label: ['orchestry.enable=true'] } });
      const foreign = list.filter((c) => c.Labels['com.docker.compose.project'] !== PROJECT);
      if (foreign.length === 0) return true;
      throw new Error(`containers of other tests are running: ${foreign.map((c) => c.Names[0]).join(', ')}`);
    },
    { what: 'no other orchestry.enable=true containers', timeoutMs: 90_000, intervalMs: 1000 },
  );
}

/**
 * Throws, naming them, when ports the stack needs are taken (nginx would fail to start, the
 * sidecar's DNS server or access-log receiver would not listen).
 */
async function requirePortsFree(tcp: number[], udp: number[]): Promise<void> {
  const taken: string[] = [];
  const tcpFree = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
  const udpFree = (port: number) =>
    new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
  for (const port of tcp) if (!(await tcpFree(port))) taken.push(`${port}/tcp`);
  for (const port of udp) if (!(await udpFree(port))) taken.push(`${port}/udp`);
  if (taken.length > 0) throw new Error(`ports the CI stack needs are in use on 127.0.0.1: ${taken.join(', ')}`);
}

beforeAll(async () => {
  await requireDocker();
  compose = await detectCompose();
  const base = await ensureNodeBaseImage();
  if (base.built) console.log(`node:24-bookworm-slim stand-in built in ${base.seconds.toFixed(0)} s`);
  // nginx >= 1.27.3 under the name docker-compose.yml gives it, so the sidecar picks DNS mode.
  const { standin } = await ensureCurrentNginxImage();
  const named = await composeImage('nginx');
  if (named !== standin) {
    throw new Error(`docker-compose.yml runs ${named}, but the nginx >= 1.27.3 stand-in here is ${standin}: name that version there`);
  }
  await composeRun('down', '-v', '--remove-orphans'); // what a crashed run left behind
  const buildStarted = Date.now();
  // v1's classic builder keeps the container of a failed step unless told otherwise.
  await composeRun('build', ...(compose[0] === 'docker-compose' ? ['--force-rm'] : []));
  console.log(`compose build (sidecar + demo app, cached layers reused): ${((Date.now() - buildStarted) / 1000).toFixed(1)} s`);
  await waitForForeignAppContainers();
  await requirePortsFree([NGINX_PORT, 18180, DNS_PORT, ...Object.values(APP_PORTS)], [DNS_PORT, SYSLOG_PORT]);

  const started = Date.now();
  await composeRun('up', '-d');
  const upReturned = Date.now();
  const first = await waitFor(
    async () => {
      const res = await httpGet(NGINX_PORT, '/').catch(() => null);
      return res?.status === 200 && /^app-\d$/.test(res.body.trim()) ? res.body.trim() : null;
    },
    { what: 'a request routed through nginx to a replica', timeoutMs: 60_000, intervalMs: 100 },
  );
  console.log(
    `compose stack: \`up -d\` returned after ${((upReturned - started) / 1000).toFixed(1)} s; ` +
      `first request routed to a replica (${first}) ${((Date.now() - started) / 1000).toFixed(1)} s after \`up\` began`,
  );
  // nginx started before the sidecar wrote any upstream: until its first reload completes, the
  // workers of that empty config still take some connections (and answer 502). One routed
  // request proves only that a new worker exists; wait for the old ones to be gone.
  await waitFor(
    async () => {
      const counts = await spread(10);
      return Object.keys(counts).every((k) => k.startsWith('app-'));
    },
    { what: 'every request routed (the pre-sidecar nginx workers gone)', timeoutMs: 30_000, intervalMs: 200 },
  );
}, 600_000);

afterAll(async () => {
  if (!compose) return;
  // Containers, the project's volume and anything recovery added; the images stay for the next run.
  await composeRun('down', '-v', '--remove-orphans', '-t', '5').catch((err: Error) => console.error(err.message));
  const left = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${PROJECT}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
}, 120_000);

describe('docker compose stack (docker-compose.yml + docker-compose.ci.yml)', () => {
  it("runs the documented sidecar.yaml, but for the DNS server's and access-log receiver's addresses", async () => {
    type Config = { nginx: Record<string, unknown>; passive?: unknown } & Record<string, unknown>;
    const read = async (file: string) => parse(await readFile(join(REPO_ROOT, 'examples', 'compose', file), 'utf8')) as Config;
    const [documented, ci] = await Promise.all([read('sidecar.yaml'), read('sidecar.ci.yaml')]);
    const withoutAddresses = ({ passive: _passive, nginx: { dns_listen: _listen, ...nginx }, ...rest }: Config) => ({ ...rest, nginx });
    expect(withoutAddresses(ci)).toEqual(withoutAddresses(documented));
  });

  it('spreads requests through nginx over all three replicas', async () => {
    await waitFor(async () => (await demoBackends()).length === 3, { what: 'three demo backends discovered' });
    const counts = await spread(30);
    expect(Object.keys(counts).sort()).toEqual(['app-1', 'app-2', 'app-3']);
    // Round robin: every replica gets a fair share.
    for (const n of Object.values(counts)) expect(n).toBeGreaterThanOrEqual(5);
  });

  it('tells nginx 1.30 by DNS: a zone upstream resolved from the sidecar, and nginx sends it its access log', async () => {
    const body = await api<AppsBody>('/api/v1/apps');
    expect(body.nginx?.update_via, body.nginx?.reason).toBe('dns');
    const upstreams = await composeRun('exec', '-T', 'sidecar', 'cat', '/shared/conf.d/orchestry-upstreams.conf');
    expect(upstreams).toContain(`resolver 127.0.0.1:${DNS_PORT}`);
    expect(upstreams).toMatch(/server orchestry\.internal service=_http\._tcp\.demo resolve/);
    expect(await srvPorts()).toEqual(Object.values(APP_PORTS));

    const parsedBefore = body.passive?.parsed ?? 0;
    await spread(10);
    await waitFor(async () => ((await api<AppsBody>('/api/v1/apps')).passive?.parsed ?? 0) >= parsedBefore + 10, {
      what: "nginx's access log lines of those 10 requests to reach the sidecar",
    });
  });

  it('ejects a replica whose health check fails and routes every request around it, without reloading nginx', async () => {
    const before = await nginxReloadsAndWorkers();
    expect(before.workers.length).toBeGreaterThan(0);
    const res = await controlApp(APP_PORTS[BROKEN], 'fail');
    expect(res.body.trim()).toBe(`${BROKEN}: health: fail`);

    await waitFor(async () => (await backendOf(BROKEN_ADDRESS))?.ejected === true, {
      what: `${BROKEN} to be ejected`,
      timeoutMs: 20_000,
    });
    // The DNS answer leaves it out, and nginx follows it at its next query (TTL 0: within ~1 s).
    await waitFor(async () => !(await srvPorts()).includes(APP_PORTS[BROKEN]), { what: `the SRV answer to leave ${BROKEN} out` });
    await waitFor(async () => (await spread(12))[BROKEN] === undefined, { what: `nginx to stop sending requests to ${BROKEN}` });

    const counts = await spread(30);
    expect(counts[BROKEN]).toBeUndefined();
    expect((counts['app-1'] ?? 0) + (counts['app-3'] ?? 0)).toBe(30);
    // Still ejected after those requests: recovery did not restart it in between (the startup
    // grace of examples/compose/sidecar.yaml holds restarts back for a minute).
    expect((await backendOf(BROKEN_ADDRESS))?.ejected).toBe(true);
    // No reload: the same workers, and no `reconfiguring` in nginx's error log.
    expect(await nginxReloadsAndWorkers()).toEqual(before);
  });

  it('routes to the replica again once it is healthy, without reloading nginx', async () => {
    const before = await nginxReloadsAndWorkers();
    await controlApp(APP_PORTS[BROKEN], 'heal');
    await waitFor(async () => (await backendOf(BROKEN_ADDRESS))?.ejected === false, {
      what: `${BROKEN} to be routed again`,
      timeoutMs: 20_000,
    });
    const counts = await waitFor(
      async () => {
        const c = await spread(12);
        return c[BROKEN] ? c : null;
      },
      { what: `requests to reach ${BROKEN} again`, timeoutMs: 10_000 },
    );
    expect(Object.keys(counts).sort()).toEqual(['app-1', 'app-2', 'app-3']);
    expect(await nginxReloadsAndWorkers()).toEqual(before);
  });

  it('heals a replica that exits: recovery recreates its container and it is routed again', async () => {
    const exiting = 'app-3';
    const before = (await api<EventsBody>('/api/v1/events?kind=recovery&limit=1000')).events.at(-1)?.seq ?? 0;
    await controlApp(APP_PORTS[exiting], 'exit');
    const recreated = await waitFor(
      async () =>
        (await api<EventsBody>(`/api/v1/events?kind=recovery&after=${before}`)).events.find(
          (e) => e.data.strategy === 'recreate_container' && e.backend?.endsWith(`:${APP_PORTS[exiting]}`),
        ),
      { what: `recovery to recreate ${exiting}`, timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(recreated.data.ok).toBe(true);
    expect(recreated.data.failure_type).toBe('container_stopped');
    // Every answer seen until the recreated replica and the others have each had requests: a
    // replica readmitted with a slow-start weight may miss one short spread, none may fail.
    const seen = new Set<string>();
    await waitFor(
      async () => {
        for (const key of Object.keys(await spread(12))) seen.add(key);
        return seen.has(exiting) && seen.has('app-1') && seen.has('app-2');
      },
      { what: `requests to reach the recreated ${exiting} and the other replicas`, timeoutMs: 20_000 },
    );
    expect([...seen].sort()).toEqual(['app-1', 'app-2', 'app-3']);
  });
});
