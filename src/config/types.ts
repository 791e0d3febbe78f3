/**
 * The validated, defaulted configuration. Field names follow the YAML (the seed's snake_case
 * names) so that a path in an error message is the path a user writes.
 */
import type {
  ADDRESS_MODES,
  BALANCE_METHODS,
  CACHE_METHODS,
  EJECT_MODES,
  HTTP_METHODS,
  LOG_LEVELS,
  NGINX_MODES,
  PROTOCOLS,
  RECEIVER_TYPES,
  RECOVERY_MODES,
  SCHEMES,
  SEVERITIES,
} from './defaults.js';

export type Protocol = (typeof PROTOCOLS)[number];
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** The seed's HealthCheckConfig, plus `expected_body` and `scheme`. Defaults are the seed's. */
export interface HealthCheckConfig {
  protocol: Protocol; // 'HTTP'
  /** http or https; only for HTTP probes. */
  scheme: (typeof SCHEMES)[number]; // 'http'
  path: string; // '/health'
  /** Port used for a backend written without one (`host` instead of `host:port`). */
  port: number; // 8000
  method: HttpMethod; // 'GET'
  headers: Record<string, string>; // {}
  body: string | null; // null
  expected_status_codes: number[]; // [200]
  /** Substring, or `/regex/flags`, that the body must contain. */
  expected_body: string | null; // null
  probe_data: string | null; // null
  expected_response: string | null; // null
  initial_delay_seconds: number; // 30
  period_seconds: number; // 30
  timeout_seconds: number; // 5
  failure_threshold: number; // 3
  success_threshold: number; // 1
  enabled: boolean; // true
  follow_redirects: boolean; // false
  verify_ssl: boolean; // true
  max_retries: number; // 0
}

export interface BackendConfig {
  host: string;
  port: number;
  /** nginx `weight=`, 1..1000. */
  weight: number; // 1
  /** nginx `backup`: only used when every primary server is unavailable. */
  backup: boolean; // false
}

/** What an ejected server becomes in the rendered upstream. */
export type EjectMode = (typeof EJECT_MODES)[number];

export interface UpstreamOptions {
  /** `down` keeps consistent-hash placement stable; `omit` removes the line. */
  ejected: EjectMode; // from nginx.ejected
  /** Extra nginx directives for this upstream block, validated (e.g. `keepalive 32`). */
  keepalive: number; // 32
  /** Load-balancing method line: '' (round robin), least_conn, ip_hash, random, hash $x consistent. */
  balance: (typeof BALANCE_METHODS)[number]; // 'round_robin'
  /**
   * failover_to_backup: the routable servers of this other app are rendered as nginx `backup`
   * servers of this one, used only when every server of this app is unavailable. null = none.
   */
  backup_app: string | null; // null
}

/** Per-app Docker settings (YAML `apps.<name>.docker`, or `orchestry.*` labels). */
export interface AppDockerOptions {
  /** Overrides docker.address_mode for this app. */
  address_mode: (typeof ADDRESS_MODES)[number] | null; // null
  /** Host networking: ports scale_out may give new replicas, inclusive, e.g. [20000, 20099]. */
  port_range: [number, number] | null; // null
  /** Environment variable that tells a new replica its port. */
  port_env: string; // 'PORT'
  /** scale_out never goes above this many replicas; null = recovery.max_replicas. */
  max_replicas: number | null; // null
}

/** An HTTP call the app declares for the clear_cache recovery strategy, sent to the backend itself. */
export interface ClearCacheCall {
  method: (typeof CACHE_METHODS)[number];
  /** Path on the backend; the same rules as a health path (it can never re-target the request). */
  path: string;
}

/** Per-app recovery settings (YAML `apps.<name>.recovery`, or `orchestry.recovery.*` labels). */
export interface AppRecoveryOptions {
  /** restart_dependencies: names of containers this app depends on (e.g. its cache or database). */
  dependencies: string[]; // []
  /** clear_cache: declared call, or null when the app has none. */
  clear_cache: ClearCacheCall | null; // null
}

export interface AppConfig {
  name: string;
  docker: AppDockerOptions;
  recovery: AppRecoveryOptions;
  backends: BackendConfig[];
  health: HealthCheckConfig;
  upstream: UpstreamOptions;
}

/** The seed's CircuitBreaker defaults: 5 failures open, 3 successes close, 60 s, 3 trials. */
export interface BreakerConfig {
  failure_threshold: number; // 5
  success_threshold: number; // 3
  recovery_timeout_seconds: number; // 60
  max_test_requests: number; // 3
}

