/**
 * Pure mapping from `docker inspect` output to backends: no I/O, so every label rule is tested
 * with plain JSON fixtures. Labels are untrusted input that ends up in nginx's config and in
 * probe requests: every value goes through the same checks as the YAML file (label-values.ts),
 * and a container with any bad label is left out whole, with every problem named (label and
 * value). Beyond single values, a container is refused when it would:
 * - join an app the YAML defines without `apps.<name>.docker.accept_containers: true`;
 * - name an app that differs from another only in case (nginx reads `WEB` and `web` as one
 *   upstream, and refuses the whole file);
 * - make an app of backup servers only (nginx refuses an upstream without a primary server);
 * - be reached on host networking at a port the sidecar or nginx listens on (the sidecar's own
 *   ports and `docker.forbidden_ports`), or at a port nobody named.
 */
import { show, type Report } from '../config/check.js';
import { DEFAULT_APP_DOCKER, DEFAULT_APP_RECOVERY, DEFAULT_HEALTH } from '../config/defaults.js';
import { defaultApp } from '../config/spec-apps.js';
import type { AppConfig, AppDockerOptions, AppRecoveryOptions, HealthCheckConfig, SidecarConfig } from '../config/types.js';
import { backendId, formatAddress, type Backend, type ContainerRef } from '../model.js';
import {
  containerRef,
  exposedTcpPorts,
  matchesConstraints,
  networkAddress,
  readHealth,
  readLabels,
  type ContainerLabels,
} from './label-values.js';

export { LABEL_PREFIX, matchesConstraints } from './label-values.js';

/** Source name of snapshots built from Docker containers. */
export const DOCKER_SOURCE_NAME = 'docker';
/** Only containers with this label set to `true` are considered (also the list filter). */
export const ENABLE_LABEL = 'orchestry.enable';

/**
 * The part of `docker inspect` (dockerode's ContainerInspectInfo) that discovery reads; a
 * structural subset, so real inspect output and hand-written fixtures both fit.
 */
export interface InspectedContainer {
  /** A Swarm service standing in for its tasks (swarm-labels.ts): its tasks' ports are checked there. */
  SwarmService?: true;
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
    /** `"8080/tcp": {}` per port the image or `--expose` declares. */
    ExposedPorts?: Record<string, unknown> | null;
  };
  NetworkSettings: {
    Networks?: Record<string, { IPAddress: string; GlobalIPv6Address?: string }> | null;
  };
  /**
   * Where it answers in address mode host, when not at `docker.host_address`: a Swarm task's
   * node address (swarm-labels.ts). Never set by `docker inspect`.
   */
  HostAddress?: string;
}

/** What discovery needs besides the containers. */
export interface LabelContext {
  config: SidecarConfig;
  /**
   * The YAML's `defaults.health` over the seed defaults: the base of apps the YAML does not
   * define. Defaults to the seed defaults (DEFAULT_HEALTH).
   */
  defaultHealth?: HealthCheckConfig;
  /**
   * Ports the sidecar itself listens on, each with what listens there (`the admin API
   * (admin.listen)`): no container on host networking is routed to them.
   */
  ownPorts?: ReadonlyMap<number, string>;
  /**
   * Apps only labels define that were seen before: one of them keeps its name against a new
   * app that differs only in case.
   */
  knownApps?: readonly string[];
}

