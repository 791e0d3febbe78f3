/**
 * `apps`: each app's backends, health, nginx upstream options, Docker options and recovery
 * options. An app name doubles as its nginx upstream name.
 */
import type { FieldIssue } from '../errors.js';
import { formatAddress } from '../model.js';
import {
  appName,
  appNameProblem,
  containerNames,
  envName,
  parseAddress,
  portRange,
  probePath,
  targetProblem,
} from './allowlists.js';
import {
  bool,
  duration,
  field,
  isMap,
  join,
  nullable,
  num,
  oneOf,
  readMap,
  readSection,
  schemaOf,
  show,
  withDefaults,
  withSchema,
  type Check,
  type Report,
  type Section,
} from './check.js';
import {
  ADDRESS_MODES,
  BALANCE_METHODS,
  CACHE_METHODS,
  DEFAULT_APP_DOCKER,
  DEFAULT_APP_RECOVERY,
  DEFAULT_BACKEND,
  DEFAULT_HEALTH,
  DEFAULT_UPSTREAM,
  EJECT_MODES,
  UPSTREAM_CONTEXTS,
} from './defaults.js';
import { checkHealthCombination, parseHealthFields } from './spec-health.js';
import type {
  AppConfig,
  AppDockerOptions,
  AppRecoveryOptions,
  BackendConfig,
  ClearCacheCall,
  HealthCheckConfig,
  NginxConfig,
  UpstreamOptions,
} from './types.js';

/** The keys of one app; each is a map or list of its own. */
export const APP_KEYS = ['backends', 'health', 'upstream', 'docker', 'recovery'] as const;
/** The keys of a backend written as a map. */
export const BACKEND_KEYS = ['address', 'weight', 'backup'] as const;

/** `apps.<name>.upstream`: how the app's nginx upstream is rendered. */
export const UPSTREAM: Section<UpstreamOptions> = {
  defaults: DEFAULT_UPSTREAM,
  fields: {
    ejected: { check: oneOf(EJECT_MODES), meaning: 'An ejected server is kept with down (keeps hash placement stable) or left out; default nginx.ejected.' },
    keepalive: { check: num({ int: true, min: 0, max: 10_000 }), meaning: 'nginx keepalive connections per worker; 0 writes no keepalive directive.' },
    balance: { check: oneOf(BALANCE_METHODS), meaning: 'Load-balancing method.' },
    backup_app: { check: nullable(appName), meaning: "failover_to_backup: that app's routable servers become this app's nginx backup servers." },
    max_fails: { check: num({ int: true, min: 0, max: 1000 }), meaning: "nginx's own passive check on each server line: failed attempts (as proxy_next_upstream counts them) that take a server out; 0 turns it off." },
    fail_timeout_seconds: { check: nullable(duration({ int: true, min: 1, max: 3600 })), meaning: 'How long nginx keeps such a server out, and the window the failures are counted in (whole seconds: nginx rounds). null: 1 s in reload mode, 2 s in DNS mode (longer than one re-resolution, so nginx does not go back to a failed server before the sidecar\'s answer without it lands).' },
    context: { check: oneOf(UPSTREAM_CONTEXTS), meaning: "Where nginx proxies the app: http (rendered into nginx.output_path, for http {}) or stream (TCP, rendered into nginx.stream_output_path, for stream {}; no keepalive there)." },
  },
};

/** `apps.<name>.docker` (or the app-level labels). */
export const APP_DOCKER: Section<AppDockerOptions> = {
  defaults: DEFAULT_APP_DOCKER,
  fields: {
    address_mode: { check: nullable(oneOf(ADDRESS_MODES)), meaning: 'Overrides docker.address_mode for this app.' },
    port_range: { check: nullable(portRange), meaning: 'Host networking: ports scale_out may give new replicas, e.g. "20000-20099".' },
    port_env: { check: envName, meaning: 'Environment variable that tells a new replica its port.' },
    max_replicas: { check: nullable(num({ int: true, min: 1, max: 1000 })), meaning: 'scale_out ceiling for this app; null = recovery.max_replicas.' },
    accept_containers: { check: bool, meaning: 'Containers labelled orchestry.app=<this app> join it as backends; off: such containers are refused (an app only labels define always accepts them).' },
  },
};

const clearCacheMethod = oneOf(CACHE_METHODS);

