#!/usr/bin/env node
// Failover benchmark (issue 10 item 7): how traffic goes around a failing backend with nginx
// alone, HAProxy, and nginx managed by the sidecar (reload mode on nginx 1.22, DNS mode on
// nginx >= 1.27.3), each with real processes on loopback:
//   three backends (one process each, bench/failover/backend.mjs) behind the front;
//   a closed-loop client (bench/failover/client.mjs): 16 keep-alive workers, no retries, 20 s;
//   one fault in backend 1 at t = 5 s: kill (SIGKILL), hang (accepts, never answers), 500
//   (requests and health checks), slow (answers after 2 s), restart (SIGKILL at 5 s, a new
//   process on the same port 7 s later); and, for sidecar rows, sidecar (the sidecar itself
//   stopped and started again at t = 5 s, as an upgrade does: no failure and no reload allowed).
// Prints per row and fault the medians of BENCH_RUNS runs: client failures, time out of
// rotation, late tries, stall, longest request, time back in rotation and at full share,
// reloads, requests/s (each defined in bench/failover/metrics.mjs), and which of the issue's
// targets a sidecar row misses. A restart run lasts until 12 s after the restart at least.
//
// Sidecar rows run the built CLI with the shipped defaults ("defaults") or probes like HAProxy's
// `inter 1s fall 3 rise 2` ("tuned": period 1 s, timeout 0.5 s, fall 3, rise 2), with passive
// evidence (nginx's syslog access log of the shipped nginx.conf, pointed at the run's
// passive.listen), in reload mode on nginx 1.22 (once with nginx.leave_to_nginx's default
// [refused, 5xx], once with [refused]: "refused only", the default before 5xx was judged by
// nginx's log) and in DNS mode on nginx >= 1.27.3
// (nginx.update_via: dns, nginx.dns_listen on a free port of the run).
//
//   npm run bench:failover                       # builds, then every mode, fault and run
//   BENCH_MODES=alone,reload BENCH_FAULTS=kill,restart BENCH_RUNS=1 npm run bench:failover
//   node bench/failover/report.mjs a.json b.json # one Markdown table of several BENCH_JSON files
//
// Env: BENCH_MODES (alone,haproxy,reload,dns), BENCH_PROBES (sidecar rows: defaults,tuned),
// BENCH_LEAVE (reload rows: default,refused), BENCH_FAULTS (kill,hang,500,slow,restart,sidecar), BENCH_RUNS
// (3), BENCH_SECONDS (20), BENCH_FAULT_AT (5), BENCH_RESTART_AFTER (7), BENCH_WORKERS (16),
// BENCH_READ_TIMEOUT (3, nginx's proxy_read_timeout and HAProxy's timeout server),
// BENCH_SETTLE_SECONDS (35: how long a sidecar may take to give every backend a verdict before
// the load starts), BENCH_JSON (a file for every run's figures), BENCH_KEEP=1 (keep each run's
// directory: configs, logs, the sidecar's output, events and metrics), NGINX_BIN
// (/usr/sbin/nginx: alone and reload mode), BENCH_NGINX_DNS (scripts/nginx-sid: DNS mode),
// BENCH_HAPROXY (/usr/sbin/haproxy).
//
// Nothing is faked: DNS rows run only when the build's check-config accepts
// `nginx.update_via: dns` with BENCH_NGINX_DNS (otherwise they print its refusal), a sidecar row
// stops unless /api/v1/apps says the sidecar runs in the row's mode, and the HAProxy row runs
// only when haproxy is installed (otherwise it prints how to install it).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { HAPROXY_BIN, HAPROXY_MISSING, haproxyAvailable } from './failover/haproxy.mjs';
import { medians, runMetrics } from './failover/metrics.mjs';
import { FAULTS, runOnce } from './failover/run.mjs';
import { DNS_LINES, PASSIVE_LINES, TUNED_HEALTH, dnsRefusal } from './failover/sidecar.mjs';
import { printTable, targetMisses } from './failover/table.mjs';

