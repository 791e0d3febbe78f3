/**
 * Every default and every enumerated value of the configuration, each written once: validation,
 * the reducers, the generated JSON Schema and the tests all read them from here. Frozen, so a
 * caller that wants to change one spreads it into a copy.
 */
import type {
  AdminConfig,
  AlertingConfig,
  AlertReceiverConfig,
  AlertRouteConfig,
  AppDockerOptions,
  AppRecoveryOptions,
  BreakerConfig,
  DockerConfig,
  FailureDetectionConfig,
  HealthCheckConfig,
  LoggingConfig,
  NginxConfig,
  PassiveConfig,
  ProbeSettings,
  RecoveryConfig,
  StoreConfig,
  UpstreamOptions,
} from './types.js';

// ---- enums (matched case-insensitively, normalised to these spellings) ----------------------

/** health.protocol */
export const PROTOCOLS = ['HTTP', 'TCP'] as const;
/** health.scheme */
export const SCHEMES = ['http', 'https'] as const;
/** health.method */
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'HEAD'] as const;
/** upstream.balance */
export const BALANCE_METHODS = ['round_robin', 'least_conn', 'ip_hash', 'random'] as const;
/** upstream.context */
export const UPSTREAM_CONTEXTS = ['http', 'stream'] as const;
/** nginx.ejected, upstream.ejected */
export const EJECT_MODES = ['down', 'omit'] as const;
/** docker.address_mode, apps.<name>.docker.address_mode */
export const ADDRESS_MODES = ['network', 'host'] as const;
/** nginx.mode */
export const NGINX_MODES = ['local', 'docker'] as const;
/** nginx.update_via */
export const UPDATE_VIA = ['auto', 'dns', 'reload'] as const;
/** nginx.leave_to_nginx */
export const LEAVE_TO_NGINX = ['refused', '5xx'] as const;
/** passive.probe_success_releases */
export const PROBE_RELEASES = ['gateway', 'all', 'none'] as const;
/** recovery.mode */
export const RECOVERY_MODES = ['off', 'dry-run', 'on'] as const;
/** logging.level */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
/** logging.format */
export const LOG_FORMATS = ['json', 'text'] as const;
/** Failure and alert severities, lowest first (alerting.routes[].min_severity). */
export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
/** alerting.receivers.<name>.type */
export const RECEIVER_TYPES = ['webhook', 'slack', 'alertmanager'] as const;
/** Methods a clear_cache call may use. */
export const CACHE_METHODS = ['POST', 'PUT', 'DELETE', 'GET'] as const;

/** Freezes a default and the lists and maps in it. */
function frozen<T extends object>(value: T): Readonly<T> {
  for (const inner of Object.values(value)) {
    if (typeof inner === 'object' && inner !== null) frozen(inner as object);
  }
  return Object.freeze(value);
}

// ---- apps ---------------------------------------------------------------------------------

/**
 * Health check defaults: what a load-balancer user expects, not the seed's. The seed's
 * HealthCheckConfig (period 30 s, timeout 5 s, initial delay 30 s, failure_threshold 3,
 * success_threshold 1) took 60-90 s to eject a dead backend (issue 10). These follow HAProxy's
 * defaults, `inter 2s fall 3 rise 2`:
 * - period 2 s: a dead backend is out after about 3 periods (4-6 s from its death), a hung one
 *   within about 7 s, at half a probe per second per backend (1,000 backends: 500 probes/s, a
 *   quarter of what bench/probe-scale.mjs runs);
 * - timeout 1 s (HAProxy times a check out at `inter` unless told otherwise; Kubernetes' default
 *   is 1 s too): a health endpoint answers in milliseconds, and it must be below the period;
 * - failure_threshold 3 (HAProxy `fall 3`, Kubernetes 3, the seed 3): one lost packet or slow
 *   answer never ejects;
 * - success_threshold 2 (HAProxy `rise 2`; the seed 1): a backend that answers once between
 *   crashes is not readmitted on that answer alone, and readmission still takes only ~2 periods;
 * - initial_delay 0 (Kubernetes 0; the seed 30 s): a new backend is routed while its health is
 *   unknown, so a delay only postpones the evidence that ejects a broken one. One still booting
 *   is ejected and readmitted like any other, and recovery leaves a new container alone for
 *   docker.startup_grace_seconds whatever its probes say.
 * Plus `scheme: http` and no `expected_body`, which the seed does not have.
 */
export const DEFAULT_HEALTH: HealthCheckConfig = frozen({
  protocol: 'HTTP',
  scheme: 'http',
  path: '/health',
  port: 8000,
  method: 'GET',
  headers: {},
  body: null,
  expected_status_codes: [200],
  expected_body: null,
  probe_data: null,
  expected_response: null,
  initial_delay_seconds: 0,
  period_seconds: 2,
  // HAProxy's downinter: an ejected backend is probed faster, so with success_threshold 2 it is
  // readmitted within half a second of answering again, which leaves room for nginx's own
  // once-a-second re-resolution in DNS mode inside "back within 1.5 s" (a refused connection
  // costs little; while the sidecar is overloaded ejected backends keep their own period).
  ejected_period_seconds: 0.25,
  // HAProxy's fastinter: once a routed backend has failed a probe, or nginx's log shows it failing
  // real requests, the probes that decide about it come quickly (failure_threshold 3: ejected
  // about half a second after the first failure, not two periods later).
  fast_period_seconds: 0.25,
  timeout_seconds: 1,
  failure_threshold: 3,
  success_threshold: 2,
  enabled: true,
  follow_redirects: false,
  verify_ssl: true,
  max_retries: 0,
});

