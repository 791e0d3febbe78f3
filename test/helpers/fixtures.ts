/**
 * The tests' shared fixtures, all pure (unit tests import them; test/helpers/no-io-guard.ts):
 * backends and backend views, probe results, failure events, container refs, apps and desired
 * sets, the recovery planner's, failure detection's and alerting's config, and the text of a
 * sidecar YAML file and of a private nginx's nginx.conf. Every factory takes overrides; its
 * defaults describe `web/127.0.0.1:8001`, healthy. Configuration defaults come from
 * parseConfig, so they are the schema's own.
 */
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/schema.js';
import type {
  AlertingConfig,
  AlertReceiverConfig,
  AlertRouteConfig,
  AppConfig,
  BackendConfig,
  FailureDetectionConfig,
  SidecarConfig,
  UpstreamOptions,
} from '../../src/config/types.js';
import type { BackendView, FailureEvent } from '../../src/health/types.js';
import { backendId, formatAddress, type Backend, type ContainerRef, type ProbeResult } from '../../src/model.js';
import { plannerConfig } from '../../src/recovery/planner.js';
import type { PlannerConfig } from '../../src/recovery/types.js';
import { buildDesiredSet } from '../../src/upstream/desired.js';
import type { DesiredSet } from '../../src/upstream/types.js';

