/** `breaker` and `failure_detection`: when a backend's circuit opens and what counts as a failure. */
import { MAX_SECONDS, num, readSection, type Report, type Section } from './check.js';
import { DEFAULT_BREAKER, DEFAULT_FAILURE_DETECTION } from './defaults.js';
import type { BreakerConfig, FailureDetectionConfig } from './types.js';

/** The seed's circuit breaker, per backend. */
export const BREAKER: Section<BreakerConfig> = {
  defaults: DEFAULT_BREAKER,
  fields: {
    failure_threshold: { check: num({ int: true, min: 1 }), meaning: 'Failures that open the breaker.' },
    success_threshold: { check: num({ int: true, min: 1 }), meaning: 'Successes in half-open that close it.' },
    recovery_timeout_seconds: { check: num({ above: 0, max: MAX_SECONDS }), meaning: 'Time open before trying half-open.' },
    max_test_requests: { check: num({ int: true, min: 1 }), meaning: 'Trial requests allowed while half-open.' },
  },
};

/** `breaker`, which must be able to close again. */
export function parseBreaker(value: unknown, report: Report): BreakerConfig {
  const breaker = readSection(value, 'breaker', BREAKER, report);
  // A half-open breaker closes only after success_threshold trial successes, and it admits at
  // most max_test_requests trials: more successes than trials could never close it again.
  if (breaker.success_threshold > breaker.max_test_requests) {
    report(
      'breaker.success_threshold',
      `must not exceed max_test_requests (got ${breaker.success_threshold} > ${breaker.max_test_requests})`,
    );
  }
  return breaker;
}

const MAX_MINUTES = MAX_SECONDS / 60;

/** The seed's failure detector thresholds, plus the detectors it names and this project adds. */
export const FAILURE_DETECTION: Section<FailureDetectionConfig> = {
  defaults: DEFAULT_FAILURE_DETECTION,
  fields: {
    max_response_time_ms: { check: num({ above: 0, max: MAX_SECONDS * 1000 }), meaning: 'Slower responses count as high_response_time.' },
    max_error_rate_percent: { check: num({ min: 0, max: 100 }), meaning: "high_error_rate when more than this share of a backend's probes failed in the window." },
    min_error_rate_samples: { check: num({ int: true, min: 1, max: 1_000_000 }), meaning: 'high_error_rate needs at least this many probes in the window.' },
    consecutive_failure_limit: { check: num({ int: true, min: 1 }), meaning: "The seed's limit, accepted and validated; neither the seed nor the sidecar reads it." },
    failure_rate_window_minutes: { check: num({ above: 0, max: MAX_MINUTES }), meaning: 'Window in which failures of one type are counted and the error rate is measured.' },
    max_cpu_percent: { check: num({ above: 0, max: 100 }), meaning: "high_resource_usage when Docker stats show CPU above this share of the container's limit." },
    max_memory_percent: { check: num({ above: 0, max: 100 }), meaning: "high_resource_usage when the working set is above this share of the container's memory limit." },
    stats_interval_seconds: { check: num({ min: 0, max: 3600 }), meaning: 'How often Docker stats are sampled per container-backed backend; 0 = never.' },
    resource_samples: { check: num({ int: true, min: 1, max: 1000 }), meaning: 'A resource reading must stay above its threshold this many samples in a row.' },
    memory_leak_window_minutes: { check: num({ above: 0, max: MAX_MINUTES }), meaning: 'application_memory_leak: memory is fitted over this window...' },
    memory_leak_horizon_minutes: { check: num({ above: 0, max: MAX_MINUTES }), meaning: '...and a leak is reported when the fit reaches the memory limit within this time.' },
    deadlock_timeouts: { check: num({ int: true, min: 1, max: 1000 }), meaning: 'application_deadlock: this many HTTP timeouts in a row while TCP connects and CPU is idle.' },
    deadlock_cpu_percent: { check: num({ min: 0, max: 100 }), meaning: 'CPU percent under which a container that times out counts as idle.' },
  },
};
