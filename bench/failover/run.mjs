// One run of bench/failover.mjs: three backend processes, the row's front (nginx alone, nginx
// managed by the sidecar, or HAProxy), the client for `durationMs`, one fault in backend 1 at
// `faultAtMs`; then everything is stopped and what each side recorded is handed to metrics.mjs.
import { fork } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHaproxy } from './haproxy.mjs';
import { errorLogCounts, freePort, launchNginx, mainConfig, shippedHttpDirectives, upstreamAttempts } from './nginx.mjs';
import { checkConfig, renderUpstreams, sidecarYaml, startSidecar } from './sidecar.mjs';

const BACKEND = new URL('./backend.mjs', import.meta.url).pathname;
const CLIENT = new URL('./client.mjs', import.meta.url).pathname;
const wall = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * The faults, as the issue names them; `restart` is kill-and-restart. `sidecar` is no fault in a
 * backend: the sidecar itself is stopped and started again under the load (sidecar rows only),
 * which must cost no client failure and no reload (nginx already runs what it would render).
 */
export const FAULTS = ['kill', 'hang', '500', 'slow', 'restart', 'sidecar'];

/**
 * Starts backend NAME on PORT as a child process; resolves once it listens with
 * {child, listeningAt}. Every batch of arrival times it reports goes to `onReceived`.
 */
function startBackend(name, port, onReceived) {
  const child = fork(BACKEND, [name, String(port)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m.received) onReceived(m.received);
      else if (m.listening) resolve({ child, listeningAt: m.listening });
    });
    child.once('exit', (code) => reject(new Error(`backend ${name} exited (${code}) before listening`)));
  });
}

/** The client process, ready: `start(opts)` resolves with its records. */
async function startClient() {
  const child = fork(CLIENT, [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`client exited (${code})`)));
  });
  return {
    start: (opts) =>
      new Promise((resolve, reject) => {
        child.once('message', resolve);
        child.once('exit', (code) => reject(new Error(`client exited (${code}) without its records`)));
        child.send(opts);
      }),
  };
}

/** A temp dir the nginx workers can read (they may run as nobody under root). */
function makeRunDir() {
  const dir = mkdtempSync(join(tmpdir(), 'orchestry-bench-failover-'));
  chmodSync(dir, 0o755);
  for (const d of ['conf.d', 'logs', 'tmp']) mkdirSync(join(dir, d));
  return dir;
}

/** nginx alone: static upstream, max_fails=1, 500 retried as well. */
async function startAlone(run, opts) {
  const servers = run.backends.map((a) => `    server ${a} max_fails=1;`).join('\n');
  writeFileSync(join(run.dir, 'conf.d', 'orchestry-upstreams.conf'), `upstream web {\n${servers}\n    keepalive 32;\n}\n`);
  const directives = [
    ...shippedHttpDirectives({ drop: ['proxy_next_upstream'] }),
    'proxy_next_upstream error timeout http_500 http_502 http_503 http_504;',
  ];
  writeFileSync(join(run.dir, 'nginx.conf'), mainConfig({ dir: run.dir, port: run.frontPort, directives, readTimeoutSeconds: opts.readTimeoutSeconds }));
  const nginx = await launchNginx({ binary: run.nginxBinary, dir: run.dir, port: run.frontPort });
  return { stop: nginx.stop, reloads: async () => (await errorLogCounts(run.dir)).reloads, attempts: () => upstreamAttempts(run.dir) };
}

/**
 * nginx managed by the sidecar: nginx starts with what the sidecar renders (as after an earlier
 * sidecar run), with the shipped nginx.conf's proxy settings, then the sidecar starts and settles.
 */
async function startManaged(run, row, opts) {
  const yaml = sidecarYaml(run, row.profile);
  const checked = checkConfig(yaml, run.dir);
  if (!checked.ok) throw new Error(`check-config refuses the row's config: ${checked.message}`);
  writeFileSync(join(run.dir, 'conf.d', 'orchestry-upstreams.conf'), renderUpstreams(join(run.dir, 'sidecar.yaml')));
  const directives = shippedHttpDirectives({ syslogPort: run.syslogPort });
  writeFileSync(join(run.dir, 'nginx.conf'), mainConfig({ dir: run.dir, port: run.frontPort, directives, readTimeoutSeconds: opts.readTimeoutSeconds }));
  const nginx = await launchNginx({ binary: run.nginxBinary, dir: run.dir, port: run.frontPort });
  let sidecar;
  const start = () => startSidecar({ dir: run.dir, adminPort: run.adminPort, settleSeconds: opts.settleSeconds });
  try {
    sidecar = await start();
    if (sidecar.updateVia !== row.mode) throw new Error(`the sidecar runs in ${sidecar.updateVia} mode, not ${row.mode}: ${sidecar.modeReason}`);
  } catch (err) {
    await sidecar?.stop();
    await nginx.stop();
    throw err;
  }
  return {
    reloadsAtStart: sidecar.reloadsAtStart,
    verdicts: sidecar.verdicts,
    /** Stops the sidecar (SIGTERM) and starts a new one on the same config, as an upgrade does. */
    restartSidecar: async () => {
      await sidecar.stop();
      sidecar = await start();
    },
    stop: async () => {
      await sidecar.saveDiagnostics().catch(() => {});
      await sidecar.stop();
      await nginx.stop();
    },
    reloads: async () => (await errorLogCounts(run.dir)).reloads,
    attempts: () => upstreamAttempts(run.dir),
  };
}

