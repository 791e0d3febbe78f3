/**
 * The validated, defaulted configuration. Field names follow the YAML (the seed's snake_case
 * names) so that a path in an error message is the path a user writes.
 */

export type Protocol = 'HTTP' | 'TCP';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'HEAD';

/** The seed's HealthCheckConfig, plus `expected_body` and `scheme`. Defaults are the seed's. */
export interface HealthCheckConfig {
  protocol: Protocol; // 'HTTP'
  /** http or https; only for HTTP probes. */
  scheme: 'http' | 'https'; // 'http'
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
export type EjectMode = 'down' | 'omit';

export interface UpstreamOptions {
  /** `down` keeps consistent-hash placement stable; `omit` removes the line. */
  ejected: EjectMode; // from nginx.ejected
  /** Extra nginx directives for this upstream block, validated (e.g. `keepalive 32`). */
  keepalive: number; // 32
  /** Load-balancing method line: '' (round robin), least_conn, ip_hash, random, hash $x consistent. */
  balance: 'round_robin' | 'least_conn' | 'ip_hash' | 'random';
}

export interface AppConfig {
  name: string;
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

/** The seed's FailureDetector thresholds. */
export interface FailureDetectionConfig {
  max_response_time_ms: number; // 5000
  max_error_rate_percent: number; // 5
  consecutive_failure_limit: number; // 3
  failure_rate_window_minutes: number; // 10
}

export interface NginxConfig {
  mode: 'local';
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
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'; // 'info'
}

export interface SidecarConfig {
  apps: AppConfig[];
  breaker: BreakerConfig;
  failure_detection: FailureDetectionConfig;
  nginx: NginxConfig;
  admin: AdminConfig;
  probes: ProbeSettings;
  logging: LoggingConfig;
}
