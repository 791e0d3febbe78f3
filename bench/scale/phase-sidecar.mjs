// One sidecar phase of bench/scale.mjs: the daemon from its start to its stop over the backends of
// one size: start-up (ready, settled), a steady window, scrapes of /metrics and the API, the
// failing half failing at once and recovering. With `profile`, the same run under --cpu-prof and
// --inspect, and a heap snapshot at its end.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorLogCounts, freePort } from '../failover/nginx.mjs';
import { addJudgements, judgeEjections } from './ejections.mjs';
import { inspectProcess } from './inspector.mjs';
import { cpuSeconds, memory, round, steadyWindow } from './proc.mjs';
import { healthzWindow, startSampler } from './sampler.mjs';
import { checkConfig, followLog, followUpstreams, makeRunDir, scaleYaml, spawnSidecar, startNginx } from './sidecar.mjs';

const HERE = new URL('.', import.meta.url).pathname;
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
/** How far back the evidence of an ejection reaches: 3 failed probes a second apart, the timeout, margin. */
const EVIDENCE_MS = 6000;

/** Runs the phase; returns its figures (and, with `profile`, the profile and heap summaries). */
export async function sidecarPhase(ctx, { store, profile = false }) {
  const { backends, opts } = ctx;
  const dir = makeRunDir(`orchestry-bench-scale-${profile ? 'profile' : store ? 'on' : 'off'}-`);
  const adminPort = await freePort();
  const file = join(dir, 'sidecar.yaml');
  writeFileSync(file, scaleYaml({ dir, ports: backends.ports, appSize: opts.appSize, adminPort, nginxBinary: opts.nginxBinary, store, timeoutSeconds: opts.timeoutSeconds }));
  checkConfig(file);
  await backends.reset();
  const nginx = await startNginx({ dir, binary: opts.nginxBinary });
  const inspectPort = profile ? await freePort() : null;
  const extraFlags = profile ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'prof')}`, '--heapsnapshot-signal=SIGUSR2', `--inspect=127.0.0.1:${inspectPort}`] : [];
  const sampler = startSampler(adminPort);
  const sc = spawnSidecar({ dir, flags: ctx.flags, extraFlags });
  const run = {
    ctx, dir, sc, adminPort, inspectPort, sampler,
    log: followLog(join(dir, 'sidecar.log'), (id) => Number(/:(\d+)\]?$/.exec(id)?.[1])),
    ups: followUpstreams(join(dir, 'conf.d', 'orchestry-upstreams.conf')),
    indexOf: (port) => ctx.portIndex.get(port),
    events: createEventsFollower(adminPort),
  };
  const result = { store, profile, pid: sc.pid, startedAt: sc.startedAt };
  try {
    result.startup = await startupStage(run);
    result.steady = await steadyStage(run);
    result.endpoints = await scrapeEndpoints(adminPort);
    result.failure = await failureStage(run);
    result.recovery = await recoveryStage(run, result.failure);
    result.falseEjections = addJudgements([result.startup.falseEjections, result.failure.falseEjections, result.recovery.falseEjections].filter(Boolean));
    result.peakRssMb = memory(sc.pid)?.hwm ?? null;
    if (profile) result.inside = await inspectProcess(inspectPort).catch((err) => ({ error: String(err) }));
    if (profile) result.heap = await heapSnapshot(run);
  } finally {
    run.events.stop();
    const samples = await sampler.dump();
    sampler.stop();
    await sc.stop();
    await nginx.stop();
    result.readyMs = samples.readyAt === null ? null : samples.readyAt - sc.startedAt;
    result.healthz = healthzStages(samples.healthz, result);
    result.eventsApi = run.events.summary(run.log.state.transitions);
    result.sidecarErrors = run.log.state.errors.slice(0, 5);
    result.applyFailures = run.log.state.failures.slice(0, 5);
  }
  if (profile) result.cpuProfile = summarizeCpuProfile(run, result);
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  else result.dir = dir;
  return result;
}

/** Polls the log and the upstreams file; true once every backend is healthy, closed and routed. */
function allRouted(run) {
  run.log.poll();
  const u = run.ups.read();
  const n = run.ctx.backends.ports.length;
  if (run.log.state.healthyCount !== n || u.servers < n || u.down.size > 0) return false;
  for (const s of run.log.state.breaker.values()) if (s !== 'closed') return false;
  return true;
}

async function waitFor(cond, timeoutSeconds, everyMs = 100) {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    if (cond()) return Date.now();
    if (Date.now() > deadline) return null;
    await sleep(everyMs);
  }
}

async function startupStage(run) {
  const { sc, ctx, log } = run;
  const settledAt = await waitFor(() => allRouted(run) || !sc.running(), ctx.opts.settleTimeoutSeconds);
  if (!sc.running()) throw new Error(`the sidecar exited during start-up: ${log.state.errors.join(' | ')}`);
  const at = settledAt ?? Date.now();
  const applies = log.state.applies.filter((a) => a.at <= at);
  const stage = {
    settledMs: settledAt === null ? null : settledAt - sc.startedAt,
    cpuSecondsToSettle: round(cpuSeconds(sc.pid) ?? NaN, 1),
    peakRssMbAtSettle: memory(sc.pid)?.hwm ?? null,
    transitions: log.state.transitions,
    applies: applies.length,
    reloads: applies.filter((a) => a.reloaded).length,
    firstApply: applies[0] ?? null,
    endAt: at,
  };
  stage.falseEjections = await judgeEjections({
    ejections: log.state.ejections.filter((e) => e.at <= at),
    indexOf: run.indexOf, failing: ctx.failingSet, failedFrom: null, failedTo: null, windowMs: EVIDENCE_MS, backends: ctx.backends,
  });
  return stage;
}

/** /healthz every 50 ms (every moment of start-up, failure and recovery), every second in the steady window. */
const HEALTHZ_EVERY_MS = Number(process.env.BENCH_HEALTHZ_EVERY_MS ?? 50);
const STEADY_HEALTHZ_EVERY_MS = 1000;

async function steadyStage(run) {
  const { sc, ctx } = run;
  await sleep(ctx.opts.warmupSeconds * 1000);
  // The bench's own requests stay out of the window's CPU: the events API is not followed, and
  // /healthz (a new connection each) is asked once a second instead of 20 times, which cost the
  // sidecar 0.7-1.3 points of a core at 500 backends. A kubelet asks every 10 s.
  run.events.pause(true);
  run.sampler.every(STEADY_HEALTHZ_EVERY_MS);
  const from = Date.now();
  const [sidecar, server] = await Promise.all([steadyWindow([sc.pid], ctx.opts.steadySeconds), steadyWindow(ctx.backends.pids, ctx.opts.steadySeconds)]);
  const to = Date.now();
  const stats = await ctx.backends.stats();
  run.events.pause(false);
  run.sampler.every(HEALTHZ_EVERY_MS);
  return { from, to, ...sidecar, memory: memory(sc.pid), server: { ...server, requests: stats.requests, newConnections: stats.connections, loopDelayMaxMs: round(stats.loopDelayMaxMs, 1) } };
}

/** /metrics three times (ms, bytes, and the nodejs_* memory figures), /api/v1/apps and one app. */
async function scrapeEndpoints(port) {
  const get = async (path) => {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    const body = await res.text();
    return { ms: Math.round(performance.now() - t0), bytes: Buffer.byteLength(body), body, status: res.status };
  };
  const scrapes = [];
  for (let i = 0; i < 3; i++) scrapes.push(await get('/metrics'));
  const apps = await get('/api/v1/apps');
  const oneApp = await get('/api/v1/apps/a0');
  return {
    metrics: { ms: scrapes.map((s) => s.ms), mb: round(scrapes[2].bytes / 1048576, 2), series: scrapes[2].body.split('\n').filter((l) => l && !l.startsWith('#')).length },
    nodejs: nodeMemoryFromMetrics(scrapes[2].body),
    apps: { ms: apps.ms, mb: round(apps.bytes / 1048576, 2) },
    oneApp: { ms: oneApp.ms, kb: round(oneApp.bytes / 1024, 1), status: oneApp.status },
  };
}

/** process.memoryUsage() as prom-client exposes it (MB): heap used/total, external, RSS, heap spaces. */
function nodeMemoryFromMetrics(text) {
  const value = (name, label = '') => {
    // Every series carries the sidecar's instance label, so labels are always allowed.
    const m = new RegExp(`^${name}(?:\\{[^}]*${label}[^}]*\\})?\\s+([0-9.e+]+)`, 'm').exec(text);
    return m ? round(Number(m[1]) / 1048576, 1) : null;
  };
  const spaces = {};
  for (const m of text.matchAll(/^nodejs_heap_space_size_total_bytes\{[^}]*space="([^"]+)"[^}]*\}\s+([0-9.e+]+)/gm)) spaces[m[1]] = round(Number(m[2]) / 1048576, 1);
  return {
    heapUsedMb: value('nodejs_heap_size_used_bytes'),
    heapTotalMb: value('nodejs_heap_size_total_bytes'),
    externalMb: value('nodejs_external_memory_bytes'),
    rssMb: value('process_resident_memory_bytes'),
    heapSpacesTotalMb: spaces,
  };
}

async function failureStage(run) {
  const { sc, ctx, log, dir } = run;
  const cpu0 = cpuSeconds(sc.pid);
  const reloads0 = (await errorLogCounts(dir)).reloads;
  const transitions0 = log.state.transitions;
  const tFail = await ctx.backends.setMode(ctx.failing, ctx.opts.failMode);
  const ports = ctx.failing.map((i) => ctx.backends.ports[i]);
  let fileAt = null;
  await waitFor(() => {
    log.poll();
    const u = run.ups.read();
    if (ports.every((p) => u.down.has(p))) fileAt = u.mtimeMs;
    return fileAt !== null || !sc.running();
  }, ctx.opts.failTimeoutSeconds, 50);
  await sleep(ctx.opts.failHoldSeconds * 1000);
  await waitQuiet(run, 3000, ctx.opts.failTimeoutSeconds);
  const end = Date.now();
  const firstEjection = new Map();
  for (const e of log.state.ejections) if (e.at >= tFail && !firstEjection.has(e.port)) firstEjection.set(e.port, e.at);
  const ejectedAt = ports.every((p) => firstEjection.has(p)) ? Math.max(...ports.map((p) => firstEjection.get(p))) : null;
  const applies = log.state.applies.filter((a) => a.at >= tFail);
  return {
    tFail,
    end,
    fileAllDownMs: fileAt === null ? null : Math.round(fileAt - tFail),
    lastEjectionMs: ejectedAt === null ? null : ejectedAt - tFail,
    lastEjectionToFileMs: fileAt === null || ejectedAt === null ? null : Math.round(fileAt - ejectedAt),
    reloads: (await errorLogCounts(dir)).reloads - reloads0,
    applies: applies.length,
    applyTimings: applies.map((a) => ({ ms: a.durationMs, ...a.timings })),
    cpuSeconds: round((cpuSeconds(sc.pid) ?? NaN) - cpu0, 1),
    transitions: log.state.transitions - transitions0,
    fileAt,
  };
}

/** Until neither a transition nor an nginx update for `quietMs` (or the timeout). */
async function waitQuiet(run, quietMs, timeoutSeconds) {
  const { log } = run;
  await waitFor(() => {
    log.poll();
    const last = Math.max(log.state.lastTransitionAt, log.state.applies.at(-1)?.at ?? 0);
    return Date.now() - last >= quietMs;
  }, timeoutSeconds);
}

async function recoveryStage(run, failure) {
  const { sc, ctx, log, dir } = run;
  const reloads0 = (await errorLogCounts(dir)).reloads;
  const transitions0 = log.state.transitions;
  const tRecover = await ctx.backends.setMode(ctx.failing, 'ok');
  failure.falseEjections = await judgeEjections({
    ejections: log.state.ejections.filter((e) => e.at >= failure.tFail && e.at < tRecover),
    indexOf: run.indexOf, failing: ctx.failingSet, failedFrom: failure.tFail, failedTo: tRecover, windowMs: EVIDENCE_MS, backends: ctx.backends,
  });
  const ports = ctx.failing.map((i) => ctx.backends.ports[i]);
  let fileAt = null;
  await waitFor(() => {
    log.poll();
    const u = run.ups.read();
    if (fileAt === null && ports.every((p) => !u.down.has(p))) fileAt = u.mtimeMs;
    return (fileAt !== null && allRouted(run)) || !sc.running();
  }, ctx.opts.failTimeoutSeconds, 50);
  await waitQuiet(run, 3000, ctx.opts.failTimeoutSeconds);
  const end = Date.now();
  return {
    tRecover,
    end,
    fileAllUpMs: fileAt === null ? null : Math.round(fileAt - tRecover),
    reloads: (await errorLogCounts(dir)).reloads - reloads0,
    transitions: log.state.transitions - transitions0,
    fileAt,
    falseEjections: await judgeEjections({
      ejections: log.state.ejections.filter((e) => e.at >= tRecover),
      indexOf: run.indexOf, failing: ctx.failingSet, failedFrom: failure.tFail, failedTo: tRecover, windowMs: EVIDENCE_MS, backends: ctx.backends,
    }),
  };
}

/** /healthz per stage: start-up (from the spawn to settled), steady, failure, recovery, all. */
function healthzStages(samples, r) {
  const out = { all: healthzWindow(samples, 0, Infinity) };
  if (r.startup) out.startup = healthzWindow(samples, r.startedAt, r.startup.endAt);
  if (r.steady) out.steady = healthzWindow(samples, r.steady.from, r.steady.to);
  if (r.failure) out.failure = healthzWindow(samples, r.failure.tFail, r.failure.end);
  if (r.recovery) out.recovery = healthzWindow(samples, r.recovery.tRecover, r.recovery.end);
  return out;
}

/**
 * Follows /api/v1/events?kind=transition as a dashboard would (every second, up to 1,000 at a
 * time): how many of the transitions it could see, and how many the ring had already dropped.
 */
function createEventsFollower(port) {
  let after = 0;
  let seen = 0;
  let gaps = 0;
  let paused = false;
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      if (!paused) {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/api/v1/events?kind=transition&limit=1000&after=${after}`);
          const { events } = await res.json();
          for (const e of events) {
            // Sequence numbers count every kind; a jump is only a loss if the ring lost it, which
            // the total against the log tells. Count how many were fetched.
            if (e.data?.kind) seen++;
            after = Math.max(after, e.seq);
          }
          if (events.length === 1000) gaps++;
        } catch {
          // not listening yet, or busy
        }
      }
      await sleep(1000);
    }
  };
  void loop();
  return {
    pause: (p) => (paused = p),
    stop: () => (stopped = true),
    summary: (logged) => ({ seen, logged, missed: Math.max(0, logged - seen), fullPages: gaps }),
  };
}

