/** Apps, backend views and desired sets for the upstream/render tests and the golden files. */
import type { AppConfig, BackendConfig, HealthCheckConfig, UpstreamOptions } from '../../src/config/types.js';
import type { BackendView } from '../../src/health/types.js';
import { backendId } from '../../src/model.js';
import { buildDesiredSet } from '../../src/upstream/desired.js';
import { DEFAULT_APP_DOCKER, DEFAULT_APP_RECOVERY, DEFAULT_HEALTH, DEFAULT_UPSTREAM } from '../../src/config/defaults.js';
import type { DesiredSet } from '../../src/upstream/types.js';

const HEALTH: HealthCheckConfig = DEFAULT_HEALTH;

/** An app; backends as `host:port` strings or full configs. */
export function app(
  name: string,
  backends: Array<string | Partial<BackendConfig> & { host: string; port: number }>,
  upstream: Partial<UpstreamOptions> = {},
): AppConfig {
  return {
    name,
    docker: DEFAULT_APP_DOCKER,
    recovery: DEFAULT_APP_RECOVERY,
    backends: backends.map((b) => {
      if (typeof b !== 'string') return { weight: 1, backup: false, ...b };
      const i = b.lastIndexOf(':');
      return { host: b.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(b.slice(i + 1)), weight: 1, backup: false };
    }),
    health: HEALTH,
    upstream: { ...DEFAULT_UPSTREAM, ...upstream },
  };
}

/** The health stage's view of each backend of `a`; `ejected` lists `host:port`s to eject. */
export function views(a: AppConfig, ejected: string[] = []): BackendView[] {
  return a.backends.map((b) => {
    const address = b.host.includes(':') ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`;
    const out = ejected.includes(address);
    return {
      backendId: backendId(a.name, b.host, b.port),
      app: a.name,
      host: b.host,
      port: b.port,
      weight: b.weight,
      backup: b.backup,
      health: out ? 'unhealthy' : 'healthy',
      breaker: 'closed',
      ejected: out,
      draining: false,
      container: null,
      consecutiveFailures: out ? 3 : 0,
      consecutiveSuccesses: out ? 0 : 1,
      lastProbe: null,
      lastFailure: null,
      since: 0,
    };
  });
}

/** The desired sets that have a golden file in test/golden/<name>.conf. */
export function goldenSets(): Record<string, DesiredSet> {
  const build = (apps: AppConfig[], ejected: string[] = []) =>
    buildDesiredSet(apps, apps.flatMap((a) => views(a, ejected))).set;

  const web = app('web', ['10.0.0.1:8000', '10.0.0.2:8000', 'localhost:8003']);
  const api = app('api', ['10.0.1.1:9000', '[fd00::1]:9000']);
  return {
    normal: build([web, api]),
    'ejected-down': build([web], ['10.0.0.2:8000']),
    'ejected-omit': build([{ ...web, upstream: { ...web.upstream, ejected: 'omit' } }], ['10.0.0.2:8000']),
    panic: build([web, api], ['10.0.0.1:8000', '10.0.0.2:8000', 'localhost:8003']),
    'weights-backup': build(
      [
        app('shop', [
          { host: '10.0.2.1', port: 80, weight: 5 },
          { host: '10.0.2.2', port: 80, weight: 2 },
          { host: '10.0.2.3', port: 80, backup: true },
          { host: '10.0.2.4', port: 80, weight: 3, backup: true },
        ]),
      ],
      ['10.0.2.4:80'],
    ),
    empty: build([app('idle', []), web]),
    balance: build([
      app('rr', ['10.0.3.1:80'], { keepalive: 0 }),
      app('lc', ['10.0.3.2:80'], { balance: 'least_conn' }),
      app('iph', ['10.0.3.3:80', '10.0.3.4:80'], { balance: 'ip_hash', keepalive: 8 }),
      app('rand', ['10.0.3.5:80'], { balance: 'random' }),
    ], ['10.0.3.4:80']),
  };
}
