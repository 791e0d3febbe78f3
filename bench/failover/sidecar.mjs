// The sidecar of a bench row: the built CLI (`node dist/cli.js run --config FILE`) managing the
// run's nginx, with its config written here. What the config may say is asked of the build
// itself (`check-config`), so the bench follows the code: a key it refuses (nginx.update_via
// before DNS mode exists, fractional probe timeouts before they are allowed, the passive
// section) is left out, or the row says why it cannot run.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { superviseChild } from './child.mjs';
import { errorLogCounts } from './nginx.mjs';

const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;
/** The same flags as `npm start`. */
const NODE_FLAGS = ['--max-semi-space-size=16', '--heap-growing-percent=50'];

/**
 * Probe settings as close to HAProxy's `inter 1s fall 3 rise 2` as validation allows, best
 * first: the first one check-config accepts is used (timeouts under 1 s are refused until the
 * duration work lands, and a period must exceed the timeout).
 */
const TUNED_CANDIDATES = [
  { period_seconds: 1, timeout_seconds: 0.5 },
  { period_seconds: 1, timeout_seconds: 0.9 },
  { period_seconds: 1.1, timeout_seconds: 1 },
];

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
 * Asks the build what the rows may use, once per bench: the tuned probe settings, and whether it
 * knows nginx.update_via (and which of its values) and the passive section. Returns profile
 * pieces, and for DNS mode either its nginx lines or why it is not available.
 */
export function detectFeatures({ nginxBinary, nginxDnsBinary, dnsYaml }) {
  const dir = mkdtempSync(join(tmpdir(), 'orchestry-bench-failover-check-'));
  try {
    const run = { dir, backends: ['127.0.0.1:18001', '127.0.0.1:18002'], nginxBinary, adminPort: 19999, dnsPort: 15353, syslogPort: 15514 };
    const accepts = (profile) => checkConfig(sidecarYaml(run, profile), dir);
    const base = accepts({});
    if (!base.ok) throw new Error(`check-config refuses the bench's base config: ${base.message}`);
    const tuned = TUNED_CANDIDATES.map((c) => ({ initial_delay_seconds: 0, ...c, failure_threshold: 3, success_threshold: 2 }))
      .find((health) => accepts({ health }).ok);
    const reload = accepts({ nginxExtra: ['update_via: reload'] }).ok ? ['update_via: reload'] : [];
    const dnsLines = ['update_via: dns', ...dnsYaml];
    // With the binary DNS rows run: a check of update_via: dns may ask it for its version.
    const dns = checkConfig(sidecarYaml({ ...run, nginxBinary: nginxDnsBinary }, { nginxExtra: dnsLines }), dir);
    const passiveLines = ['passive: { listen: "127.0.0.1:$SYSLOG_PORT" }'];
    const passive = accepts({ topExtra: passiveLines }).ok ? passiveLines : [];
    return {
      tuned,
      reloadLines: reload,
      dns: dns.ok ? { lines: dnsLines } : { unavailable: dns.message },
      passive,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts `node dist/cli.js run --config FILE` (output to dir/sidecar.log) and waits until it has
 * settled: its admin API answers, every backend has a health verdict (or `settleSeconds` went by:
 * with the shipped initial delay of 30 s none comes sooner), and every reload it caused is done
 * (the old workers exited). Returns {reloadsAtStart, verdicts, stop()}.
 */
export async function startSidecar({ dir, adminPort, settleSeconds }) {
  const log = openSync(join(dir, 'sidecar.log'), 'a');
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, 'run', '--config', join(dir, 'sidecar.yaml')], {
    stdio: ['ignore', log, log],
    env: sidecarEnv(),
  });
  const { running, stop } = superviseChild(child, 'SIGTERM');
  try {
    const verdicts = await waitForVerdicts(adminPort, settleSeconds, running);
    await waitForReloads(dir);
    return { reloadsAtStart: (await errorLogCounts(dir)).reloads, verdicts, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForVerdicts(adminPort, settleSeconds, running) {
  const deadline = Date.now() + settleSeconds * 1000;
  let backends = [];
  for (;;) {
    if (!running()) throw new Error('the sidecar exited during start-up (see sidecar.log)');
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/api/v1/apps`);
      backends = (await res.json()).apps.flatMap((a) => a.backends);
      if (backends.length > 0 && backends.every((b) => b.health !== 'unknown')) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      if (backends.length > 0) break; // admin answers, verdicts still pending: start anyway
      throw new Error('the sidecar did not answer on its admin port');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return backends.map((b) => `${b.address}: ${b.health}${b.ejected ? ' (ejected)' : ''}`);
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
