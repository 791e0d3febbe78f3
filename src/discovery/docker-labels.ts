/**
 * Pure mapping from `docker inspect` output to backends: no I/O, so every label rule is tested
 * with plain JSON fixtures. Labels are untrusted input that ends up in nginx's config and in
 * probe requests: every value goes through the same checks as the YAML file, and a container
 * with any bad label is left out whole, with every problem named (label and value).
 */
import { isIP } from 'node:net';
import { appName, appNameProblem, containerNames, envName, portRange } from '../config/allowlists.js';
import { bool, num, oneOf, show, type Check, type Report } from '../config/check.js';
import { ADDRESS_MODES, DEFAULT_APP_DOCKER, DEFAULT_APP_RECOVERY, DEFAULT_HEALTH } from '../config/defaults.js';
import { clearCacheCall, defaultApp } from '../config/spec-apps.js';
import { parseHealthOverlay } from '../config/spec-health.js';
import type {
  AppConfig,
  AppDockerOptions,
  AppRecoveryOptions,
  ClearCacheCall,
  HealthCheckConfig,
  SidecarConfig,
} from '../config/types.js';
import { backendId, formatAddress, type Backend, type ContainerRef } from '../model.js';

/** Source name of snapshots built from Docker containers. */
export const DOCKER_SOURCE_NAME = 'docker';
/** Every label this module reads starts with it. */
export const LABEL_PREFIX = 'orchestry.';
/** Only containers with this label set to `true` are considered (also the list filter). */
export const ENABLE_LABEL = 'orchestry.enable';

/**
 * The part of `docker inspect` (dockerode's ContainerInspectInfo) that discovery reads; a
 * structural subset, so real inspect output and hand-written fixtures both fit.
 */
export interface InspectedContainer {
  Id: string;
  /** With Docker's leading '/'. */
  Name: string;
  RestartCount: number;
  State: {
    Status: string;
    OOMKilled: boolean;
    ExitCode: number;
    /** RFC 3339; `0001-01-01T00:00:00Z` when never started. */
    StartedAt: string;
    Health?: { Status: string } | undefined;
  };
  Config: {
    /** The image as the container was created with it (a name, not only an id). */
    Image: string;
    Labels?: Record<string, string> | null;
  };
  NetworkSettings: {
    Networks?: Record<string, { IPAddress: string; GlobalIPv6Address?: string }> | null;
  };
}

/** What discovery needs besides the containers. */
export interface LabelContext {
  config: SidecarConfig;
  /**
   * The YAML's `defaults.health` over the seed defaults: the base of apps the YAML does not
   * define. Defaults to the seed defaults (DEFAULT_HEALTH).
   */
  defaultHealth?: HealthCheckConfig;
}

/** A container left out, with every problem of its labels. */
export interface RejectedContainer {
  containerId: string;
  /** Without the leading '/'. */
  containerName: string;
  /** Each names the label and the bad value, e.g. `orchestry.port: must be an integer (got "80;")`. */
  errors: string[];
}

export interface LabelMapping {
  /** One per running container with valid labels, sorted by container name. */
  backends: Backend[];
  /** Apps found in labels that the YAML does not define, with default settings. */
  apps: AppConfig[];
  rejected: RejectedContainer[];
  /** Every container with valid labels, running or not: what failure detection watches. */
  containers: Array<{ app: string; container: ContainerRef }>;
}

/** Labels outside `orchestry.health.*`, and what each one holds once valid. */
interface ContainerLabels {
  app: string;
  port: number | null;
  replica: number | null;
  weight: number;
  backup: boolean;
  address_mode: 'network' | 'host' | null;
  network: string | null;
  port_env: string | null;
  port_range: [number, number] | null;
  max_replicas: number | null;
  dependencies: string[] | null;
  clear_cache: ClearCacheCall | null;
  backup_app: string | null;
}

/** App-level settings from labels, for an app only labels define. */
interface LabelAppOptions {
  docker: Partial<AppDockerOptions>;
  recovery: Partial<AppRecoveryOptions>;
  backup_app?: string;
}