/** A container left out, with every problem of its labels. */
export interface RejectedContainer {
  containerId: string;
  /** Without the leading '/'. */
  containerName: string;
  /** Each names the label and the bad value, e.g. `orchestry.port: must be an integer (got "80;")`. */
  errors: string[];
  /** A Swarm service or task (swarm-labels.ts) rather than a container; its id and name then. */
  kind?: 'service' | 'task';
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

/** App-level settings from labels, for an app only labels define. */
export interface LabelAppOptions {
  docker: Partial<AppDockerOptions>;
  recovery: Partial<AppRecoveryOptions>;
  backup_app?: string;
}

/** One enabled container in scope, as its labels read. */
interface Candidate {
  c: InspectedContainer;
  ref: ContainerRef;
  labels: Record<string, string>;
  parsed: ContainerLabels | undefined;
  health: HealthCheckConfig | undefined;
  errors: string[];
  report: Report;
}

/**
 * Maps inspected containers to backends of the `docker` source. Containers without
 * `orchestry.enable=true`, or outside `docker.constraints`, are ignored; ones with a bad label
 * or breaking a rule above are rejected whole; ones not running are not backends but are still
 * listed in `containers`.
 */
export function containersToBackends(
  containers: readonly InspectedContainer[],
  ctx: LabelContext,
): LabelMapping {
  const { config } = ctx;
  const defaultHealth = ctx.defaultHealth ?? DEFAULT_HEALTH;
  const yamlApps = new Map(config.apps.map((a) => [a.name, a]));
  // Code-unit order, not locale order: the same containers must map the same way everywhere.
  const key = (c: InspectedContainer) => `${c.Name}\u0000${c.Id}`;
  const sorted = [...containers].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const candidates: Candidate[] = [];
  for (const c of sorted) {
    const labels = c.Config.Labels ?? {};
    if (labels[ENABLE_LABEL] !== 'true' || !matchesConstraints(labels, config.docker.constraints)) continue;
    candidates.push(readCandidate(c, labels, yamlApps, defaultHealth));
  }
  checkAppNames(candidates, yamlApps, ctx.knownApps ?? []);
  checkBackupOnly(candidates, yamlApps);

  const out: LabelMapping = { backends: [], apps: [], rejected: [], containers: [] };
  const labelApps = new Map<string, LabelAppOptions>();
  /** backend id -> container name that claimed it first. */
  const claimed = new Map<string, string>();
  for (const cand of candidates) {
    const { parsed, health, errors, ref } = cand;
    let backend: Backend | undefined;
    // Only a running container has an address; a stopped one is still watched for failures.
    if (parsed && health && errors.length === 0 && ref.state === 'running') {
      backend = backendOf(cand, parsed, health, yamlApps.get(parsed.app), ctx, claimed);
    } else if (parsed && health && errors.length === 0 && !cand.c.SwarmService && addressModeOf(parsed, yamlApps.get(parsed.app), config) === 'host') {
      // Its port is checked all the same: a container created with the admin port and not yet
      // started would otherwise define its app, remembered as a placeholder upstream ever after.
      hostModePort(cand, parsed, health, ctx);
    }
    if (errors.length > 0 || !parsed || !health) {
      out.rejected.push({ containerId: cand.c.Id, containerName: ref.name, errors });
      continue;
    }
    if (backend) out.backends.push(backend);
    out.containers.push({ app: parsed.app, container: ref });
    if (!yamlApps.has(parsed.app)) mergeAppOptions(labelApps, parsed);
  }
  out.apps = labelOnlyApps(labelApps, config, defaultHealth);
  return out;
}

/** One container's labels read and checked on their own (rules across containers come later). */
function readCandidate(
  c: InspectedContainer,
  labels: Record<string, string>,
  yamlApps: ReadonlyMap<string, AppConfig>,
  defaultHealth: HealthCheckConfig,
): Candidate {
  const errors: string[] = [];
  const report: Report = (label, message) => {
    errors.push(`${label}: ${message}`);
    return undefined;
  };
  const parsed = readLabels(labels, report);
  const yamlApp = parsed ? yamlApps.get(parsed.app) : undefined;
  if (parsed && yamlApp && !yamlApp.docker.accept_containers) {
    report(
      'orchestry.app',
      `app ${show(parsed.app)} is defined in the YAML, which does not let containers join it ` +
        `(set apps.${parsed.app}.docker.accept_containers: true) (got ${show(parsed.app)})`,
    );
  }
  const health = readHealth(labels, yamlApp?.health ?? defaultHealth, report);
  const balance = yamlApp?.upstream.balance;
  if (parsed?.backup && (balance === 'ip_hash' || balance === 'random')) {
    report(
      'orchestry.backup',
      `cannot be used with balance ${balance} of app ${show(parsed.app)} (nginx rejects it) (got "true")`,
    );
  }
  return { c, ref: containerRef(c, labels, parsed?.replica ?? null), labels, parsed, health, errors, report };
}

/**
 * nginx compares upstream names ignoring case: an app name that differs from another only in
 * case would make nginx refuse the whole file ("duplicate upstream"). A YAML app keeps its name;
 * among apps only labels define, one seen before (`known`) keeps it, else the first by container.
 */
function checkAppNames(candidates: Candidate[], yamlApps: ReadonlyMap<string, AppConfig>, known: readonly string[]): void {
  const owner = new Map<string, string>();
  for (const name of yamlApps.keys()) owner.set(name.toLowerCase(), name);
  for (const name of known) if (!owner.has(name.toLowerCase())) owner.set(name.toLowerCase(), name);
  for (const { parsed } of candidates) {
    if (parsed && !owner.has(parsed.app.toLowerCase())) owner.set(parsed.app.toLowerCase(), parsed.app);
  }
  for (const { parsed, report } of candidates) {
    const taken = parsed ? owner.get(parsed.app.toLowerCase()) : undefined;
    if (parsed && taken !== undefined && taken !== parsed.app) {
      report(
        'orchestry.app',
        `conflicts with app ${show(taken)}: nginx compares upstream names ignoring case (got ${show(parsed.app)})`,
      );
    }
  }
}

/**
 * An app whose every server would be a backup is refused by nginx ("no servers in upstream"):
 * when an app has no primary static backend and none of its containers is a primary, its
 * backup containers are refused.
 */
function checkBackupOnly(candidates: Candidate[], yamlApps: ReadonlyMap<string, AppConfig>): void {
  const primaries = new Set<string>();
  for (const app of yamlApps.values()) if (app.backends.some((b) => !b.backup)) primaries.add(app.name);
  for (const { parsed, errors } of candidates) if (parsed && errors.length === 0 && !parsed.backup) primaries.add(parsed.app);
  for (const { parsed, errors, report } of candidates) {
    if (parsed?.backup && errors.length === 0 && !primaries.has(parsed.app)) {
      report(
        'orchestry.backup',
        `every server of app ${show(parsed.app)} would be a backup; nginx needs at least one that is not (got "true")`,
      );
    }
  }
}

/** The backend of a running candidate, or undefined after reporting why it has none. */
function backendOf(
  cand: Candidate,
  parsed: ContainerLabels,
  health: HealthCheckConfig,
  yamlApp: AppConfig | undefined,
  ctx: LabelContext,
  claimed: Map<string, string>,
): Backend | undefined {
  const { config } = ctx;
  const { c, report, ref } = cand;
  const mode = addressModeOf(parsed, yamlApp, config);
  const host = mode === 'host' ? c.HostAddress ?? config.docker.host_address : networkAddress(c, parsed.network, config, report);
  const port = mode === 'host' ? hostModePort(cand, parsed, health, ctx) : (parsed.port ?? health.port);
  if (host === undefined || port === undefined) return undefined;
  const id = backendId(parsed.app, host, port);
  const owner = claimed.get(id);
  if (owner !== undefined) {
    report(
      'orchestry.port',
      `address ${formatAddress(host, port)} of app ${show(parsed.app)} is already used by container ${show(owner)}`,
    );
    return undefined;
  }
  claimed.set(id, ref.name);
  return {
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

/** How the container is addressed: its label, else its YAML app's setting, else docker's. */
function addressModeOf(parsed: ContainerLabels, yamlApp: AppConfig | undefined, config: SidecarConfig) {
  return parsed.address_mode ?? yamlApp?.docker.address_mode ?? config.docker.address_mode;
}

/**
 * The port of a container on host networking: the one a label names, else the container's only
 * exposed TCP port. Two containers there cannot share a port, so a default (health.port) would
 * route to whatever happens to listen on it; a port the sidecar or nginx listens on would loop
 * the app's traffic into them.
 */
function hostModePort(cand: Candidate, parsed: ContainerLabels, health: HealthCheckConfig, ctx: LabelContext): number | undefined {
  const { labels, report } = cand;
  let label = 'orchestry.port';
  let port: number;
  if (parsed.port !== null) {
    port = parsed.port;
  } else if (labels['orchestry.health.port'] !== undefined) {
    label = 'orchestry.health.port';
    port = health.port;
  } else {
    const exposed = exposedTcpPorts(cand.c);
    if (exposed.length !== 1) {
      const which = exposed.length === 0 ? 'exposes no port' : `exposes several ports (${exposed.join(', ')})`;
      return report(label, `is required for a container on host networking (address mode host) unless it exposes exactly one TCP port; it ${which}`);
    }
    port = exposed[0] as number;
  }
  const own = ctx.ownPorts?.get(port);
  const why = own ?? (ctx.config.docker.forbidden_ports.includes(port) ? "in docker.forbidden_ports (nginx's own listening ports)" : null);
  if (why !== null) {
    return report(label, `port ${port} is ${why}; no container on host networking is routed there (got "${port}")`);
  }
  return port;
}

/** The apps only labels define: defaults, with the app-level settings their labels gave. */
function labelOnlyApps(
  labelApps: ReadonlyMap<string, LabelAppOptions>,
  config: SidecarConfig,
  defaultHealth: HealthCheckConfig,
): AppConfig[] {
  return [...labelApps].map(([name, options]) => labelOnlyApp(name, config, defaultHealth, options));
}

/** An app only labels define (or one seen before and remembered), with its label settings. */
export function labelOnlyApp(
  name: string,
  config: SidecarConfig,
  defaultHealth: HealthCheckConfig,
  options: LabelAppOptions = { docker: {}, recovery: {} },
): AppConfig {
  const app = defaultApp(
    name,
    config.nginx,
    defaultHealth,
    // Its containers are all it has.
    { ...DEFAULT_APP_DOCKER, ...options.docker, accept_containers: true },
    { ...DEFAULT_APP_RECOVERY, ...options.recovery },
  );
  if (options.backup_app !== undefined) app.upstream.backup_app = options.backup_app;
  return app;
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
