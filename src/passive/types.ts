/**
 * The passive stage's data: what one proxied request's attempt at one backend came to, as nginx
 * logged it, and why a log line was dropped. Plain data; the receiver produces Outcomes, the
 * outlier reducer consumes them.
 */

/**
 * How one attempt ended, in the terms of Envoy's outlier detection:
 * - `ok`: the backend answered below 500 (a 4xx is the client's doing, not the backend's);
 * - `5xx`: it answered 500, 501 or 505..599;
 * - `gateway`: 502, 503 or 504, which is also how nginx reports an attempt it made itself fail:
 *   a connect error or a bad response header is 502, a connect or read timeout is 504
 *   (`connectTimeMs` null means the connection never came up);
 * - `no_live`: nginx could not pick any server ("no live upstreams"; the address is the
 *   upstream's name, the status 502): nothing to blame on one backend;
 * - `unknown`: no status (`-`), e.g. the client went away before the backend answered.
 */
export type OutcomeKind = 'ok' | '5xx' | 'gateway' | 'no_live' | 'unknown';

/** One attempt of one request at one backend, from nginx's access log. */
export interface Outcome {
  /** `$proxy_host`: the upstream's name, i.e. the app. */
  app: string;
  /** One `$upstream_addr` entry as nginx writes it: `10.0.0.5:8000`, `[::1]:8000`, `unix:/p`. */
  address: string;
  /** `$upstream_status` entry; null for `-`. */
  status: number | null;
  /** `$upstream_response_time` entry in ms; null for `-` or when the format lacks it. */
  responseTimeMs: number | null;
  /** `$upstream_connect_time` entry in ms; null when no connection was established. */
  connectTimeMs: number | null;
  /**
   * `$upstream_header_time` entry in ms; null when no response header came (nginx's own 502 for a
   * connection closed or reset before answering); absent when the log format lacks it.
   */
  headerTimeMs?: number | null;
  kind: OutcomeKind;
  /** nginx went on to another server after this attempt (it was not the request's last): the client did not get this answer. Absent = false. */
  retried?: boolean;
  /** Epoch ms the sidecar received the line (nginx's own `$time_iso8601` has 1 s resolution). */
  at: number;
}

/**
 * Why a datagram was dropped. Parse reasons first, then the receiver's own:
 * `queue_full` (more lines waiting than the queue holds) and `listener_error` (onOutcomes threw).
 */
export type DropReason =
  | 'oversized'
  | 'bad_syslog_header'
  | 'wrong_tag'
  | 'not_json'
  | 'not_object'
  | 'wrong_types'
  | 'bad_upstream'
  | 'bad_address'
  | 'bad_status'
  | 'bad_time'
  | 'mismatched_lists'
  | 'too_many_attempts'
  | 'queue_full'
  | 'listener_error';

/** Every DropReason, for counters that start at zero. */
export const DROP_REASONS: readonly DropReason[] = [
  'oversized',
  'bad_syslog_header',
  'wrong_tag',
  'not_json',
  'not_object',
  'wrong_types',
  'bad_upstream',
  'bad_address',
  'bad_status',
  'bad_time',
  'mismatched_lists',
  'too_many_attempts',
  'queue_full',
  'listener_error',
];

/**
 * A well-formed line that carries no outcome: `not_proxied` (the request never went to an
 * upstream, e.g. `return 404;`), `no_attempt` (it did, but nginx logged no server for it, e.g. the
 * name could not be resolved).
 */
export type SkipReason = 'not_proxied' | 'no_attempt';