/** `{method, path}` or the label form `"POST /admin/cache/clear"`. */
export const clearCacheCall: Check<ClearCacheCall> = withSchema((value, path, report) => {
  let method: unknown = 'POST';
  let callPath: unknown = value;
  if (typeof value === 'string') {
    const m = /^([A-Za-z]+)\s+(\S+)$/.exec(value.trim());
    if (m) [, method, callPath] = m;
  } else if (isMap(value)) {
    const raw = readMap(value, path, ['method', 'path'], report);
    if (!raw) return undefined;
    method = raw.method ?? 'POST';
    callPath = raw.path;
    if (callPath === undefined) return report(join(path, 'path'), 'is required');
  } else {
    return report(path, `must be "METHOD /path" or a map with method and path (got ${show(value)})`);
  }
  const m = clearCacheMethod(method, join(path, 'method'), report);
  const p = probePath(callPath, join(path, 'path'), report);
  return m && p ? { method: m, path: p } : undefined;
}, {
  anyOf: [
    { type: 'string' },
    {
      type: 'object',
      properties: { method: { ...schemaOf(clearCacheMethod), default: 'POST' }, path: schemaOf(probePath) },
      required: ['path'],
      additionalProperties: false,
    },
  ],
});

/** `apps.<name>.recovery` (or the `orchestry.recovery.*` labels). */
export const APP_RECOVERY: Section<AppRecoveryOptions> = {
  defaults: DEFAULT_APP_RECOVERY,
  fields: {
    dependencies: { check: containerNames, meaning: 'Container names restart_dependencies restarts.' },
    clear_cache: { check: nullable(clearCacheCall), meaning: '{method, path} or "METHOD /path": the HTTP call clear_cache sends to the backend.' },
  },
};

/**
 * An app the YAML does not define (e.g. one found only in Docker labels): no static backends,
 * the given health and Docker options, and every upstream option at its default.
 */
export function defaultApp(
  name: string,
  nginx: NginxConfig,
  health: HealthCheckConfig,
  docker: AppDockerOptions = DEFAULT_APP_DOCKER,
  recovery: AppRecoveryOptions = DEFAULT_APP_RECOVERY,
): AppConfig {
  return {
    name,
    docker: { ...docker },
    recovery: structuredClone(recovery),
    backends: [],
    health: structuredClone(health),
    upstream: { ...DEFAULT_UPSTREAM, ejected: nginx.ejected },
  };
}

const weight = num({ int: true, min: 1, max: 1000 });

const backendEntry = (defaultPort: number): Check<BackendConfig> => (value, path, report) => {
  let address: unknown = value;
  let { weight: w, backup } = DEFAULT_BACKEND;
  let addressPath = path;
  if (isMap(value)) {
    const raw = readMap(value, path, BACKEND_KEYS, report);
    if (!raw) return undefined;
    w = field(raw, path, 'weight', w, weight, report);
    backup = field(raw, path, 'backup', backup, bool, report);
    addressPath = join(path, 'address');
    if (raw.address === undefined) return report(addressPath, 'is required');
    address = raw.address;
  }
  if (typeof address !== 'string') {
    return report(
      addressPath,
      `must be "host:port" or a map with address, weight, backup (got ${show(address)})`,
    );
  }
  const parsed = parseAddress(address);
  if (typeof parsed === 'string') return report(addressPath, `${parsed} (got ${show(address)})`);
  const target = targetProblem(parsed.host);
  if (target) return report(addressPath, `host ${target} (got ${show(address)})`);
  if (parsed.port === 0) {
    return report(addressPath, `must have a port between 1 and 65535 (got ${show(address)})`);
  }
  return { host: parsed.host, port: parsed.port ?? defaultPort, weight: w, backup };
};

/** The JSON Schema of `apps.<name>.backends`. */
export const BACKENDS_SCHEMA = {
  type: ['array', 'null'],
  items: {
    anyOf: [
      { type: 'string' },
      {
        type: 'object',
        properties: {
          address: { type: 'string', description: 'One of the string forms.' },
          weight: { type: 'integer', minimum: 1, maximum: 1000, default: DEFAULT_BACKEND.weight, description: 'nginx weight=.' },
          backup: {
            type: 'boolean',
            default: DEFAULT_BACKEND.backup,
            description: 'nginx backup: used only when every primary server is unavailable.',
          },
        },
        required: ['address'],
        additionalProperties: false,
      },
    ],
  },
};

function parseBackends(
  value: unknown,
  path: string,
  defaultPort: number,
  report: Report,
): BackendConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return report(path, `must be a list (got ${show(value)})`) ?? [];
  const check = backendEntry(defaultPort);
  const seen = new Map<string, number>();
  const out: BackendConfig[] = [];
  value.forEach((entry, i) => {
    const backend = check(entry, join(path, i), report);
    if (!backend) return;
    const address = formatAddress(backend.host, backend.port);
    const first = seen.get(address);
    if (first !== undefined) {
      report(join(path, i), `duplicate backend ${address} (also at index ${first})`);
      return;
    }
    seen.set(address, i);
    out.push(backend);
  });
  return out;
}

