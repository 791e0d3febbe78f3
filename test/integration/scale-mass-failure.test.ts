/**
 * Issue 12 at a few thousand backends, with real parts: one child process listening on
 * SCALE_BACKENDS loopback ports (test/fixtures/many-ports-server.mjs), the built CLI as a child,
 * and a private nginx. The daemon starts, half the backends fail at once (503), then recover.
 * Outcomes asserted: no backend that kept answering 200 is ever ejected (not even while the
 * sidecar is busiest), the mass failure reaches nginx in at most 2 reloads, and every backend is
 * routed again after the recovery. /healthz's slowest answer is printed, not asserted.
 * SCALE_BACKENDS sets the number (2,500 by default; each costs two descriptors in the server
 * process, ulimit -n 20,000 here); SCALE_SIDECAR_NODE_OPTIONS is handed to the sidecar, e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to see where its event loop went.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frontNginxConf, nginxPaths, nginxSection, sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { launchNginx, makeNginxDir, nginxLogCounts, nginxSettled } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { sampleEvery, waitFor } from '../helpers/wait.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const SERVER = fileURLToPath(new URL('../fixtures/many-ports-server.mjs', import.meta.url));
const DEFAULT_TEMPLATE = fileURLToPath(new URL('../../templates/upstreams.conf.hbs', import.meta.url));
/** Each backend costs a listening socket and a connection in the server, a socket in the sidecar. */
const BACKENDS = Number(process.env.SCALE_BACKENDS ?? 2500);
const APPS = 10;
const FAILING = BACKENDS / 2;
const SCALE_WAIT_MS = 90_000;

interface AppSummary {
  name: string;
  counts: { backends: number; routed: number; ejected: number; healthy: number; unhealthy: number; unknown: number };
}

let dir: string;
let server: ChildProcess;
let ask: (line: string) => Promise<Record<string, unknown>>;
let ports: number[];
let nginx: { pid: number; stop(): Promise<void> };
let sidecar: SidecarProcess;
let healthzMs: { phase: string; ms: number }[] = [];
let phase = 'start';

/** The app of the backend on ports[i]: backends are dealt to apps in turn, so each app has half failing. */
const appOf = (i: number) => `app${i % APPS}`;
const idOf = (i: number) => `${appOf(i)}/127.0.0.1:${ports[i]}`;
const reloads = async () => (await nginxLogCounts(nginxPaths(dir).errorLog)).reloads;

async function totals(): Promise<AppSummary['counts']> {
  const { status, body } = await sidecar.api<{ apps: AppSummary[] }>('/api/v1/apps?summary=1');
  if (status !== 200) throw new Error(`/api/v1/apps?summary=1 answered ${status}`);
  const sum = { backends: 0, routed: 0, ejected: 0, healthy: 0, unhealthy: 0, unknown: 0 };
  for (const a of body.apps) for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += a.counts[k];
  return sum;
}

/** Backends of the half that never failed that the sidecar ever logged as unhealthy or ejected. */
function falselyBlamed(): string[] {
  const healthy = new Set(ports.slice(FAILING).map((_, k) => idOf(FAILING + k)));
  return sidecar
    .logs()
    .filter((l) => (l.to === 'unhealthy' || l.to === 'open') && healthy.has(String(l.backend)))
    .map((l) => `${String(l.backend)}: ${String(l.reason)}`);
}

function startServer(): Promise<number[]> {
  server = spawn(process.execPath, [SERVER], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, COUNT: String(BACKENDS) } });
  const lines = createInterface({ input: server.stdout! });
  const waiting: ((v: Record<string, unknown>) => void)[] = [];
  let first: ((p: number[]) => void) | null = null;
  const listening = new Promise<number[]>((resolve) => (first = resolve));
  lines.on('line', (line) => {
    const msg = JSON.parse(line) as Record<string, unknown>;
    if (first) {
      first(msg.ports as number[]);
      first = null;
    } else waiting.shift()?.(msg);
  });
  ask = (line) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      server.stdin!.write(`${line}\n`);
    });
  return listening;
}

beforeAll(async () => {
  dir = await makeNginxDir();
  ports = await startServer();
  const nginxPort = await freePort();
  const adminPort = await freePort();
  const configPath = join(dir, 'sidecar.yaml');
  const templatePath = join(dir, 'upstreams.conf.hbs');
  await copyFile(DEFAULT_TEMPLATE, templatePath);
  const apps: Record<string, unknown> = {};
  for (let a = 0; a < APPS; a++) {
    apps[`app${a}`] = {
      backends: ports.flatMap((p, i) => (appOf(i) === `app${a}` ? [`127.0.0.1:${p}`] : [])),
      health: { path: '/health', initial_delay_seconds: 0, period_seconds: 1, timeout_seconds: 0.8, failure_threshold: 2, success_threshold: 1 },
    };
  }
  await writeFile(
    configPath,
    sidecarYaml({
      apps,
      nginx: nginxSection(dir, { template_path: templatePath }),
      admin: { listen: `127.0.0.1:${adminPort}` },
      store: { path: join(dir, 'state.db') },
      logging: { level: 'info' },
    }),
  );
  await writeFile(nginxPaths(dir).configPath, frontNginxConf(dir, [`server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://app0; } }`]));
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'render', '--config', configPath], { maxBuffer: 64 << 20 });
  await writeFile(nginxPaths(dir).outputPath, stdout);
  nginx = await launchNginx({ dir, probePort: nginxPort });
  // As a deployed config is: written well before the daemon starts (else its watcher reads it again).
  const aMinuteAgo = new Date(Date.now() - 60_000);
  await utimes(configPath, aMinuteAgo, aMinuteAgo);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  sidecar = await startSidecarProcess(configPath, adminUrl, { env: process.env.SCALE_SIDECAR_NODE_OPTIONS ? { NODE_OPTIONS: process.env.SCALE_SIDECAR_NODE_OPTIONS } : {} });
}, SCALE_WAIT_MS);

