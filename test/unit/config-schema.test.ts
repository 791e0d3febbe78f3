import { describe, expect, test } from 'vitest';
import { parseAddress } from '../../src/config/allowlists.js';
import { DEFAULT_HEALTH, parseConfig } from '../../src/config/schema.js';
import {
  DEFAULT_ADMIN,
  DEFAULT_ALERTING,
  DEFAULT_APP_DOCKER,
  DEFAULT_APP_RECOVERY,
  DEFAULT_BACKEND,
  DEFAULT_BREAKER,
  DEFAULT_DOCKER,
  DEFAULT_FAILURE_DETECTION,
  DEFAULT_LOGGING,
  DEFAULT_NGINX,
  DEFAULT_PASSIVE,
  DEFAULT_PROBES,
  DEFAULT_RECOVERY,
  DEFAULT_STORE,
  DEFAULT_UPSTREAM,
} from '../../src/config/defaults.js';
import type { SidecarConfig } from '../../src/config/types.js';
import { formatIssue } from '../../src/errors.js';

/** A minimal valid config with `app` merged into apps.web. */
function withApp(app: Record<string, unknown>, rest: Record<string, unknown> = {}): unknown {
  return { apps: { web: { backends: ['127.0.0.1:8001'], ...app } }, ...rest };
}

function valid(raw: unknown, baseDir?: string): SidecarConfig {
  const result = parseConfig(raw, baseDir ? { baseDir } : {});
  if (!result.ok) throw new Error(result.issues.map(formatIssue).join('\n'));
  return result.config;
}

function issues(raw: unknown): string[] {
  const result = parseConfig(raw);
  return result.ok ? [] : result.issues.map(formatIssue);
}

function web(raw: unknown) {
  const app = valid(raw).apps[0];
  if (!app) throw new Error('no app');
  return app;
}

describe('defaults', () => {
  // The documented value of every default is checked against docs/configuration.md, which users
  // read, by test/integration/docs.test.ts; here, what the defaults must satisfy whatever values.

  test("health defaults time like a load balancer: HAProxy's inter 2s fall 3 rise 2, faster probes below the period", () => {
    const h = DEFAULT_HEALTH;
    expect([h.period_seconds, h.failure_threshold, h.success_threshold]).toEqual([2, 3, 2]);
    expect(h.timeout_seconds).toBeLessThan(h.period_seconds);
    expect(h.fast_period_seconds).toBeLessThanOrEqual(h.ejected_period_seconds);
    expect(h.ejected_period_seconds).toBeLessThan(h.period_seconds);
    // A new backend is routed at once: a delay would only postpone the evidence against it.
    expect(h.initial_delay_seconds).toBe(0);
  });

  test('recovery defaults to dry-run: nothing acts on containers until the config says so', () => {
    expect(DEFAULT_RECOVERY.mode).toBe('dry-run');
  });

  test('fills every section, and every app, with the defaults module', () => {
    expect(valid(withApp({}))).toEqual({
      instance: null,
      defaults: { health: DEFAULT_HEALTH },
      apps: [
        {
          name: 'web',
          backends: [{ host: '127.0.0.1', port: 8001, ...DEFAULT_BACKEND }],
          docker: DEFAULT_APP_DOCKER,
          recovery: DEFAULT_APP_RECOVERY,
          health: DEFAULT_HEALTH,
          upstream: DEFAULT_UPSTREAM,
        },
      ],
      docker: DEFAULT_DOCKER,
      recovery: DEFAULT_RECOVERY,
      store: DEFAULT_STORE,
      alerting: DEFAULT_ALERTING,
      breaker: DEFAULT_BREAKER,
      failure_detection: DEFAULT_FAILURE_DETECTION,
      nginx: DEFAULT_NGINX,
      passive: DEFAULT_PASSIVE,
      admin: DEFAULT_ADMIN,
      probes: DEFAULT_PROBES,
      logging: DEFAULT_LOGGING,
    });
  });

  test('layers app health over defaults.health over the seed defaults, field by field', () => {
    const config = valid({
      defaults: { health: { period_seconds: 10, timeout_seconds: 2, headers: { 'X-A': '1' } } },
      apps: {
        web: { health: { timeout_seconds: 3, headers: { 'X-B': '2' } } },
        api: {},
      },
    });
    const [webApp, apiApp] = config.apps;
    expect(webApp?.health).toMatchObject({
      period_seconds: 10,
      timeout_seconds: 3,
      path: '/health',
      headers: { 'X-B': '2' },
    });
    expect(apiApp?.health).toMatchObject({ period_seconds: 10, timeout_seconds: 2, headers: { 'X-A': '1' } });
  });

  test('an app upstream.ejected defaults to nginx.ejected', () => {
    const config = valid({
      nginx: { ejected: 'omit' },
      apps: { a: {}, b: { upstream: { ejected: 'down' } } },
    });
    expect(config.apps.map((a) => a.upstream.ejected)).toEqual(['omit', 'down']);
  });

  test('a parsed config shares no arrays or maps with the defaults', () => {
    const first = web(withApp({}));
    first.health.expected_status_codes.push(500);
    first.health.headers.X = 'y';
    expect(web(withApp({})).health).toMatchObject({ expected_status_codes: [200], headers: {} });
  });

  test('no apps at all is valid with docker.enabled: apps come from container labels only', () => {
    expect(valid({ apps: {}, docker: { enabled: true } }).apps).toEqual([]);
    expect(valid({ docker: { enabled: true } }).apps).toEqual([]);
    expect(valid({ apps: null, docker: { enabled: true } }).apps).toEqual([]);
  });

  test('an app with no body or no backends is valid and empty', () => {
    expect(valid({ apps: { web: null } }).apps[0]?.backends).toEqual([]);
    expect(valid({ apps: { web: { backends: [] } } }).apps[0]?.backends).toEqual([]);
  });

  test('normalises protocol, method and scheme spelling', () => {
    const app = web(withApp({ health: { protocol: 'tcp', method: 'post', scheme: 'HTTPS' } }));
    expect(app.health).toMatchObject({ protocol: 'TCP', method: 'POST', scheme: 'https' });
  });

  test('accepts fractional durations, a query string, TCP strings and a regex body', () => {
    const app = web(
      withApp({
        health: {
          path: '/health?full=1&x=%20y',
          period_seconds: 2.5,
          timeout_seconds: 1.5,
          initial_delay_seconds: 0,
          probe_data: 'PING\r\n',
          expected_response: '+PONG',
          expected_body: '/"status":\\s*"ok"/m',
        },
      }),
    );
    expect(app.health).toMatchObject({
      path: '/health?full=1&x=%20y',
      period_seconds: 2.5,
      timeout_seconds: 1.5,
      probe_data: 'PING\r\n',
    });
  });
});

