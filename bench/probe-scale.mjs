// Probe-scale benchmark: the real scheduler, HTTP prober, health registry and metrics listener
// (from ../dist), i.e. the daemon's whole per-probe path, against thousands
// of loopback backends, at 500, 2,000 and 5,000 probes/s.
//
//   npm run build && node bench/probe-scale.mjs
//
// Three kinds of process: this one orchestrates and prints; one child serves the backends
// (node:http servers on 127.0.0.1, one port each); and each phase runs in a fresh child that
// plays the sidecar, so one phase's heap does not inflate the next one's RSS.
//
// Env: BENCH_PHASE_SECONDS (default 60: with V8's adaptive old-generation growth, RSS at 2,000
// probes/s was still rising after 20 s, 240 MB then 315 MB at 60 s), BENCH_WARMUP_SECONDS (default 6),
// BENCH_JITTER (jitter_fraction, default 1: spread first probes over the whole period),
// BENCH_ONLY (one phase label, e.g. 2,000/s), BENCH_STORE=1 (the SQLite state store on too).
// The phase processes run with the node flags of
// dist/cli.js's shebang (read from it, so the figures are what users get), or with NODE_OPTIONS
// when that is set; BENCH_NODE_FLAGS (space-separated) tries other flags instead.
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

const PHASES = [
  { label: '500/s', backends: 1000, period: 2 },
  { label: '2,000/s', backends: 4000, period: 2, targets: true },
  { label: '5,000/s', backends: 5000, period: 1 },
].filter((p) => !process.env.BENCH_ONLY || p.label === process.env.BENCH_ONLY);
const PHASE_SECONDS = Number(process.env.BENCH_PHASE_SECONDS ?? 60);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 6);
const JITTER = Number(process.env.BENCH_JITTER ?? 1);
const STORE = process.env.BENCH_STORE === '1';
const TARGET = { cpuPercent: 30, rssMb: 200, p99LatenessMs: 50 };
const SELF = new URL(import.meta.url).pathname;

const role = process.argv[2];
if (role === 'serve') await serveBackends(Number(process.argv[3]));
else if (role === 'phase') await runPhase();
else await main();

/** Backends child: N HTTP servers; reports their ports, then its CPU use and connection count on request. */
async function serveBackends(count) {
  const ports = [];
  let connections = 0;
  for (let i = 0; i < count; i++) {
    const server = createServer((_req, res) => res.end('ok'));
    server.on('connection', () => connections++);
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    ports.push(server.address().port);
  }
  process.send({ ports });
  process.on('message', () => process.send({ cpu: process.cpuUsage(), connections }));
  process.on('disconnect', () => process.exit(0));
}

