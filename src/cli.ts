#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=50
/**
 * The shebang caps V8's young generation (semi-space) at 8 MB: V8 otherwise grows it to
 * 128 MB on a large machine, which at thousands of probes per second is most of the RSS
 * (bench/probe-scale.mjs: 274 MB -> 197 MB at 2,000 probes/s with 16 MB; bench/scale.mjs,
 * whole daemon at 2,000 backends: 16 -> 8 MB saves another 11-16 MB at the same CPU; 4 MB
 * saved 8 MB more but cost 3 points of CPU, more than HAProxy's). See docs/benchmarks.md.
 * It also lets the old generation grow to 1.5x its live size between full GCs instead of V8's
 * adaptive factor (up to 4x): every probe promotes some short-lived undici/socket objects, so
 * the old generation fills with garbage at a steady rate, and the factor decides how much of
 * it RSS carries (bench/probe-scale.mjs, 60 s at 2,000 probes/s: 312 MB -> 183-191 MB, for
 * about one point of CPU; 25% caused GC storms).
 *
 * Command line: run | check-config | render | status | report. Exit codes: 0 ok, 1 bad input or failed
 * check, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { loadConfigFile, resolveConfigPath } from './config/load.js';
import { snapshotFromConfig } from './discovery/config-source.js';
import { ConfigError, SidecarError, describeError } from './errors.js';
import { createHealthRegistry } from './health/registry.js';
import { formatReport } from './observability/report-table.js';
import type { HealthReport } from './store/types.js';
import { createSystemClock } from './clock.js';
import { toViewModel } from './nginx/view-model.js';
import { createRenderer } from './nginx/render.js';
import { buildDesiredSet } from './upstream/desired.js';
import { startSidecar } from './main.js';
import { VERSION } from './version.js';

const USAGE = `orchestry-sidecar ${VERSION}: health checks, circuit breaking and upstream rewriting for nginx

Usage:
  orchestry-sidecar run          --config FILE   run the daemon (default command)
  orchestry-sidecar check-config --config FILE   validate a config file; exit 0 if valid, 1 if not
  orchestry-sidecar render       --config FILE   print the upstreams file nginx would get now
                                                 (every backend routed), without touching nginx
  orchestry-sidecar status       --config FILE   show apps and backends of a running sidecar
  orchestry-sidecar report APP   --config FILE [--hours N] [--json]
                                                 health report of an app over the last N hours
                                                 (default 24) from a running sidecar's store
  orchestry-sidecar --version | --help

The config path can also come from ORCHESTRY_CONFIG.`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        hours: { type: 'string' },
        json: { type: 'boolean' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`${describeError(err)}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  const maxPositionals = command === 'report' ? 2 : 1;
  if (positionals.length > maxPositionals) {
    process.stderr.write(`unexpected argument: ${positionals[maxPositionals]}\n\n${USAGE}\n`);
    return 2;
  }
  if ((values.hours !== undefined || values.json) && command !== 'report') {
    process.stderr.write(`--hours and --json are options of report only\n\n${USAGE}\n`);
    return 2;
  }
  switch (command) {
    case 'run':
      return run(values.config);
    case 'check-config':
      return checkConfig(values.config);
    case 'render':
      return render(values.config);
    case 'status':
      return status(values.config);
    case 'report': {
      const app = positionals[1];
      if (!app) {
        process.stderr.write(`report: which app? e.g. orchestry-sidecar report web --config FILE\n\n${USAGE}\n`);
        return 2;
      }
      return report(values.config, app, values.hours, values.json ?? false);
    }
    default:
      process.stderr.write(`unknown command: ${command}\n\n${USAGE}\n`);
      return 2;
  }
}

async function checkConfig(flag: string | undefined): Promise<number> {
  const path = resolveConfigPath(flag, process.env);
  const config = await loadConfigFile(path, process.env);
  const backends = config.apps.reduce((n, a) => n + a.backends.length, 0);
  process.stdout.write(`${path}: valid (${config.apps.length} apps, ${backends} backends)\n`);
  return 0;
}

async function render(flag: string | undefined): Promise<number> {
  const path = resolveConfigPath(flag, process.env);
  const config = await loadConfigFile(path, process.env);
  const registry = createHealthRegistry({
    clock: createSystemClock(),
    breaker: config.breaker,
    detection: config.failure_detection,
  });
  registry.sync(snapshotFromConfig(config).backends);
  const { set } = buildDesiredSet(config.apps, registry.views());
  const renderer = createRenderer({ templatePath: config.nginx.template_path });
  await renderer.load();
  process.stdout.write(renderer.render(toViewModel(set)));
  return 0;
}

async function status(flag: string | undefined): Promise<number> {
  const path = resolveConfigPath(flag, process.env);
  const config = await loadConfigFile(path, process.env);
  const url = `${adminBase(config.admin.listen)}/api/v1/apps`;
  let body: { apps: Array<{ name: string; panic: boolean; backends: Array<Record<string, unknown>> }> };
  try {
    const res = await fetch(url);
    body = (await res.json()) as typeof body;
  } catch (err) {
    throw new SidecarError('ADMIN_UNREACHABLE', `cannot reach the sidecar at ${url}: ${describeError(err)}`);
  }
  const rows: string[][] = [['APP', 'BACKEND', 'HEALTH', 'BREAKER', 'ROUTED', 'LAST PROBE']];
  for (const app of body.apps) {
    for (const b of app.backends) {
      const probe = b.last_probe as { healthy: boolean; response_time_ms: number; error: string | null } | null;
      rows.push([
        app.name + (app.panic ? ' (panic)' : ''),
        String(b.address),
        String(b.health),
        String(b.breaker),
        b.ejected ? 'no' : 'yes',
        probe ? (probe.healthy ? `ok ${probe.response_time_ms} ms` : `failed: ${probe.error ?? ''}`) : '-',
      ]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
  return 0;
}

/** The admin server's URL; a wildcard listen address is reached on loopback. */
function adminBase(listen: string): string {
  return `http://${listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:')}`;
}

