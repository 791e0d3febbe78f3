// Scale benchmark (issue 12): the whole daemon, from its start, against thousands of loopback
// backends probed once per second, beside HAProxy 2.6 checking the same backends in the same run.
//
//   npm run bench:scale                       # 500, 2,000, 10,000 backends
//   BENCH_SIZES=2000 BENCH_PROFILE_SIZES=2000 npm run bench:scale
//
// It starts nginx, HAProxy, the sidecar and backend processes on loopback: run it under the
// integration lock (`flock /tmp/orchestry-it.lock …`), one size per run if others share the machine.
//
// Per size: one process serves every backend (N HTTP servers, one port each; two processes above
// ~9,900 backends, see bench/scale/backends.mjs), then, one after the other on the same backends
// so that both see the same machine:
//   haproxy    HAProxy checking them (`inter 1s fall 3 rise 2`, option httpchk GET /health);
//   store-on   the built CLI (`node <shebang flags> dist/cli.js run`) managing a private nginx
//              1.22 in reload mode, at its defaults but for the probe period (1 s) and timeout
//              (BENCH_TIMEOUT_SECONDS; it must stay below the period);
//   store-off  the same with `store.enabled: false`;
//   profile    (sizes in BENCH_PROFILE_SIZES) store-on again under --cpu-prof and --inspect, with
//              a heap snapshot at its end: where the CPU and the memory go.
// Each phase: start, warm-up, a steady window (CPU from /proc/PID/stat, RSS from /proc/PID/status),
// then every second backend (odd indexes, in every app) fails at once (BENCH_FAIL_MODE: 500 or
// hang) and recovers. /healthz is sampled every 50 ms throughout by a process of its own.
//
// Env: BENCH_SIZES (500,2000,10000), BENCH_PHASES (haproxy,store-on,store-off),
// BENCH_PROFILE_SIZES (none), BENCH_APP_SIZE (backends per app, 100), BENCH_TIMEOUT_SECONDS (0.9),
// BENCH_WARMUP_SECONDS (10), BENCH_STEADY_SECONDS (30), BENCH_FAIL_MODE (500), BENCH_FAIL_HOLD_SECONDS
// (5), BENCH_FAIL_TIMEOUT_SECONDS (120), BENCH_SETTLE_TIMEOUT_SECONDS (900), BENCH_JSON (file for
// every figure), BENCH_KEEP=1 (keep each phase's directory: config, logs, profile, snapshot),
// BENCH_IMPORTS=0 (skip the per-dependency load costs), BENCH_NODE_FLAGS (node flags for the
// sidecar instead of dist/cli.js's shebang ones), NGINX_BIN, BENCH_HAPROXY,
// BENCH_PORTS_PER_PROCESS.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { haproxyAvailable, HAPROXY_BIN, HAPROXY_MISSING } from './failover/haproxy.mjs';
import { startBackends } from './scale/backends.mjs';
import { haproxyPhase } from './scale/haproxy.mjs';
import { importCosts } from './scale/imports.mjs';
import { sidecarPhase } from './scale/phase-sidecar.mjs';
import { memory, steadyWindow } from './scale/proc.mjs';
import { phaseLine, profileText, tables } from './scale/report.mjs';
import { makeRunDir, sidecarNodeFlags } from './scale/sidecar.mjs';

const env = process.env;
const list = (v, d) => (v ?? d).split(',').map((x) => x.trim()).filter(Boolean);
const opts = {
  sizes: list(env.BENCH_SIZES, '500,2000,10000').map(Number),
  phases: list(env.BENCH_PHASES, 'haproxy,store-on,store-off'),
  profileSizes: list(env.BENCH_PROFILE_SIZES, '').map(Number),
  appSize: Number(env.BENCH_APP_SIZE ?? 100),
  timeoutSeconds: Number(env.BENCH_TIMEOUT_SECONDS ?? 0.9),
  warmupSeconds: Number(env.BENCH_WARMUP_SECONDS ?? 10),
  steadySeconds: Number(env.BENCH_STEADY_SECONDS ?? 30),
  failMode: env.BENCH_FAIL_MODE ?? '500',
  failHoldSeconds: Number(env.BENCH_FAIL_HOLD_SECONDS ?? 5),
  failTimeoutSeconds: Number(env.BENCH_FAIL_TIMEOUT_SECONDS ?? 120),
  settleTimeoutSeconds: Number(env.BENCH_SETTLE_TIMEOUT_SECONDS ?? 900),
  nginxBinary: env.NGINX_BIN ?? '/usr/sbin/nginx',
  keep: env.BENCH_KEEP === '1',
};
if (!['500', 'hang'].includes(opts.failMode)) throw new Error(`BENCH_FAIL_MODE must be 500 or hang, got ${JSON.stringify(opts.failMode)}`);
for (const p of opts.phases) if (!['haproxy', 'store-on', 'store-off'].includes(p)) throw new Error(`BENCH_PHASES: unknown phase ${JSON.stringify(p)}`);