const HEALTH_PREFIX = 'orchestry.health.';
const HEALTH_FIELDS = Object.keys(DEFAULT_HEALTH) as (keyof HealthCheckConfig)[];
/** The form compileExpectedBody reads as a regular expression. */
const REGEX_FORM = /^\/(.+)\/([a-z]*)$/s;
const DOCKER_NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const DECIMAL = /^-?\d+(\.\d+)?$/;

const networkName: Check<string> = (value, path, report) =>
  typeof value === 'string' && DOCKER_NETWORK_NAME.test(value)
    ? value
    : report(path, `must be a Docker network name (got ${show(value)})`);

/**
 * Maps inspected containers to backends of the `docker` source. Containers without
 * `orchestry.enable=true` are ignored; ones with a bad label are rejected whole; ones not
 * running are not backends but are still listed in `containers`.
 */
export function containersToBackends(
  containers: readonly InspectedContainer[],
  ctx: LabelContext,
): LabelMapping {
  const { config } = ctx;
  const defaultHealth = ctx.defaultHealth ?? DEFAULT_HEALTH;
  const yamlApps = new Map(config.apps.map((a) => [a.name, a]));
  const out: LabelMapping = { backends: [], apps: [], rejected: [], containers: [] };
  const labelApps = new Map<string, LabelAppOptions>();
  /** backend id -> container name that claimed it first. */
  const claimed = new Map<string, string>();

  // Code-unit order, not locale order: the same containers must map the same way everywhere.
  const key = (c: InspectedContainer) => `${c.Name}\u0000${c.Id}`;
  const sorted = [...containers].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  for (const c of sorted) {
    const labels = c.Config.Labels ?? {};
    if (labels[ENABLE_LABEL] !== 'true') continue;
    const errors: string[] = [];
    const report: Report = (label, message) => {
      errors.push(`${label}: ${message}`);
      return undefined;
    };
    const parsed = readLabels(labels, report);
    const yamlApp = parsed ? yamlApps.get(parsed.app) : undefined;
    const health = readHealth(labels, yamlApp?.health ?? defaultHealth, report);
    const balance = yamlApp?.upstream.balance;
    if (parsed?.backup && (balance === 'ip_hash' || balance === 'random')) {
      report(
        'orchestry.backup',
        `cannot be used with balance ${balance} of app ${show(parsed.app)} (nginx rejects it) (got "true")`,
      );
    }
    const ref = containerRef(c, labels, parsed?.replica ?? null);
    let backend: Backend | undefined;
    // Only a running container has an address; a stopped one is still watched for failures.
    if (parsed && health && errors.length === 0 && ref.state === 'running') {
      const mode = parsed.address_mode ?? yamlApp?.docker.address_mode ?? config.docker.address_mode;
      const host =
        mode === 'host' ? config.docker.host_address : networkAddress(c, parsed.network, config, report);
      const port = parsed.port ?? health.port;
      if (host !== undefined) {
        const id = backendId(parsed.app, host, port);
        const owner = claimed.get(id);
        if (owner !== undefined) {
          report(
            'orchestry.port',
            `address ${formatAddress(host, port)} of app ${show(parsed.app)} is already used by container ${show(owner)}`,
          );
        } else {
          claimed.set(id, ref.name);
          backend = {
            id,
            app: parsed.app,
            host,
            port,
            weight: parsed.weight,
            backup: parsed.backup,
            health,
            source: DOCKER_SOURCE_NAME,
            container: ref,
          };
        }
      }
    }
    if (errors.length > 0 || !parsed || !health) {
      out.rejected.push({ containerId: c.Id, containerName: ref.name, errors });
      continue;
    }
    if (backend) out.backends.push(backend);
    out.containers.push({ app: parsed.app, container: ref });
    if (!yamlApps.has(parsed.app)) mergeAppOptions(labelApps, parsed);
  }
  out.apps = labelOnlyApps(labelApps, config, defaultHealth);
  return out;
}

/** The apps only labels define: defaults, with the app-level settings their labels gave. */
function labelOnlyApps(
  labelApps: ReadonlyMap<string, LabelAppOptions>,
  config: SidecarConfig,
  defaultHealth: HealthCheckConfig,
): AppConfig[] {
  return [...labelApps].map(([name, options]) => {
    const app = defaultApp(
      name,
      config.nginx,
      defaultHealth,
      { ...DEFAULT_APP_DOCKER, ...options.docker },
      { ...DEFAULT_APP_RECOVERY, ...options.recovery },
    );
    if (options.backup_app !== undefined) app.upstream.backup_app = options.backup_app;
    return app;
  });
}

