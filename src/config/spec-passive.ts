/** `passive`: nginx's own traffic as evidence (its access log over syslog) and outlier ejection. */
import { isIP } from 'node:net';
import { ipListenAddress } from './allowlists.js';
import { bool, duration, listOf, MAX_SECONDS, num, oneOf, readMap, readSection, sectionKeys, show, withSchema, type Check, type Raw, type Report, type Section } from './check.js';
import { DEFAULT_PASSIVE, PROBE_RELEASES } from './defaults.js';
import type { PassiveConfig, PassiveLatencyConfig } from './types.js';

const ipAddress: Check<string> = withSchema(
  (value, path, report) => (typeof value === 'string' && isIP(value) !== 0 ? value : report(path, `must be an IP address (got ${show(value)})`)),
  { type: 'string' },
);

const syslogTag: Check<string> = withSchema(
  (value, path, report) =>
    typeof value === 'string' && /^[A-Za-z0-9_]{1,32}$/.test(value) ? value : report(path, `must be 1 to 32 letters, digits or _, as nginx's tag= allows (got ${show(value)})`),
  { type: 'string', pattern: '^[A-Za-z0-9_]{1,32}$' },
);

/** `passive`'s own keys (`latency` is a section of its own). */
export const PASSIVE: Section<Omit<PassiveConfig, 'latency'>> = {
  defaults: DEFAULT_PASSIVE,
  fields: {
    enabled: { check: bool, meaning: "Listen for nginx's access log and eject backends on what real requests show." },
    listen: { check: ipListenAddress, meaning: 'UDP address of the syslog receiver, as in nginx\'s access_log syslog:server=...; port 0 picks a free one.' },
    allow_from: { check: listOf(ipAddress), meaning: 'Source addresses accepted; [] = any. Set it when listen is not loopback: whoever can send there can eject backends.' },
    tag: { check: syslogTag, meaning: "nginx's tag= on the access_log line; lines with another tag are dropped." },
    max_line_bytes: { check: num({ int: true, min: 512, max: 65_507 }), meaning: 'Longer datagrams are dropped unparsed (a real line is 300-600 bytes).' },
    receive_buffer_bytes: { check: num({ int: true, min: 4096, max: 2 ** 31 - 1 }), meaning: "The socket's kernel receive buffer, which absorbs bursts while the event loop is busy (capped by net.core.rmem_max)." },
    queue_size: { check: num({ int: true, min: 1, max: 1_000_000 }), meaning: 'Datagrams waiting to be parsed; more are dropped and counted.' },
    batch_size: { check: num({ int: true, min: 1, max: 100_000 }), meaning: 'Datagrams parsed per event-loop turn before timers (probes) run again.' },
    consecutive_5xx: { check: num({ int: true, min: 0, max: 1000 }), meaning: 'Consecutive 5xx answers (gateway failures included) that eject a backend; 0 turns the rule off.' },
    consecutive_gateway_failure: { check: num({ int: true, min: 0, max: 1000 }), meaning: 'Consecutive 502/503/504, connect errors and timeouts that eject; 0 turns the rule off.' },
    base_ejection_time_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: 'A 5xx or latency ejection holds at least this long x the times the backend was ejected in a row (gateway ejections end when probes pass).' },
    max_ejection_time_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: 'The longest such hold; at least base_ejection_time_seconds.' },
    max_ejection_percent: { check: num({ min: 0, max: 100 }), meaning: "At most this share of an app's backends ejected by passive rules at once; the last routable backend never is." },
    interval_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: 'Each such span a backend stays in, its count of ejections in a row drops by one.' },
    probe_success_releases: { check: oneOf(PROBE_RELEASES), meaning: 'Which passive ejections a passing probe ends early: gateway (it accepts connections again), all, none.' },
  },
};

/** `passive.latency`: a backend far slower than the rest of its app. */
export const PASSIVE_LATENCY: Section<PassiveLatencyConfig> = {
  defaults: DEFAULT_PASSIVE.latency,
  fields: {
    enabled: { check: bool, meaning: 'Eject a backend far slower than the others of its app.' },
    factor: { check: num({ above: 1, max: 1000 }), meaning: "Its mean response time above this many times the median of its app's other backends..." },
    min_ms: { check: duration({ unit: 'milliseconds', min: 0, max: MAX_SECONDS * 1000 }), meaning: '...and above this floor (ms), so a 40 ms backend among 10 ms ones stays.' },
    min_samples: { check: num({ int: true, min: 1, max: 10_000 }), meaning: 'Samples each backend compared needs before the rule speaks.' },
    window_samples: { check: num({ int: true, min: 1, max: 10_000 }), meaning: "The mean is over at most this many of a backend's latest successful requests..." },
    window_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: '...no older than this.' },
  },
};

const PASSIVE_KEYS = [...sectionKeys(PASSIVE), 'latency'];

/** `passive`, with the rules between its keys. */
export function parsePassive(value: unknown, report: Report): PassiveConfig {
  const raw: Raw = readMap(value, 'passive', PASSIVE_KEYS, report) ?? {};
  const plain = Object.fromEntries(sectionKeys(PASSIVE).map((key) => [key, raw[key]]));
  const rest = readSection(plain, 'passive', PASSIVE, report);
  const latency = readSection(raw.latency, 'passive.latency', PASSIVE_LATENCY, report);
  if (rest.max_ejection_time_seconds < rest.base_ejection_time_seconds) {
    report('passive.max_ejection_time_seconds', `must be at least base_ejection_time_seconds (got ${rest.max_ejection_time_seconds} < ${rest.base_ejection_time_seconds})`);
  }
  if (latency.window_samples < latency.min_samples) {
    report('passive.latency.window_samples', `must be at least min_samples (got ${latency.window_samples} < ${latency.min_samples})`);
  }
  return { ...rest, latency };
}
