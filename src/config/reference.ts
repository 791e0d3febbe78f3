/**
 * The shape of the whole YAML document as data: which section table sits where, and which maps
 * and lists hold them. Validation reads its top-level keys from it; the JSON Schema
 * (json-schema.ts) and the key reference (`configKeys`, for the docs) are generated from it, so
 * none of them can drift from what validation accepts.
 */
import { APP_NAME } from './allowlists.js';
import { DURATION_PATTERN, schemaOf, type Check, type JsonSchema, type Section } from './check.js';
import { APP_DOCKER, APP_RECOVERY, BACKENDS_SCHEMA, UPSTREAM } from './spec-apps.js';
import { ALERTING, ESCALATION, RECEIVER, ROUTE } from './spec-alerting.js';
import { ADMIN, LOGGING, PROBES } from './spec-daemon.js';
import { BREAKER, FAILURE_DETECTION } from './spec-detection.js';
import { DOCKER } from './spec-docker.js';
import { HEALTH } from './spec-health.js';
import { TOP_LEVEL } from './instance.js';
import { NGINX } from './spec-nginx.js';
import { PASSIVE, PASSIVE_LATENCY } from './spec-passive.js';
import { RECOVERY } from './spec-recovery.js';
import { STORE } from './spec-store.js';

/** A map with a section table's keys and/or child nodes; absent or null means all defaults. */
export interface ObjectNode {
  kind: 'object';
  meaning: string;
  section?: Section<object>;
  children?: Record<string, ConfigNode>;
  /** Keys that must be present. */
  required?: string[];
}

/** A map of user-chosen names (apps, receivers) to nodes. */
export interface NamedNode {
  kind: 'named';
  meaning: string;
  names: RegExp;
  value: ConfigNode;
}

/** A list of maps (alerting.routes). */
export interface ListNode {
  kind: 'list';
  meaning: string;
  item: ObjectNode;
}

/** A value whose shape is given as JSON Schema directly (a list of backends). */
export interface ValueNode {
  kind: 'value';
  meaning: string;
  schema: JsonSchema;
  default: unknown;
}

/** One place in the document. */
export type ConfigNode = ObjectNode | NamedNode | ListNode | ValueNode;

const section = <T extends object>(meaning: string, s: Section<T>, required?: string[]): ObjectNode => ({
  kind: 'object',
  meaning,
  section: s as Section<object>,
  ...(required ? { required } : {}),
});

const HEALTH_MEANING = "Health check; each field set here replaces the same field from defaults.health.";

/** The whole configuration document. */
export const CONFIG_TREE: ObjectNode & { children: Record<string, ConfigNode> } = {
  kind: 'object',
  meaning: 'orchestry-sidecar configuration.',
  section: TOP_LEVEL as Section<object>,
  children: {
    defaults: {
      kind: 'object',
      meaning: 'Defaults applied under every app.',
      children: { health: section("Any health field; applied under every app's health.", HEALTH) },
    },
    apps: {
      kind: 'named',
      meaning: 'App name (also its nginx upstream name) to app; at least one unless docker.enabled (apps from container labels only).',
      names: APP_NAME,
      value: {
        kind: 'object',
        meaning: 'One app: a group of interchangeable backends, one nginx upstream.',
        children: {
          backends: {
            kind: 'value',
            meaning: 'Static backends: "host:port", "host" (port from health.port), "[ipv6]:port", or {address, weight, backup}.',
            schema: BACKENDS_SCHEMA,
            default: [],
          },
          health: section(HEALTH_MEANING, HEALTH),
          upstream: section("How the app's nginx upstream is rendered.", UPSTREAM),
          docker: section("The app's Docker options (or its containers' labels).", APP_DOCKER),
          recovery: section("The app's recovery options (or its containers' labels).", APP_RECOVERY),
        },
      },
    },
    docker: section('Backends from Docker containers by label, and the Engine connection.', DOCKER),
    recovery: section('Recovery through the Docker Engine, within budgets.', RECOVERY),
    store: section('The embedded SQLite state store.', STORE),
    alerting: {
      kind: 'object',
      meaning: 'Notifications, routes and escalation.',
      section: ALERTING as Section<object>,
      children: {
        receivers: {
          kind: 'named',
          meaning: 'Receiver name to receiver.',
          names: APP_NAME,
          value: section('Where notifications go.', RECEIVER, ['type', 'url']),
        },
        routes: { kind: 'list', meaning: 'Which alerts go to which receivers.', item: section('One route.', ROUTE, ['receivers']) },
        escalation: section('Alerts that keep firing go to more receivers.', ESCALATION),
      },
    },
    breaker: section("The seed's circuit breaker, per backend.", BREAKER),
    failure_detection: section("The seed's failure detector thresholds.", FAILURE_DETECTION),
    passive: {
      kind: 'object',
      meaning: "Evidence from nginx's own traffic (its access log over syslog) and outlier ejection.",
      section: PASSIVE as Section<object>,
      children: { latency: section('A backend far slower than the rest of its app.', PASSIVE_LATENCY) },
    },
    nginx: section('Where nginx and its files are, and how it is reloaded.', NGINX),
    admin: section('The admin API, metrics and status page.', ADMIN),
    probes: section('Probe scheduling across all backends.', PROBES),
    logging: section('Logging.', LOGGING),
  },
};