/**
 * The backends with those whose container is being stopped marked `draining` (ejected at once,
 * still listed until the container is gone).
 */
export function snapshotWithDraining(
  backends: readonly Backend[],
  drainingContainerIds: ReadonlySet<string>,
): Backend[] {
  return backends.map((b) =>
    b.container && drainingContainerIds.has(b.container.id) ? { ...b, draining: true } : b,
  );
}

const APP_LEVEL = ['address_mode', 'port_range', 'port_env', 'max_replicas'] as const;
const APP_RECOVERY = ['dependencies', 'clear_cache'] as const;

/**
 * The first container (by name) that sets an app-level label decides it for its app. Apps the
 * YAML defines take these settings from the YAML only.
 */
function mergeAppOptions(apps: Map<string, LabelAppOptions>, parsed: ContainerLabels): void {
  const options = apps.get(parsed.app) ?? { docker: {}, recovery: {} };
  for (const key of APP_LEVEL) {
    if (options.docker[key] === undefined && parsed[key] !== null) Object.assign(options.docker, { [key]: parsed[key] });
  }
  for (const key of APP_RECOVERY) {
    if (options.recovery[key] === undefined && parsed[key] !== null) Object.assign(options.recovery, { [key]: parsed[key] });
  }
  if (options.backup_app === undefined && parsed.backup_app !== null) options.backup_app = parsed.backup_app;
  apps.set(parsed.app, options);
}

/** Labels are strings; numbers and booleans are read the way the YAML would have typed them. */
function typed(text: string, kind: 'number' | 'boolean'): unknown {
  if (kind === 'number') return DECIMAL.test(text) ? Number(text) : text;
  return text === 'true' ? true : text === 'false' ? false : text;
}

function readLabels(labels: Record<string, string>, report: Report): ContainerLabels | undefined {
  let bad = false;
  const wrapped: Report = (path, message) => {
    bad = true;
    return report(path, message);
  };
  const get = <T>(key: string, check: Check<T>, kind?: 'number' | 'boolean'): T | null => {
    const label = `${LABEL_PREFIX}${key}`;
    const text = labels[label];
    if (text === undefined) return null;
    return check(kind ? typed(text, kind) : text, label, wrapped) ?? null;
  };
  const appText = labels['orchestry.app'];
  let app: string | null = null;
  if (appText === undefined) {
    wrapped('orchestry.app', 'is required');
  } else {
    const problem = appNameProblem(appText);
    if (problem) wrapped('orchestry.app', problem);
    else app = appText;
  }
  const parsed = {
    port: get('port', num({ int: true, min: 1, max: 65535 }), 'number'),
    replica: get('replica', num({ int: true, min: 0, max: 100_000 }), 'number'),
    weight: get('weight', num({ int: true, min: 1, max: 1000 }), 'number') ?? 1,
    backup: get('backup', bool, 'boolean') ?? false,
    address_mode: get('address_mode', oneOf(ADDRESS_MODES)),
    network: get('network', networkName),
    port_env: get('port_env', envName),
    port_range: get('port_range', portRange),
    max_replicas: get('recovery.max_replicas', num({ int: true, min: 1, max: 1000 }), 'number'),
    dependencies: get('recovery.dependencies', containerNames),
    clear_cache: get('recovery.clear_cache', clearCacheCall),
    backup_app: get('upstream.backup_app', appName),
  };
  if (app !== null && parsed.backup_app === app) {
    wrapped('orchestry.upstream.backup_app', `must name another app (got ${show(app)})`);
  }
  return app !== null && !bad ? { app, ...parsed } : undefined;
}

