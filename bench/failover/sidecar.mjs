// The sidecar of a bench row: the built CLI (`node dist/cli.js run --config FILE`) managing the
// run's nginx, with its config written here and checked by the build itself (`check-config`):
// a row whose settings the build refuses says why instead of running.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { superviseChild } from './child.mjs';
import { errorLogCounts } from './nginx.mjs';
import { sidecarNodeFlags } from '../scale/sidecar.mjs';

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;
/** The node flags of the built CLI's shebang (what `npm start` and the image pass too). */
const NODE_FLAGS = sidecarNodeFlags().flags;

/** Probe settings like HAProxy's `inter 1s fall 3 rise 2` (the shipped default is period 2 s, timeout 1 s). */
export const TUNED_HEALTH = { period_seconds: 1, timeout_seconds: 0.5, failure_threshold: 3, success_threshold: 2 };

/** The sidecar's environment: ours without ORCHESTRY_* (they would override the bench's config). */
function sidecarEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ORCHESTRY_')));
}

/**
 * The YAML of one run. `run` holds the paths and ports: {dir, backends, nginxBinary, adminPort,
 * syslogPort, dnsPort}; `profile` what the row sets: {health, nginxExtra: lines under nginx:,
 * topExtra: top-level lines}. `$DNS_PORT` and `$SYSLOG_PORT` in the extra lines are the run's
 * ports for the DNS server and the access-log receiver.
 */
export function sidecarYaml(run, profile) {
  const health = profile.health
    ? `\n    health: { ${Object.entries(profile.health).map(([k, v]) => `${k}: ${v}`).join(', ')} }`
    : '';
  const sub = (lines) =>
    lines.map((l) => l.replaceAll('$DNS_PORT', String(run.dnsPort)).replaceAll('$SYSLOG_PORT', String(run.syslogPort)));
  return `apps:
  web:
    backends: [${run.backends.map((a) => `"${a}"`).join(', ')}]${health}
nginx:
  binary: ${run.nginxBinary}
  prefix: ${run.dir}
  config_path: ${join(run.dir, 'nginx.conf')}
  output_path: ${join(run.dir, 'conf.d', 'orchestry-upstreams.conf')}
  pid_path: ${join(run.dir, 'nginx.pid')}
${sub(profile.nginxExtra ?? []).map((l) => `  ${l}\n`).join('')}admin: { listen: "127.0.0.1:${run.adminPort}" }
store: { path: ${join(run.dir, 'sidecar.db')} }
${sub(profile.topExtra ?? []).join('\n')}
`;
}

/** `check-config` on `yaml`: {ok, message} (the CLI's own words when it refuses). */
export function checkConfig(yaml, dir) {
  const file = join(dir, 'sidecar.yaml');
  writeFileSync(file, yaml);
  const r = spawnSync(process.execPath, [CLI, 'check-config', '--config', file], { encoding: 'utf8', env: sidecarEnv() });
  return { ok: r.status === 0, message: (r.stderr || r.stdout).replace(/\s+/g, ' ').trim() };
}

/** `render`: the upstreams file this config gives with every backend routed. */
export function renderUpstreams(file) {
  const r = spawnSync(process.execPath, [CLI, 'render', '--config', file], { encoding: 'utf8', env: sidecarEnv() });
  if (r.status !== 0) throw new Error(`render failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Whether the build accepts `nginx.update_via: dns` with the nginx DNS rows run (the check asks
 * that nginx for its version): null when it does, else the build's refusal.
 */
export function dnsRefusal({ nginxDnsBinary }) {
  const dir = mkdtempSync(join(tmpdir(), 'orchestry-bench-failover-check-'));
  try {
    const run = { dir, backends: ['127.0.0.1:18001', '127.0.0.1:18002'], nginxBinary: nginxDnsBinary, adminPort: 19999, dnsPort: 15353, syslogPort: 15514 };
    const checked = checkConfig(sidecarYaml(run, { nginxExtra: DNS_LINES }), dir);
    return checked.ok ? null : checked.message;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Under `nginx:` in DNS rows: the DNS server on the run's own port (5353 may be taken). */
export const DNS_LINES = ['update_via: dns', 'dns_listen: "127.0.0.1:$DNS_PORT"'];
/** Passive evidence on the run's own port; the run's nginx sends its access log there. */
export const PASSIVE_LINES = ['passive: { listen: "127.0.0.1:$SYSLOG_PORT" }'];

/**
 * Starts `node dist/cli.js run --config FILE` (output to dir/sidecar.log) and waits until it has
 * settled: its admin API answers, every backend has a health verdict (or `settleSeconds` went
 * by), and every reload it caused is done (the old workers exited). Returns {reloadsAtStart,
 * verdicts, updateVia and modeReason (how it tells nginx, from /api/v1/apps), saveDiagnostics()
 * (its events, apps and metrics into dir/sidecar-*.json|txt, for BENCH_KEEP), stop()}.
 */
export async function startSidecar({ dir, adminPort, settleSeconds }) {
  const log = openSync(join(dir, 'sidecar.log'), 'a');
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, 'run', '--config', join(dir, 'sidecar.yaml')], {
    stdio: ['ignore', log, log],
    env: sidecarEnv(),
  });
  const { running, stop } = superviseChild(child, 'SIGTERM');
  try {
    const settled = await waitForVerdicts(adminPort, settleSeconds, running);
    await waitForReloads(dir);
    let saved = false;
    const saveDiagnostics = async () => {
      if (saved || !running()) return;
      saved = true;
      await Promise.all(
        [['api/v1/events?limit=1000', 'sidecar-events.json'], ['api/v1/apps', 'sidecar-apps.json'], ['metrics', 'sidecar-metrics.txt']].map(async ([path, file]) => {
          const res = await fetch(`http://127.0.0.1:${adminPort}/${path}`);
          await writeFile(join(dir, file), await res.text());
        }),
      );
    };
    return { reloadsAtStart: (await errorLogCounts(dir)).reloads, ...settled, saveDiagnostics, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForVerdicts(adminPort, settleSeconds, running) {
  const deadline = Date.now() + settleSeconds * 1000;
  let body = null;
  for (;;) {
    if (!running()) throw new Error('the sidecar exited during start-up (see sidecar.log)');
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/api/v1/apps`);
      body = await res.json();
      const backends = body.apps.flatMap((a) => a.backends);
      if (body.nginx && backends.length > 0 && backends.every((b) => b.health !== 'unknown')) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      if (body?.nginx) break; // admin answers, verdicts still pending: start anyway
      throw new Error('the sidecar did not answer on its admin port, or did not settle how it tells nginx');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    verdicts: body.apps.flatMap((a) => a.backends).map((b) => `${b.address}: ${b.health}${b.ejected ? ' (ejected)' : ''}`),
    updateVia: body.nginx.update_via,
    modeReason: body.nginx.reason,
  };
}

/** Until every reload begun so far has replaced its workers (worker_processes auto: one per CPU). */
async function waitForReloads(dir) {
  const workers = cpus().length;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const c = await errorLogCounts(dir);
    if (c.exitedWorkers >= c.reloads * workers || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
