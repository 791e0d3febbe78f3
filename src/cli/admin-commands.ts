/**
 * `status` and `report`: ask a running sidecar's admin API, found by `--url`, else the config's
 * admin.listen, else the default address. `report` reads the store file itself (read-only) when
 * `--store` says so or when no sidecar answers and the config names a store.
 */
import { DEFAULT_ADMIN } from '../config/defaults.js';
import { loadConfigFile } from '../config/load.js';
import type { SidecarConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';
import { MAX_REPORT_HOURS } from '../observability/admin-server.js';
import { formatReport } from '../observability/report-table.js';
import { reportFromFile } from '../store/report-file.js';
import type { HealthReport } from '../store/types.js';
import { EXIT, UsageError, type OptionValues as Values } from './args.js';

/** The config named by --config or ORCHESTRY_CONFIG, or null when neither is given. */
async function optionalConfig(values: Values): Promise<SidecarConfig | null> {
  const path = (values.config as string | undefined) || process.env.ORCHESTRY_CONFIG;
  return path ? loadConfigFile(path, process.env) : null;
}

/** The admin API's base URL: --url, else the config's admin.listen (a wildcard reached on loopback), else the default. */
function adminBase(values: Values, config: SidecarConfig | null): string {
  const url = values.url as string | undefined;
  if (url !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url: expected http://host:port (got ${JSON.stringify(url)})`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url: expected http://host:port (got ${JSON.stringify(url)})`);
    return url.replace(/\/+$/, '');
  }
  const listen = config?.admin.listen ?? DEFAULT_ADMIN.listen;
  return `http://${listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:')}`;
}

/** GET `url` as JSON; null when nothing answers there (connection refused, no route, timeout). */
async function getJson<T>(url: string): Promise<{ status: number; body: T } | null> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch {
    return null;
  }
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as T };
  } catch {
    throw new SidecarError('ADMIN_BAD_ANSWER', `HTTP ${res.status} from ${url} is not the sidecar's JSON (is this the admin address?)`);
  }
}

interface AppsJson {
  apps: Array<{ name: string; panic: boolean; backends: Array<Record<string, unknown>> }>;
}

/** `status`: the apps and backends of a running sidecar, as a table or JSON. */
export async function status(values: Values): Promise<number> {
  const url = `${adminBase(values, values.url === undefined ? await optionalConfig(values) : null)}/api/v1/apps`;
  const answer = await getJson<AppsJson>(url);
  if (answer === null) throw new SidecarError('ADMIN_UNREACHABLE', `no sidecar answers at ${url} (give its admin address with --url)`);
  if (answer.status !== 200) throw new SidecarError('STATUS_FAILED', `HTTP ${answer.status} from ${url}`);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
    return EXIT.ok;
  }
  const rows: string[][] = [['APP', 'BACKEND', 'HEALTH', 'BREAKER', 'ROUTED', 'LAST PROBE']];
  for (const app of answer.body.apps) {
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
  return EXIT.ok;
}

function parseHours(text: string | undefined): number {
  if (text === undefined) return 24;
  const hours = Number(text);
  if (text.trim() === '' || !Number.isFinite(hours) || hours <= 0 || hours > MAX_REPORT_HOURS) {
    throw new UsageError(`report: --hours: must be a number above 0 and at most ${MAX_REPORT_HOURS} (got ${JSON.stringify(text)})`, 'report');
  }
  return hours;
}

/** `report APP`: from the running sidecar, else from the store file (see the module comment). */
export async function report(values: Values, app: string): Promise<number> {
  const hours = parseHours(values.hours as string | undefined);
  const print = (r: HealthReport) => {
    process.stdout.write(values.json ? `${JSON.stringify(r, null, 2)}\n` : formatReport(r));
    return EXIT.ok;
  };
  if (typeof values.store === 'string') return print(reportFromFile(values.store, app, hours, Date.now()));
  const config = await optionalConfig(values);
  const url = `${adminBase(values, config)}/api/v1/apps/${encodeURIComponent(app)}/report?hours=${hours}`;
  const answer = await getJson<HealthReport | { error: string }>(url);
  if (answer === null) {
    if (!config?.store.enabled) {
      throw new SidecarError('ADMIN_UNREACHABLE', `no sidecar answers at ${url}; give its address with --url, or a store file with --store (or a config that names one)`);
    }
    process.stderr.write(`orchestry-sidecar: no sidecar answers at ${url}; reading the store file ${config.store.path}\n`);
    return print(reportFromFile(config.store.path, app, hours, Date.now()));
  }
  if (answer.status !== 200 || 'error' in answer.body) {
    throw new SidecarError('REPORT_FAILED', 'error' in answer.body ? answer.body.error : `HTTP ${answer.status} from ${url}`);
  }
  return print(answer.body);
}
