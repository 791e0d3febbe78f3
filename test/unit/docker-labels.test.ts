import { describe, expect, test } from 'vitest';
import { DEFAULT_HEALTH, parseConfig } from '../../src/config/schema.js';
import type { HealthCheckConfig, SidecarConfig } from '../../src/config/types.js';
import {
  containersToBackends,
  snapshotWithDraining,
  type InspectedContainer,
} from '../../src/discovery/docker-labels.js';
import { containerRef } from '../helpers/fixtures.js';

const ID_A = 'c5983de5b0fd971bd82cd9bd4dab1c00c73f4d254f2f8cbbdfc94fe715d1704f';

/**
 * `docker inspect` of a labelled container on host networking, trimmed to the sections
 * discovery reads plus some it does not (taken from dockerd 20.10 on this machine).
 */
function inspected(opts: {
  id?: string;
  name?: string;
  labels?: Record<string, string>;
  state?: Partial<InspectedContainer['State']> & { Running?: boolean; Paused?: boolean };
  networks?: Record<string, { IPAddress: string; GlobalIPv6Address?: string }> | null;
  restartCount?: number;
} = {}): InspectedContainer {
  const networks =
    opts.networks === undefined
      ? { host: { NetworkID: 'abbe50355a5e', EndpointID: 'b08feaf8b6c5', Gateway: '', IPAddress: '', IPPrefixLen: 0, GlobalIPv6Address: '' } }
      : opts.networks;
  return JSON.parse(
    JSON.stringify({
      Id: opts.id ?? ID_A,
      Created: '2026-11-28T07:04:20.463814145Z',
      Path: '/usr/local/bin/node',
      Args: ['/app/server.mjs'],
      State: {
        Status: 'running',
        Running: true,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: 3868,
        ExitCode: 0,
        Error: '',
        StartedAt: '2026-11-28T07:04:20.63184233Z',
        FinishedAt: '0001-01-01T00:00:00Z',
        Health: { Status: 'healthy', FailingStreak: 0, Log: [] },
        ...opts.state,
      },
      Image: 'sha256:08b51ac4fe2ded16b920b42736d7101f1f359bb9b4dce6c917bb3c8bf1e907a0',
      Name: `/${opts.name ?? 'web-1'}`,
      RestartCount: opts.restartCount ?? 0,
      HostConfig: { NetworkMode: 'host', RestartPolicy: { Name: 'no', MaximumRetryCount: 0 } },
      Config: {
        Hostname: 'vm',
        Env: ['PORT=18123', 'PATH=/usr/local/bin:/bin'],
        Image: 'orchestry-test/node-app:87243e0c9a989550',
        Labels: opts.labels ?? { 'orchestry.enable': 'true', 'orchestry.app': 'web', 'orchestry.port': '18123' },
      },
      NetworkSettings: { SandboxID: '1e5d3aa9a47d', IPAddress: '', Networks: networks },
    }),
  ) as InspectedContainer;
}

/** Labels of an enabled container of app `web`, plus `extra`. */
function labels(extra: Record<string, string> = {}): Record<string, string> {
  return { 'orchestry.enable': 'true', 'orchestry.app': 'web', 'orchestry.port': '18123', ...extra };
}