const shipped = sidecarNodeFlags();
// BENCH_NODE_FLAGS="--max-semi-space-size=4 ..." tries other node flags than the shipped ones.
const flags = env.BENCH_NODE_FLAGS !== undefined ? env.BENCH_NODE_FLAGS.split(/\s+/).filter(Boolean) : shipped.flags;
const startDiffers = shipped.startDiffers;
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
// `nginx -v` prints to stderr, `haproxy -v` to stdout: the first non-empty line of either.
const version = (bin, arg) => {
  const r = spawnSync(bin, [arg], { encoding: 'utf8' });
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}\n${r.error?.message ?? ''}`.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
};

const report = {
  started: new Date().toISOString(),
  machine: { cpus: cpus().length, loadavg: loadavg() },
  node: process.version,
  sidecarFlags: flags,
  nginx: version(opts.nginxBinary, '-v'),
  haproxy: haproxyAvailable() ? version(HAPROXY_BIN, '-v') : null,
  opts,
  imports: null,
  sizes: [],
};
console.log(`scale bench: node ${process.version}, sidecar flags ${flags.join(' ')}; ${report.nginx}; ${report.haproxy ?? HAPROXY_MISSING}`);
if (startDiffers) console.log(`note: package.json's start script passes other flags than dist/cli.js's shebang: ${startDiffers}`);
console.log(`probes every 1 s, timeout ${opts.timeoutSeconds} s; apps of ${opts.appSize}; failure mode ${opts.failMode}; ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);

if (env.BENCH_IMPORTS !== '0') {
  report.imports = importCosts(flags);
  console.log('\nloading each dependency in a fresh process (heap / RSS after a full GC, MB; CommonJS files):');
  for (const r of report.imports) console.log(`  ${r.module.padEnd(14)} heap +${r.heapMb}, rss +${r.rssMb}, external +${r.externalMb}, ${r.files} files`);
}

for (const size of opts.sizes) {
  const t0 = Date.now();
  const backends = await startBackends(size);
  const failing = backends.ports.map((_, i) => i).filter((i) => i % 2 === 1);
  const ctx = {
    backends, opts, flags, failing,
    failingSet: new Set(failing),
    portIndex: new Map(backends.ports.map((p, i) => [p, i])),
  };
  const entry = { size, backendProcesses: backends.processes, phases: {} };
  report.sizes.push(entry);
  console.log(`\n${size} backends on ${backends.processes} process(es) (pids ${backends.pids.join(', ')})`);
  try {
    for (const name of [...opts.phases, ...(opts.profileSizes.includes(size) ? ['profile'] : [])]) {
      const p0 = Date.now();
      let r;
      try {
        if (name === 'haproxy') {
          r = haproxyAvailable()
            ? await haproxyPhase({ backends, appSize: opts.appSize, failing, opts, makeDir: makeRunDir, sleep, steadyWindow, memory })
            : { skipped: HAPROXY_MISSING };
        } else {
          r = await sidecarPhase(ctx, { store: name !== 'store-off', profile: name === 'profile' });
        }
      } catch (err) {
        r = { error: err.stack ?? String(err) };
      }
      r.phaseSeconds = Math.round((Date.now() - p0) / 1000);
      entry.phases[name] = r;
      console.log(phaseLine(size, name, r));
      if (name === 'profile' && !r.error) console.log(profileText(size, r));
      if (env.BENCH_JSON) writeFileSync(env.BENCH_JSON, JSON.stringify(report, null, 1));
    }
  } finally {
    backends.stop();
  }
  entry.seconds = Math.round((Date.now() - t0) / 1000);
  console.log(`${size} backends: ${entry.seconds} s`);
}

console.log(tables(report.sizes));
if (env.BENCH_JSON) {
  writeFileSync(env.BENCH_JSON, JSON.stringify(report, null, 1));
  console.log(`\nevery figure: ${env.BENCH_JSON}`);
}