/**
 * SIGUSR2 (--heapsnapshot-signal): waits for the file and for the main thread to answer /readyz
 * again (the write blocks it; /healthz comes from the admin thread and answers throughout); summarizes.
 */
async function heapSnapshot(run) {
  const { sc, dir, adminPort, ctx } = run;
  const before = new Set(readdirSync(dir));
  const t0 = Date.now();
  process.kill(sc.pid, 'SIGUSR2');
  let snap = null;
  await waitFor(() => (snap = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))) !== undefined, 120);
  await sleep(500);
  for (let ok = false; !ok && Date.now() - t0 < 600_000; ) ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then(() => true, () => false);
  const path = join(dir, snap);
  const out = execFileSync(process.execPath, ['--max-old-space-size=12000', join(HERE, 'heap-snapshot.mjs'), path, String(ctx.backends.ports.length), '--json'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const summary = JSON.parse(out);
  return { file: path, fileMb: round(statSync(path).size / 1048576, 1), writeSeconds: round((Date.now() - t0) / 1000, 1), ...summary };
}

/** The --cpu-prof profile, cut into the run's stages (monotonic clock), summarized in a child. */
function summarizeCpuProfile(run, r) {
  const { sc, dir } = run;
  const files = readdirSync(join(dir, 'prof')).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return { error: 'no .cpuprofile written (the sidecar did not exit cleanly?)' };
  const mono = (t) => sc.startedMono + (t - sc.startedAt);
  const windows = [
    { name: 'start-up', from: mono(sc.startedAt) - 1000, to: mono(r.startup.endAt), transitions: r.startup.transitions },
    { name: 'steady', from: mono(r.steady.from), to: mono(r.steady.to) },
    { name: 'mass failure', from: mono(r.failure.tFail), to: mono(r.failure.end), transitions: r.failure.transitions },
    { name: 'recovery', from: mono(r.recovery.tRecover), to: mono(r.recovery.end), transitions: r.recovery.transitions },
  ];
  const windowsFile = join(dir, 'prof', 'windows.json');
  writeFileSync(windowsFile, JSON.stringify(windows));
  const path = join(dir, 'prof', files[0]);
  const out = execFileSync(process.execPath, ['--max-old-space-size=8000', join(HERE, 'cpu-profile.mjs'), path, windowsFile, '--json'], { encoding: 'utf8', maxBuffer: 256 << 20 });
  return { file: path, windows: JSON.parse(out) };
}
