/**
 * The validated, defaulted configuration. Field names follow the YAML (the seed's snake_case
 * names) so that a path in an error message is the path a user writes. The defaults are in
 * defaults.ts, each key's meaning and check in the spec-*.ts tables.
 */
import type { TopLevelConfig } from './instance.js';
import type {
  ADDRESS_MODES,
  BALANCE_METHODS,
  CACHE_METHODS,
  EJECT_MODES,
  HTTP_METHODS,
  LOG_FORMATS,
  LOG_LEVELS,
  NGINX_MODES,
  PROTOCOLS,
  RECEIVER_TYPES,
  RECOVERY_MODES,
  SCHEMES,
  SEVERITIES,
  UPDATE_VIA,
  LEAVE_TO_NGINX,
  UPSTREAM_CONTEXTS,
} from './defaults.js';
import type { PassiveConfig } from './types-passive.js';

export type { PassiveConfig, PassiveLatencyConfig, ProbeRelease } from './types-passive.js';

export type Protocol = (typeof PROTOCOLS)[number];
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** The seed's HealthCheckConfig, plus `expected_body` and `scheme`. Defaults are the seed's. */
export interface HealthCheckConfig {
  protocol: Protocol;
  /** http or https; only for HTTP probes. */
  scheme: (typeof SCHEMES)[number];
  path: string;
  /** Port used for a backend written without one (`host` instead of `host:port`). */
  port: number;
  method: HttpMethod;
  headers: Record<string, string>;
  body: string | null;
  expected_status_codes: number[];
  /** Substring, or `/regex/flags`, that the body must contain. */
  expected_body: string | null;
  probe_data: string | null;
  expected_response: string | null;
  initial_delay_seconds: number;
  period_seconds: number;
  /** Interval between probes while the backend is ejected. */
  ejected_period_seconds: number;
  /** Interval between probes while a routed backend's verdict may change (a failure since its last). */
  fast_period_seconds: number;
  timeout_seconds: number;
  failure_threshold: number;
  success_threshold: number;
  enabled: boolean;
  follow_redirects: boolean;
  verify_ssl: boolean;
  max_retries: number;
}

export interface BackendConfig {
  host: string;
  port: number;
  /** nginx `weight=`, 1..1000. */
  weight: number;
  /** nginx `backup`: only used when every primary server is unavailable. */
  backup: boolean;
}

/** What an ejected server becomes in the rendered upstream. */
export type EjectMode = (typeof EJECT_MODES)[number];

export interface UpstreamOptions {
  /** `down` keeps consistent-hash placement stable; `omit` removes the line. */
  ejected: EjectMode;
  /** Extra nginx directives for this upstream block, validated (e.g. `keepalive 32`). */
  keepalive: number;
  /** Load-balancing method line: '' (round robin), least_conn, ip_hash, random, hash $x consistent. */
  balance: (typeof BALANCE_METHODS)[number];
  /**
   * failover_to_backup: the routable servers of this other app are rendered as nginx `backup`
   * servers of this one, used only when every server of this app is unavailable. null = none.
   */
  backup_app: string | null;
  /** nginx's own passive check on each server line: failed attempts that take it out... */
  max_fails: number;
  /** `http`: proxied in nginx's `http {}` (nginx.output_path); `stream`: TCP, in `stream {}` (nginx.stream_output_path). */
  context: (typeof UPSTREAM_CONTEXTS)[number];
  /**
   * ...for this long (and the window they are counted in); null: 1 s in reload mode, 2 s in
   * DNS mode (longer than nginx's 1 s re-resolution, so nginx does not try a failed server again
   * before the answer without it lands).
   */
  fail_timeout_seconds: number | null;
}

