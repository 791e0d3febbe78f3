/**
 * The proposed `passive:` config section (the lead adds it to src/config's schema): where the
 * sidecar listens for nginx's access log, and Envoy's outlier-detection settings. Names follow
 * the YAML and the config's `_seconds` / `_ms` unit suffixes.
 *
 * The nginx side, in the `http` block (the tag must equal `tag` below):
 *
 *     access_log syslog:server=127.0.0.1:5514,tag=orchestry,nohostname orchestry;
 */
import { isIP } from 'node:net';

/** The latency outlier rule: a backend far slower than the rest of its app. */
export interface PassiveLatencyConfig {
  enabled: boolean; // true
  /** Eject when the backend's mean is above factor x the median of its app's other backends... */
  factor: number; // 3
  /** ...and above this absolute floor, so a 40 ms backend among 10 ms ones stays. */
  min_ms: number; // 500
  /** Samples a backend needs, and each backend compared against, before the rule speaks. */
  min_samples: number; // 5
  /** The mean is over at most this many of a backend's latest successful requests... */
  window_samples: number; // 20
  /** ...no older than this. */
  window_seconds: number; // 10
}

/** Which passive ejections a successful probe ends early (Envoy: successful_active_health_check_uneject_host). */
export type ProbeRelease = 'gateway' | 'all' | 'none';

export interface PassiveConfig {
  enabled: boolean; // true
  /** UDP address of the syslog receiver, as nginx's `server=` writes it: `host:port`, `[v6]:port`. */
  listen: string; // '127.0.0.1:5514'
  /**
   * Source addresses whose datagrams are accepted; [] = any. Set it when `listen` is not
   * loopback: whoever can send to the port can otherwise report failures and eject backends.
   */
  allow_from: string[]; // []
  /** nginx's `tag=`; lines with another tag (e.g. an error_log sent to the same port) are dropped. */
  tag: string; // 'orchestry'
  /** Longer datagrams are dropped unparsed. A real line is 300-600 bytes. */
  max_line_bytes: number; // 16384
  /**
   * The socket's kernel receive buffer (SO_RCVBUF): what absorbs a burst of lines while the
   * event loop is busy; beyond it the kernel drops. Linux caps it at net.core.rmem_max.
   */
  receive_buffer_bytes: number; // 1048576
  /** Datagrams waiting to be parsed; more are dropped (counted as queue_full). */
  queue_size: number; // 4096
  /** Datagrams parsed per event-loop turn before the loop gets to run timers (probes) again. */
  batch_size: number; // 256
  /** Consecutive 5xx (gateway failures included, as in Envoy) that eject; 0 turns the rule off. */
  consecutive_5xx: number; // 5
  /** Consecutive 502/503/504, connect errors and timeouts that eject; 0 turns the rule off. */
  consecutive_gateway_failure: number; // 5
  /** First ejection's length; the n-th in a row lasts n x this, up to max_ejection_time_seconds. */
  base_ejection_time_seconds: number; // 30
  max_ejection_time_seconds: number; // 300
  /** At most this share of an app's backends passively ejected at once. */
  max_ejection_percent: number; // 50
  /** Each interval a released backend stays in, its ejection count (the multiplier) drops by one. */
  interval_seconds: number; // 10
  /** Which passive ejections a successful probe of the backend ends before their time is up. */
  probe_success_releases: ProbeRelease; // 'gateway'
  latency: PassiveLatencyConfig;
}

/**
 * Defaults. Envoy's (consecutive 5 and 5, base 30 s, max 300 s, interval 10 s) except:
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
export const DEFAULT_PASSIVE_CONFIG: Readonly<PassiveConfig> = {
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
};

/** `host:port` or `[v6]:port` -> its parts (port 0 = any free one); null when it is neither. */
export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9A-Za-z.-]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

/** What is wrong with a passive section, each problem naming its YAML path; empty when fine. */
export function checkPassiveConfig(cfg: PassiveConfig, path = 'passive'): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, key: string, rule: string, value: unknown) => {
    if (!ok) problems.push(`${path}.${key} must be ${rule} (got ${JSON.stringify(value)})`);
  };
  const int = (v: number, min: number, max: number) => Number.isInteger(v) && v >= min && v <= max;
  need((parseListen(cfg.listen)?.port ?? 0) > 0, 'listen', 'host:port or [ipv6]:port with a port from 1 to 65535', cfg.listen);
  for (const [i, a] of cfg.allow_from.entries()) need(isIP(a) !== 0, `allow_from[${i}]`, 'an IP address', a);
  need(/^[A-Za-z0-9_]{1,32}$/.test(cfg.tag), 'tag', '1 to 32 letters, digits or _ (nginx allows no others)', cfg.tag);
  need(int(cfg.max_line_bytes, 512, 65507), 'max_line_bytes', 'an integer from 512 to 65507', cfg.max_line_bytes);
  need(int(cfg.receive_buffer_bytes, 4096, 2 ** 31 - 1), 'receive_buffer_bytes', 'an integer from 4096 up', cfg.receive_buffer_bytes);
  need(int(cfg.queue_size, 1, 1_000_000), 'queue_size', 'an integer from 1 to 1000000', cfg.queue_size);
  need(int(cfg.batch_size, 1, 100_000), 'batch_size', 'an integer from 1 to 100000', cfg.batch_size);
  need(int(cfg.consecutive_5xx, 0, 1000), 'consecutive_5xx', 'an integer from 0 (off) to 1000', cfg.consecutive_5xx);
  need(int(cfg.consecutive_gateway_failure, 0, 1000), 'consecutive_gateway_failure', 'an integer from 0 (off) to 1000', cfg.consecutive_gateway_failure);
  need(cfg.base_ejection_time_seconds > 0, 'base_ejection_time_seconds', 'above 0', cfg.base_ejection_time_seconds);
  need(
    cfg.max_ejection_time_seconds >= cfg.base_ejection_time_seconds,
    'max_ejection_time_seconds',
    `at least base_ejection_time_seconds (${cfg.base_ejection_time_seconds})`,
    cfg.max_ejection_time_seconds,
  );
  need(cfg.max_ejection_percent >= 0 && cfg.max_ejection_percent <= 100, 'max_ejection_percent', 'from 0 to 100', cfg.max_ejection_percent);
  need(cfg.interval_seconds > 0, 'interval_seconds', 'above 0', cfg.interval_seconds);
  need(['gateway', 'all', 'none'].includes(cfg.probe_success_releases), 'probe_success_releases', 'gateway, all or none', cfg.probe_success_releases);
  const l = cfg.latency;
  need(l.factor > 1, 'latency.factor', 'above 1', l.factor);
  need(l.min_ms >= 0, 'latency.min_ms', 'at least 0', l.min_ms);
  need(int(l.min_samples, 1, 10_000), 'latency.min_samples', 'an integer from 1 to 10000', l.min_samples);
  need(int(l.window_samples, l.min_samples, 10_000), 'latency.window_samples', `an integer from latency.min_samples (${l.min_samples}) to 10000`, l.window_samples);
  need(l.window_seconds > 0, 'latency.window_seconds', 'above 0', l.window_seconds);
  return problems;
}