describe('backends', () => {
  test('accepts host:port, bare host, bracketed IPv6 and the map form', () => {
    const app = web({
      defaults: { health: { port: 9000 } },
      apps: {
        web: {
          backends: [
            '127.0.0.1:8001',
            'Web-1.Internal',
            '[::1]:8080',
            '[::1]',
            { address: 'web-2:8002', weight: 5, backup: true },
          ],
        },
      },
    });
    expect(app.backends).toEqual([
      { host: '127.0.0.1', port: 8001, weight: 1, backup: false },
      { host: 'web-1.internal', port: 9000, weight: 1, backup: false },
      { host: '::1', port: 8080, weight: 1, backup: false },
      { host: '::1', port: 9000, weight: 1, backup: false },
      { host: 'web-2', port: 8002, weight: 5, backup: true },
    ]);
  });

  test('rejects a duplicate address within an app, including one differing only in case', () => {
    expect(issues(withApp({ backends: ['web:80', { address: 'WEB:80' }] }))).toEqual([
      'apps.web.backends[1]: duplicate backend web:80 (also at index 0)',
    ]);
  });

  test('allows the same address in two apps', () => {
    expect(issues({ apps: { a: { backends: ['x:1'] }, b: { backends: ['x:1'] } } })).toEqual([]);
  });
});

