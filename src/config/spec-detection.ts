/** `breaker` and `failure_detection`: when a backend's circuit opens and what counts as a failure. */
import { MAX_SECONDS, duration, num, readSection, type Report, type Section } from './check.js';
import { DEFAULT_BREAKER, DEFAULT_FAILURE_DETECTION } from './defaults.js';
import type { BreakerConfig, FailureDetectionConfig } from './types.js';

/** The seed's circuit breaker, per backend. */
export const BREAKER: Section<BreakerConfig> = {
  defaults: DEFAULT_BREAKER,
  fields: {
    failure_threshold: { check: num({ int: true, min: 1 }), meaning: 'Consecutive failed probes that open the breaker (an unhealthy verdict or a passive ejection opens it too).' },
    recovery_timeout_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: 'Base ejection time: an open breaker is held this long x the times the backend was ejected recently, then readmitted once probes pass.' },
    max_ejection_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: 'The longest hold; each such span spent closed forgets one ejection.' },
    slow_start_seconds: { check: duration({ min: 0, max: MAX_SECONDS }), meaning: 'Half-open: routed at a weight ramping from 10 % to full over this long, reopened by any failure; 0 readmits at full weight.' },
  },
};

/** `breaker`. */
export function parseBreaker(value: unknown, report: Report): BreakerConfig {
  return readSection(value, 'breaker', BREAKER, report);
}

const MAX_MINUTES = MAX_SECONDS / 60;

/** The seed's failure detector thresholds, plus the detectors it names and this project adds. */
export const FAILURE_DETECTION: Section<FailureDetectionConfig> = {
  defaults: DEFAULT_FAILURE_DETECTION,
  fields: {
    max_response_time_ms: { check: duration({ unit: 'milliseconds', above: 0, max: MAX_SECONDS * 1000 }), meaning: 'Slower responses count as high_response_time.' },
    max_error_rate_percent: { check: num({ min: 0, max: 100 }), meaning: "high_error_rate when more than this share of a backend's probes failed in the window." },
    min_error_rate_samples: { check: num({ int: true, min: 1, max: 1_000_000 }), meaning: 'high_error_rate needs at least this many probes in the window.' },
    consecutive_failure_limit: { check: num({ int: true, min: 1 }), meaning: "The seed's limit, accepted and validated; neither the seed nor the sidecar reads it." },
    failure_rate_window_minutes: { check: duration({ unit: 'minutes', above: 0, max: MAX_MINUTES }), meaning: 'Window in which failures of one type are counted and the error rate is measured.' },
    max_cpu_percent: { check: num({ above: 0, max: 100 }), meaning: "high_resource_usage when Docker stats show CPU above this share of the container's limit." },
    max_memory_percent: { check: num({ above: 0, max: 100 }), meaning: "high_resource_usage when the working set is above this share of the container's memory limit." },
    stats_interval_seconds: { check: duration({ min: 0, max: 3600 }), meaning: 'How often Docker stats are sampled per container-backed backend; 0 = never.' },
    resource_samples: { check: num({ int: true, min: 1, max: 1000 }), meaning: 'A resource reading must stay above its threshold this many samples in a row.' },
    memory_leak_window_minutes: { check: duration({ unit: 'minutes', above: 0, max: MAX_MINUTES }), meaning: 'application_memory_leak: memory is fitted over this window...' },
    memory_leak_horizon_minutes: { check: duration({ unit: 'minutes', above: 0, max: MAX_MINUTES }), meaning: '...and a leak is reported when the fit reaches the memory limit within this time.' },
    deadlock_timeouts: { check: num({ int: true, min: 1, max: 1000 }), meaning: 'application_deadlock: this many HTTP timeouts in a row while TCP connects and CPU is idle.' },
    deadlock_cpu_percent: { check: num({ min: 0, max: 100 }), meaning: 'CPU percent under which a container that times out counts as idle.' },
  },
};