/** Upstream options of an app that sets none (`ejected` follows `nginx.ejected`). */
export const DEFAULT_UPSTREAM: Readonly<UpstreamOptions> = frozen({
  ejected: 'down',
  keepalive: 32,
  balance: 'round_robin',
  backup_app: null,
  // nginx's own check stays on (one failed attempt takes a server out) but only briefly: the
  // sidecar's probes and breaker hold ejections; nginx's default 10 s would keep a restarted
  // backend out up to 10 s after the sidecar readmitted it. null: 1 s with reloads, 2 s in DNS
  // mode, where an ejection reaches nginx at its next re-resolution (every second): with 1 s nginx
  // went back to a server answering 500 just before the answer without it landed.
  max_fails: 1,
  fail_timeout_seconds: null,
  context: 'http',
});

/** Defaults of an app's Docker options. */
export const DEFAULT_APP_DOCKER: AppDockerOptions = frozen({
  address_mode: null,
  port_range: null,
  port_env: 'PORT',
  max_replicas: null,
  accept_containers: false,
});

/** Defaults of an app's recovery options. */
export const DEFAULT_APP_RECOVERY: AppRecoveryOptions = frozen({
  dependencies: [],
  clear_cache: null,
});

/** A backend written as a map without `weight` or `backup`. */
export const DEFAULT_BACKEND = frozen({ weight: 1, backup: false });

// ---- sections -----------------------------------------------------------------------------

/**
 * The breaker's defaults. The seed holds an open breaker 60 s and then admits 3 trial requests;
 * here probes go on while it is open and readmit the backend once it has been held
 * `recovery_timeout_seconds` x times ejected (Envoy's base ejection time, 30 s there; 2 s here
 * so that a restarted backend is back within seconds, and still at least two DNS refreshes of
 * nginx's resolver), then slow start ramps its weight over 10 s while any failure reopens it.
 */
export const DEFAULT_BREAKER: Readonly<BreakerConfig> = frozen({
  failure_threshold: 5,
  recovery_timeout_seconds: 2,
  max_ejection_seconds: 300,
  slow_start_seconds: 10,
});

/** The seed's FailureDetector thresholds, plus the detectors it names and this project adds. */
export const DEFAULT_FAILURE_DETECTION: FailureDetectionConfig = frozen({
  max_response_time_ms: 5000,
  max_error_rate_percent: 5,
  min_error_rate_samples: 20,
  consecutive_failure_limit: 3,
  failure_rate_window_minutes: 10,
  max_cpu_percent: 90,
  max_memory_percent: 90,
  stats_interval_seconds: 10,
  resource_samples: 3,
  memory_leak_window_minutes: 10,
  memory_leak_horizon_minutes: 60,
  deadlock_timeouts: 3,
  deadlock_cpu_percent: 5,
});

/** `nginx`: a local nginx at the usual packaged paths. */
export const DEFAULT_NGINX: Readonly<NginxConfig> = frozen({
  mode: 'local',
  container: null,
  container_label: null,
  binary: 'nginx',
  config_path: '/etc/nginx/nginx.conf',
  prefix: null,
  output_path: '/etc/nginx/conf.d/orchestry-upstreams.conf',
  stream_output_path: null,
  template_path: null,
  pid_path: null,
  ejected: 'down',
  coalesce_min_wait_seconds: 0.1,
  coalesce_max_wait_seconds: 2,
  validate: true,
  update_via: 'auto',
  // The research note's port; it is also mDNS's: where avahi holds it, configure another.
  dns_listen: '127.0.0.1:5353',
  dns_resolver: null,
  dns_zone: 'orchestry.internal',
  // nginx's default proxy_next_upstream (error timeout) retries refused connections; 5xx only
  // when the config lists http_500..http_504 (the shipped nginx.conf does), so 5xx is left to
  // nginx only while its access log shows it retrying them (upstream/desired.ts nginxRetries).
  leave_to_nginx: ['refused', '5xx'],
  // The shipped nginx.conf's proxy_read_timeout.
  proxy_read_timeout_seconds: 10,
});

/**
 * `passive`: Envoy's outlier-detection defaults (consecutive 5 and 5, base 30 s, max 300 s, interval 10 s) except:
 * - max_ejection_percent 50 instead of 10: apps here have 2..5 backends, where 10 % ejects none;
 *   the last routable backend is never ejected whatever the percent;
 * - probe_success_releases 'gateway': a passing probe proves the backend accepts connections
 *   again (a restarted container is back within one probe), but not that real requests stop
 *   failing with 500 or stop being slow, so those ejections run their time;
 * - the latency rule, which Envoy does not have (its success-rate rule needs many hosts):
 *   3x the median of the others is far outside normal spread between equal replicas, 500 ms is
 *   slow for any interactive request, and 5 samples keep one GC pause from ejecting anybody. The
 *   mean over the last <= 20 samples within 10 s reacts within a few requests.
 */