async function main() {
  const backendsChild = fork(SELF, ['serve', String(Math.max(...PHASES.map((p) => p.backends)))], {
    execArgv: [],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  const ports = await new Promise((resolve, reject) => {
    backendsChild.once('error', reject);
    backendsChild.once('exit', (code) => reject(new Error(`backend process exited with ${code}`)));
    backendsChild.once('message', (msg) => resolve(msg.ports));
  });
  const backendsUsage = () =>
    new Promise((resolve) => {
      backendsChild.once('message', resolve);
      backendsChild.send('usage');
    });

  console.log(`probe-scale: ${ports.length} loopback backends in pid ${backendsChild.pid}; node ${process.version}`);
  console.log(`each phase ${PHASE_SECONDS} s after ${WARMUP_SECONDS} s warm-up, in a fresh process; jitter_fraction ${JITTER}, max_concurrency 512`);
  const sidecarFlags = process.env.BENCH_NODE_FLAGS
    ? process.env.BENCH_NODE_FLAGS.split(/\s+/).filter(Boolean)
    : process.env.NODE_OPTIONS
      ? []
      : shebangFlags();
  console.log(`sidecar node flags: ${[process.env.NODE_OPTIONS, ...sidecarFlags].filter(Boolean).join(' ')}`);
  console.log(`state store: ${STORE ? 'on (BENCH_STORE=1): every result written by the store worker' : 'off (BENCH_STORE=1 turns it on)'}\n`);

  const rows = [];
  try {
    for (const phase of PHASES) {
      const child = fork(SELF, ['phase'], { execArgv: sidecarFlags, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      let before;
      const row = await new Promise((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (code) => reject(new Error(`phase process exited with ${code}`)));
        child.on('message', async (msg) => {
          if (msg.measuring) before = await backendsUsage();
          if (msg.row) {
            const after = await backendsUsage();
            const cpuMs = (after.cpu.user - before.cpu.user + after.cpu.system - before.cpu.system) / 1000;
            resolve({ ...msg.row, backendCpu: (cpuMs / msg.row.wallMs) * 100, newConnections: after.connections - before.connections });
          }
        });
        child.send({ phase, ports: ports.slice(0, phase.backends) });
      });
      child.removeAllListeners('exit');
      child.disconnect();
      rows.push(row);
      console.log(
        `${phase.label}: ${row.rate.toFixed(0)} probes/s, cpu ${row.cpu.toFixed(1)}% (user ${row.cpuUser.toFixed(1)}%), ` +
          `rss ${row.rss.toFixed(0)} MB, lateness p50 ${row.late.p50} p99 ${row.late.p99} max ${row.late.max} ms, ` +
          `failures ${row.failures}, skipped ${row.skipped}, new connections ${row.newConnections}; ` +
          `heap used ${row.heapMb.toFixed(0)} MB, new space ${row.newSpaceMb.toFixed(0)} MB, ` +
          `gc max pause ${row.gcMaxMs.toFixed(1)} ms, gc ${row.gcPercent.toFixed(1)}% of wall`,
      );
      for (const [cls, text] of row.failureSamples) console.log(`  failure sample ${cls}: ${text}`);
      if (row.store) console.log(`  store: ${row.store.state}, ${row.store.written} results written, ${row.store.dropped} dropped`);
    }
  } finally {
    backendsChild.disconnect();
  }

  console.log('\nphase      backends period  probes/s  cpu%        rss MB     lateness p50/p99/max ms  failures  backends cpu%');
  for (const r of rows) {
    const mark = (ok) => (r.phase.targets ? (ok ? ' PASS' : ' MISS') : '');
    console.log(
      [
        r.phase.label.padEnd(10),
        String(r.phase.backends).padStart(8),
        `${r.phase.period}s`.padStart(6),
        r.rate.toFixed(0).padStart(9),
        (r.cpu.toFixed(1) + mark(r.cpu < TARGET.cpuPercent)).padEnd(11),
        (r.rss.toFixed(0) + mark(r.rss < TARGET.rssMb)).padEnd(10),
        (`${r.late.p50}/${r.late.p99}/${r.late.max}` + mark(r.late.p99 < TARGET.p99LatenessMs)).padEnd(24),
        String(r.failures).padStart(8),
        r.backendCpu.toFixed(1).padStart(14),
      ].join(' '),
    );
  }
  console.log(
    `\ntargets at 2,000/s: cpu < ${TARGET.cpuPercent}% of one core, rss < ${TARGET.rssMb} MB, p99 lateness < ${TARGET.p99LatenessMs} ms`,
  );
}

/** Phase child: the sidecar's probe stage against the given backends; sends back one row. */
async function runPhase() {
  const { phase, ports } = await new Promise((resolve) => process.once('message', resolve));
  const { createHttpProber } = await import('../dist/probe/http.js');
  const { createProbeScheduler } = await import('../dist/probe/scheduler.js');
  const { createSystemClock } = await import('../dist/clock.js');
  const { createHealthRegistry } = await import('../dist/health/registry.js');
  const { createMetrics } = await import('../dist/observability/metrics.js');

  const clock = createSystemClock();
  const prober = createHttpProber({ version: 'bench', clock });
  const { DEFAULT_HEALTH, DEFAULT_FAILURE_DETECTION } = await import('../dist/config/schema.js');
  const health = { ...DEFAULT_HEALTH, initial_delay_seconds: 0, period_seconds: phase.period, timeout_seconds: 1 };
  const backends = ports.map((port) => ({
    id: `bench/127.0.0.1:${port}`,
    app: 'bench',
    host: '127.0.0.1',
    port,
    weight: 1,
    backup: false,
    health,
    source: 'bench',
  }));

  // The rest of the daemon's per-probe path: the health/breaker registry and the metrics listener.
  const registry = createHealthRegistry({
    clock,
    breaker: { failure_threshold: 5, recovery_timeout_seconds: 2, max_ejection_seconds: 300, slow_start_seconds: 10 },
    detection: DEFAULT_FAILURE_DETECTION,
  });
  registry.sync(backends);
  const metrics = createMetrics();
  metrics.setBackends(registry.views());
  const tickets = new Map();
  // BENCH_STORE=1: the state store too, as the daemon runs it (every result queued to its worker
  // thread, which writes raw rows and rollups; the worker's CPU counts in this process's).
  let store = null;
  let storeDir = null;
  if (STORE) {
    const { createSqliteStore } = await import('../dist/store/sqlite-store.js');
    storeDir = mkdtempSync(join(tmpdir(), 'orchestry-bench-store-'));
    store = createSqliteStore({
      config: { enabled: true, path: join(storeDir, 'state.db'), raw_retention_hours: 24, rollup_retention_days: 30, flush_interval_seconds: 1, max_queue: 200_000 },
      clock,
    });
    await store.restore();
  }

  let measuring = false;
  let results = 0;
  let failures = 0;
  let skipped = 0;
  const failureSamples = new Map();
  const lateness = [];
  const scheduler = createProbeScheduler({
    clock,
    maxConcurrency: 512,
    jitterFraction: JITTER,
    proberFor: () => prober,
    admit(backend) {
      const verdict = registry.admit(backend.id);
      tickets.set(backend.id, verdict.ticket);
      return verdict.admit;
    },
    onResult(result, backend) {
      registry.record(result, tickets.get(backend.id) ?? -1);
      metrics.onProbe(result, 'http');
      store?.probe(result);
      if (!measuring) return;
      results++;
      if (!result.healthy) {
        failures++;
        failureSamples.set(result.errorClass, result.error);
      }
    },
    onSkip() {
      if (measuring) skipped++;
    },
    onProbeStart(_backend, latenessMs) {
      if (measuring) lateness.push(latenessMs);
    },
  });
  scheduler.setTargets(backends);
  scheduler.start();
  await sleep(WARMUP_SECONDS * 1000);

  let gcMaxMs = 0;
  let gcTotalMs = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMaxMs = Math.max(gcMaxMs, e.duration);
      gcTotalMs += e.duration;
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  process.send({ measuring: true });
  measuring = true;
  let rss = process.memoryUsage.rss();
  const rssTimer = setInterval(() => (rss = Math.max(rss, process.memoryUsage.rss())), 250);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(PHASE_SECONDS * 1000);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  measuring = false;
  clearInterval(rssTimer);
  gcObserver.disconnect();
  const newSpace = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  const heapUsed = process.memoryUsage().heapUsed;
  await scheduler.stop();
  await prober.close();
  const storeStatus = store?.status();
  await store?.close();
  if (storeDir) rmSync(storeDir, { recursive: true, force: true });

  lateness.sort((a, b) => a - b);
  const pct = (q) => (lateness.length ? lateness[Math.min(lateness.length - 1, Math.floor(q * lateness.length))] : 0);
  process.send({
    row: {
      phase,
      wallMs,
      rate: results / (wallMs / 1000),
      cpu: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
      cpuUser: (cpu.user / 1000 / wallMs) * 100,
      rss: rss / 1048576,
      late: { p50: Math.round(pct(0.5)), p99: Math.round(pct(0.99)), max: Math.round(lateness.at(-1) ?? 0) },
      failures,
      failureSamples: [...failureSamples],
      skipped,
      heapMb: heapUsed / 1048576,
      newSpaceMb: (newSpace?.space_size ?? 0) / 1048576,
      gcMaxMs,
      gcPercent: (gcTotalMs / wallMs) * 100,
      store: storeStatus ? { written: storeStatus.written, dropped: storeStatus.dropped, state: storeStatus.state } : null,
    },
  });
  process.once('disconnect', () => process.exit(0));
}

/** The node flags in dist/cli.js's `#!/usr/bin/env -S node <flags>` line. */
function shebangFlags() {
  const first = readFileSync(new URL('../dist/cli.js', import.meta.url), 'utf8').split('\n', 1)[0];
  const match = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  if (!match) throw new Error(`dist/cli.js does not start with a "#!/usr/bin/env -S node" line: ${first}`);
  return match[1].split(/\s+/).filter(Boolean);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