describe('validation messages', () => {
  const cases: [string, unknown, string][] = [
    ['timeout not below period', withApp({ health: { timeout_seconds: 10, period_seconds: 5 } }),
      'apps.web.health.timeout_seconds: must be less than period_seconds (got 10 >= 5)'],
    ['timeout equal to period', withApp({ health: { timeout_seconds: 5, period_seconds: 5 } }),
      'apps.web.health.timeout_seconds: must be less than period_seconds (got 5 >= 5)'],
    ['protocol', withApp({ health: { protocol: 'UDP' } }),
      'apps.web.health.protocol: must be one of HTTP, TCP (got "UDP")'],
    ['number as string', withApp({}, { nginx: { coalesce_max_wait_seconds: 'abc' } }),
      'nginx.coalesce_max_wait_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "abc")'],
    ['unknown app key', withApp({ bogus: 1 }), 'apps.web.bogus: unknown key'],
    ['unknown top-level key', withApp({}, { extra: true }), 'extra: unknown key'],
    ['unknown health key', withApp({ health: { interval: 5 } }), 'apps.web.health.interval: unknown key'],
    ['unknown defaults key', withApp({}, { defaults: { upstream: {} } }), 'defaults.upstream: unknown key'],
    ['unknown defaults.health key', withApp({}, { defaults: { health: { nope: 1 } } }),
      'defaults.health.nope: unknown key'],
    ['unknown upstream key', withApp({ upstream: { zone: 'x' } }), 'apps.web.upstream.zone: unknown key'],
    ['unknown backend key', withApp({ backends: [{ address: 'a:1', max_fails: 1 }] }),
      'apps.web.backends[0].max_fails: unknown key'],
    ['unknown section key', withApp({}, { breaker: { threshold: 1 } }), 'breaker.threshold: unknown key (did you mean "failure_threshold"?)'],
    ['port zero', withApp({ health: { port: 0 } }), 'apps.web.health.port: must be between 1 and 65535 (got 0)'],
    ['port too big', withApp({ health: { port: 65536 } }),
      'apps.web.health.port: must be between 1 and 65535 (got 65536)'],
    ['port fractional', withApp({ health: { port: 80.5 } }), 'apps.web.health.port: must be an integer (got 80.5)'],
    ['port as string', withApp({ health: { port: '80' } }), 'apps.web.health.port: must be an integer (got "80")'],
    ['timeout below 100 ms', withApp({ health: { timeout_seconds: 0.05 } }),
      'apps.web.health.timeout_seconds: must be between 0.1 and 86400 (got 0.05)'],
    ['period zero', withApp({ health: { period_seconds: 0 } }),
      'apps.web.health.period_seconds: must be greater than 0.1 (got 0)'],
    ['infinite period', withApp({ health: { period_seconds: Infinity } }),
      'apps.web.health.period_seconds: must be a finite number (got Infinity)'],
    ['negative initial delay', withApp({ health: { initial_delay_seconds: -1 } }),
      'apps.web.health.initial_delay_seconds: must be between 0 and 86400 (got -1)'],
    ['failure threshold zero', withApp({ health: { failure_threshold: 0 } }),
      'apps.web.health.failure_threshold: must be at least 1 (got 0)'],
    ['success threshold fractional', withApp({ health: { success_threshold: 1.5 } }),
      'apps.web.health.success_threshold: must be an integer (got 1.5)'],
    ['max_retries', withApp({ health: { max_retries: 11 } }),
      'apps.web.health.max_retries: must be between 0 and 10 (got 11)'],
    ['method', withApp({ health: { method: 'PATCH' } }),
      'apps.web.health.method: must be one of GET, POST, PUT, HEAD (got "PATCH")'],
    ['scheme', withApp({ health: { scheme: 'ftp' } }), 'apps.web.health.scheme: must be one of http, https (got "ftp")'],
    ['boolean', withApp({ health: { enabled: 'yes' } }), 'apps.web.health.enabled: must be true or false (got "yes")'],
    ['body', withApp({ health: { body: 5 } }), 'apps.web.health.body: must be a string (got 5)'],
    ['path without slash', withApp({ health: { path: 'health' } }),
      'apps.web.health.path: must start with \'/\' (got "health")'],
    ['path with space', withApp({ health: { path: '/he alth' } }),
      'apps.web.health.path: must not contain whitespace or control characters (got "/he alth")'],
    ['path with fragment', withApp({ health: { path: '/health#x' } }),
      'apps.web.health.path: must not contain \'#\' (got "/health#x")'],
    ['path with non-ASCII', withApp({ health: { path: '/héalth' } }),
      'apps.web.health.path: must contain only URL path and query characters (got "/héalth")'],
    ['path with bad escape', withApp({ health: { path: '/a%zz' } }),
      'apps.web.health.path: has a \'%\' not followed by two hex digits (got "/a%zz")'],
    ['empty status list', withApp({ health: { expected_status_codes: [] } }),
      'apps.web.health.expected_status_codes: must be a non-empty list of status codes (got [])'],
    ['status out of range', withApp({ health: { expected_status_codes: [200, 600] } }),
      'apps.web.health.expected_status_codes[1]: must be between 100 and 599 (got 600)'],
    ['status as string', withApp({ health: { expected_status_codes: '200' } }),
      'apps.web.health.expected_status_codes: must be a non-empty list of status codes (got "200")'],
    ['stateful regex flag', withApp({ health: { expected_body: '/ok/g' } }),
      'apps.web.health.expected_body: must not use the g or y regular expression flags (got "/ok/g")'],
    ['HEAD with expected_body', withApp({ health: { method: 'HEAD', expected_body: 'ok' } }),
      'apps.web.health.expected_body: must not be set when method is HEAD (a HEAD response has no body)'],
    ['Host header', withApp({ health: { headers: { Host: 'evil' } } }),
      'apps.web.health.headers.Host: cannot be set (it would re-target the request)'],
    ['host header in lowercase', withApp({ health: { headers: { host: 'evil' } } }),
      'apps.web.health.headers.host: cannot be set (it would re-target the request)'],
    ['content-length header', withApp({ health: { headers: { 'Content-Length': '0' } } }),
      'apps.web.health.headers.Content-Length: cannot be set (the client frames the body)'],
    ['header set twice', withApp({ health: { headers: { 'X-A': '1', 'x-a': '2' } } }),
      'apps.web.health.headers.x-a: is set twice (header names ignore case)'],
    ['header value not a string', withApp({ health: { headers: { 'X-N': 5 } } }),
      'apps.web.health.headers.X-N: must be a string (got 5)'],
    ['weight', withApp({ backends: [{ address: 'a:1', weight: 0 }] }),
      'apps.web.backends[0].weight: must be between 1 and 1000 (got 0)'],
    ['backup', withApp({ backends: [{ address: 'a:1', backup: 'yes' }] }),
      'apps.web.backends[0].backup: must be true or false (got "yes")'],
    ['backend not a string', withApp({ backends: [5] }),
      'apps.web.backends[0]: must be "host:port" or a map with address, weight, backup (got 5)'],
    ['backend map without address', withApp({ backends: [{ weight: 2 }] }),
      'apps.web.backends[0].address: is required'],
    ['backends not a list', withApp({ backends: 'a:1' }), 'apps.web.backends: must be a list (got "a:1")'],
    ['bare IPv6', withApp({ backends: ['::1'] }),
      'apps.web.backends[0]: must put an IPv6 address in brackets, e.g. [::1]:8080 (got "::1")'],
    ['backend port zero', withApp({ backends: ['a:0'] }),
      'apps.web.backends[0]: must have a port between 1 and 65535 (got "a:0")'],
    ['backend port too big', withApp({ backends: ['a:65536'] }),
      'apps.web.backends[0]: must have a port between 1 and 65535 (got "a:65536")'],
    ['backend empty port', withApp({ backends: ['a:'] }),
      'apps.web.backends[0]: must have a port between 1 and 65535 (got "a:")'],
    ['backend bad IPv6', withApp({ backends: ['[1::2::3]:80'] }),
      'apps.web.backends[0]: has an invalid IPv6 address in brackets (got "[1::2::3]:80")'],
    ['backend IPv6 zone', withApp({ backends: ['[fe80::1%eth0]:80'] }),
      'apps.web.backends[0]: has an invalid IPv6 address in brackets (got "[fe80::1%eth0]:80")'],
    ['backend malformed IPv4', withApp({ backends: ['10.0.0.256:80'] }),
      'apps.web.backends[0]: must be an IPv4 address, a bracketed IPv6 address or a hostname (got "10.0.0.256:80")'],
    ['backup with ip_hash', withApp({ backends: [{ address: 'a:1', backup: true }], upstream: { balance: 'ip_hash' } }),
      'apps.web.upstream.balance: cannot be used with backup backends, nginx rejects it (got "ip_hash")'],
    ['upstream balance', withApp({ upstream: { balance: 'hash' } }),
      'apps.web.upstream.balance: must be one of round_robin, least_conn, ip_hash, random (got "hash")'],
    ['stream app without a stream output', withApp({ upstream: { context: 'stream' } }),
      "apps.web.upstream.context: is stream, which needs nginx.stream_output_path (the file nginx's stream {} block includes)"],
    ['stream app with ip_hash', withApp({ upstream: { context: 'stream', balance: 'ip_hash' } }, { nginx: { stream_output_path: '/etc/nginx/stream.d/o.conf' } }),
      "apps.web.upstream.balance: cannot be ip_hash for a stream app: nginx's stream module has no ip_hash"],
    ['upstream context', withApp({ upstream: { context: 'tcp' } }),
      'apps.web.upstream.context: must be one of http, stream (got "tcp")'],
    ['stream output equal to output', withApp({}, { nginx: { output_path: '/etc/nginx/o.conf', stream_output_path: '/etc/nginx/o.conf' } }),
      'nginx.stream_output_path: must differ from nginx.output_path (got /etc/nginx/o.conf)'],
    ['upstream ejected', withApp({ upstream: { ejected: 'drop' } }),
      'apps.web.upstream.ejected: must be one of down, omit (got "drop")'],
    ['keepalive', withApp({ upstream: { keepalive: -1 } }),
      'apps.web.upstream.keepalive: must be between 0 and 10000 (got -1)'],
    ['breaker threshold', withApp({}, { breaker: { failure_threshold: 0 } }),
      'breaker.failure_threshold: must be at least 1 (got 0)'],
    ['breaker recovery timeout', withApp({}, { breaker: { recovery_timeout_seconds: 0 } }),
      'breaker.recovery_timeout_seconds: must be greater than 0 (got 0)'],
    ['breaker failure threshold', withApp({}, { breaker: { failure_threshold: 2.5 } }),
      'breaker.failure_threshold: must be an integer (got 2.5)'],
    ['breaker slow start', withApp({}, { breaker: { slow_start_seconds: -1 } }),
      'breaker.slow_start_seconds: must be between 0 and 86400 (got -1)'],
    ['error rate', withApp({}, { failure_detection: { max_error_rate_percent: 101 } }),
      'failure_detection.max_error_rate_percent: must be between 0 and 100 (got 101)'],
    ['coalesce max below min', withApp({}, { nginx: { coalesce_min_wait_seconds: 1, coalesce_max_wait_seconds: 0.5 } }),
      'nginx.coalesce_max_wait_seconds: must be at least coalesce_min_wait_seconds (got 0.5 < 1)'],
    ['coalesce max above 60', withApp({}, { nginx: { coalesce_max_wait_seconds: 61 } }),
      'nginx.coalesce_max_wait_seconds: must be between 0 and 60 (got 61)'],
    ['coalesce min negative', withApp({}, { nginx: { coalesce_min_wait_seconds: -0.1 } }),
      'nginx.coalesce_min_wait_seconds: must be between 0 and 60 (got -0.1)'],
    ['nginx mode', withApp({}, { nginx: { mode: 'podman' } }), 'nginx.mode: must be one of local, docker (got "podman")'],
    ['nginx container for mode docker', withApp({}, { nginx: { mode: 'docker' } }),
      'nginx.container: must be set (or nginx.container_label) when nginx.mode is docker'],
    ['recovery mode', withApp({}, { recovery: { mode: 'yes' } }), 'recovery.mode: must be one of off, dry-run, on (got "yes")'],
    ['recovery backoff order', withApp({}, { recovery: { backoff_min_seconds: 20, backoff_max_seconds: 10 } }),
      'recovery.backoff_max_seconds: must be at least backoff_min_seconds (got 10 < 20)'],
    ['docker address mode', withApp({}, { docker: { address_mode: 'bridge' } }),
      'docker.address_mode: must be one of network, host (got "bridge")'],
    ['backend host unix (nginx would read a UNIX socket)', withApp({ backends: ['unix:21105'] }),
      'apps.web.backends[0]: host must not be "unix" (nginx reads "unix:" as a UNIX socket path) (got "unix:21105")'],
    ['backend host UNIX in any case', withApp({ backends: [{ address: 'UNIX:80' }] }),
      'apps.web.backends[0].address: host must not be "unix" (nginx reads "unix:" as a UNIX socket path) (got "UNIX:80")'],
    ['backend host 0.0.0.0', withApp({ backends: ['0.0.0.0:80'] }),
      'apps.web.backends[0]: host must not be an address of 0.0.0.0/8 (an address to listen on, not to connect to) (got "0.0.0.0:80")'],
    ['backend host [::]', withApp({ backends: ['[::]:80'] }),
      'apps.web.backends[0]: host must not be the unspecified address :: (an address to listen on, not to connect to) (got "[::]:80")'],
    ['backend host broadcast', withApp({ backends: ['255.255.255.255:80'] }),
      'apps.web.backends[0]: host must not be the broadcast address (got "255.255.255.255:80")'],
    ['backend host multicast', withApp({ backends: ['239.1.2.3:80'] }),
      'apps.web.backends[0]: host must not be a multicast address (got "239.1.2.3:80")'],
    ['docker host address unix', withApp({}, { docker: { host_address: 'unix' } }),
      'docker.host_address: must not be "unix" (nginx reads "unix:" as a UNIX socket path) (got "unix")'],
    ['docker host address 0.0.0.0', withApp({}, { docker: { host_address: '0.0.0.0' } }),
      'docker.host_address: must not be an address of 0.0.0.0/8 (an address to listen on, not to connect to) (got "0.0.0.0")'],
    ['docker host address', withApp({}, { docker: { host_address: 'a;b' } }),
      'docker.host_address: must be an IPv4 address, a bracketed IPv6 address or a hostname (got "a;b")'],
    ['docker swarm mode', withApp({}, { docker: { enabled: true, swarm: 'yes' } }),
      'docker.swarm: must be true, false or auto (got "yes")'],
    ['docker swarm without docker', withApp({}, { docker: { swarm: 'auto' } }),
      'docker.swarm: needs docker.enabled: true (got "auto" with docker.enabled false)'],
    ['docker swarm refresh', withApp({}, { docker: { enabled: true, swarm: true, swarm_refresh_seconds: 0 } }),
      'docker.swarm_refresh_seconds: must be between 0.1 and 3600 (got 0)'],
    ['docker swarm lease renewal not below its TTL', withApp({}, { docker: { enabled: true, swarm: true, swarm_lease_ttl_seconds: 4, swarm_lease_renew_seconds: 4 } }),
      'docker.swarm_lease_renew_seconds: must be less than swarm_lease_ttl_seconds (got 4 >= 4)'],
    ['docker swarm lease TTL', withApp({}, { docker: { enabled: true, swarm: true, swarm_lease_ttl_seconds: '500ms' } }),
      'docker.swarm_lease_ttl_seconds: must be between 1 and 3600 (got "500ms")'],
    ['app port range', withApp({ docker: { port_range: '9000-8000' } }),
      'apps.web.docker.port_range: must be a port range "low-high" within 1..65535 (got "9000-8000")'],
    ['app port env', withApp({ docker: { port_env: 'MY-PORT' } }),
      'apps.web.docker.port_env: must be an environment variable name (got "MY-PORT")'],
    ['nginx path with newline', withApp({}, { nginx: { output_path: '/x\ninclude /etc/passwd;' } }),
      'nginx.output_path: must not contain newlines or NUL (got "/x\\ninclude /etc/passwd;")'],
    ['nginx empty path', withApp({}, { nginx: { config_path: '' } }), 'nginx.config_path: must not be empty'],
    ['nginx validate', withApp({}, { nginx: { validate: 'no' } }), 'nginx.validate: must be true or false (got "no")'],
    ['admin listen without port', withApp({}, { admin: { listen: 'localhost' } }),
      'admin.listen: must be "host:port" or "[ipv6]:port" (got "localhost")'],
    ['admin listen with bad host', withApp({}, { admin: { listen: 'a b:80' } }),
      'admin.listen: must be an IPv4 address, a bracketed IPv6 address or a hostname (got "a b:80")'],
    ['admin token with space', withApp({}, { admin: { token: 'a b' } }),
      'admin.token: must be non-empty printable ASCII without spaces'],
    ['admin connection cap of 0', withApp({}, { admin: { max_connections: 0 } }),
      'admin.max_connections: must be between 1 and 100000 (got 0)'],
    ['admin idle timeout of 0', withApp({}, { admin: { idle_timeout_seconds: 0 } }),
      'admin.idle_timeout_seconds: must be greater than 0 (got 0)'],
    ['admin request timeout not a duration', withApp({}, { admin: { request_timeout_seconds: 'soon' } }),
      'admin.request_timeout_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "soon")'],
    ['max concurrency', withApp({}, { probes: { max_concurrency: 0 } }),
      'probes.max_concurrency: must be between 1 and 100000 (got 0)'],
    ['jitter', withApp({}, { probes: { jitter_fraction: 1.5 } }),
      'probes.jitter_fraction: must be between 0 and 1 (got 1.5)'],
    ['log level', withApp({}, { logging: { level: 'verbose' } }),
      'logging.level: must be one of fatal, error, warn, info, debug, trace (got "verbose")'],
    ['log format', withApp({}, { logging: { format: 'pretty' } }),
      'logging.format: must be one of json, text (got "pretty")'],
    ['section not a map', withApp({}, { probes: [1] }), 'probes: must be a map (got [1])'],
    ['health not a map', withApp({ health: 'http' }), 'apps.web.health: must be a map (got "http")'],
    ['apps missing', {}, 'apps: is required (or docker.enabled: true, for apps from container labels only)'],
    ['apps empty', { apps: {} }, 'apps: must define at least one app (or docker.enabled: true, for apps from container labels only)'],
    ['apps null', { apps: null, docker: { enabled: false } }, 'apps: is required (or docker.enabled: true, for apps from container labels only)'],
    ['apps as a list', { apps: ['web'] }, 'apps: must be a map of app name to app (got ["web"])'],
    ['whole document not a map', [1], 'the document must be a map (got [1])'],
  ];

  test.each(cases)('reports %s', (_name, raw, expected) => {
    expect(issues(raw)).toEqual([expected]);
  });

  test('docker.swarm takes true, false or auto in any case', () => {
    for (const [given, taken] of [[true, true], [false, false], ['auto', 'auto'], ['Auto', 'auto']] as const) {
      const result = parseConfig(withApp({}, { docker: { enabled: true, swarm: given } }));
      expect(result.ok && result.config.docker.swarm).toBe(taken);
    }
  });

  test('reports an expected_body regex that does not compile, naming the compiler error', () => {
    expect(issues(withApp({ health: { expected_body: '/(unclosed/' } }))).toEqual([
      expect.stringMatching(
        /^apps\.web\.health\.expected_body: is not a valid regular expression: .*Unterminated group.* \(got "\/\(unclosed\/"\)$/,
      ),
    ]);
  });

  test('does not compare timeout with period when either is itself invalid', () => {
    expect(issues(withApp({ health: { timeout_seconds: 'x', period_seconds: 2 } }))).toEqual([
      'apps.web.health.timeout_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "x")',
    ]);
  });

  test('checks timeout against period after merging defaults.health', () => {
    expect(issues(withApp({ health: { period_seconds: 4 } }, { defaults: { health: { timeout_seconds: 4 } } })))
      .toEqual(['apps.web.health.timeout_seconds: must be less than period_seconds (got 4 >= 4)']);
  });

  test('reports every error at once, across sections and apps', () => {
    const found = issues({
      defaults: { health: { port: 0 } },
      apps: {
        web: { backends: ['a:1', 'a:1', 'b:x'], health: { protocol: 'UDP', path: '//x' } },
        'bad name': { bogus: true },
      },
      breaker: { failure_threshold: -1 },
      nginx: { mode: 'podman', coalesce_max_wait_seconds: 'abc' },
      admin: { listen: 5 },
      logging: { level: 'loud' },
      extra: 1,
    });
    expect(found).toEqual(
      expect.arrayContaining([
        'extra: unknown key',
        'defaults.health.port: must be between 1 and 65535 (got 0)',
        'nginx.mode: must be one of local, docker (got "podman")',
        'nginx.coalesce_max_wait_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "abc")',
        'apps.web.health.protocol: must be one of HTTP, TCP (got "UDP")',
        "apps.web.health.path: must not start with '//' (it would change the probed host) (got \"//x\")",
        'apps.web.backends[1]: duplicate backend a:1 (also at index 0)',
        'apps.web.backends[2]: must have a port between 1 and 65535 (got "b:x")',
        expect.stringMatching(/^apps\["bad name"\]: app name must start with/),
        'apps["bad name"].bogus: unknown key',
        'breaker.failure_threshold: must be at least 1 (got -1)',
        'admin.listen: expected host:port, e.g. "127.0.0.1:5" (loopback only) or "0.0.0.0:5" (every interface) (got 5: a port alone)',
        'logging.level: must be one of fatal, error, warn, info, debug, trace (got "loud")',
      ]),
    );
    expect(found).toHaveLength(13);
  });
});

