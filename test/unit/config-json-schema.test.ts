import { describe, expect, it } from 'vitest';
import { configJsonSchema, JSON_SCHEMA_DRAFT } from '../../src/config/json-schema.js';
import { configKeys } from '../../src/config/reference.js';
import { parseConfig } from '../../src/config/schema.js';
import type { SidecarConfig } from '../../src/config/types.js';
import { formatIssue } from '../../src/errors.js';
import { schemaErrors } from '../helpers/json-schema-lite.js';

type Schema = Record<string, unknown>;

const schema = configJsonSchema();

function issues(raw: unknown): string[] {
  const result = parseConfig(raw);
  return result.ok ? [] : result.issues.map(formatIssue);
}

/** The name used for each map of user-chosen names (apps, receivers). */
const NAMES: Record<string, string> = { apps: 'web', receivers: 'ops' };
/** Values of the required keys, which have no default. */
const SAMPLES: Record<string, unknown> = {
  'alerting.receivers.<name>.type': 'webhook',
  'alerting.receivers.<name>.url': 'http://alerts.example/',
  'alerting.routes[].receivers': ['ops'],
};

function isObject(s: Schema): boolean {
  return Array.isArray(s.type) ? (s.type as string[]).includes('object') : s.type === 'object';
}

/** A map of the config's own keys (a section), not of user-chosen names or header names. */
const isSection = (s: Schema | undefined): boolean => s !== undefined && isObject(s) && s.properties !== undefined;

interface Walk {
  /** Key paths as configKeys() writes them (`apps.<name>.health.port`, `alerting.routes[].apps`). */
  keys: string[];
  /** Paths of the sections as parseConfig writes them (`apps.web.health`, `alerting.routes[0]`). */
  sections: string[];
}

/** A document that sets every key the schema names, a leaf to its default (or sample). */
function everyKey(s: Schema, key: string, path: string, walk: Walk): unknown {
  const at = (base: string, k: string) => (base ? `${base}.${k}` : k);
  const items = s.items as Schema | undefined;
  const named = s.additionalProperties as Schema | undefined;
  if (items && isSection(items)) return [everyKey(items, `${key}[]`, `${path}[0]`, walk)];
  if (s.propertyNames && named && isSection(named)) {
    const name = NAMES[key.split('.').pop() ?? ''] ?? 'x';
    return { [name]: everyKey(named, `${key}.<name>`, at(path, name), walk) };
  }
  if (!isSection(s)) {
    walk.keys.push(key);
    return key in SAMPLES ? SAMPLES[key] : s.default;
  }
  walk.sections.push(path);
  const out: Record<string, unknown> = {};
  for (const [k, sub] of Object.entries(s.properties as Record<string, Schema>)) {
    out[k] = everyKey(sub, at(key, k), at(path, k), walk);
  }
  return out;
}

function withKey(doc: unknown, path: string, key: string, value: unknown): unknown {
  const copy = structuredClone(doc) as Record<string, unknown>;
  let at: Record<string, unknown> = copy;
  for (const part of path.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== '')) {
    at = at[part] as Record<string, unknown>;
  }
  at[key] = value;
  return copy;
}