/** Per-app Docker settings (YAML `apps.<name>.docker`, or `orchestry.*` labels). */
export interface AppDockerOptions {
  /** Overrides docker.address_mode for this app. */
  address_mode: (typeof ADDRESS_MODES)[number] | null;
  /** Host networking: ports scale_out may give new replicas, inclusive, e.g. [20000, 20099]. */
  port_range: [number, number] | null;
  /** Environment variable that tells a new replica its port. */
  port_env: string;
  /** scale_out never goes above this many replicas; null = recovery.max_replicas. */
  max_replicas: number | null;
  /**
   * Whether containers labelled `orchestry.app=<this app>` become its backends. Off for a YAML
   * app unless the YAML says so (a label must not be able to join an app it was not invited
   * to); always on for an app only labels define.
   */
  accept_containers: boolean;
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
  dependencies: string[];
  /** clear_cache: declared call, or null when the app has none. */
  clear_cache: ClearCacheCall | null;
}

export interface AppConfig {
  name: string;
  docker: AppDockerOptions;
  recovery: AppRecoveryOptions;
  backends: BackendConfig[];
  health: HealthCheckConfig;
  upstream: UpstreamOptions;
}

/** The seed's CircuitBreaker settings (its defaults are DEFAULT_BREAKER). */
export interface BreakerConfig {
  /** Consecutive failed probes that open it (the health check's failure_threshold ejects too). */
  failure_threshold: number;
  /** Base ejection time: an open breaker holds this long x the times it was ejected recently. */
  recovery_timeout_seconds: number;
  /** The longest hold; also how long closed before one ejection is forgotten. */
  max_ejection_seconds: number;
  /** Half-open: readmitted at a weight ramping to full over this long; 0 closes at once. */
  slow_start_seconds: number;
}

/** The seed's FailureDetector thresholds, plus the signals it names but does not compute. */
export interface FailureDetectionConfig {
  max_response_time_ms: number;
  /** high_error_rate: share of failed probes in the window above this. */
  max_error_rate_percent: number;
  /** high_error_rate needs at least this many probes in the window (one failure of 3 is not a rate). */
  min_error_rate_samples: number;
  consecutive_failure_limit: number;
  failure_rate_window_minutes: number;
  /** high_resource_usage: Docker stats CPU percent of the container's limit (or of the host). */
  max_cpu_percent: number;
  max_memory_percent: number;
  /** Docker stats samples are taken this often for every container-backed backend; 0 = never. */
  stats_interval_seconds: number;
  /** A resource reading must stay above its threshold this many samples in a row. */
  resource_samples: number;
  /** application_memory_leak: fit memory over this window... */
  memory_leak_window_minutes: number;
  /** ...and report a leak when the fitted slope reaches the memory limit within this time. */
  memory_leak_horizon_minutes: number;
  /** application_deadlock: this many HTTP timeouts in a row while TCP connects and CPU is idle. */
  deadlock_timeouts: number;
  /** CPU percent under which a container that times out counts as idle (not busy). */
  deadlock_cpu_percent: number;
}

