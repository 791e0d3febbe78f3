import { describe, expect, it } from 'vitest';
import { initialHealth, step, type HealthEvent, type HealthState, type ThresholdConfig } from '../../src/health/thresholds.js';

const OK: HealthEvent = { ok: true };
const FAIL: HealthEvent = { ok: false, detail: 'connect ECONNREFUSED 127.0.0.1:8002' };

/** Feeds events at now = 1000, 2000, ...; returns the final state and every transition. */
function run(cfg: ThresholdConfig, events: HealthEvent[], from: HealthState = initialHealth()) {
  let state = from;
  const transitions = [];
  let now = 0;
  for (const e of events) {
    now += 1000;
    const r = step(state, e, cfg, now);
    state = r.state;
    if (r.transition) transitions.push(r.transition);
  }
  return { state, transitions };
}

const k8s: ThresholdConfig = { success_threshold: 1, failure_threshold: 3 };

describe('health thresholds', () => {
  it('starts unknown with no streaks', () => {
    expect(initialHealth()).toEqual({ status: 'unknown', consecutiveSuccesses: 0, consecutiveFailures: 0 });
  });

  it('becomes healthy on the first success when success_threshold is 1', () => {
    const r = step(initialHealth(), OK, k8s, 5000);
    expect(r.state.status).toBe('healthy');
    expect(r.transition).toEqual({ from: 'unknown', to: 'healthy', at: 5000, reason: '1 consecutive success' });
  });

  it('stays unknown until the third success when success_threshold is 3', () => {
    const cfg = { success_threshold: 3, failure_threshold: 3 };
    const two = run(cfg, [OK, OK]);
    expect(two.state.status).toBe('unknown');
    expect(two.transitions).toEqual([]);
    const three = run(cfg, [OK, OK, OK]);
    expect(three.state.status).toBe('healthy');
    expect(three.transitions).toEqual([{ from: 'unknown', to: 'healthy', at: 3000, reason: '3 consecutive successes' }]);
  });

  it('goes from unknown to unhealthy after failure_threshold failures, with the last error in the reason', () => {
    const r = run(k8s, [FAIL, FAIL, FAIL]);
    expect(r.state.status).toBe('unhealthy');
    expect(r.transitions).toEqual([
      { from: 'unknown', to: 'unhealthy', at: 3000, reason: '3 consecutive failures: connect ECONNREFUSED 127.0.0.1:8002' },
    ]);
  });

  it('ejects a healthy backend at exactly failure_threshold consecutive failures, and only once', () => {
    const healthy = run(k8s, [OK]).state;
    const below = run(k8s, [FAIL, FAIL], healthy);
    expect(below.state).toEqual({ status: 'healthy', consecutiveSuccesses: 0, consecutiveFailures: 2 });
    expect(below.transitions).toEqual([]);
    const at = run(k8s, [FAIL, FAIL, FAIL], healthy);
    expect(at.state.status).toBe('unhealthy');
    expect(at.transitions.map((t) => [t.from, t.to])).toEqual([['healthy', 'unhealthy']]);
    const beyond = run(k8s, [FAIL, FAIL, FAIL, FAIL, FAIL], healthy);
    expect(beyond.transitions).toHaveLength(1);
    expect(beyond.state.consecutiveFailures).toBe(5);
  });

  it('restarts the failure streak after a success', () => {
    const healthy = run(k8s, [OK]).state;
    const r = run(k8s, [FAIL, FAIL, OK, FAIL, FAIL], healthy);
    expect(r.state).toEqual({ status: 'healthy', consecutiveSuccesses: 0, consecutiveFailures: 2 });
    expect(r.transitions).toEqual([]);
  });

  it('restarts the success streak after a failure', () => {
    const cfg = { success_threshold: 2, failure_threshold: 1 };
    const unhealthy = run(cfg, [FAIL]).state;
    const r = run(cfg, [OK, FAIL, OK], unhealthy);
    expect(r.state).toEqual({ status: 'unhealthy', consecutiveSuccesses: 1, consecutiveFailures: 0 });
    expect(r.transitions).toEqual([]);
  });

  it('readmits an unhealthy backend after success_threshold consecutive successes', () => {
    const cfg = { success_threshold: 2, failure_threshold: 3 };
    const unhealthy = run(cfg, [FAIL, FAIL, FAIL]).state;
    const r = run(cfg, [OK, OK], unhealthy);
    expect(r.state.status).toBe('healthy');
    expect(r.transitions).toEqual([{ from: 'unhealthy', to: 'healthy', at: 2000, reason: '2 consecutive successes' }]);
  });

  it('leaves a healthy backend without a transition on further successes', () => {
    const r = run(k8s, [OK, OK, OK]);
    expect(r.transitions).toHaveLength(1);
    expect(r.state.consecutiveSuccesses).toBe(3);
  });

  it('trips on the next failure when failure_threshold is lowered below the current streak', () => {
    const healthy = run(k8s, [OK, FAIL, FAIL]).state;
    const r = step(healthy, FAIL, { success_threshold: 1, failure_threshold: 2 }, 9000);
    expect(r.transition?.to).toBe('unhealthy');
  });

  it('omits the detail from the reason when the failure has none', () => {
    const r = step(initialHealth(), { ok: false }, { success_threshold: 1, failure_threshold: 1 }, 1);
    expect(r.transition?.reason).toBe('1 consecutive failure');
  });

  it('keeps the state plain JSON', () => {
    const { state } = run(k8s, [OK, FAIL]);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});