describe('probe paths never change the probed host', () => {
  test.each([
    ['/@169.254.169.254/x', "must not contain '@' (it would change the probed host)"],
    ['//evil/', "must not start with '//' (it would change the probed host)"],
    ['http://evil/', "must start with '/'"],
    ['/redirect?to=http://evil/', "must not contain '://' (it would change the probed host)"],
    ['/\\evil', "must not contain '\\' (it would change the probed host)"],
    ['/x\r\nHost: evil', 'must not contain whitespace or control characters'],
    ['/x\u0000', 'must not contain whitespace or control characters'],
  ])('rejects %j', (path, why) => {
    expect(issues(withApp({ health: { path } }))).toEqual([
      `apps.web.health.path: ${why} (got ${JSON.stringify(path)})`,
    ]);
  });
});

describe('nothing that could inject nginx directives passes', () => {
  test.each(['web;', 'web{', 'we}b', 'a b', 'web\n', '$web', '"web"', "web'", '.web', 'x'.repeat(65), ''])(
    'rejects app name %j',
    (name) => {
      const found = issues({ apps: { [name]: {} } });
      expect(found).toHaveLength(1);
      expect(found[0]).toContain(`app name must start with a letter`);
      expect(found[0]).toContain(`(got ${JSON.stringify(name)})`);
    },
  );

  test.each(['api.v2', '_internal', 'Web-1', 'x'.repeat(64)])('accepts app name %j', (name) => {
    expect(issues({ apps: { [name]: {} } })).toEqual([]);
  });

  test.each([
    '127.0.0.1;:80',
    'evil}:80',
    'a b:80',
    'host\nserver:80',
    '$host:80',
    'a"b:80',
    'under_score:80',
    '-lead:80',
    'trail-.x:80',
    '999.1.1.1:80',
    '1.2.3:80',
    '[::1];:80',
    `${'a'.repeat(64)}:80`,
  ])('rejects backend %j', (address) => {
    const found = issues(withApp({ backends: [address] }));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^apps\.web\.backends\[0\]: /);
    expect(found[0]).toContain(`(got ${JSON.stringify(address)})`);
  });

  test.each([
    [{ 'X-A': 'a\r\nHost: evil' }, 'apps.web.health.headers.X-A: must not contain control characters (got "a\\r\\nHost: evil")'],
    [{ 'X-A': 'a\u0000' }, 'apps.web.health.headers.X-A: must not contain control characters (got "a\\u0000")'],
    [{ 'X-A': 'caf\u00e9 \u65e5' }, 'apps.web.health.headers.X-A: must contain only Latin-1 characters (got "caf\u00e9 \u65e5")'],
    [{ 'X-A': 'a\u0085' }, 'apps.web.health.headers.X-A: must not contain control characters (got "a\\u0085")'],
    [{ 'X-A: b': 'c' }, 'apps.web.health.headers["X-A: b"]: is not a valid header name (got "X-A: b")'],
    [{ 'X-A\r\nHost': 'c' }, 'apps.web.health.headers["X-A\\r\\nHost"]: is not a valid header name (got "X-A\\r\\nHost")'],
  ])('rejects header %j', (headers, expected) => {
    expect(issues(withApp({ health: { headers } }))).toEqual([expected]);
  });

  test('a header named __proto__ stays an ordinary own header', () => {
    const headers = JSON.parse('{"__proto__": "x", "X-A": "1"}') as Record<string, string>;
    const app = web(withApp({ health: { headers } }));
    expect(Object.keys(app.health.headers)).toEqual(['__proto__', 'X-A']);
    expect(Object.getPrototypeOf(app.health.headers)).toBe(Object.prototype);
  });
});

