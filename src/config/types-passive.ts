/** `passive`'s validated, defaulted settings (types.ts re-exports them with the rest). */
import type { PROBE_RELEASES } from './defaults.js';

/** The latency outlier rule: a backend far slower than the rest of its app. */
export interface PassiveLatencyConfig {
  enabled: boolean;
  /** Eject when the backend's mean is above factor x the median of its app's other backends... */
  factor: number;
  /** ...and above this absolute floor, so a 40 ms backend among 10 ms ones stays. */
  min_ms: number;
  /** Samples a backend needs, and each backend compared against, before the rule speaks. */
  min_samples: number;
  /** The mean is over at most this many of a backend's latest successful requests... */
  window_samples: number;
  /** ...no older than this. */
  window_seconds: number;
}

/** Which passive ejections a successful probe ends early (Envoy: successful_active_health_check_uneject_host). */
export type ProbeRelease = (typeof PROBE_RELEASES)[number];

export interface PassiveConfig {
  enabled: boolean;
  /** UDP address of the syslog receiver, as nginx's `server=` writes it: `host:port`, `[v6]:port`. */
  listen: string;
  /**
   * Source addresses whose datagrams are accepted; [] = any. Set it when `listen` is not
   * loopback: whoever can send to the port can otherwise report failures and eject backends.
   */
  allow_from: string[];
  /** nginx's `tag=`; lines with another tag (e.g. an error_log sent to the same port) are dropped. */
  tag: string;
  /** Longer datagrams are dropped unparsed. A real line is 300-600 bytes. */
  max_line_bytes: number;
  /**
   * The socket's kernel receive buffer (SO_RCVBUF): what absorbs a burst of lines while the
   * event loop is busy; beyond it the kernel drops. Linux caps it at net.core.rmem_max.
   */
  receive_buffer_bytes: number;
  /** Datagrams waiting to be parsed; more are dropped (counted as queue_full). */
  queue_size: number;
  /** Datagrams parsed per event-loop turn before the loop gets to run timers (probes) again. */
  batch_size: number;
  /** Consecutive 5xx (gateway failures included, as in Envoy) that eject; 0 turns the rule off. */
  consecutive_5xx: number;
  /** Consecutive 502/503/504, connect errors and timeouts that eject; 0 turns the rule off. */
  consecutive_gateway_failure: number;
  /** First ejection's length; the n-th in a row lasts n x this, up to max_ejection_time_seconds. */
  base_ejection_time_seconds: number;
  max_ejection_time_seconds: number;
  /** At most this share of an app's backends passively ejected at once. */
  max_ejection_percent: number;
  /** Each interval a released backend stays in, its ejection count (the multiplier) drops by one. */
  interval_seconds: number;
  /** Which passive ejections a successful probe of the backend ends before their time is up. */
  probe_success_releases: ProbeRelease;
  latency: PassiveLatencyConfig;
}