export const DEFAULT_PASSIVE: Readonly<PassiveConfig> = frozen({
  enabled: true,
  listen: '127.0.0.1:5514',
  allow_from: [],
  tag: 'orchestry',
  max_line_bytes: 16384,
  receive_buffer_bytes: 1048576,
  queue_size: 4096,
  batch_size: 256,
  consecutive_5xx: 5,
  consecutive_gateway_failure: 5,
  base_ejection_time_seconds: 30,
  max_ejection_time_seconds: 300,
  max_ejection_percent: 50,
  interval_seconds: 10,
  probe_success_releases: 'gateway',
  latency: {
    enabled: true,
    factor: 3,
    min_ms: 500,
    min_samples: 5,
    window_samples: 20,
    window_seconds: 10,
  },
});

/** `docker`: off; the Engine's default socket. */
export const DEFAULT_DOCKER: Readonly<DockerConfig> = frozen({
  enabled: false,
  socket_path: '/var/run/docker.sock',
  address_mode: 'network',
  network: null,
  host_address: '127.0.0.1',
  startup_grace_seconds: 60,
  reconnect_min_seconds: 0.5,
  reconnect_max_seconds: 30,
  constraints: [],
  forbidden_ports: [80, 443],
  swarm: false,
  swarm_refresh_seconds: 1,
  swarm_lease: true,
  swarm_lease_ttl_seconds: 15,
  swarm_lease_renew_seconds: 5,
});

/** Recovery's safety limits; `mode: dry-run` so that nothing acts until asked to. */
export const DEFAULT_RECOVERY: Readonly<RecoveryConfig> = frozen({
  mode: 'dry-run',
  max_restarts: 3,
  restart_window_seconds: 300,
  backoff_min_seconds: 10,
  backoff_max_seconds: 300,
  budget_per_app: 10,
  budget_window_seconds: 600,
  max_unavailable_fraction: 0.5,
  min_healthy_replicas: 1,
  max_replicas: 5,
  scale_in_after_seconds: 300,
  stop_timeout_seconds: 10,
});

/** `store`: on, a file beside the config. */
export const DEFAULT_STORE: Readonly<StoreConfig> = frozen({
  enabled: true,
  path: 'orchestry-sidecar.db',
  raw_retention_hours: 24,
  rollup_retention_days: 30,
  flush_interval_seconds: 1,
  max_queue: 200_000,
});

/** A receiver's optional keys; `type` and `url` are required (these stand in when missing). */
export const DEFAULT_RECEIVER: Readonly<Omit<AlertReceiverConfig, 'name'>> = frozen({
  type: 'webhook',
  url: '',
  headers: {},
  timeout_seconds: 5,
  max_per_minute: 30,
});

/** A route's optional keys; `receivers` is required. */
export const DEFAULT_ROUTE: Readonly<AlertRouteConfig> = frozen({
  receivers: [],
  min_severity: 'low',
  apps: [],
  failure_types: [],
});

/** `alerting.escalation`: no escalation receivers. */
export const DEFAULT_ESCALATION: Readonly<AlertingConfig['escalation']> = frozen({
  after_seconds: 900,
  receivers: [],
});

/** `alerting`: off, no receivers or routes. */
export const DEFAULT_ALERTING: Readonly<AlertingConfig> = frozen({
  enabled: false,
  receivers: [],
  routes: [],
  escalation: DEFAULT_ESCALATION,
  resend_interval_seconds: 60,
  retry_min_seconds: 1,
  retry_max_seconds: 300,
});

/** `admin`: loopback only, no token. */
export const DEFAULT_ADMIN: Readonly<AdminConfig> = frozen({
  listen: '127.0.0.1:9180',
  token: null,
  // A Prometheus, a container HEALTHCHECK and a few status pages need a handful; the cap keeps
  // file descriptors for probes and nginx however many connections a client opens.
  max_connections: 100,
  idle_timeout_seconds: 30,
  request_timeout_seconds: 10,
});

/** `probes` */
export const DEFAULT_PROBES: Readonly<ProbeSettings> = frozen({
  max_concurrency: 512,
  // The whole period: thousands of first probes (a start, a new config) spread evenly rather than
  // bunching into its first 100 ms (issue 12 measured bursts of ~512 probes then silence at 5,000
  // backends with 0.1, and a point of CPU more). Half the period (0.5) left the other half
  // silent, and a mass failure's ejections came in two bursts with a gap nginx's coalescing
  // took for the end: 2 reloads instead of 1 at 2,500 backends.
  jitter_fraction: 1,
});

/** `logging` */
export const DEFAULT_LOGGING: Readonly<LoggingConfig> = frozen({
  level: 'info',
  format: 'json',
});
