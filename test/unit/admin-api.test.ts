import { describe, expect, it } from 'vitest';
import type { Alerting } from '../../src/alerting/alerting.js';
import type { HealthRegistry } from '../../src/health/registry.js';
import { createAdminApi } from '../../src/observability/api.js';
import type { StateStore } from '../../src/store/types.js';
import { app, views } from '../helpers/fixtures.js';

function api(panicking: string[] = []) {
  const web = app('web', ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
  const api = app('api', ['10.0.1.1:80']);
  const byApp = new Map([
    ['web', views(web, ['10.0.0.2:80'])],
    ['api', views(api, ['10.0.1.1:80'])],
  ]);
  const asked: string[] = [];
  const registry = {
    viewsOf: (name: string) => {
      asked.push(name);
      return byApp.get(name) ?? [];
    },
  } as unknown as HealthRegistry;
  const callbacks = createAdminApi({
    apps: () => [web, api],
    registry,
    panicking: (name) => panicking.includes(name),
    store: { status: () => ({ state: 'disabled', path: null, error: null }) } as unknown as StateStore,
    rejected: () => [],
    recovery: () => ({}),
    drained: () => undefined,
    alerting: {} as Alerting,
    alertingEnabled: () => false,
    nginxMode: () => null,
    passive: () => null,
    instance: null,
  });
  return { getApps: callbacks.getApps, asked };
}

describe('admin API /api/v1/apps', () => {
  it('answers for one app without building the views of the others', () => {
    const { getApps, asked } = api();
    const body = getApps({ app: 'api' }) as { apps: { name: string; backends: unknown[] }[] };
    expect(body.apps.map((a) => a.name)).toEqual(['api']);
    expect(body.apps[0]!.backends).toHaveLength(1);
    expect(asked).toEqual(['api']);
  });

  it('has no answer for an unknown app (the server makes it a 404)', () => {
    expect(api().getApps({ app: 'nope' })).toBeUndefined();
  });

  it('summarises each app as counts instead of every backend', () => {
    const body = api(['api']).getApps({ summary: true }) as { apps: unknown[] };
    expect(body.apps).toEqual([
      { name: 'web', panic: false, protocol: 'HTTP', counts: { backends: 3, routed: 2, ejected: 1, draining: 0, healthy: 2, unhealthy: 1, unknown: 0, breaker_open: 0 } },
      // In panic every backend is routed, ejected or not.
      { name: 'api', panic: true, protocol: 'HTTP', counts: { backends: 1, routed: 1, ejected: 1, draining: 0, healthy: 0, unhealthy: 1, unknown: 0, breaker_open: 0 } },
    ]);
  });
});