/** A validated SidecarConfig from raw YAML data; throws with every issue otherwise. */
export function configOf(raw: unknown): SidecarConfig {
  const result = parseConfig(raw);
  if (!result.ok) throw new Error(result.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return result.config;
}

/** A config with one app `web` and nothing else set: every default the schema gives. */
export const DEFAULT_CONFIG: SidecarConfig = configOf({ apps: { web: {} } });

/** The default app, for its defaulted sections (health, docker, recovery, upstream). */
export const DEFAULT_APP = DEFAULT_CONFIG.apps[0]!;

type Address = { app?: string; host?: string; port?: number };
const address = (over: Address) => {
  const app = over.app ?? 'web';
  const host = over.host ?? '127.0.0.1';
  const port = over.port ?? 8001;
  return { app, host, port, id: backendId(app, host, port) };
};

/** A backend as discovery reports it, with the default health settings; the id follows app, host and port. */
export function backend(over: Partial<Backend> = {}): Backend {
  const { app, host, port, id } = address(over);
  return { id, app, host, port, weight: 1, backup: false, health: DEFAULT_APP.health, source: 'test', ...over };
}

/** A backend on 127.0.0.1:port whose health settings are the defaults overridden by `health`. */
export function probeBackend(port: number, health: Partial<Backend['health']> = {}, app = 'web'): Backend {
  return backend({ app, port, health: { ...DEFAULT_APP.health, ...health } });
}

/** The health stage's view of a backend: healthy, breaker closed, routed; the id follows app, host and port. */
export function backendView(over: Partial<BackendView> = {}): BackendView {
  const { app, host, port, id } = address(over);
  return {
    backendId: id,
    app,
    host,
    port,
    weight: 1,
    backup: false,
    health: 'healthy',
    breaker: 'closed',
    ejected: false,
    draining: false,
    container: null,
    consecutiveFailures: 0,
    consecutiveSuccesses: 1,
    lastProbe: null,
    lastFailure: null,
    since: 0,
    ...over,
  };
}

/** An app with the default settings; backends as `host:port` strings or full configs. */
export function app(
  name: string,
  backends: Array<string | Partial<BackendConfig> & { host: string; port: number }>,
  upstream: Partial<UpstreamOptions> = {},
): AppConfig {
  return {
    name,
    docker: DEFAULT_APP.docker,
    recovery: DEFAULT_APP.recovery,
    backends: backends.map((b) => {
      if (typeof b !== 'string') return { weight: 1, backup: false, ...b };
      const i = b.lastIndexOf(':');
      return { host: b.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(b.slice(i + 1)), weight: 1, backup: false };
    }),
    health: DEFAULT_APP.health,
    upstream: { ...DEFAULT_APP.upstream, ...upstream },
  };
}

/** The health stage's view of each backend of `a`; `ejected` lists `host:port`s to eject. */
export function views(a: AppConfig, ejected: string[] = []): BackendView[] {
  return a.backends.map((b) => {
    const out = ejected.includes(formatAddress(b.host, b.port));
    return backendView({
      app: a.name,
      host: b.host,
      port: b.port,
      weight: b.weight,
      backup: b.backup,
      health: out ? 'unhealthy' : 'healthy',
      ejected: out,
      consecutiveFailures: out ? 3 : 0,
      consecutiveSuccesses: out ? 0 : 1,
    });
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

/**
 * Failure detection as the classify and registry tests run it: slow above 5 s, an error rate
 * above 5 % over 10 minutes, 3 failures in a row.
 */
export function failureDetection(over: Partial<FailureDetectionConfig> = {}): FailureDetectionConfig {
  return {
    ...DEFAULT_CONFIG.failure_detection,
    max_response_time_ms: 5000,
    max_error_rate_percent: 5,
    consecutive_failure_limit: 3,
    failure_rate_window_minutes: 10,
    ...over,
  };
}

/** A passing HTTP probe of web/127.0.0.1:8001 that took 12 ms. */
export function probeResult(over: Partial<ProbeResult> = {}): ProbeResult {
  return {
    backendId: 'web/127.0.0.1:8001',
    app: 'web',
    checkType: 'http',
    healthy: true,
    responseTimeMs: 12,
    statusCode: 200,
    body: 'ok',
    errorClass: null,
    error: null,
    startedAt: 0,
    finishedAt: 12,
    attempts: 1,
    ...over,
  };
}

/** A third failed health check in a row of web/127.0.0.1:8001, severity high. */
export function failureEvent(over: Partial<FailureEvent> = {}): FailureEvent {
  return {
    failureType: 'health_check_failed',
    backendId: 'web/127.0.0.1:8001',
    app: 'web',
    severity: 'high',
    message: 'HTTP 500 from /health',
    details: {},
    timestamp: 0,
    consecutiveCount: 3,
    totalCount: 3,
    firstOccurrence: 0,
    critical: false,
    ...over,
  };
}

/** A running container `web-1` of app web, healthy by its HEALTHCHECK, never restarted. */
export function containerRef(over: Partial<ContainerRef> = {}): ContainerRef {
  return {
    id: 'c1',
    name: 'web-1',
    image: 'orchestry-test/node-app:1',
    replica: null,
    state: 'running',
    dockerHealth: 'healthy',
    restartCount: 0,
    oomKilled: false,
    exitCode: null,
    startedAt: 0,
    labels: { 'orchestry.app': 'web' },
    ...over,
  };
}

/** The ContainerRef the Docker source builds from `docker inspect` (no replica label read). */
export function containerRefOf(info: Dockerode.ContainerInspectInfo): ContainerRef {
  return containerRef({
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    image: info.Config.Image,
    state: info.State.Status,
    dockerHealth: info.State.Health?.Status ?? null,
    restartCount: info.RestartCount,
    oomKilled: info.State.OOMKilled,
    exitCode: info.State.Running ? null : info.State.ExitCode,
    startedAt: Date.parse(info.State.StartedAt),
    labels: info.Config.Labels ?? {},
  });
}

/**
 * The recovery planner's config as the sidecar derives it from the schema's defaults, with
 * mode "on" (the default is dry-run); recovery settings in `over` go through the same
 * derivation (the action timeout follows stop_timeout_seconds), the rest replace the result.
 */
export function recoveryConfig(over: Partial<PlannerConfig> = {}): PlannerConfig {
  const { startup_grace_seconds, action_timeout_seconds, ...recovery } = over;
  const derived = plannerConfig({
    recovery: { ...DEFAULT_CONFIG.recovery, mode: 'on', ...recovery },
    docker: DEFAULT_CONFIG.docker,
  });
  return {
    ...derived,
    ...(startup_grace_seconds === undefined ? {} : { startup_grace_seconds }),
    ...(action_timeout_seconds === undefined ? {} : { action_timeout_seconds }),
  };
}

/** A webhook receiver `name` (to a closed port unless `over` says otherwise). */
export function alertReceiver(name: string, over: Partial<AlertReceiverConfig> = {}): AlertReceiverConfig {
  return { name, type: 'webhook', url: `http://127.0.0.1:9/${name}`, headers: {}, timeout_seconds: 5, max_per_minute: 30, ...over };
}

/** A route of every app, failure type and severity to `receivers`. */
export function alertRoute(receivers: string[], over: Partial<AlertRouteConfig> = {}): AlertRouteConfig {
  return { receivers, min_severity: 'low', apps: [], failure_types: [], ...over };
}

/** Alerting enabled, one webhook receiver `ops` on one catch-all route. */
export function alertConfig(over: Partial<AlertingConfig> = {}): AlertingConfig {
  return {
    enabled: true,
    receivers: [alertReceiver('ops')],
    routes: [alertRoute(['ops'])],
    escalation: { after_seconds: 900, receivers: [] },
    resend_interval_seconds: 60,
    retry_min_seconds: 1,
    retry_max_seconds: 300,
    ...over,
  };
}

/** A deterministic PRNG (mulberry32) in [0, 1), so a failure can be reproduced from its seed. */
export function seededRandom(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The nginx binary the tests run (NGINX_BIN overrides). */
export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

/** Where a private nginx in `dir` keeps its files (test/helpers/nginx-instance.ts makeNginxDir). */
export function nginxPaths(dir: string) {
  return {
    configPath: join(dir, 'nginx.conf'),
    pidPath: join(dir, 'nginx.pid'),
    outputPath: join(dir, 'conf.d', 'orchestry-upstreams.conf'),
    errorLog: join(dir, 'logs', 'error.log'),
    accessLog: join(dir, 'logs', 'access.log'),
  };
}

/** http-level directives that keep every temp path inside `dir`. */
export function privateTempPaths(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `    ${t}_temp_path ${join(dir, 'tmp', t)};`)
    .join('\n');
}

/**
 * nginx.conf of a private nginx in `dir`: one worker (so a reload replaces exactly one), pid
 * and logs inside `dir`, its generated upstreams included, then `http` (proxy settings and
 * server blocks), each line indented into the http block.
 */
export function nginxConf(opts: {
  dir: string;
  http: string[];
  /** Default the generated upstreams file, conf.d/orchestry-upstreams.conf; null: none. */
  include?: string | null;
  workerConnections?: number;
  /** Keep an access log in logs/access.log (default off), or these `access_log` directives. */
  accessLog?: boolean | string[];
}): string {
  const paths = nginxPaths(opts.dir);
  return [
    `pid ${paths.pidPath};`,
    `error_log ${paths.errorLog} notice;`,
    'worker_processes 1;',
    `events { worker_connections ${opts.workerConnections ?? 64}; }`,
    'http {',
    ...(Array.isArray(opts.accessLog) ? opts.accessLog : [`access_log ${opts.accessLog ? paths.accessLog : 'off'};`]).map((line) => `  ${line}`),
    privateTempPaths(opts.dir),
    ...(opts.include === null ? [] : [`  include ${opts.include ?? 'conf.d/orchestry-upstreams.conf'};`]),
    ...opts.http.map((line) => `  ${line}`),
    '}',
    '',
  ].join('\n');
}

/** http-level directives nginx needs to keep connections to upstream servers alive. */
export const UPSTREAM_KEEPALIVE = ['proxy_http_version 1.1;', 'proxy_set_header Connection "";'];

/**
 * nginx.conf of a private nginx in front of the sidecar's upstreams, as the end-to-end tests run
 * it: 256 connections, an access log, kept-alive upstream connections and a 1 s connect timeout;
 * `http` adds the rest (retry policy, server blocks).
 */
export function frontNginxConf(dir: string, http: string[]): string {
  return nginxConf({ dir, workerConnections: 256, accessLog: true, http: [...UPSTREAM_KEEPALIVE, 'proxy_connect_timeout 1s;', ...http] });
}

/** The `nginx:` section of a sidecar config driving the private nginx in `dir`. */
export function nginxSection(dir: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const paths = nginxPaths(dir);
  return {
    binary: NGINX_BIN,
    prefix: dir,
    config_path: paths.configPath,
    output_path: paths.outputPath,
    pid_path: paths.pidPath,
    // Every ejection is written to the file, so tests can see it there; what reload mode leaves
    // to nginx by default (refused connections) is tested on its own in pipeline-e2e.
    leave_to_nginx: [],
    ...over,
  };
}

/** A sidecar config file's text; `config` is what the YAML says, sections as plain objects. */
export function sidecarYaml(config: Record<string, unknown>): string {
  return stringify(config, { lineWidth: 0 });
}
