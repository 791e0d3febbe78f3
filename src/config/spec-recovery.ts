/** `recovery`: the seed's RecoveryManager through the Docker Engine, with safety limits. */
import { MAX_SECONDS, duration, num, oneOf, readSection, type Report, type Section } from './check.js';
import { DEFAULT_RECOVERY, RECOVERY_MODES } from './defaults.js';
import type { RecoveryConfig } from './types.js';

/** `recovery`'s keys. */
export const RECOVERY: Section<RecoveryConfig> = {
  defaults: DEFAULT_RECOVERY,
  fields: {
    mode: { check: oneOf(RECOVERY_MODES), meaning: 'off: nothing; dry-run: plan and record, act on nothing; on: act.' },
    max_restarts: { check: num({ int: true, min: 0, max: 1000 }), meaning: 'Restarts of one container per restart_window_seconds.' },
    restart_window_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: 'The window max_restarts counts in.' },
    backoff_min_seconds: { check: duration({ min: 0, max: MAX_SECONDS }), meaning: 'Backoff between disruptive actions on one container: first wait, doubling.' },
    backoff_max_seconds: { check: duration({ min: 0, max: MAX_SECONDS }), meaning: 'Backoff: longest wait.' },
    budget_per_app: { check: num({ int: true, min: 0, max: 10_000 }), meaning: 'Disruptive actions per app per budget_window_seconds.' },
    budget_window_seconds: { check: duration({ above: 0, max: MAX_SECONDS }), meaning: 'The window budget_per_app counts in.' },
    max_unavailable_fraction: { check: num({ above: 0, max: 1 }), meaning: "Share of an app's replicas acted on at once (at least one)." },
    min_healthy_replicas: { check: num({ int: true, min: 0, max: 1000 }), meaning: 'A healthy replica is not stopped if that leaves fewer healthy ones.' },
    max_replicas: { check: num({ int: true, min: 1, max: 1000 }), meaning: 'Default scale-out ceiling.' },
    scale_in_after_seconds: { check: duration({ min: 0, max: MAX_SECONDS }), meaning: 'Healthy time before replicas recovery added are removed.' },
    stop_timeout_seconds: { check: duration({ int: true, min: 0, max: 3600 }), meaning: "Grace given to a container's process on stop or restart before SIGKILL; whole seconds (the Engine API takes no fractions)." },
  },
};

/** `recovery`, with its backoff order checked. */
export function parseRecovery(value: unknown, report: Report): RecoveryConfig {
  const r = readSection(value, 'recovery', RECOVERY, report);
  if (r.backoff_max_seconds < r.backoff_min_seconds) {
    report(
      'recovery.backoff_max_seconds',
      `must be at least backoff_min_seconds (got ${r.backoff_max_seconds} < ${r.backoff_min_seconds})`,
    );
  }
  return r;
}