export interface NginxConfig {
  /** local: nginx on this host (signal/`nginx -s`); docker: nginx in a container (exec + HUP via the API). */
  mode: (typeof NGINX_MODES)[number];
  /** mode docker: the nginx container, by name or id. */
  container: string | null;
  /** mode docker: or found by this label (`key=value`), when container is null. */
  container_label: string | null;
  /** nginx binary used for `nginx -t` and `nginx -s reload`. */
  binary: string;
  /** The main nginx.conf, which `include`s output_path. */
  config_path: string;
  /** nginx -p prefix; null leaves nginx's compiled-in prefix. */
  prefix: string | null;
  /** The generated upstreams file of `http` apps (included in nginx's `http {}`). */
  output_path: string;
  /** The generated upstreams file of `stream` apps (included in `stream {}`); null = none. */
  stream_output_path: string | null;
  /** Handlebars template; null uses the built-in templates/upstreams.conf.hbs. */
  template_path: string | null;
  /** If set, reload by SIGHUP to the pid in this file; otherwise `nginx -s reload`. */
  pid_path: string | null;
  ejected: EjectMode;
  /** Wait this long after a change for more changes before reloading. */
  coalesce_min_wait_seconds: number;
  /** Never hold a change longer than this, however busy. */
  coalesce_max_wait_seconds: number;
  /** Run `nginx -t` before every swap. Off only for nginx builds that cannot test. */
  validate: boolean;
  /**
   * How routing changes reach nginx: `dns` (nginx >= 1.27.3 re-resolves SRV records this sidecar
   * serves: ejections, readmissions and weights without a reload), `reload` (rewrite and reload),
   * or `auto` (dns when `nginx -v` says >= 1.27.3).
   */
  update_via: (typeof UPDATE_VIA)[number];
  /** DNS mode: where the sidecar's DNS server listens (UDP and TCP); port 0 picks one. */
  dns_listen: string;
  /** DNS mode: the address nginx's `resolver` queries; null = dns_listen as bound. */
  dns_resolver: string | null;
  /** DNS mode: the zone the sidecar answers for; SRV names are `_http._tcp.<app>.<zone>`. */
  dns_zone: string;
  /**
   * Reload mode: failures nginx notices and retries by itself, left to it instead of a reload
   * (`refused`: connections refused or reset; `5xx`: needs http_500..http_504 in proxy_next_upstream).
   */
  leave_to_nginx: Array<(typeof LEAVE_TO_NGINX)[number]>;
  /**
   * DNS mode: nginx's `proxy_read_timeout` for these upstreams. A backend that stops answering
   * leaves the DNS answer no sooner than this after its first timed-out probe began, so nginx's
   * own retries of the requests waiting on it come first (nginx fails a retry with 502 once the
   * upstream's servers changed since the request began). 0: leave at once.
   */
  proxy_read_timeout_seconds: number;
}


export interface AdminConfig {
  /** host:port; loopback by default. */
  listen: string;
  /** Bearer token for state-changing endpoints; also ORCHESTRY_ADMIN_TOKEN. */
  token: string | null;
  /** Most connections open at once; past it the oldest idle one is closed (or the new one). */
  max_connections: number;
  /** A connection with nothing received or sent for this long is closed; seconds. */
  idle_timeout_seconds: number;
  /** A request's headers and body must arrive within this; seconds. */
  request_timeout_seconds: number;
}

export interface ProbeSettings {
  /** Most probes in flight at once across all backends. */
  max_concurrency: number;
  /** Spread of start times, as a fraction of each backend's period. */
  jitter_fraction: number;
}

export interface LoggingConfig {
  level: (typeof LOG_LEVELS)[number];
  /** json (one object a line, for collectors) or text (for people). */
  format: (typeof LOG_FORMATS)[number];
}

/** Discovery of backends from Docker containers by label, and nginx in a container. */
export interface DockerConfig {
  enabled: boolean;
  /** The Docker Engine's unix socket. */
  socket_path: string;
  /**
   * How a container's address is found: `network` uses its IP on `network` (compose), `host`
   * uses `host_address` and the label port (containers on host networking).
   */
  address_mode: (typeof ADDRESS_MODES)[number];
  /** Docker network for address_mode network; null = the container's only/first network. */
  network: string | null;
  /** Address of containers on host networking (address_mode host). */
  host_address: string;
  /** A container that is not healthy this long after starting is application_startup_failed. */
  startup_grace_seconds: number;
  /** Event stream reconnect backoff, doubling from min to max. */
  reconnect_min_seconds: number;
  reconnect_max_seconds: number;
  /**
   * Only containers with every one of these labels are discovered: `key=value`, or `key` for
   * the label with any value (e.g. `com.docker.compose.project=shop`), so several sidecars can
   * share one Engine. [] = every container labelled orchestry.enable=true.
   */
  constraints: string[];
  /**
   * Ports no container on host networking (address mode host) may be routed to, besides the
   * sidecar's own listening ports, which are always refused: nginx's own listening ports.
   */
  forbidden_ports: number[];
  /**
   * Swarm discovery (services by their labels, running tasks as backends): on, off, or `auto`
   * (on while the Engine is an active Swarm manager).
   */
  swarm: boolean | 'auto';
  /** How often a manager's tasks are listed again: its event stream reports no task changes. */
  swarm_refresh_seconds: number;
  /**
   * Several sidecars on one node's Engine: only the holder of that node's lease (kept in the
   * swarm's own state) recovers its tasks. See src/recovery/swarm-lease.ts.
   */
  swarm_lease: boolean;
  /** A lease not renewed for this long is free: another sidecar takes it. */
  swarm_lease_ttl_seconds: number;
  /** How often the holder renews it (and the others look at it); less than the TTL. */
  swarm_lease_renew_seconds: number;
}