/** The seed's FailureDetector thresholds, plus the signals it names but does not compute. */
export interface FailureDetectionConfig {
  max_response_time_ms: number; // 5000
  /** high_error_rate: share of failed probes in the window above this. */
  max_error_rate_percent: number; // 5
  /** high_error_rate needs at least this many probes in the window (one failure of 3 is not a rate). */
  min_error_rate_samples: number; // 20
  consecutive_failure_limit: number; // 3
  failure_rate_window_minutes: number; // 10
  /** high_resource_usage: Docker stats CPU percent of the container's limit (or of the host). */
  max_cpu_percent: number; // 90
  max_memory_percent: number; // 90
  /** Docker stats samples are taken this often for every container-backed backend; 0 = never. */
  stats_interval_seconds: number; // 10
  /** A resource reading must stay above its threshold this many samples in a row. */
  resource_samples: number; // 3
  /** application_memory_leak: fit memory over this window... */
  memory_leak_window_minutes: number; // 10
  /** ...and report a leak when the fitted slope reaches the memory limit within this time. */
  memory_leak_horizon_minutes: number; // 60
  /** application_deadlock: this many HTTP timeouts in a row while TCP connects and CPU is idle. */
  deadlock_timeouts: number; // 3
  /** CPU percent under which a container that times out counts as idle (not busy). */
  deadlock_cpu_percent: number; // 5
}

export interface NginxConfig {
  /** local: nginx on this host (signal/`nginx -s`); docker: nginx in a container (exec + HUP via the API). */
  mode: (typeof NGINX_MODES)[number]; // 'local'
  /** mode docker: the nginx container, by name or id. */
  container: string | null; // null
  /** mode docker: or found by this label (`key=value`), when container is null. */
  container_label: string | null; // null
  /** nginx binary used for `nginx -t` and `nginx -s reload`. */
  binary: string; // 'nginx'
  /** The main nginx.conf, which `include`s output_path. */
  config_path: string; // '/etc/nginx/nginx.conf'
  /** nginx -p prefix; null leaves nginx's compiled-in prefix. */
  prefix: string | null; // null
  /** The generated upstreams file. */
  output_path: string; // '/etc/nginx/conf.d/orchestry-upstreams.conf'
  /** Handlebars template; null uses the built-in templates/upstreams.conf.hbs. */
  template_path: string | null; // null
  /** If set, reload by SIGHUP to the pid in this file; otherwise `nginx -s reload`. */
  pid_path: string | null; // null
  ejected: EjectMode; // 'down'
  /** Wait this long after a change for more changes before reloading. */
  coalesce_min_wait_seconds: number; // 0.1
  /** Never hold a change longer than this, however busy. */
  coalesce_max_wait_seconds: number; // 2
  /** Run `nginx -t` before every swap. Off only for nginx builds that cannot test. */
  validate: boolean; // true
}

export interface AdminConfig {
  /** host:port; loopback by default. */
  listen: string; // '127.0.0.1:9180'
  /** Bearer token for state-changing endpoints; also ORCHESTRY_ADMIN_TOKEN. */
  token: string | null; // null
}

export interface ProbeSettings {
  /** Most probes in flight at once across all backends. */
  max_concurrency: number; // 512
  /** Spread of start times, as a fraction of each backend's period. */
  jitter_fraction: number; // 0.1
}

export interface LoggingConfig {
  level: (typeof LOG_LEVELS)[number]; // 'info'
}

/** Discovery of backends from Docker containers by label, and nginx in a container. */
export interface DockerConfig {
  enabled: boolean; // false
  /** The Docker Engine's unix socket. */
  socket_path: string; // '/var/run/docker.sock'
  /**
   * How a container's address is found: `network` uses its IP on `network` (compose), `host`
   * uses `host_address` and the label port (containers on host networking).
   */
  address_mode: (typeof ADDRESS_MODES)[number]; // 'network'
  /** Docker network for address_mode network; null = the container's only/first network. */
  network: string | null; // null
  /** Address of containers on host networking (address_mode host). */
  host_address: string; // '127.0.0.1'
  /** A container that is not healthy this long after starting is application_startup_failed. */
  startup_grace_seconds: number; // 60
  /** Event stream reconnect backoff, doubling from min to max. */
  reconnect_min_seconds: number; // 0.5
  reconnect_max_seconds: number; // 30
}