function startFront(run, row, opts) {
  if (row.kind === 'alone') return startAlone(run, opts);
  if (row.kind === 'haproxy') return startHaproxy(run, opts);
  return startManaged(run, row, opts);
}

/**
 * Schedules the fault in backend 1 at `at` (wall ms). hang, 500 and slow are switched inside the
 * backend (it compares each arrival with `at`); kill and restart SIGKILL its process, and restart
 * starts a new one on the same port `restartAfterMs` later; `sidecar` restarts the sidecar.
 * Resolves with what happened when.
 */
async function injectFault(fault, at, b, opts, front) {
  if (fault === 'sidecar') {
    await sleep(at - wall());
    await front.restartSidecar();
    return { faultAt: at, backendFault: false };
  }
  const b1 = b.procs[1];
  if (fault !== 'kill' && fault !== 'restart') {
    b1.child.send({ fault, at });
    return { faultAt: at };
  }
  await sleep(at - wall());
  b1.child.kill('SIGKILL');
  const faultAt = wall();
  if (fault === 'kill') return { faultAt };
  await sleep(faultAt + opts.restartAfterMs - wall());
  const again = await startBackend('b1', b.ports[1], (times) => b.receivedNew.push(...times));
  b.procs.push(again);
  return { faultAt, restartListeningAt: again.listeningAt };
}

/**
 * One run of `row` with `fault`. Returns the raw observations: the client's records, nginx's
 * attempts, the backends' arrival times, the fault's times and the reload counts.
 */
export async function runOnce(row, fault, opts) {
  const dir = makeRunDir();
  const taken = new Set();
  const ports = [await freePort(taken), await freePort(taken), await freePort(taken)];
  const run = {
    dir,
    nginxBinary: row.nginxBinary,
    backends: ports.map((p) => `127.0.0.1:${p}`),
    frontPort: await freePort(taken),
    adminPort: await freePort(taken),
    syslogPort: await freePort(taken),
    dnsPort: await freePort(taken),
  };
  const b = { ports, procs: [], received: [[], [], []], receivedNew: [] };
  let front;
  try {
    for (const [i, port] of ports.entries()) b.procs.push(await startBackend(`b${i}`, port, (t) => b.received[i].push(...t)));
    front = await startFront(run, row, opts);
    return await measure(run, front, b, fault, opts);
  } finally {
    await front?.stop().catch(() => {});
    for (const p of b.procs) p.child.kill('SIGKILL');
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
    else console.log(`    kept ${dir}`);
  }
}

/** The sidecar's breaker moves of backend `address` ({at: wall ms, from, to}), from its events. */
function breakerMoves(events, address) {
  return events
    .filter((e) => e.kind === 'transition' && e.data.kind === 'breaker' && e.backend?.endsWith(`/${address}`))
    .map((e) => ({ at: Date.parse(e.at), from: e.data.from, to: e.data.to }));
}

async function measure(run, front, b, fault, opts) {
  const client = await startClient();
  const t0 = wall() + 300;
  const load = client.start({ url: `http://127.0.0.1:${run.frontPort}/`, workers: opts.workers, startAt: t0, durationMs: opts.durationMs, drainMs: opts.drainMs });
  await sleep(t0 - wall() - 50);
  const reloadsBefore = await front.reloads();
  const [records, faultTimes] = await Promise.all([load, injectFault(fault, t0 + opts.faultAtMs, b, opts, front)]);
  await sleep(200); // the last batch of arrival times from the backends
  const reloadsAfter = await front.reloads();
  await front.stop();
  const events = JSON.parse(await readFile(join(run.dir, 'sidecar-events.json'), 'utf8').catch(() => '{"events":[]}')).events;
  return {
    breakerMoves: breakerMoves(events, run.backends[1]),
    t0,
    ...faultTimes,
    b1Addr: run.backends[1],
    records,
    attempts: await front.attempts(),
    stateEvents: front.stateEvents ?? false,
    received: b.received,
    receivedNew: b.receivedNew,
    reloadsAtStart: front.reloadsAtStart ?? reloadsBefore,
    reloads: reloadsAfter - reloadsBefore,
    verdicts: front.verdicts,
  };
}