function config(raw: Record<string, unknown> = {}): SidecarConfig {
  const result = parseConfig({ apps: { static: { backends: ['127.0.0.1:9000'] } }, ...raw });
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

const HOST = config({ docker: { address_mode: 'host' } });
/** A YAML app's `docker` section that lets containers join it. */
const ACCEPT = { accept_containers: true };

function errorsOf(extra: Record<string, string>, cfg: SidecarConfig = HOST): string[] {
  const result = containersToBackends([inspected({ labels: labels(extra) })], { config: cfg });
  expect(result.backends).toEqual([]);
  return result.rejected[0]?.errors ?? [];
}

describe('mapping labelled containers to backends', () => {
  test('a running container with host networking becomes a backend with its container', () => {
    const { backends, rejected, apps, containers } = containersToBackends([inspected()], { config: HOST });
    expect(rejected).toEqual([]);
    expect(backends).toEqual([
      {
        id: 'web/127.0.0.1:18123',
        app: 'web',
        host: '127.0.0.1',
        port: 18123,
        weight: 1,
        backup: false,
        health: DEFAULT_HEALTH,
        source: 'docker',
        // Running, healthy, never restarted, no replica label: the fixture's defaults.
        container: containerRef({
          id: ID_A,
          image: 'orchestry-test/node-app:87243e0c9a989550',
          startedAt: Date.parse('2026-11-28T07:04:20.63184233Z'),
          labels: labels(),
        }),
      },
    ]);
    expect(containers.map((c) => c.app)).toEqual(['web']);
    expect(apps.map((a) => a.name)).toEqual(['web']);
  });

  test('ignores containers without orchestry.enable=true, whatever else they carry', () => {
    const others = [
      inspected({ labels: { 'orchestry.app': 'web;}', 'orchestry.port': '80' } }),
      inspected({ labels: { 'orchestry.enable': 'false', 'orchestry.app': 'web' } }),
      inspected({ labels: { 'orchestry.enable': 'TRUE', 'orchestry.app': 'web' } }),
      { ...inspected(), Config: { Image: 'x', Labels: null } },
    ];
    expect(containersToBackends(others, { config: HOST })).toEqual({
      backends: [],
      apps: [],
      rejected: [],
      containers: [],
    });
  });

  test('reads weight, backup and replica labels', () => {
    const primary = inspected({ id: 'b'.repeat(64), name: 'web-0', labels: labels({ 'orchestry.port': '18122' }) });
    const [, b] = containersToBackends(
      [primary, inspected({ labels: labels({ 'orchestry.weight': '5', 'orchestry.backup': 'true', 'orchestry.replica': '2' }) })],
      { config: HOST },
    ).backends;
    expect(b).toMatchObject({ weight: 5, backup: true, container: { replica: 2 } });
  });

  test('a container that is not running is watched but is not a backend', () => {
    const exited = inspected({ state: { Status: 'exited', Running: false, ExitCode: 137, OOMKilled: true } });
    const created = inspected({ id: 'b'.repeat(64), name: 'web-2', state: { Status: 'created', Running: false, StartedAt: '0001-01-01T00:00:00Z' } });
    const paused = inspected({ id: 'c'.repeat(64), name: 'web-3', state: { Status: 'paused', Paused: true } });
    const { backends, containers, rejected } = containersToBackends([exited, created, paused], { config: HOST });
    expect(backends).toEqual([]);
    expect(rejected).toEqual([]);
    expect(containers.map((c) => c.container)).toMatchObject([
      { name: 'web-1', state: 'exited', exitCode: 137, oomKilled: true },
      { name: 'web-2', state: 'created', exitCode: null, startedAt: 0 },
      { name: 'web-3', state: 'paused', exitCode: null },
    ]);
  });

  test('in network mode, without orchestry.port the backend uses the health port (label, then YAML app, then default)', () => {
    const noPort = { 'orchestry.enable': 'true', 'orchestry.app': 'web' };
    const networks = { shop_default: { IPAddress: '172.18.0.5' } };
    const map = (l: Record<string, string>, cfg: SidecarConfig) =>
      containersToBackends([inspected({ labels: l, networks })], { config: cfg }).backends[0]?.port;
    const NETWORK = config();
    expect(map(noPort, NETWORK)).toBe(8000);
    expect(map({ ...noPort, 'orchestry.health.port': '9100' }, NETWORK)).toBe(9100);
    const yaml = config({ apps: { web: { health: { port: 7000 }, docker: ACCEPT } } });
    expect(map(noPort, yaml)).toBe(7000);
  });

  test('on host networking without orchestry.port: orchestry.health.port, else the only exposed TCP port, else rejected (no silent 8000)', () => {
    const noPort = { 'orchestry.enable': 'true', 'orchestry.app': 'web' };
    const map = (l: Record<string, string>, exposed?: Record<string, object>) => {
      const c = inspected({ labels: l });
      if (exposed) c.Config.ExposedPorts = exposed;
      return containersToBackends([c], { config: HOST });
    };
    expect(map(noPort, { '8080/tcp': {} }).backends[0]?.port).toBe(8080);
    expect(map(noPort, { '8080/tcp': {}, '53/udp': {} }).backends[0]?.port).toBe(8080);
    expect(map({ ...noPort, 'orchestry.health.port': '9100' }, { '8080/tcp': {} }).backends[0]?.port).toBe(9100);
    expect(map({ ...noPort, 'orchestry.port': '18123' }, { '8080/tcp': {} }).backends[0]?.port).toBe(18123);
    const why = 'orchestry.port: is required for a container on host networking (address mode host) unless it exposes exactly one TCP port; it';
    expect(map(noPort).rejected[0]?.errors).toEqual([`${why} exposes no port`]);
    expect(map(noPort, { '9090/tcp': {}, '8080/tcp': {} }).rejected[0]?.errors).toEqual([`${why} exposes several ports (8080, 9090)`]);
    expect(map(noPort).backends).toEqual([]);
  });
});

describe('health labels', () => {
  test('every HealthCheckConfig field can be set by a label, typed as in the YAML', () => {
    const all: Record<keyof HealthCheckConfig, string> = {
      protocol: 'http',
      scheme: 'https',
      path: '/ready?full=1',
      port: '9000',
      method: 'POST',
      headers: '{"X-Probe":"1","Accept":"text/plain"}',
      body: '{"ping":true}',
      expected_status_codes: '200, 204',
      expected_body: 'ok',
      probe_data: 'PING',
      expected_response: 'PONG',
      initial_delay_seconds: '0',
      period_seconds: '2.5',
      ejected_period_seconds: '250ms',
      fast_period_seconds: '100ms',
      timeout_seconds: '1',
      failure_threshold: '4',
      success_threshold: '2',
      enabled: 'false',
      follow_redirects: 'true',
      verify_ssl: 'false',
      max_retries: '2',
    };
    const extra = Object.fromEntries(Object.entries(all).map(([k, v]) => [`orchestry.health.${k}`, v]));
    const { backends, rejected } = containersToBackends([inspected({ labels: labels(extra) })], { config: HOST });
    expect(rejected).toEqual([]);
    expect(backends[0]?.health).toEqual({
      protocol: 'HTTP',
      scheme: 'https',
      path: '/ready?full=1',
      port: 9000,
      method: 'POST',
      headers: { 'X-Probe': '1', Accept: 'text/plain' },
      body: '{"ping":true}',
      expected_status_codes: [200, 204],
      expected_body: 'ok',
      probe_data: 'PING',
      expected_response: 'PONG',
      initial_delay_seconds: 0,
      period_seconds: 2.5,
      ejected_period_seconds: 0.25,
      fast_period_seconds: 0.1,
      timeout_seconds: 1,
      failure_threshold: 4,
      success_threshold: 2,
      enabled: false,
      follow_redirects: true,
      verify_ssl: false,
      max_retries: 2,
    } satisfies HealthCheckConfig);
  });

  test('labels are layered over the YAML app, which is layered over defaults.health', () => {
    const cfg = config({
      docker: { address_mode: 'host' },
      defaults: { health: { period_seconds: 10, timeout_seconds: 2 } },
      apps: { web: { health: { path: '/ready', headers: { 'X-A': '1' } }, docker: ACCEPT } },
    });
    const health = containersToBackends(
      [inspected({ labels: labels({ 'orchestry.health.failure_threshold': '7' }) })],
      { config: cfg },
    ).backends[0]?.health;
    expect(health).toMatchObject({
      path: '/ready', // YAML app
      headers: { 'X-A': '1' }, // YAML app
      period_seconds: 10, // defaults.health, through the YAML app
      timeout_seconds: 2,
      failure_threshold: 7, // label
      protocol: 'HTTP', // seed default
    });
  });

  test("an app only labels define starts from the YAML's defaults.health", () => {
    const defaultHealth: HealthCheckConfig = { ...DEFAULT_HEALTH, period_seconds: 10, path: '/healthz' };
    const l = { 'orchestry.enable': 'true', 'orchestry.app': 'api', 'orchestry.port': '18200', 'orchestry.health.timeout_seconds': '3' };
    const { backends, apps } = containersToBackends([inspected({ labels: l })], { config: HOST, defaultHealth });
    expect(backends[0]?.health).toEqual({ ...defaultHealth, timeout_seconds: 3 });
    expect(apps[0]?.health).toEqual(defaultHealth);
  });

  test('the layered result is checked with the rules between fields, blamed on the label that broke it', () => {
    const slow = config({ docker: { address_mode: 'host' }, apps: { web: { health: { period_seconds: 30, timeout_seconds: 5 }, docker: ACCEPT } } });
    expect(errorsOf({ 'orchestry.health.timeout_seconds': '40' }, slow)).toEqual([
      'orchestry.health.timeout_seconds: must be less than period_seconds (got 40 >= 30)',
    ]);
    expect(errorsOf({ 'orchestry.health.period_seconds': '2' }, slow)).toEqual([
      'orchestry.health.period_seconds: must be greater than timeout_seconds (got 2 <= 5)',
    ]);
    expect(errorsOf({ 'orchestry.health.period_seconds': '5s' }, slow)).toEqual([
      'orchestry.health.period_seconds: must be greater than timeout_seconds (got 5 <= 5)',
    ]);
    expect(errorsOf({ 'orchestry.health.method': 'HEAD', 'orchestry.health.expected_body': 'ok' })).toEqual([
      'orchestry.health.expected_body: must not be set when method is HEAD (a HEAD response has no body)',
    ]);
    const yamlBody = config({ docker: { address_mode: 'host' }, apps: { web: { health: { expected_body: 'ok' }, docker: ACCEPT } } });
    expect(errorsOf({ 'orchestry.health.method': 'HEAD' }, yamlBody)).toEqual([
      'orchestry.health.method: must not be HEAD when expected_body is set (a HEAD response has no body)',
    ]);
  });

  test('duration labels take a unit, as the YAML does, through the same check', () => {
    const health = (extra: Record<string, string>) => {
      const { backends, rejected } = containersToBackends([inspected({ labels: labels(extra) })], { config: HOST });
      expect(rejected).toEqual([]);
      return backends[0]?.health;
    };
    expect(health({
      'orchestry.health.timeout_seconds': '500ms',
      'orchestry.health.period_seconds': '1.5s',
      'orchestry.health.initial_delay_seconds': '1m',
    })).toMatchObject({ timeout_seconds: 0.5, period_seconds: 1.5, initial_delay_seconds: 60 });
    expect(health({ 'orchestry.health.timeout_seconds': '100ms', 'orchestry.health.period_seconds': '0.25' }))
      .toMatchObject({ timeout_seconds: 0.1, period_seconds: 0.25 });
    expect(health({ 'orchestry.health.initial_delay_seconds': '0s', 'orchestry.health.period_seconds': '1h' }))
      .toMatchObject({ initial_delay_seconds: 0, period_seconds: 3600 });
    expect(errorsOf({ 'orchestry.health.timeout_seconds': '2S' })).toEqual([
      'orchestry.health.timeout_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "2S")',
    ]);
    expect(errorsOf({ 'orchestry.health.timeout_seconds': ' 2s' })).toEqual([
      'orchestry.health.timeout_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got " 2s")',
    ]);
    expect(errorsOf({ 'orchestry.health.period_seconds': '-1s' })).toEqual([
      'orchestry.health.period_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "-1s")',
    ]);
    expect(errorsOf({ 'orchestry.health.period_seconds': '-1' })).toEqual([
      'orchestry.health.period_seconds: must be greater than 0.1 (got -1)',
    ]);
    expect(errorsOf({ 'orchestry.health.period_seconds': '25h' })).toEqual([
      'orchestry.health.period_seconds: must be at most 86400 (got "25h")',
    ]);
  });

  test('expected_body from a label is a plain substring: a /regex/ is rejected (ReDoS)', () => {
    expect(errorsOf({ 'orchestry.health.expected_body': '/(a+)+$/' })).toEqual([
      'orchestry.health.expected_body: must be a plain substring; a /regex/ is accepted only in the YAML file (got "/(a+)+$/")',
    ]);
    expect(errorsOf({ 'orchestry.health.expected_body': '/ok/i' })).toHaveLength(1);
  });

  test('a YAML regex for expected_body is still used for containers that do not override it', () => {
    const cfg = config({ docker: { address_mode: 'host' }, apps: { web: { health: { expected_body: '/ok|up/' }, docker: ACCEPT } } });
    const { backends } = containersToBackends([inspected()], { config: cfg });
    expect(backends[0]?.health.expected_body).toBe('/ok|up/');
  });
});

describe('rejected labels', () => {
  test.each([
    ['app missing', { 'orchestry.app': undefined }, 'orchestry.app: is required'],
    ['app that would break the upstream block', { 'orchestry.app': 'web;}' },
      "orchestry.app: app name must start with a letter, digit or '_' and contain only letters, digits, '_', '.', '-' (at most 64 characters) (got \"web;}\")"],
    ['port with a directive end', { 'orchestry.port': '80;' }, 'orchestry.port: must be an integer (got "80;")'],
    ['port out of range', { 'orchestry.port': '70000' }, 'orchestry.port: must be between 1 and 65535 (got 70000)'],
    ['port as hex', { 'orchestry.port': '0x50' }, 'orchestry.port: must be an integer (got "0x50")'],
    ['weight carrying a flag', { 'orchestry.weight': '1 down' }, 'orchestry.weight: must be an integer (got "1 down")'],
    ['weight 0', { 'orchestry.weight': '0' }, 'orchestry.weight: must be between 1 and 1000 (got 0)'],
    ['backup not a boolean', { 'orchestry.backup': 'yes' }, 'orchestry.backup: must be true or false (got "yes")'],
    ['negative replica', { 'orchestry.replica': '-1' }, 'orchestry.replica: must be between 0 and 100000 (got -1)'],
    ['fractional replica', { 'orchestry.replica': '1.5' }, 'orchestry.replica: must be an integer (got 1.5)'],
    ['unknown address mode', { 'orchestry.address_mode': 'bridge' },
      'orchestry.address_mode: must be one of network, host (got "bridge")'],
    ['network name with a space', { 'orchestry.network': 'a b' }, 'orchestry.network: must be a Docker network name (got "a b")'],
    ['port_env not a variable name', { 'orchestry.port_env': 'PORT;rm' },
      'orchestry.port_env: must be an environment variable name (got "PORT;rm")'],
    ['port_range reversed', { 'orchestry.port_range': '20099-20000' },
      'orchestry.port_range: must be a port range "low-high" within 1..65535 (got "20099-20000")'],
    ['max_replicas 0', { 'orchestry.recovery.max_replicas': '0' },
      'orchestry.recovery.max_replicas: must be between 1 and 1000 (got 0)'],
    ['dependency that is not a container name', { 'orchestry.recovery.dependencies': 'redis, pg;rm' },
      'orchestry.recovery.dependencies: must contain only container names ([A-Za-z0-9][A-Za-z0-9_.-]*) (got "pg;rm")'],
    ['clear_cache method nginx would not need', { 'orchestry.recovery.clear_cache': 'PATCH /cache' },
      'orchestry.recovery.clear_cache.method: must be one of POST, PUT, DELETE, GET (got "PATCH")'],
    ['clear_cache path re-targeting the call', { 'orchestry.recovery.clear_cache': 'POST //evil.example/' },
      "orchestry.recovery.clear_cache.path: must not start with '//' (it would change the probed host) (got \"//evil.example/\")"],
    ['backup_app that would break the upstream block', { 'orchestry.upstream.backup_app': 'dr;}' },
      "orchestry.upstream.backup_app: app name must start with a letter, digit or '_' and contain only letters, digits, '_', '.', '-' (at most 64 characters) (got \"dr;}\")"],
    ['backup_app naming its own app', { 'orchestry.upstream.backup_app': 'web' },
      'orchestry.upstream.backup_app: must name another app (got "web")'],
    ['health duration not a duration', { 'orchestry.health.timeout_seconds': 'abc' },
      'orchestry.health.timeout_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "abc")'],
    ['health duration with a unit it does not know', { 'orchestry.health.period_seconds': '5 sec' },
      'orchestry.health.period_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "5 sec")'],
    ['health timeout below 100 ms', { 'orchestry.health.timeout_seconds': '50ms' },
      'orchestry.health.timeout_seconds: must be between 0.1 and 86400 (got "50ms")'],
    ['health threshold with a unit', { 'orchestry.health.failure_threshold': '3s' },
      'orchestry.health.failure_threshold: must be an integer (got "3s")'],
    ['health path with an injected directive', { 'orchestry.health.path': '/x;\nserver evil' },
      'orchestry.health.path: must not contain whitespace or control characters (got "/x;\\nserver evil")'],
    ['health path re-targeting the probe', { 'orchestry.health.path': '//evil.example/' },
      "orchestry.health.path: must not start with '//' (it would change the probed host) (got \"//evil.example/\")"],
    ['health protocol', { 'orchestry.health.protocol': 'udp' }, 'orchestry.health.protocol: must be one of HTTP, TCP (got "udp")'],
    ['health method', { 'orchestry.health.method': 'DELETE' },
      'orchestry.health.method: must be one of GET, POST, PUT, HEAD (got "DELETE")'],
    ['health scheme', { 'orchestry.health.scheme': 'ftp' }, 'orchestry.health.scheme: must be one of http, https (got "ftp")'],
    ['status code list', { 'orchestry.health.expected_status_codes': '200,abc' },
      'orchestry.health.expected_status_codes[1]: must be an integer (got "abc")'],
    ['status code out of range', { 'orchestry.health.expected_status_codes': '99' },
      'orchestry.health.expected_status_codes[0]: must be between 100 and 599 (got 99)'],
    ['headers not JSON', { 'orchestry.health.headers': 'X-A: 1' },
      'orchestry.health.headers: must be a JSON object, e.g. {"X-Probe":"1"} (got "X-A: 1")'],
    ['headers a JSON list', { 'orchestry.health.headers': '["X-A"]' }, 'orchestry.health.headers: must be a map (got ["X-A"])'],
    ['header re-targeting the probe', { 'orchestry.health.headers': '{"Host":"evil"}' },
      'orchestry.health.headers.Host: cannot be set (it would re-target the request)'],
    ['header value with a newline', { 'orchestry.health.headers': '{"X-A":"1\\r\\nX-B: 2"}' },
      'orchestry.health.headers.X-A: must not contain control characters (got "1\\r\\nX-B: 2")'],
    ['boolean not true/false', { 'orchestry.health.verify_ssl': 'no' }, 'orchestry.health.verify_ssl: must be true or false (got "no")'],
    ['threshold 0', { 'orchestry.health.failure_threshold': '0' }, 'orchestry.health.failure_threshold: must be at least 1 (got 0)'],
    ['retries too many', { 'orchestry.health.max_retries': '11' }, 'orchestry.health.max_retries: must be between 0 and 10 (got 11)'],
    ['misspelt health field', { 'orchestry.health.failure_treshold': '3' },
      `orchestry.health.failure_treshold: unknown health label (known: ${Object.keys(DEFAULT_HEALTH).join(', ')})`],
  ] as Array<[string, Record<string, string | undefined>, string]>)('%s', (_, extra, expected) => {
    const l = Object.fromEntries(Object.entries(labels(extra as Record<string, string>)).filter(([, v]) => v !== undefined));
    const result = containersToBackends([inspected({ labels: l })], { config: HOST });
    expect(result.backends).toEqual([]);
    expect(result.containers).toEqual([]);
    expect(result.rejected).toEqual([{ containerId: ID_A, containerName: 'web-1', errors: [expected] }]);
  });

  test('reports every bad label of a container at once, and the other containers still map', () => {
    const bad = inspected({
      id: 'b'.repeat(64),
      name: 'evil',
      labels: {
        'orchestry.enable': 'true',
        'orchestry.app': 'web;}',
        'orchestry.port': '80;',
        'orchestry.weight': '1 down',
        'orchestry.health.path': '/x;\nserver evil',
        'orchestry.health.timeout_seconds': 'abc',
      },
    });
    const good = inspected({ name: 'web-1' });
    const result = containersToBackends([bad, good], { config: HOST });
    expect(result.backends.map((b) => b.id)).toEqual(['web/127.0.0.1:18123']);
    expect(result.rejected).toHaveLength(1);
    expect(result.rejected[0]?.containerName).toBe('evil');
    expect(result.rejected[0]?.errors).toEqual([
      expect.stringMatching(/^orchestry\.app: .*\(got "web;}"\)$/),
      'orchestry.port: must be an integer (got "80;")',
      'orchestry.weight: must be an integer (got "1 down")',
      'orchestry.health.path: must not contain whitespace or control characters (got "/x;\\nserver evil")',
      'orchestry.health.timeout_seconds: must be a duration such as 500ms, 2s or 1m, or a number of seconds (got "abc")',
    ]);
  });

  test('no value of a rejected container reaches any backend', () => {
    const extras: Array<Record<string, string>> = [
      { 'orchestry.app': 'web;}' },
      { 'orchestry.port': '80;' },
      { 'orchestry.weight': '1 down' },
      { 'orchestry.health.path': '/x;\nserver evil' },
      { 'orchestry.backup': 'true; server 10.0.0.1' },
    ];
    const attempts = extras.map((extra, i) => inspected({ id: String(i).repeat(64), name: `evil-${i}`, labels: labels(extra) }));
    const result = containersToBackends(attempts, { config: HOST });
    expect(result.backends).toEqual([]);
    expect(result.apps).toEqual([]);
    expect(result.rejected.map((r) => r.containerName)).toEqual(['evil-0', 'evil-1', 'evil-2', 'evil-3', 'evil-4']);
    expect(JSON.stringify(result.backends)).not.toMatch(/evil|;/);
  });

  test('two containers claiming one address: the second by name is rejected', () => {
    const first = inspected({ name: 'web-a' });
    const second = inspected({ id: 'b'.repeat(64), name: 'web-b' });
    const result = containersToBackends([second, first], { config: HOST });
    expect(result.backends.map((b) => b.container?.name)).toEqual(['web-a']);
    expect(result.rejected).toEqual([
      {
        containerId: 'b'.repeat(64),
        containerName: 'web-b',
        errors: ['orchestry.port: address 127.0.0.1:18123 of app "web" is already used by container "web-a"'],
      },
    ]);
  });

  test('backup on an app whose balance nginx cannot combine with backup is rejected', () => {
    const cfg = config({
      docker: { address_mode: 'host' },
      apps: { web: { backends: ['127.0.0.1:9100'], upstream: { balance: 'ip_hash' }, docker: ACCEPT } },
    });
    expect(errorsOf({ 'orchestry.backup': 'true' }, cfg)).toEqual([
      'orchestry.backup: cannot be used with balance ip_hash of app "web" (nginx rejects it) (got "true")',
    ]);
  });
});

describe('addresses', () => {
  const compose = (networks: Record<string, { IPAddress: string; GlobalIPv6Address?: string }> | null, extra = {}) =>
    inspected({ labels: labels({ 'orchestry.port': '8000', ...extra }), networks });
  const NETWORK = config();
  const mapOne = (c: InspectedContainer, cfg: SidecarConfig = NETWORK) => containersToBackends([c], { config: cfg });

  test('network mode uses the IP on the only network', () => {
    const { backends } = mapOne(compose({ shop_default: { IPAddress: '172.18.0.5' } }));
    expect(backends[0]).toMatchObject({ id: 'web/172.18.0.5:8000', host: '172.18.0.5', port: 8000 });
  });

  test('network mode uses the network the label names, else docker.network', () => {
    const networks = { front: { IPAddress: '172.18.0.5' }, back: { IPAddress: '172.19.0.7' } };
    expect(mapOne(compose(networks, { 'orchestry.network': 'back' })).backends[0]?.host).toBe('172.19.0.7');
    const cfg = config({ docker: { network: 'front' } });
    expect(mapOne(compose(networks), cfg).backends[0]?.host).toBe('172.18.0.5');
  });

  test('an IPv6-only network address is used and bracketed in the id', () => {
    const { backends } = mapOne(compose({ v6: { IPAddress: '', GlobalIPv6Address: 'fd00::5' } }));
    expect(backends[0]?.id).toBe('web/[fd00::5]:8000');
  });

  test('several networks and none named: rejected with a clear error', () => {
    const networks = { front: { IPAddress: '172.18.0.5' }, back: { IPAddress: '172.19.0.7' } };
    expect(mapOne(compose(networks)).rejected[0]?.errors).toEqual([
      'orchestry.network: is required when the container is on several networks (attached: back, front), or set docker.network',
    ]);
  });

  test('a named network the container is not on: rejected, naming where the name came from', () => {
    const networks = { front: { IPAddress: '172.18.0.5' } };
    expect(mapOne(compose(networks, { 'orchestry.network': 'back' })).rejected[0]?.errors).toEqual([
      'orchestry.network: container is not attached to network "back" (attached: front)',
    ]);
    expect(mapOne(compose(networks), config({ docker: { network: 'back' } })).rejected[0]?.errors).toEqual([
      'docker.network: container is not attached to network "back" (attached: front)',
    ]);
  });

  test('host networking in network mode: rejected, pointing at address_mode host', () => {
    expect(mapOne(inspected()).rejected[0]?.errors).toEqual([
      'orchestry.address_mode: is network but the container has no IP address on network "host"; use orchestry.address_mode=host for host networking',
    ]);
    expect(mapOne(compose(null)).rejected[0]?.errors).toEqual([
      'orchestry.address_mode: is network but the container is on no Docker network; use orchestry.address_mode=host for host networking',
    ]);
  });

  test('address mode: the label, else the YAML app, else docker.address_mode', () => {
    const viaLabel = inspected({ labels: labels({ 'orchestry.address_mode': 'host' }) });
    expect(mapOne(viaLabel).backends[0]?.host).toBe('127.0.0.1');
    const yamlApp = config({ docker: { host_address: '127.0.0.2' }, apps: { web: { docker: { address_mode: 'host', ...ACCEPT } } } });
    expect(mapOne(inspected(), yamlApp).backends[0]?.id).toBe('web/127.0.0.2:18123');
    const labelWins = inspected({ labels: labels({ 'orchestry.address_mode': 'network' }), networks: { n: { IPAddress: '10.1.2.3' } } });
    expect(mapOne(labelWins, HOST).backends[0]?.host).toBe('10.1.2.3');
  });
});

describe('apps only labels define', () => {
  test('are returned with defaults and the app-level labels of their first container by name', () => {
    const l = (name: string, extra: Record<string, string>) =>
      ({ 'orchestry.enable': 'true', 'orchestry.app': name, ...extra });
    const containers = [
      inspected({ id: '1'.repeat(64), name: 'api-2', labels: l('api', { 'orchestry.port': '18302', 'orchestry.port_env': 'LISTEN_PORT', 'orchestry.recovery.max_replicas': '9' }) }),
      inspected({ id: '2'.repeat(64), name: 'api-1', labels: l('api', { 'orchestry.port': '18301', 'orchestry.port_range': '20000-20099', 'orchestry.recovery.max_replicas': '4' }) }),
      inspected({ id: '3'.repeat(64), name: 'static-1', labels: l('static', { 'orchestry.port': '18400', 'orchestry.port_env': 'X' }) }),
    ];
    // `static` is a YAML app: its containers are backends but it is not returned.
    const cfg = config({ docker: { address_mode: 'host' }, nginx: { ejected: 'omit' }, apps: { static: { docker: ACCEPT } } });
    const { apps, backends } = containersToBackends(containers, { config: cfg });
    expect(backends.map((b) => b.id)).toEqual(['api/127.0.0.1:18301', 'api/127.0.0.1:18302', 'static/127.0.0.1:18400']);
    expect(apps).toEqual([
      {
        name: 'api',
        docker: { address_mode: null, port_range: [20000, 20099], port_env: 'LISTEN_PORT', max_replicas: 4, accept_containers: true },
        recovery: { dependencies: [], clear_cache: null },
        backends: [],
        health: DEFAULT_HEALTH,
        upstream: { ejected: 'omit', keepalive: 32, balance: 'round_robin', backup_app: null, max_fails: 1, fail_timeout_seconds: null, context: 'http' },
      },
    ]);
  });
});

describe('recovery and failover labels', () => {
  test('set the dependencies, clear_cache call and backup app of an app only labels define', () => {
    const c = inspected({
      labels: labels({
        'orchestry.recovery.dependencies': 'redis, shop-db,redis',
        'orchestry.recovery.clear_cache': 'DELETE /admin/cache',
        'orchestry.upstream.backup_app': 'web-dr',
      }),
    });
    const { apps, rejected } = containersToBackends([c], { config: HOST });
    expect(rejected).toEqual([]);
    expect(apps[0]).toMatchObject({
      name: 'web',
      recovery: { dependencies: ['redis', 'shop-db'], clear_cache: { method: 'DELETE', path: '/admin/cache' } },
      upstream: { backup_app: 'web-dr', balance: 'round_robin' },
    });
  });

  test('a clear_cache label without a method is a POST', () => {
    const c = inspected({ labels: labels({ 'orchestry.recovery.clear_cache': '/cache/clear' }) });
    expect(containersToBackends([c], { config: HOST }).apps[0]?.recovery.clear_cache).toEqual({ method: 'POST', path: '/cache/clear' });
  });

  test('leave an app the YAML defines as the YAML says', () => {
    const cfg = config({ docker: { address_mode: 'host' }, apps: { web: { recovery: { dependencies: ['cache'] }, docker: ACCEPT } } });
    const c = inspected({ labels: labels({ 'orchestry.recovery.dependencies': 'redis', 'orchestry.upstream.backup_app': 'dr' }) });
    const { apps, backends } = containersToBackends([c], { config: cfg });
    expect(backends).toHaveLength(1);
    expect(apps).toEqual([]);
    expect(cfg.apps.find((a) => a.name === 'web')).toMatchObject({ recovery: { dependencies: ['cache'] }, upstream: { backup_app: null } });
  });
});

describe('draining', () => {
  test('marks only the backends whose container is being stopped', () => {
    const a = inspected({ name: 'web-a', labels: labels({ 'orchestry.port': '18001' }) });
    const b = inspected({ id: 'b'.repeat(64), name: 'web-b', labels: labels({ 'orchestry.port': '18002' }) });
    const { backends } = containersToBackends([a, b], { config: HOST });
    const marked = snapshotWithDraining(backends, new Set(['b'.repeat(64)]));
    expect(marked.map((x) => [x.container?.name, x.draining])).toEqual([
      ['web-a', undefined],
      ['web-b', true],
    ]);
    expect(backends.every((x) => x.draining === undefined)).toBe(true);
  });
});

describe('who may join which app (issue 11)', () => {
  const other = (name: string, app: string, port: string, extra: Record<string, string> = {}) =>
    inspected({ id: name.padEnd(64, '0'), name, labels: { 'orchestry.enable': 'true', 'orchestry.app': app, 'orchestry.port': port, ...extra } });

  test('a container naming a YAML app is refused unless the app accepts containers', () => {
    const closed = config({ docker: { address_mode: 'host' }, apps: { web: { backends: ['127.0.0.1:9000'] } } });
    const result = containersToBackends([inspected()], { config: closed });
    expect(result.backends).toEqual([]);
    expect(result.rejected).toEqual([
      {
        containerId: ID_A,
        containerName: 'web-1',
        errors: [
          'orchestry.app: app "web" is defined in the YAML, which does not let containers join it ' +
            '(set apps.web.docker.accept_containers: true) (got "web")',
        ],
      },
    ]);
    const open = config({ docker: { address_mode: 'host' }, apps: { web: { backends: ['127.0.0.1:9000'], docker: ACCEPT } } });
    expect(containersToBackends([inspected()], { config: open }).backends.map((b) => b.id)).toEqual(['web/127.0.0.1:18123']);
  });

  test('an app only labels define accepts its containers, and says so', () => {
    expect(containersToBackends([inspected()], { config: HOST }).apps[0]?.docker.accept_containers).toBe(true);
  });

  test('docker.constraints scope discovery: containers without every constraint label are ignored, not rejected', () => {
    const cfg = config({ docker: { address_mode: 'host', constraints: ['com.docker.compose.project=shop', 'tier'] } });
    const mine = other('shop-web', 'web', '18001', { 'com.docker.compose.project': 'shop', tier: 'front' });
    const notTier = other('shop-x', 'web', '18002', { 'com.docker.compose.project': 'shop' });
    const theirs = other('blog-web', 'web', '18003', { 'com.docker.compose.project': 'blog', tier: 'front' });
    const unlabelled = other('lone', 'web', '18004');
    const result = containersToBackends([mine, notTier, theirs, unlabelled], { config: cfg });
    expect(result.backends.map((b) => b.container?.name)).toEqual(['shop-web']);
    expect(result.containers.map((c) => c.container.name)).toEqual(['shop-web']);
    expect(result.rejected).toEqual([]);
  });

  test("on host networking the sidecar's own ports and docker.forbidden_ports are refused, naming what listens there", () => {
    const ownPorts = new Map([[9180, "the sidecar's admin API (admin.listen)"]]);
    const cfg = config({ docker: { address_mode: 'host', forbidden_ports: [8080] } });
    const result = containersToBackends(
      [other('a', 'web', '9180', { 'orchestry.weight': '1000' }), other('b', 'web', '8080'), other('c', 'web', '80'), other('d', 'web', '18005')],
      { config: cfg, ownPorts },
    );
    expect(result.backends.map((b) => b.port)).toEqual([80, 18005]);
    expect(result.rejected).toEqual([
      {
        containerId: 'a'.padEnd(64, '0'),
        containerName: 'a',
        errors: ["orchestry.port: port 9180 is the sidecar's admin API (admin.listen); no container on host networking is routed there (got \"9180\")"],
      },
      {
        containerId: 'b'.padEnd(64, '0'),
        containerName: 'b',
        errors: ["orchestry.port: port 8080 is in docker.forbidden_ports (nginx's own listening ports); no container on host networking is routed there (got \"8080\")"],
      },
    ]);
    // The defaults forbid nginx's usual 80 and 443; an exposed port or a health port is checked the same way.
    const exposed = other('e', 'web', '1');
    delete exposed.Config.Labels!['orchestry.port'];
    exposed.Config.ExposedPorts = { '443/tcp': {} };
    expect(containersToBackends([exposed, other('f', 'web', '80')], { config: HOST }).rejected.map((r) => r.errors[0]?.slice(0, 28))).toEqual([
      'orchestry.port: port 443 is ',
      'orchestry.port: port 80 is i',
    ]);
  });

  test('a container not started yet is refused for its port all the same, and defines no app', () => {
    const ownPorts = new Map([[9180, "the sidecar's admin API (admin.listen)"]]);
    const created = inspected({ id: 'evil'.padEnd(64, '0'), name: 'evil', labels: { 'orchestry.enable': 'true', 'orchestry.app': 'evil', 'orchestry.port': '9180' }, state: { Status: 'created', Running: false } });
    const result = containersToBackends([created], { config: config({ docker: { address_mode: 'host' } }), ownPorts });
    expect(result.rejected.map((r) => r.errors[0]?.slice(0, 33))).toEqual(['orchestry.port: port 9180 is the ']);
    expect(result.apps).toEqual([]);
    expect(result.containers).toEqual([]);
  });

  test('in network mode the port is on the container\'s own address: no port is forbidden', () => {
    const networks = { shop_default: { IPAddress: '172.18.0.5' } };
    const c = inspected({ labels: labels({ 'orchestry.port': '80' }), networks });
    const result = containersToBackends([c], { config: config(), ownPorts: new Map([[80, 'x']]) });
    expect(result.backends.map((b) => b.id)).toEqual(['web/172.18.0.5:80']);
  });
});

describe('one bad container cannot break nginx for the rest (issue 11)', () => {
  const named = (name: string, app: string, port: string, extra: Record<string, string> = {}) =>
    inspected({ id: name.padEnd(64, '0'), name, labels: { 'orchestry.enable': 'true', 'orchestry.app': app, 'orchestry.port': port, ...extra } });

  test('an app name that differs from a YAML app only in case is refused (nginx: duplicate upstream)', () => {
    const cfg = config({ docker: { address_mode: 'host' }, apps: { web: { backends: ['127.0.0.1:9000'] } } });
    const result = containersToBackends([named('evil', 'WEB', '18001')], { config: cfg });
    expect(result.apps).toEqual([]);
    expect(result.rejected[0]?.errors).toEqual(['orchestry.app: conflicts with app "web": nginx compares upstream names ignoring case (got "WEB")']);
  });

  test('between apps only labels define, one seen before keeps its name, else the first container by name', () => {
    const containers = [named('a-1', 'Shop', '18001'), named('b-1', 'shop', '18002'), named('c-1', 'SHOP', '18003')];
    const first = containersToBackends(containers, { config: HOST });
    expect(first.apps.map((a) => a.name)).toEqual(['Shop']);
    expect(first.rejected.map((r) => [r.containerName, r.errors])).toEqual([
      ['b-1', ['orchestry.app: conflicts with app "Shop": nginx compares upstream names ignoring case (got "shop")']],
      ['c-1', ['orchestry.app: conflicts with app "Shop": nginx compares upstream names ignoring case (got "SHOP")']],
    ]);
    const known = containersToBackends(containers, { config: HOST, knownApps: ['shop'] });
    expect(known.apps.map((a) => a.name)).toEqual(['shop']);
    expect(known.backends.map((b) => b.container?.name)).toEqual(['b-1']);
  });

  test('an app whose every container is a backup is refused (nginx: no servers in upstream)', () => {
    const result = containersToBackends([named('shop-1', 'shop', '18001', { 'orchestry.backup': 'true' })], { config: HOST });
    expect(result.apps).toEqual([]);
    expect(result.rejected[0]?.errors).toEqual([
      'orchestry.backup: every server of app "shop" would be a backup; nginx needs at least one that is not (got "true")',
    ]);
    // With a primary container, or a YAML primary backend, the backup is fine.
    const withPrimary = containersToBackends([named('shop-1', 'shop', '18001', { 'orchestry.backup': 'true' }), named('shop-2', 'shop', '18002')], { config: HOST });
    expect(withPrimary.rejected).toEqual([]);
    const yaml = config({ docker: { address_mode: 'host' }, apps: { shop: { backends: ['127.0.0.1:9000'], docker: ACCEPT } } });
    expect(containersToBackends([named('shop-1', 'shop', '18001', { 'orchestry.backup': 'true' })], { config: yaml }).rejected).toEqual([]);
  });
});