describe('nginx paths', () => {
  test('resolves relative paths against baseDir and leaves absolute ones and a bare binary', () => {
    const config = valid(
      withApp({}, {
        nginx: {
          config_path: 'nginx.conf',
          output_path: '/abs/out.conf',
          template_path: '../tpl/upstreams.hbs',
          prefix: '.',
          pid_path: 'run/nginx.pid',
        },
      }),
      '/etc/orchestry',
    );
    expect(config.nginx).toMatchObject({
      binary: 'nginx',
      config_path: '/etc/orchestry/nginx.conf',
      output_path: '/abs/out.conf',
      template_path: '/etc/tpl/upstreams.hbs',
      prefix: '/etc/orchestry',
      pid_path: '/etc/orchestry/run/nginx.pid',
    });
  });

  test('resolves a binary given as a relative path', () => {
    expect(valid(withApp({}, { nginx: { binary: './bin/nginx' } }), '/opt/o').nginx.binary).toBe(
      '/opt/o/bin/nginx',
    );
  });
});

describe('parseAddress', () => {
  test.each([
    ['10.0.0.1:80', { host: '10.0.0.1', port: 80 }],
    ['Example.COM', { host: 'example.com', port: null }],
    ['[2001:DB8::1]:443', { host: '2001:db8::1', port: 443 }],
    ['[::1]', { host: '::1', port: null }],
    ['localhost:0', { host: 'localhost', port: 0 }],
  ])('parses %j', (text, expected) => {
    expect(parseAddress(text)).toEqual(expected);
  });

  test.each([
    ['', 'must not be empty'],
    ['[::1', 'is missing "]" after the IPv6 address'],
    ['[::1]80', 'must be "[ipv6]" or "[ipv6]:port"'],
    ['::1', 'must put an IPv6 address in brackets, e.g. [::1]:8080'],
    [':80', 'must be an IPv4 address, a bracketed IPv6 address or a hostname'],
    ['a:+80', 'must have a port between 1 and 65535'],
  ])('rejects %j', (text, message) => {
    expect(parseAddress(text)).toBe(message);
  });
});