describe('the JSON Schema of the configuration', () => {
  const walk: Walk = { keys: [], sections: [] };
  const full = everyKey(schema, '', '', walk);

  it('is a draft-07 schema of a map that requires apps, or docker.enabled for apps from labels only', () => {
    expect(schema.$schema).toBe(JSON_SCHEMA_DRAFT);
    expect(schema.type).toBe('object');
    for (const doc of [{ docker: { enabled: true } }, { apps: {}, docker: { enabled: true } }, { apps: { web: {} } }]) {
      expect(schemaErrors(schema, doc), JSON.stringify(doc)).toEqual([]);
      expect(issues(doc), JSON.stringify(doc)).toEqual([]);
    }
  });

  it('accepts a document that sets every key it names, and so does validation', () => {
    expect(schemaErrors(schema, full)).toEqual([]);
    expect(issues(full)).toEqual([]);
  });

  it('closes every map: a key it does not name is rejected by it and is an unknown key to validation', () => {
    expect(walk.sections.length).toBeGreaterThan(15);
    for (const path of walk.sections) {
      const doc = withKey(full, path, 'not_a_key', 1);
      expect(schemaErrors(schema, doc), path).not.toEqual([]);
      expect(issues(doc), path).toContain(`${path ? `${path}.` : ''}not_a_key: unknown key`);
    }
  });

  it('accepts the README example and every alternative form validation accepts', () => {
    const doc = {
      defaults: { health: { period_seconds: 10, timeout_seconds: 2, initial_delay_seconds: 5 } },
      apps: {
        web: {
          backends: ['10.0.0.11:8000', { address: '10.0.0.13:8000', weight: 2 }, { address: '[fd00::14]:8000', backup: true }],
          health: { path: '/health?deep=1', expected_status_codes: [200, 204], expected_body: '/"status":\\s*"ok"/', headers: { 'X-Probe': 'orchestry' } },
          upstream: { keepalive: 64, balance: 'LEAST_CONN' },
          docker: { port_range: '20000-20099', address_mode: 'host' },
          recovery: { dependencies: 'cache-1, db-1', clear_cache: 'POST /admin/cache/clear' },
        },
        cache: {
          backends: ['redis-1', 'redis-2'],
          health: { protocol: 'tcp', port: 6379, probe_data: 'PING\r\n', expected_response: '+PONG' },
          upstream: { ejected: 'omit' },
          docker: { port_range: [20000, 20099] },
          recovery: { dependencies: ['db-1'], clear_cache: { method: 'put', path: '/flush' } },
        },
        empty: null,
      },
      alerting: { receivers: { am: { type: 'alertmanager', url: 'http://alertmanager:9093' } }, routes: [{ receivers: ['am'] }] },
      breaker: { failure_threshold: 5, recovery_timeout_seconds: 30 },
      recovery: { mode: 'dry-run' },
      nginx: null,
      admin: { listen: '127.0.0.1:9180' },
      logging: { level: 'INFO' },
    };
    expect(issues(doc)).toEqual([]);
    expect(schemaErrors(schema, doc)).toEqual([]);
  });

  it.each([
    ['no apps', {}],
    ['an empty apps map', { apps: {} }],
    ['an empty apps map without Docker discovery', { apps: {}, docker: { enabled: false } }],
    ['an app name nginx would not take', { apps: { 'web app': {} } }],
    ['an unknown enum value', { apps: { web: { health: { protocol: 'UDP' } } } }],
    ['a port out of range', { apps: { web: { health: { port: 0 } } } }],
    ['an unknown key in a backend map', { apps: { web: { backends: [{ address: 'a:1', wieght: 2 }] } } }],
    ['a probe path that changes the host', { apps: { web: { health: { path: '//evil.example/' } } } }],
    ['a receiver without a url', { apps: { web: {} }, alerting: { receivers: { ops: { type: 'webhook' } } } }],
  ])('rejects %s, as validation does', (_, doc) => {
    expect(issues(doc)).not.toEqual([]);
    expect(schemaErrors(schema, doc)).not.toEqual([]);
  });
});

describe('configKeys', () => {
  const walk: Walk = { keys: [], sections: [] };
  everyKey(schema, '', '', walk);
  const minimal = parseConfig({
    apps: { web: {} },
    alerting: { receivers: { ops: { type: 'webhook', url: 'http://a.example/' } }, routes: [{ receivers: ['ops'] }] },
  });
  if (!minimal.ok) throw new Error('minimal config rejected');

  /** The parsed value at a configKeys() path, with apps and receivers looked up by name. */
  function parsedAt(config: SidecarConfig, key: string): unknown {
    let at: unknown = config;
    for (const part of key.replace(/\[\]/g, '.0').split('.')) {
      if (part === '<name>') {
        const list = at as Array<{ name: string }>;
        at = list.find((x) => x.name === 'web' || x.name === 'ops');
      } else {
        at = (at as Record<string, unknown>)[part];
      }
    }
    return at;
  }

  it('lists exactly the keys the JSON Schema names, in the same order', () => {
    expect(configKeys().map((k) => k.key)).toEqual(walk.keys);
  });

  it('gives every key a meaning, a type, and the default validation fills in', () => {
    for (const k of configKeys()) {
      expect(k.meaning, k.key).toMatch(/\S/);
      expect(k.type, k.key).toMatch(/\S/);
      if (!k.required) expect(parsedAt(minimal.config, k.key), k.key).toEqual(k.default);
    }
  });

  it('marks the keys a receiver and a route must have as required', () => {
    expect(configKeys().filter((k) => k.required).map((k) => k.key)).toEqual([
      'alerting.receivers.<name>.type',
      'alerting.receivers.<name>.url',
      'alerting.routes[].receivers',
    ]);
  });

  it('describes types in words a reference table can show', () => {
    const type = (key: string) => configKeys().find((k) => k.key === key)?.type;
    expect(type('apps.<name>.health.port')).toBe('integer 1..65535');
    expect(type('apps.<name>.health.protocol')).toBe('HTTP | TCP');
    expect(type('apps.<name>.health.period_seconds')).toBe('duration > 0.1, ≤ 86400');
    expect(type('apps.<name>.health.timeout_seconds')).toBe('duration 0.1..86400');
    expect(type('nginx.prefix')).toBe('string | null');
    expect(type('alerting.routes[].failure_types')).toContain('list of health_check_failed | ');
  });
});