afterAll(async () => {
  await sidecar?.stop();
  await nginx?.stop();
  server?.stdin?.end();
  server?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
  console.log(`/healthz slowest answer by phase at ${BACKENDS} backends:`, summarise(healthzMs));
});

function summarise(samples: { phase: string; ms: number }[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of new Set(samples.map((s) => s.phase))) {
    const ms = samples.filter((s) => s.phase === p).map((s) => s.ms);
    out[p] = `max ${Math.round(Math.max(...ms))} ms over ${ms.length} answers`;
  }
  return out;
}

/** Records how long /healthz takes while `during` runs. */
async function watchingHealthz<T>(during: () => Promise<T>): Promise<T> {
  const sampler = sampleEvery(20, async () => {
    const t0 = performance.now();
    const res = await fetch(`${sidecar.adminUrl}/healthz`).catch(() => null);
    await res?.arrayBuffer();
    if (res?.ok) healthzMs.push({ phase, ms: performance.now() - t0 });
  });
  try {
    return await during();
  } finally {
    await sampler.stop();
  }
}

describe(`${BACKENDS} loopback backends in ${APPS} apps`, () => {
  it('starts: every backend healthy and routed, none ejected on the way', async () => {
    await watchingHealthz(async () => {
      await waitFor(async () => (await sidecar.api('/readyz').catch(() => ({ status: 0 }))).status === 200, { what: 'sidecar ready', timeoutMs: SCALE_WAIT_MS });
      await waitFor(async () => (await totals()).healthy === BACKENDS, { what: 'every backend healthy', timeoutMs: SCALE_WAIT_MS, intervalMs: 500 });
    });
    expect(await totals()).toMatchObject({ backends: BACKENDS, routed: BACKENDS, ejected: 0 });
    expect(sidecar.logs().filter((l) => l.to === 'unhealthy' || l.to === 'open')).toEqual([]);
  });

  it('half failing at once reaches nginx in at most 2 reloads, and no backend that answered is ejected', async () => {
    await nginxSettled(nginxPaths(dir).errorLog);
    const before = await reloads();
    phase = 'mass failure';
    await watchingHealthz(async () => {
      await ask(`fail 0 ${FAILING}`);
      await waitFor(async () => (await totals()).ejected === FAILING, { what: 'the failing half ejected', timeoutMs: SCALE_WAIT_MS, intervalMs: 250 });
      await waitFor(async () => ((await readFile(nginxPaths(dir).outputPath, 'utf8')).match(/ down;/g) ?? []).length === FAILING, {
        what: 'the failing half down in the file',
        timeoutMs: SCALE_WAIT_MS,
        intervalMs: 250,
      });
      await nginxSettled(nginxPaths(dir).errorLog, before + 1);
    });
    const used = (await reloads()) - before;
    const updates = sidecar.logs().filter((l) => l.msg === 'nginx upstreams updated').slice(-used);
    const told = updates.map((l) => `${String(l.durationMs)} ms: ${(l.changes as string[]).map((c) => c.slice(0, 60)).slice(0, 3).join(' | ')}`);
    console.log(`mass failure of ${FAILING} backends: ${used} nginx reload(s)`, told);
    expect(used).toBeGreaterThanOrEqual(1);
    expect(used).toBeLessThanOrEqual(2);
    expect(falselyBlamed()).toEqual([]);
    expect(await totals()).toMatchObject({ routed: BACKENDS - FAILING, ejected: FAILING });
  });

  it('readmits every backend once they answer again, still without blaming one that never failed', async () => {
    phase = 'recovery';
    await watchingHealthz(async () => {
      await ask(`heal 0 ${FAILING}`);
      await waitFor(async () => (await totals()).routed === BACKENDS, { what: 'every backend routed again', timeoutMs: SCALE_WAIT_MS, intervalMs: 250 });
    });
    await waitFor(async () => !/ down;/.test(await readFile(nginxPaths(dir).outputPath, 'utf8')), { what: 'no backend down in the file', timeoutMs: SCALE_WAIT_MS });
    expect(falselyBlamed()).toEqual([]);
    const stats = await ask('stats');
    expect(stats.answered).toBeGreaterThan(BACKENDS);
  });
});