describe('expected_body regular expressions', () => {
  const bodyIssue = (expected_body: string) => issues(withApp({ health: { expected_body } }));

  test.each([
    ['a backreference', '/(a)\\1/'],
    ['a named backreference', '/(?<x>a)\\k<x>/'],
    ['lookahead', '/a(?=b)/'],
    ['negative lookahead', '/a(?!b)/'],
    ['a count above 16', '/a{17}/'],
    ['nested counts multiplying past 16', '/((a){4}){5}/'],
  ])('refuses %s, naming the field, the value and what the linear-time engine cannot run', (_what, pattern) => {
    expect(bodyIssue(pattern)).toEqual([
      `apps.web.health.expected_body: cannot run in linear time: backreferences (\\1, \\k<name>), lookahead ((?=…), (?!…)) ` +
        `and counted repetition above {16} (nested counts multiply) are not supported (got ${JSON.stringify(pattern)})`,
    ]);
  });

  test('refuses the flags the linear-time engine has no mode for, saying how to do without i', () => {
    expect(bodyIssue('/ok/i')).toEqual([
      'apps.web.health.expected_body: must not use the i flag: the linear-time engine has no case-insensitive mode (write both cases, e.g. [Oo][Kk]) (got "/ok/i")',
    ]);
    expect(bodyIssue('/ok/u')).toEqual(['apps.web.health.expected_body: must not use the u, v or d flags: the linear-time engine does not run them (got "/ok/u")']);
  });

  test('refuses a pattern longer than 1000 characters', () => {
    const long = `/${'a'.repeat(1001)}/`;
    expect(bodyIssue(long)).toEqual([expect.stringMatching(/^apps\.web\.health\.expected_body: must be a pattern of at most 1000 characters \(this one has 1001\) \(got "\/a+\.\.\."\)$/)]);
  });

  test('accepts lookbehind, the m and s flags and counts up to 16', () => {
    expect(bodyIssue('/(?<=status":)"ok"$/ms')).toEqual([]);
    expect(bodyIssue('/^[0-9a-f]{16}$/')).toEqual([]);
  });
});