/** `orchestry.health.*` layered over `base`, validated with the YAML's rules. */
function readHealth(
  labels: Record<string, string>,
  base: HealthCheckConfig,
  report: Report,
): HealthCheckConfig | undefined {
  const raw: Record<string, unknown> = {};
  let bad = false;
  const fail = (label: string, message: string) => {
    bad = true;
    report(label, message);
  };
  for (const [label, text] of Object.entries(labels)) {
    if (!label.startsWith(HEALTH_PREFIX)) continue;
    const key = label.slice(HEALTH_PREFIX.length);
    if (!(HEALTH_FIELDS as string[]).includes(key)) {
      fail(label, `unknown health label (known: ${HEALTH_FIELDS.join(', ')})`);
      continue;
    }
    const value = healthValue(key as keyof HealthCheckConfig, text, label, fail);
    if (value !== undefined) raw[key] = value;
  }
  const result = parseHealthOverlay(raw, 'orchestry.health', base);
  if (!result.ok) {
    for (const issue of result.issues) report(issue.path, issue.message);
    return undefined;
  }
  return bad ? undefined : result.health;
}

/** One health label's text as the YAML type of its field; undefined after reporting. */
function healthValue(
  key: keyof HealthCheckConfig,
  text: string,
  label: string,
  fail: (label: string, message: string) => void,
): unknown {
  const example = DEFAULT_HEALTH[key];
  // A duration with a unit (`500ms`) is no decimal and stays text: the field's own check (the
  // YAML's duration()) reads it, so labels and YAML accept the same forms.
  if (typeof example === 'number') return typed(text, 'number');
  if (typeof example === 'boolean') return typed(text, 'boolean');
  if (Array.isArray(example)) {
    // expected_status_codes=200,204
    return text.split(',').map((part) => typed(part.trim(), 'number'));
  }
  if (key === 'headers') {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      fail(label, `must be a JSON object, e.g. {"X-Probe":"1"} (got ${show(text)})`);
      return undefined;
    }
  }
  if (key === 'expected_body' && REGEX_FORM.test(text)) {
    // A label is written by whoever starts a container: a pathological pattern would let it
    // hang the prober on catastrophic backtracking. Regular expressions come from the YAML only.
    fail(label, `must be a plain substring; a /regex/ is accepted only in the YAML file (got ${show(text)})`);
    return undefined;
  }
  return text;
}

/** The container's IP on the network its labels or the config name, or its only network. */
function networkAddress(
  c: InspectedContainer,
  labelNetwork: string | null,
  config: SidecarConfig,
  report: Report,
): string | undefined {
  const networks = c.NetworkSettings.Networks ?? {};
  const names = Object.keys(networks).sort();
  const wanted = labelNetwork ?? config.docker.network;
  const from = labelNetwork !== null ? 'orchestry.network' : 'docker.network';
  let name: string;
  if (wanted !== null) {
    if (!Object.hasOwn(networks, wanted)) {
      return report(
        from,
        `container is not attached to network ${show(wanted)} (attached: ${names.join(', ') || 'none'})`,
      );
    }
    name = wanted;
  } else if (names.length === 1) {
    name = names[0] as string;
  } else if (names.length === 0) {
    return report(
      'orchestry.address_mode',
      'is network but the container is on no Docker network; use orchestry.address_mode=host for host networking',
    );
  } else {
    return report(
      'orchestry.network',
      `is required when the container is on several networks (attached: ${names.join(', ')}), or set docker.network`,
    );
  }
  const endpoint = networks[name];
  const ip = endpoint?.IPAddress || endpoint?.GlobalIPv6Address || '';
  if (isIP(ip) === 0) {
    return report(
      'orchestry.address_mode',
      `is network but the container has no IP address on network ${show(name)}` +
        (name === 'host' ? '; use orchestry.address_mode=host for host networking' : ''),
    );
  }
  return ip;
}

function containerRef(
  c: InspectedContainer,
  labels: Record<string, string>,
  replica: number | null,
): ContainerRef {
  const started = Date.parse(c.State.StartedAt);
  const stopped = c.State.Status === 'exited' || c.State.Status === 'dead';
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    image: c.Config.Image,
    replica,
    state: c.State.Status,
    dockerHealth: c.State.Health?.Status ?? null,
    restartCount: c.RestartCount,
    oomKilled: c.State.OOMKilled,
    exitCode: stopped ? c.State.ExitCode : null,
    // Docker's zero time (never started) parses to year 1.
    startedAt: Number.isFinite(started) && started > 0 ? started : 0,
    labels: { ...labels },
  };
}
