import { expect, test } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import type { SidecarConfig } from '../../src/config/types.js';
import { snapshotFromConfig } from '../../src/discovery/config-source.js';

function config(raw: unknown): SidecarConfig {
  const result = parseConfig(raw);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

test('lists every static backend of every app under the file source', () => {
  const cfg = config({
    apps: {
      web: {
        backends: ['10.0.0.1:8001', { address: '[::1]:8002', weight: 3, backup: true }],
        health: { path: '/ready' },
      },
      cache: { backends: ['redis'], health: { protocol: 'TCP', port: 6379 } },
      empty: {},
    },
  });
  const snapshot = snapshotFromConfig(cfg);
  expect(snapshot.source).toBe('file');
  expect(snapshot.backends.map(({ health: _health, ...rest }) => rest)).toEqual([
    { id: 'web/10.0.0.1:8001', app: 'web', host: '10.0.0.1', port: 8001, weight: 1, backup: false, source: 'file' },
    { id: 'web/[::1]:8002', app: 'web', host: '::1', port: 8002, weight: 3, backup: true, source: 'file' },
    { id: 'cache/redis:6379', app: 'cache', host: 'redis', port: 6379, weight: 1, backup: false, source: 'file' },
  ]);
});

test("gives each backend its own app's health config", () => {
  const cfg = config({
    apps: {
      web: { backends: ['a:1'], health: { path: '/ready' } },
      cache: { backends: ['b:2'], health: { protocol: 'TCP' } },
    },
  });
  const [web, cache] = snapshotFromConfig(cfg).backends;
  expect(web?.health).toEqual(cfg.apps[0]?.health);
  expect(web?.health.path).toBe('/ready');
  expect(cache?.health.protocol).toBe('TCP');
});

test('a config whose apps have no backends gives an empty snapshot, not a missing one', () => {
  const cfg = config({ apps: { web: {} } });
  expect(snapshotFromConfig(cfg)).toEqual({ source: 'file', apps: cfg.apps, backends: [] });
});