/** One key of the configuration, for a reference table. */
export interface ConfigKey {
  /** Dotted path; `<name>` stands for an app or receiver name, `[]` for a list item. */
  key: string;
  /** What values it takes, e.g. `integer 1..65535` or `HTTP | TCP`. */
  type: string;
  /** `undefined` where the key is required. */
  default: unknown;
  required: boolean;
  meaning: string;
}

/** Every key of the configuration with its type, default and meaning, in document order. */
export function configKeys(): ConfigKey[] {
  const out: ConfigKey[] = [];
  walk(CONFIG_TREE, '', out);
  return out;
}

function walk(node: ConfigNode, path: string, out: ConfigKey[]): void {
  const at = (key: string) => (path ? `${path}.${key}` : key);
  if (node.kind === 'named') return walk(node.value, `${path}.<name>`, out);
  if (node.kind === 'list') return walk(node.item, `${path}[]`, out);
  if (node.kind === 'value') {
    out.push({ key: path, type: typeText(node.schema), default: node.default, required: false, meaning: node.meaning });
    return;
  }
  const required = new Set(node.required ?? []);
  if (node.section) {
    const { fields, defaults } = node.section as Section<Record<string, unknown>>;
    for (const [key, field] of Object.entries(fields)) {
      out.push({
        key: at(key),
        type: typeText(schemaOf(field.check as Check<unknown>)),
        default: required.has(key) ? undefined : defaults[key],
        required: required.has(key),
        meaning: field.meaning,
      });
    }
  }
  for (const [key, child] of Object.entries(node.children ?? {})) walk(child, at(key), out);
}

/** A short human description of a JSON Schema fragment. */
export function typeText(schema: JsonSchema): string {
  const anyOf = schema.anyOf as JsonSchema[] | undefined;
  if (anyOf) {
    const listed = anyOf[0]?.enum as unknown[] | undefined;
    // oneOf(): the listed spellings, then the any-case pattern.
    if (listed && anyOf.length === 2 && anyOf[1]?.pattern) return listed.join(' | ');
    // duration(): a number of the key's unit with its bounds, or a string with a unit.
    if (anyOf.length === 2 && anyOf[1]?.pattern === DURATION_PATTERN) return `duration${bounds(anyOf[0] ?? {})}`;
    return anyOf.map(typeText).join(' | ');
  }
  if (schema.enum) return (schema.enum as unknown[]).join(' | ');
  if (Array.isArray(schema.type)) return schema.type.map((type) => typeText({ ...schema, type })).join(' | ');
  const type = schema.type as string | undefined;
  if (type === 'integer' || type === 'number') return `${type}${bounds(schema)}`;
  if (type === 'array') {
    const items = schema.items as JsonSchema | undefined;
    return items && Object.keys(items).length > 0 ? `list of ${typeText(items)}` : 'list';
  }
  if (type === 'object') return 'map';
  return type ?? 'any';
}

function bounds(schema: JsonSchema): string {
  const { minimum: min, maximum: max, exclusiveMinimum: above } = schema as Record<string, number | undefined>;
  if (above !== undefined) return max !== undefined ? ` > ${above}, ≤ ${max}` : ` > ${above}`;
  if (min !== undefined && max !== undefined) return ` ${min}..${max}`;
  if (min !== undefined) return ` ≥ ${min}`;
  if (max !== undefined) return ` ≤ ${max}`;
  return '';
}