/** nginx rejects backup servers with these balance methods; stream apps need their own file. */
function checkUpstreamRules(name: string, upstream: UpstreamOptions, backends: BackendConfig[], path: string, nginx: NginxConfig, report: Report): void {
  const { balance } = upstream;
  if (upstream.context === 'stream' && nginx.stream_output_path === null) {
    report(join(path, 'context'), "is stream, which needs nginx.stream_output_path (the file nginx's stream {} block includes)");
  }
  if (upstream.context === 'stream' && balance === 'ip_hash') {
    report(join(path, 'balance'), 'cannot be ip_hash for a stream app: nginx\'s stream module has no ip_hash');
  }
  if (upstream.backup_app === name) {
    report(join(path, 'backup_app'), `must name another app (got ${show(name)})`);
  }
  if ((balance === 'ip_hash' || balance === 'random') && upstream.backup_app !== null) {
    report(
      join(path, 'backup_app'),
      `cannot be used with balance ${balance}: nginx rejects backup servers there (got ${show(upstream.backup_app)})`,
    );
  }
  if ((balance === 'ip_hash' || balance === 'random') && backends.some((b) => b.backup)) {
    report(
      join(path, 'balance'),
      `cannot be used with backup backends, nginx rejects it (got ${show(balance)})`,
    );
  }
}

function parseApp(
  name: string,
  value: unknown,
  path: string,
  defaults: Partial<HealthCheckConfig>,
  nginx: NginxConfig,
  report: Report,
  issues: readonly FieldIssue[],
): AppConfig | undefined {
  const raw = readMap(value, path, APP_KEYS, report);
  if (!raw) return undefined;
  const healthPath = join(path, 'health');
  const own = parseHealthFields(raw.health, healthPath, report);
  // Shallow layering: a field set on the app replaces the default whole (headers included).
  const health: HealthCheckConfig = structuredClone({ ...DEFAULT_HEALTH, ...defaults, ...own });
  // A field that was itself invalid fell back to its default; comparing that would mislead.
  const valid = (key: string) =>
    !issues.some((i) => i.path === join(healthPath, key) || i.path === `defaults.health.${key}`);
  checkHealthCombination(health, healthPath, valid, report);

  const backends = parseBackends(raw.backends, join(path, 'backends'), health.port, report);
  const upstreamPath = join(path, 'upstream');
  const upstream = readSection(raw.upstream, upstreamPath, withDefaults(UPSTREAM, { ejected: nginx.ejected }), report);
  checkUpstreamRules(name, upstream, backends, upstreamPath, nginx, report);
  const docker = readSection(raw.docker, join(path, 'docker'), APP_DOCKER, report);
  const recovery = readSection(raw.recovery, join(path, 'recovery'), APP_RECOVERY, report);
  return { name, docker, recovery, backends, health, upstream };
}

/**
 * `apps`: at least one, unless `labelsOnly` (docker.enabled: apps can come from container labels
 * alone, the usual setup beside Traefik or nginx-proxy). Each app's health is the seed defaults,
 * then `defaults.health`, then its own; `issues` so far tell which of those fields were invalid.
 */
export function parseApps(
  value: unknown,
  healthDefaults: Partial<HealthCheckConfig>,
  nginx: NginxConfig,
  report: Report,
  issues: readonly FieldIssue[],
  labelsOnly = false,
): AppConfig[] {
  const apps: AppConfig[] = [];
  const orLabels = '(or docker.enabled: true, for apps from container labels only)';
  if (value === undefined || value === null) {
    if (!labelsOnly) report('apps', `is required ${orLabels}`);
  } else if (!isMap(value)) {
    report('apps', `must be a map of app name to app (got ${show(value)})`);
  } else if (Object.keys(value).length === 0) {
    if (!labelsOnly) report('apps', `must define at least one app ${orLabels}`);
  } else {
    const byLowerCase = new Map<string, string>();
    for (const [name, body] of Object.entries(value)) {
      const path = join('apps', name);
      const nameProblem = appNameProblem(name);
      if (nameProblem) report(path, nameProblem);
      // nginx compares upstream names case-insensitively: `web` and `WEB` fail `nginx -t`.
      const first = byLowerCase.get(name.toLowerCase());
      if (first !== undefined) report(path, `is the same upstream name as ${join('apps', first)} to nginx, which ignores case`);
      else byLowerCase.set(name.toLowerCase(), name);
      const app = parseApp(name, body, path, healthDefaults, nginx, report, issues);
      if (app) apps.push(app);
    }
  }
  return apps;
}