/** Recovery through the Docker Engine: the seed's RecoveryManager with safety limits. */
export interface RecoveryConfig {
  /** off: nothing; dry-run: plan and record, act on nothing; on: act. */
  mode: (typeof RECOVERY_MODES)[number];
  /** The seed's rule: at most this many restarts of one container in restart_window_seconds. */
  max_restarts: number;
  restart_window_seconds: number;
  /** Backoff between disruptive actions on one container: min, doubling, capped at max. */
  backoff_min_seconds: number;
  backoff_max_seconds: number;
  /** Disruptive actions per app within budget_window_seconds. */
  budget_per_app: number;
  budget_window_seconds: number;
  /** Never act on more than this share of an app's replicas at once (at least one). */
  max_unavailable_fraction: number;
  /** Never take an app below this many healthy replicas with a disruptive action. */
  min_healthy_replicas: number;
  /** Upper bound on replicas for scale_out (label orchestry.recovery.max_replicas overrides). */
  max_replicas: number;
  /** Remove replicas that recovery added once the app has been healthy this long. */
  scale_in_after_seconds: number;
  /** Grace given to a container's process on stop/restart before SIGKILL. */
  stop_timeout_seconds: number;
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
  headers: Record<string, string>;
  timeout_seconds: number;
  /** Rate limit: at most this many notifications a minute to this receiver; the rest wait their turn. */
  max_per_minute: number;
}

/** Which alerts go to which receivers. An alert goes to every route it matches. */
export interface AlertRouteConfig {
  receivers: string[];
  /** Only alerts of this severity or higher. */
  min_severity: AlertSeverity;
  /** Only these apps; empty = every app. */
  apps: string[];
  /** Only these failure types; empty = every type. */
  failure_types: string[];
}

/** The seed's "configurable notifications and escalation". */
export interface AlertingConfig {
  enabled: boolean;
  receivers: AlertReceiverConfig[];
  routes: AlertRouteConfig[];
  /** An alert still firing this long after it started is sent to the escalation receivers. */
  escalation: { after_seconds: number; receivers: string[] };
  /** Firing alerts are re-sent this often to Alertmanager (it resolves alerts it stops hearing of). */
  resend_interval_seconds: number;
  /** Failed deliveries are retried from min, doubling, at most max apart; kept in the store meanwhile. */
  retry_min_seconds: number;
  retry_max_seconds: number;
}

/** The embedded SQLite state store (node:sqlite). */
export interface StoreConfig {
  enabled: boolean;
  /** The database file; relative paths resolve against the config file's directory. ORCHESTRY_STORE_PATH overrides. */
  path: string;
  /** Raw probe results are kept this long. */
  raw_retention_hours: number;
  /** Per-minute rollups, failures, transitions, recovery actions and alerts are kept this long. */
  rollup_retention_days: number;
  /** Queued writes are committed at least this often. */
  flush_interval_seconds: number;
  /** Most probe results held while the database lags or is unavailable; beyond it results are dropped (counted). */
  max_queue: number;
}

export interface SidecarConfig extends TopLevelConfig {
  /** `defaults.health` layered over the seed's defaults. */
  defaults: { health: HealthCheckConfig };
  apps: AppConfig[];
  docker: DockerConfig;
  recovery: RecoveryConfig;
  store: StoreConfig;
  alerting: AlertingConfig;
  breaker: BreakerConfig;
  failure_detection: FailureDetectionConfig;
  /** Evidence from nginx's own traffic (its access log over syslog) and outlier ejection. */
  passive: PassiveConfig;
  nginx: NginxConfig;
  admin: AdminConfig;
  probes: ProbeSettings;
  logging: LoggingConfig;
}