describe('store', () => {
  test('resolves a relative path against the config file directory', () => {
    expect(valid(withApp({}), '/etc/orchestry').store.path).toBe('/etc/orchestry/orchestry-sidecar.db');
    expect(valid(withApp({}, { store: { path: '/data/s.db' } }), '/etc/orchestry').store.path).toBe('/data/s.db');
  });

  test('rejects bad values naming each', () => {
    expect(issues(withApp({}, { store: { enabled: 'yes', raw_retention_hours: 0, max_queue: 10, flush_interval_seconds: 61, cache: 1 } }))).toEqual([
      'store.cache: unknown key',
      'store.enabled: must be true or false (got "yes")',
      'store.raw_retention_hours: must be greater than 0 (got 0)',
      'store.flush_interval_seconds: must be at most 60 (got 61)',
      'store.max_queue: must be between 1000 and 10000000 (got 10)',
    ]);
  });
});

describe('alerting', () => {
  const receivers = {
    am: { type: 'alertmanager', url: 'http://127.0.0.1:9093' },
    hook: { type: 'webhook', url: 'https://hooks.example/x', headers: { Authorization: 'Bearer t' } },
  };

  test('reads receivers, routes and escalation with defaults', () => {
    const a = valid(withApp({}, {
      alerting: { enabled: true, receivers, routes: [{ receivers: ['am'], min_severity: 'high', apps: ['web'] }], escalation: { receivers: ['hook'] } },
    })).alerting;
    expect(a.receivers).toEqual([
      { name: 'am', type: 'alertmanager', url: 'http://127.0.0.1:9093', headers: {}, timeout_seconds: 5, max_per_minute: 30 },
      { name: 'hook', type: 'webhook', url: 'https://hooks.example/x', headers: { Authorization: 'Bearer t' }, timeout_seconds: 5, max_per_minute: 30 },
    ]);
    expect(a.routes).toEqual([{ receivers: ['am'], min_severity: 'high', apps: ['web'], failure_types: [] }]);
    expect(a.escalation).toEqual({ after_seconds: 900, receivers: ['hook'] });
  });

  test('names every bad receiver, route and escalation value', () => {
    expect(issues(withApp({}, {
      alerting: {
        enabled: true,
        receivers: {
          bad: { type: 'pager', url: 'ftp://x' },
          creds: { type: 'slack', url: 'https://user:pw@hooks.slack.example/x' },
          nourl: { type: 'webhook' },
        },
        routes: [{ receivers: ['nobody'], min_severity: 'urgent', failure_types: ['on_fire'] }],
        escalation: { after_seconds: 0, receivers: ['ghost'] },
      },
    }))).toEqual([
      'alerting.receivers.bad.type: must be one of webhook, slack, alertmanager (got "pager")',
      'alerting.receivers.bad.url: must be an http or https URL (got "ftp://x")',
      'alerting.receivers.creds.url: must not contain credentials (put them in headers)',
      'alerting.receivers.nourl.url: is required',
      'alerting.routes[0].receivers[0]: must name a receiver under alerting.receivers (got "nobody")',
      'alerting.routes[0].min_severity: must be one of low, medium, high, critical (got "urgent")',
      expect.stringMatching(/^alerting\.routes\[0\]\.failure_types\[0\]: must be one of health_check_failed, .* \(got "on_fire"\)$/),
      'alerting.escalation.after_seconds: must be greater than 0 (got 0)',
      'alerting.escalation.receivers[0]: must name a receiver under alerting.receivers (got "ghost")',
    ]);
  });

  test('enabled without a route is an error', () => {
    expect(issues(withApp({}, { alerting: { enabled: true } }))).toEqual([
      'alerting.routes: must have at least one route when alerting.enabled is true',
    ]);
  });
});