async function report(flag: string | undefined, app: string, hoursText: string | undefined, json: boolean): Promise<number> {
  let hours = 24;
  if (hoursText !== undefined) {
    hours = Number(hoursText);
    if (hoursText.trim() === '' || !Number.isFinite(hours) || hours <= 0) {
      throw new SidecarError('BAD_ARGUMENT', `--hours: must be a number above 0 (got ${JSON.stringify(hoursText)})`);
    }
  }
  const path = resolveConfigPath(flag, process.env);
  const config = await loadConfigFile(path, process.env);
  const url = `${adminBase(config.admin.listen)}/api/v1/apps/${encodeURIComponent(app)}/report?hours=${hours}`;
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new SidecarError('ADMIN_UNREACHABLE', `cannot reach the sidecar at ${url}: ${describeError(err)}`);
  }
  const body = (await res.json()) as HealthReport | { error: string };
  if (!res.ok || 'error' in body) {
    throw new SidecarError('REPORT_FAILED', 'error' in body ? body.error : `HTTP ${res.status} from ${url}`);
  }
  process.stdout.write(json ? `${JSON.stringify(body, null, 2)}\n` : formatReport(body));
  return 0;
}

async function run(flag: string | undefined): Promise<number> {
  const path = resolveConfigPath(flag, process.env);
  // Signals are taken from the start: the admin server answers (and a supervisor may send
  // SIGTERM) before start-up has finished, and the default action would kill the process
  // without the graceful stop (state flushed to the store, connections closed).
  let stopRequested!: () => void;
  const stopSignal = new Promise<void>((resolve) => (stopRequested = resolve));
  const onSignal = () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    stopRequested();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const sidecar = await startSidecar({ configPath: path });
  // After start-up nothing may take the daemon down: it keeps protecting traffic with the last
  // good state, and says what went wrong.
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`${JSON.stringify({ level: 50, msg: 'unhandled rejection', err: describeError(reason) })}\n`);
  });
  process.on('uncaughtException', (err) => {
    process.stderr.write(`${JSON.stringify({ level: 50, msg: 'uncaught exception', err: describeError(err), stack: err.stack })}\n`);
  });
  await stopSignal;
  await sidecar.stop().catch(() => undefined);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Bad input before start-up: one clear message, no stack trace.
    if (err instanceof ConfigError || err instanceof SidecarError) {
      process.stderr.write(`orchestry-sidecar: ${err.message}\n`);
    } else {
      process.stderr.write(`orchestry-sidecar: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