/** Recovery through the Docker Engine: the seed's RecoveryManager with safety limits. */
export interface RecoveryConfig {
  /** off: nothing; dry-run: plan and record, act on nothing; on: act. */
  mode: (typeof RECOVERY_MODES)[number]; // 'dry-run'
  /** The seed's rule: at most this many restarts of one container in restart_window_seconds. */
  max_restarts: number; // 3
  restart_window_seconds: number; // 300
  /** Backoff between disruptive actions on one container: min, doubling, capped at max. */
  backoff_min_seconds: number; // 10
  backoff_max_seconds: number; // 300
  /** Disruptive actions per app within budget_window_seconds. */
  budget_per_app: number; // 10
  budget_window_seconds: number; // 600
  /** Never act on more than this share of an app's replicas at once (at least one). */
  max_unavailable_fraction: number; // 0.5
  /** Never take an app below this many healthy replicas with a disruptive action. */
  min_healthy_replicas: number; // 1
  /** Upper bound on replicas for scale_out (label orchestry.recovery.max_replicas overrides). */
  max_replicas: number; // 5
  /** Remove replicas that recovery added once the app has been healthy this long. */
  scale_in_after_seconds: number; // 300
  /** Grace given to a container's process on stop/restart before SIGKILL. */
  stop_timeout_seconds: number; // 10
}

export type AlertSeverity = (typeof SEVERITIES)[number];

/** Where notifications go. */
export interface AlertReceiverConfig {
  /** The key under alerting.receivers. */
  name: string;
  /** webhook: generic JSON POST; slack: Slack-compatible incoming webhook; alertmanager: API v2. */
  type: (typeof RECEIVER_TYPES)[number];
  /** http(s) URL. For alertmanager the base URL; /api/v2/alerts is appended. */
  url: string;
  /** Extra request headers (e.g. Authorization for a webhook). */
  headers: Record<string, string>; // {}
  timeout_seconds: number; // 5
  /** Rate limit: at most this many notifications a minute to this receiver; the rest wait their turn. */
  max_per_minute: number; // 30
}

/** Which alerts go to which receivers. An alert goes to every route it matches. */
export interface AlertRouteConfig {
  receivers: string[];
  /** Only alerts of this severity or higher. */
  min_severity: AlertSeverity; // 'low'
  /** Only these apps; empty = every app. */
  apps: string[]; // []
  /** Only these failure types; empty = every type. */
  failure_types: string[]; // []
}

/** The seed's "configurable notifications and escalation". */
export interface AlertingConfig {
  enabled: boolean; // false
  receivers: AlertReceiverConfig[]; // YAML: map of name to receiver
  routes: AlertRouteConfig[]; // []
  /** An alert still firing this long after it started is sent to the escalation receivers. */
  escalation: { after_seconds: number; receivers: string[] }; // { 900, [] }
  /** Firing alerts are re-sent this often to Alertmanager (it resolves alerts it stops hearing of). */
  resend_interval_seconds: number; // 60
  /** Failed deliveries are retried from min, doubling, at most max apart; kept in the store meanwhile. */
  retry_min_seconds: number; // 1
  retry_max_seconds: number; // 300
}

/** The embedded SQLite state store (node:sqlite). */
export interface StoreConfig {
  enabled: boolean; // true
  /** The database file; relative paths resolve against the config file's directory. ORCHESTRY_STORE_PATH overrides. */
  path: string; // 'orchestry-sidecar.db'
  /** Raw probe results are kept this long. */
  raw_retention_hours: number; // 24
  /** Per-minute rollups, failures, transitions, recovery actions and alerts are kept this long. */
  rollup_retention_days: number; // 30
  /** Queued writes are committed at least this often. */
  flush_interval_seconds: number; // 1
  /** Most probe results held while the database lags or is unavailable; beyond it results are dropped (counted). */
  max_queue: number; // 200000
}

export interface SidecarConfig {
  /** `defaults.health` layered over the seed's defaults. */
  defaults: { health: HealthCheckConfig };
  apps: AppConfig[];
  docker: DockerConfig;
  recovery: RecoveryConfig;
  store: StoreConfig;
  alerting: AlertingConfig;
  breaker: BreakerConfig;
  failure_detection: FailureDetectionConfig;
  nginx: NginxConfig;
  admin: AdminConfig;
  probes: ProbeSettings;
  logging: LoggingConfig;
}