describe('apps.<name>.recovery and upstream.backup_app', () => {
  test('reads dependencies, the clear_cache call and a backup app', () => {
    const app = web({
      apps: {
        web: {
          backends: ['127.0.0.1:8001'],
          recovery: { dependencies: ['redis', 'db-1'], clear_cache: 'POST /admin/cache' },
          upstream: { backup_app: 'static' },
        },
        static: { backends: ['127.0.0.1:9001'] },
      },
    });
    expect(app.recovery).toEqual({ dependencies: ['redis', 'db-1'], clear_cache: { method: 'POST', path: '/admin/cache' } });
    expect(app.upstream.backup_app).toBe('static');
  });

  test('rejects names and paths that could inject or re-target', () => {
    expect(issues(withApp({
      recovery: { dependencies: ['redis; rm -rf /'], clear_cache: { method: 'PATCH', path: '//evil/x' } },
      upstream: { backup_app: 'web', balance: 'ip_hash' },
    }))).toEqual([
      'apps.web.upstream.backup_app: must name another app (got "web")',
      'apps.web.upstream.backup_app: cannot be used with balance ip_hash: nginx rejects backup servers there (got "web")',
      'apps.web.recovery.dependencies: must contain only container names ([A-Za-z0-9][A-Za-z0-9_.-]*) (got "redis; rm -rf /")',
      'apps.web.recovery.clear_cache.method: must be one of POST, PUT, DELETE, GET (got "PATCH")',
      "apps.web.recovery.clear_cache.path: must not start with '//' (it would change the probed host) (got \"//evil/x\")",
    ]);
  });
});

describe('failure_detection detectors', () => {
  test('rejects out-of-range detector thresholds naming each', () => {
    expect(issues(withApp({}, { failure_detection: { max_cpu_percent: 101, resource_samples: 0, deadlock_timeouts: 1.5 } }))).toEqual([
      'failure_detection.max_cpu_percent: must be at most 100 (got 101)',
      'failure_detection.resource_samples: must be between 1 and 1000 (got 0)',
      'failure_detection.deadlock_timeouts: must be an integer (got 1.5)',
    ]);
  });
});
