/**
 * Reading one container's labels and inspect output, for the mapping in docker-labels.ts: each
 * label checked with the YAML's rules (every problem reported, naming the label and the value),
 * the address the container is reached at, and the constraints that scope discovery. Pure.
 */
import { isIP } from 'node:net';
import { appName, appNameProblem, containerNames, envName, portRange } from '../config/allowlists.js';
import { bool, num, oneOf, show, type Check, type Report } from '../config/check.js';
import { ADDRESS_MODES, DEFAULT_HEALTH } from '../config/defaults.js';
import { REGEX_FORM } from '../config/expected-body.js';
import { clearCacheCall } from '../config/spec-apps.js';
import { parseHealthOverlay } from '../config/spec-health.js';
import type { ClearCacheCall, HealthCheckConfig, SidecarConfig } from '../config/types.js';
import type { ContainerRef } from '../model.js';
import type { InspectedContainer } from './docker-labels.js';

/** Every label this module reads starts with it. */
export const LABEL_PREFIX = 'orchestry.';

/** Labels outside `orchestry.health.*`, and what each one holds once valid. */
export interface ContainerLabels {
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

const HEALTH_PREFIX = 'orchestry.health.';
const HEALTH_FIELDS = Object.keys(DEFAULT_HEALTH) as (keyof HealthCheckConfig)[];
const DOCKER_NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const DECIMAL = /^-?\d+(\.\d+)?$/;

const networkName: Check<string> = (value, path, report) =>
  typeof value === 'string' && DOCKER_NETWORK_NAME.test(value)
    ? value
    : report(path, `must be a Docker network name (got ${show(value)})`);

/**
 * Whether the labels satisfy every `docker.constraints` entry: `key=value` (that label with
 * that value) or `key` (that label, any value).
 */
export function matchesConstraints(labels: Readonly<Record<string, string>>, constraints: readonly string[]): boolean {
  return constraints.every((c) => {
    const eq = c.indexOf('=');
    return eq < 0 ? Object.hasOwn(labels, c) : labels[c.slice(0, eq)] === c.slice(eq + 1);
  });
}

/** The TCP ports the container exposes (image EXPOSE or --expose), ascending. */
export function exposedTcpPorts(c: InspectedContainer): number[] {
  const ports: number[] = [];
  for (const key of Object.keys(c.Config.ExposedPorts ?? {})) {
    const m = /^(\d{1,5})(?:\/tcp)?$/.exec(key);
    if (m && Number(m[1]) >= 1 && Number(m[1]) <= 65535) ports.push(Number(m[1]));
  }
  return [...new Set(ports)].sort((a, b) => a - b);
}

/** Labels are strings; numbers and booleans are read the way the YAML would have typed them. */
function typed(text: string, kind: 'number' | 'boolean'): unknown {
  if (kind === 'number') return DECIMAL.test(text) ? Number(text) : text;
  return text === 'true' ? true : text === 'false' ? false : text;
}

/** The labels outside `orchestry.health.*`, each checked; undefined when any is bad (all reported). */
export function readLabels(labels: Record<string, string>, report: Report): ContainerLabels | undefined {
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
export function readHealth(
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
export function networkAddress(
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

/** What the pipeline keeps of an inspected container. */
export function containerRef(
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