const list = (name, fallback) => (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
const num = (name, fallback) => Number(process.env[name] ?? fallback);

const opts = {
  modes: list('BENCH_MODES', 'alone,haproxy,reload,dns'),
  probes: list('BENCH_PROBES', 'defaults,tuned'),
  leave: list('BENCH_LEAVE', 'default,refused'),
  faults: list('BENCH_FAULTS', FAULTS.join(',')),
  runs: num('BENCH_RUNS', 3),
  durationMs: num('BENCH_SECONDS', 20) * 1000,
  faultAtMs: num('BENCH_FAULT_AT', 5) * 1000,
  restartAfterMs: num('BENCH_RESTART_AFTER', 7) * 1000,
  drainMs: (num('BENCH_READ_TIMEOUT', 3) + 2) * 1000,
  workers: num('BENCH_WORKERS', 16),
  readTimeoutSeconds: num('BENCH_READ_TIMEOUT', 3),
  settleSeconds: num('BENCH_SETTLE_SECONDS', 35),
  keep: process.env.BENCH_KEEP === '1',
  nginx: process.env.NGINX_BIN ?? '/usr/sbin/nginx',
  nginxDns: process.env.BENCH_NGINX_DNS ?? new URL('../scripts/nginx-sid', import.meta.url).pathname,
};
for (const f of opts.faults) if (!FAULTS.includes(f)) throw new Error(`BENCH_FAULTS: unknown fault ${f} (known: ${FAULTS.join(', ')})`);

const version = (bin, args = ['-v']) => {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  return r.error ? `not found (${bin})` : `${r.stdout}${r.stderr}`.trim().split('\n')[0];
};

/** The rows the modes ask for, and a note for each that cannot run here. */
function planRows() {
  const rows = [];
  const notes = [];
  const sidecarRows = (mode, nginxBinary, modeLines, leaves = ['default']) => {
    for (const p of opts.probes) {
      if (p !== 'defaults' && p !== 'tuned') throw new Error(`BENCH_PROBES: unknown ${p} (defaults, tuned)`);
      for (const leave of leaves) {
        if (leave !== 'default' && leave !== 'refused') throw new Error(`BENCH_LEAVE: unknown ${leave} (default, refused)`);
        const nginxExtra = leave === 'refused' ? [...modeLines, 'leave_to_nginx: [refused]'] : modeLines;
        const name = `sidecar ${mode} (${p}${leave === 'refused' ? ', refused only' : ''})`;
        const health = p === 'tuned' ? TUNED_HEALTH : undefined;
        rows.push({ name, kind: 'sidecar', mode, nginxBinary, profile: { health, nginxExtra, topExtra: PASSIVE_LINES } });
      }
    }
  };
  for (const mode of opts.modes) {
    if (mode === 'alone') rows.push({ name: 'nginx alone', kind: 'alone', nginxBinary: opts.nginx });
    else if (mode === 'haproxy') {
      if (haproxyAvailable()) rows.push({ name: 'haproxy', kind: 'haproxy' });
      else notes.push(HAPROXY_MISSING);
    } else if (mode === 'reload') sidecarRows('reload', opts.nginx, ['update_via: reload'], opts.leave);
    else if (mode === 'dns') {
      const refusal = dnsRefusal({ nginxDnsBinary: opts.nginxDns });
      // The sidecar is told nginx's read timeout, as a user of DNS mode sets it to their nginx's.
      if (refusal === null) sidecarRows('dns', opts.nginxDns, [...DNS_LINES, `proxy_read_timeout_seconds: ${opts.readTimeoutSeconds}`]);
      else notes.push(`DNS mode is not available here: check-config refuses nginx.update_via: dns with ${opts.nginxDns} (${refusal})`);
    } else throw new Error(`BENCH_MODES: unknown mode ${mode} (alone, haproxy, reload, dns)`);
  }
  return { rows, notes };
}

const began = Date.now();
const { rows, notes } = planRows();
console.log(`failover bench: ${opts.runs} run(s) of ${opts.durationMs / 1000} s, ${opts.workers} keep-alive workers, fault in b1 at ${opts.faultAtMs / 1000} s`);
console.log(`  nginx (alone, reload): ${version(opts.nginx)}; nginx (dns): ${version(opts.nginxDns)}; haproxy: ${version(HAPROXY_BIN)}; node ${process.version}`);
console.log(`  tuned probes: ${JSON.stringify(TUNED_HEALTH)}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const n of notes) console.log(`  skipped: ${n}`);

const results = [];
for (const row of rows) {
  for (const fault of opts.faults) {
    if (fault === 'sidecar' && row.kind !== 'sidecar') continue;
    const runs = [];
    // Long enough after a restart to see whether the backend is back at its full share in 10 s.
    const until = opts.faultAtMs + opts.restartAfterMs + 12_000;
    const runOpts = fault === 'restart' ? { ...opts, durationMs: Math.max(opts.durationMs, until) } : opts;
    for (let i = 0; i < opts.runs; i++) {
      const obs = await runOnce(row, fault, runOpts);
      const m = runMetrics(obs, runOpts);
      runs.push(m);
      console.log(`  ${row.name.padEnd(26)} ${fault.padEnd(8)} run ${i + 1}/${opts.runs}: ${brief(m)}`);
    }
    results.push({ row: row.name, kind: row.kind, mode: row.mode ?? null, fault, median: medians(runs), runs });
  }
}

printTable(results, opts);
for (const n of notes) console.log(`skipped: ${n}`);
const minutes = ((Date.now() - began) / 60_000).toFixed(1);
console.log(`took ${minutes} min; load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
if (process.env.BENCH_JSON) {
  const out = { options: opts, tuned: TUNED_HEALTH, notes, results: results.map((r) => ({ ...r, misses: targetMisses(r, results, opts) })) };
  writeFileSync(process.env.BENCH_JSON, JSON.stringify(out, (_k, v) => (v === Infinity ? 'never' : v), 2));
  console.log(`every run: ${process.env.BENCH_JSON}`);
}

function brief(m) {
  const s = (ms) => (ms === null ? '-' : ms === Infinity ? 'never' : `${(ms / 1000).toFixed(1)} s`);
  const kinds = Object.entries(m.failures).map(([k, n]) => `${k} ${n}`).join(', ');
  return `fail ${m.fail}${kinds ? ` (${kinds})` : ''}, out ${s(m.out)}, late ${m.late ?? '-'}, stall ${s(m.stall)}, max ${s(m.max)}, back ${s(m.back)}, full ${s(m.full)}, ejected ${s(m.ejected)}, readmitted ${s(m.readmitted)}, reloads ${m.reloads} (+${m.reloadsAtStart} at start), ${Math.round(m.rps)} req/s`;
}
