import { describe, expect, it } from 'vitest';
import {
  containerFailureEvent,
  MAX_HISTORY_PER_TYPE,
  RATE_SLICES,
  failureTypeOf,
  isCritical,
  restoreProbeCounts,
  severityOf,
  stepFailures,
  type FailureHistory,
} from '../../src/health/classify.js';
import type { FailureDetectionConfig } from '../../src/config/types.js';
import type { ProbeErrorClass, ProbeResult } from '../../src/model.js';
import type { FailureEvent, FailureType } from '../../src/health/types.js';
import { failureDetection, probeResult } from '../helpers/fixtures.js';

const detection: FailureDetectionConfig = failureDetection();
const WINDOW_MS = 10 * 60_000;

/** A passing probe of web/127.0.0.1:8001 that took 12 ms. */
const result = (over: Partial<ProbeResult> = {}): ProbeResult => probeResult(over);

function failed(errorClass: ProbeErrorClass | null, over: Partial<ProbeResult> = {}): ProbeResult {
  return result({ healthy: false, statusCode: null, body: null, errorClass, error: errorClass && `${errorClass} happened`, ...over });
}

/** Feeds (result, now) pairs; returns the final history and the events of each step. */
function feed(steps: Array<[ProbeResult, number]>, cfg = detection, from: FailureHistory = {}) {
  let history = from;
  const events: FailureEvent[][] = [];
  for (const [r, now] of steps) {
    const out = stepFailures(history, r, cfg, now);
    history = out.history;
    events.push(out.events);
  }
  return { history, events };
}

describe('failure classification', () => {
  const mapping: Array<[ProbeErrorClass, FailureType]> = [
    ['unexpected_status', 'health_check_failed'],
    ['unexpected_body', 'health_check_failed'],
    ['unexpected_response', 'health_check_failed'],
    ['timeout', 'health_check_timeout'],
    ['connection_refused', 'port_not_listening'],
    ['connection_reset', 'network_unreachable'],
    ['network_unreachable', 'network_unreachable'],
    ['dns', 'dns_resolution_failed'],
    ['tls', 'health_check_error'],
    ['error', 'health_check_error'],
  ];
  it.each(mapping)('classifies a %s probe failure as %s', (errorClass, type) => {
    expect(failureTypeOf(failed(errorClass))).toBe(type);
  });

  it('classifies an unhealthy result without an error class as health_check_failed', () => {
    expect(failureTypeOf(failed(null))).toBe('health_check_failed');
  });

  it('gives no failure type to a healthy result', () => {
    expect(failureTypeOf(result())).toBeNull();
  });

  it('gives no failure type to a local error, and leaves the windows and the error rate as they were', () => {
    const local = failed('local_error');
    expect(failureTypeOf(local)).toBeNull();
    const cfg = failureDetection({ min_error_rate_samples: 1, max_error_rate_percent: 10 });
    const { history, events } = feed([[result(), 0], [local, 1000], [local, 2000], [local, 3000]], cfg);
    expect(events).toEqual([[], [], [], []]);
    expect(history.probes).toMatchObject({ sumTotal: 1, sumFailed: 0 });
  });

  const severities: Array<[FailureType, string]> = [
    ['container_stopped', 'critical'],
    ['container_oom_killed', 'critical'],
    ['application_startup_failed', 'high'],
    ['container_restart_loop', 'high'],
    ['health_check_timeout', 'medium'],
    ['high_response_time', 'medium'],
    ['health_check_failed', 'low'],
    ['health_check_error', 'low'],
    ['high_error_rate', 'low'],
    ['high_resource_usage', 'low'],
    ['network_unreachable', 'low'],
    ['port_not_listening', 'low'],
    ['dns_resolution_failed', 'low'],
    ['application_deadlock', 'low'],
    ['application_memory_leak', 'low'],
  ];
  it.each(severities)('rates %s as %s severity', (type, severity) => {
    expect(severityOf(type)).toBe(severity);
  });

  it('treats container_stopped, container_oom_killed and application_startup_failed as critical at once', () => {
    expect(isCritical('container_stopped', 'low', 1)).toBe(true);
    expect(isCritical('container_oom_killed', 'low', 1)).toBe(true);
    expect(isCritical('application_startup_failed', 'high', 1)).toBe(true);
  });

  it('treats any critical-severity failure as critical', () => {
    expect(isCritical('health_check_error', 'critical', 1)).toBe(true);
  });

  it('treats a failure as critical from its fifth consecutive occurrence', () => {
    expect(isCritical('port_not_listening', 'low', 4)).toBe(false);
    expect(isCritical('port_not_listening', 'low', 5)).toBe(true);
  });

  it('does not treat a high-severity failure as critical by itself', () => {
    expect(isCritical('container_restart_loop', 'high', 1)).toBe(false);
  });
});

describe('failure tracker', () => {
  it('returns the same history and no events for a healthy fast probe with nothing tracked', () => {
    const history: FailureHistory = {};
    const out = stepFailures(history, result(), detection, 1000);
    expect(out.history).toBe(history);
    expect(out.events).toEqual([]);
  });

  it('emits one event of the failure type for an unhealthy probe', () => {
    const r = failed('connection_refused', { error: 'connect ECONNREFUSED 127.0.0.1:8001', responseTimeMs: 3 });
    const [event] = stepFailures({}, r, detection, 1000).events;
    expect(event).toEqual({
      failureType: 'port_not_listening',
      backendId: 'web/127.0.0.1:8001',
      app: 'web',
      severity: 'low',
      message: 'port_not_listening: connect ECONNREFUSED 127.0.0.1:8001',
      details: {
        response_time_ms: 3,
        status_code: null,
        error: 'connect ECONNREFUSED 127.0.0.1:8001',
        error_class: 'connection_refused',
        check_type: 'http',
      },
      timestamp: 1000,
      consecutiveCount: 1,
      totalCount: 1,
      firstOccurrence: 1000,
      critical: false,
    });
  });

  it('describes a bad status without an error text by its code', () => {
    const r = failed('unexpected_status', { error: null, statusCode: 503 });
    expect(stepFailures({}, r, detection, 0).events[0]?.message).toBe('health_check_failed: HTTP 503');
  });

  it('reports high_response_time for a healthy probe slower than max_response_time_ms', () => {
    const out = stepFailures({}, result({ responseTimeMs: 5001 }), detection, 2000);
    expect(out.events).toHaveLength(1);
    expect(out.events[0]).toMatchObject({
      failureType: 'high_response_time',
      severity: 'medium',
      message: 'high_response_time: 5001ms > 5000ms',
      details: { response_time_ms: 5001, threshold: 5000 },
      critical: false,
    });
  });

  it('does not report high_response_time at exactly max_response_time_ms', () => {
    expect(stepFailures({}, result({ responseTimeMs: 5000 }), detection, 0).events).toEqual([]);
  });

  it('reports both the failure and high_response_time for a slow timeout', () => {
    const out = stepFailures({}, failed('timeout', { responseTimeMs: 6000 }), detection, 0);
    expect(out.events.map((e) => [e.failureType, e.severity])).toEqual([
      ['health_check_timeout', 'medium'],
      ['high_response_time', 'medium'],
    ]);
  });

  it('counts consecutive probes of the same type and becomes critical at the fifth', () => {
    const r = failed('connection_refused');
    const { events } = feed([1, 2, 3, 4, 5].map((i) => [r, i * 1000]));
    expect(events.map((e) => e[0]?.consecutiveCount)).toEqual([1, 2, 3, 4, 5]);
    expect(events.map((e) => e[0]?.critical)).toEqual([false, false, false, false, true]);
    expect(events[4]?.[0]).toMatchObject({ totalCount: 5, firstOccurrence: 1000 });
  });

  it('ends a streak on a healthy probe but keeps counting the total within the window', () => {
    const r = failed('timeout');
    const { events } = feed([
      [r, 1000],
      [r, 2000],
      [result(), 3000],
      [r, 4000],
    ]);
    expect(events[2]).toEqual([]);
    expect(events[3]?.[0]).toMatchObject({ consecutiveCount: 1, totalCount: 3, firstOccurrence: 1000 });
  });

  it('ends a streak when a different failure type arrives', () => {
    const timeout = failed('timeout');
    const { events } = feed([
      [timeout, 1000],
      [timeout, 2000],
      [failed('connection_refused'), 3000],
      [timeout, 4000],
    ]);
    expect(events[2]?.[0]).toMatchObject({ failureType: 'port_not_listening', consecutiveCount: 1 });
    expect(events[3]?.[0]).toMatchObject({ failureType: 'health_check_timeout', consecutiveCount: 1, totalCount: 3 });
  });

  it('tracks high_response_time streaks independently of the health failure type', () => {
    const { events } = feed([
      [failed('timeout', { responseTimeMs: 6000 }), 1000],
      [result({ responseTimeMs: 6000 }), 2000],
    ]);
    expect(events[1]?.map((e) => [e.failureType, e.consecutiveCount])).toEqual([['high_response_time', 2]]);
  });

  it('drops occurrences once they are a full window old', () => {
    const r = failed('dns');
    const { events, history } = feed([
      [r, 0],
      [r, 60_000],
      [r, WINDOW_MS],
    ]);
    expect(events[2]?.[0]).toMatchObject({ totalCount: 2, firstOccurrence: 60_000, consecutiveCount: 3 });
    expect(history.dns_resolution_failed?.times).toEqual([60_000, WINDOW_MS]);
  });

  it('restarts a streak whose previous occurrence has left the window', () => {
    const r = failed('dns');
    const { events } = feed([
      [r, 0],
      [r, WINDOW_MS + 1],
    ]);
    expect(events[1]?.[0]).toMatchObject({ consecutiveCount: 1, totalCount: 1, firstOccurrence: WINDOW_MS + 1 });
  });

  it('forgets a failure type entirely once its window has passed', () => {
    const { history } = feed([
      [failed('tls'), 0],
      [result(), 1000],
      [result(), WINDOW_MS + 1],
    ]);
    expect(Object.keys(history)).toEqual(['probes']);
  });

  it('keeps at most MAX_HISTORY_PER_TYPE timestamps per type', () => {
    const r = failed('error');
    const steps: Array<[ProbeResult, number]> = [];
    for (let i = 0; i <= MAX_HISTORY_PER_TYPE + 5; i++) steps.push([r, i]);
    const { history, events } = feed(steps);
    const times = history.health_check_error!.times;
    expect(times).toHaveLength(MAX_HISTORY_PER_TYPE);
    expect(times[times.length - 1]).toBe(MAX_HISTORY_PER_TYPE + 5);
    expect(events.at(-1)?.[0]).toMatchObject({ totalCount: MAX_HISTORY_PER_TYPE, consecutiveCount: MAX_HISTORY_PER_TYPE + 6 });
  });

  it('counts a healthy probe in place, keeping the history object (nothing allocated per probe)', () => {
    const history = stepFailures({}, result(), detection, 1000).history;
    const probes = history.probes!;
    const out = stepFailures(history, result(), detection, 2000);
    expect(out.history).toBe(history);
    expect(out.history.probes).toBe(probes);
    expect(probes).toMatchObject({ sumTotal: 2, sumFailed: 0 });
  });

  it('does not change the failure types of the history it was given', () => {
    const first = stepFailures({}, failed('timeout'), detection, 1000).history;
    const copy = JSON.parse(JSON.stringify(first.health_check_timeout));
    stepFailures(first, failed('timeout'), detection, 2000);
    stepFailures(first, result(), detection, 3000);
    expect(first.health_check_timeout).toEqual(copy);
  });

  it('keeps the history plain JSON', () => {
    const { history } = feed([
      [failed('timeout', { responseTimeMs: 7000 }), 1000],
      [result(), 2000],
    ]);
    expect(JSON.parse(JSON.stringify(history))).toEqual(history);
  });
});

describe('high_error_rate', () => {
  // 20 probes at least, more than 5% failed, over the last 10 minutes.
  const cfg: FailureDetectionConfig = { ...detection, max_error_rate_percent: 5, min_error_rate_samples: 20 };
  const SLICE_MS = WINDOW_MS / RATE_SLICES;

  /** One probe a second from `start`: failed where `fail(i)`; returns every high_error_rate event. */
  function run(n: number, fail: (i: number) => boolean, opts: { start?: number; stepMs?: number; from?: FailureHistory } = {}) {
    const { start = 0, stepMs = 1000 } = opts;
    let history = opts.from ?? {};
    const rateEvents: Array<{ i: number; event: FailureEvent }> = [];
    for (let i = 0; i < n; i++) {
      const out = stepFailures(history, fail(i) ? failed('unexpected_status') : result(), cfg, start + i * stepMs);
      history = out.history;
      for (const event of out.events) if (event.failureType === 'high_error_rate') rateEvents.push({ i, event });
    }
    return { history, rateEvents };
  }

  it('fires once, on the probe that takes the failed share above max_error_rate_percent', () => {
    // 19 healthy, then failures: 20 probes with 1 failed is 5% (not above), 21 with 2 is 9.5%.
    const { rateEvents } = run(30, (i) => i >= 19);
    expect(rateEvents.map((r) => r.i)).toEqual([20]);
    expect(rateEvents[0]!.event).toMatchObject({
      failureType: 'high_error_rate',
      severity: 'low',
      consecutiveCount: 1,
      totalCount: 1,
      critical: false,
      message: 'high_error_rate: 2 of 21 probes failed (9.5%) in 10 min > 5%',
      details: { failed_probes: 2, total_probes: 21, threshold: 5, window_minutes: 10 },
    });
    expect(rateEvents[0]!.event.details.error_rate_percent).toBeCloseTo(9.52, 2);
  });

  it('does not fire before min_error_rate_samples probes are in the window, however many fail', () => {
    expect(run(19, () => true).rateEvents).toEqual([]);
    expect(run(20, () => true).rateEvents.map((r) => r.i)).toEqual([19]);
  });

  it('does not fire while the failed share stays at or below the threshold', () => {
    // One failure in every 20 probes: exactly 5% at best, never above.
    expect(run(400, (i) => i % 20 === 19).rateEvents).toEqual([]);
  });

  it('does not fire for a short burst of failures in a long healthy window', () => {
    // 300 healthy probes, then 10 failures in a row: 10 of 310 = 3.2%.
    expect(run(310, (i) => i >= 300).rateEvents).toEqual([]);
  });

  it('fires again after the rate has fallen to half the threshold, counting the crossings as a streak', () => {
    // 10% failing for 100 s, healthy until the rate is 2.5% (10 of 400) while those failures are
    // still in the window, then 30% failing.
    const failing = (i: number) => (i < 100 ? i % 10 === 0 : i >= 450 && i % 10 < 3);
    const { rateEvents } = run(600, failing);
    expect(rateEvents.map((r) => [r.event.consecutiveCount, r.event.totalCount])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(rateEvents[1]!.i).toBeGreaterThan(450);
  });

  it('treats a rate hovering around the threshold as one episode', () => {
    // Falls back to about 5% (not to half of it), then climbs over it again, dipping on the way.
    const failing = (i: number) => (i < 100 ? i % 10 === 0 : i >= 300 && i % 10 < 3);
    expect(run(400, failing).rateEvents.map((r) => r.i)).toEqual([19]);
  });

  it('restarts the crossing streak once a whole window passed without a failed probe', () => {
    const failing = (i: number) => (i < 100 || i >= 800) && i % 10 < 3;
    const { rateEvents } = run(900, failing);
    expect(rateEvents.map((r) => r.event.consecutiveCount)).toEqual([1, 1]);
  });

  it('counts only the window: failures older than the window no longer count towards the rate', () => {
    // 40 failures, then one healthy probe per slice for a whole window: the failures age out.
    const { history } = run(40, () => true);
    const after = run(RATE_SLICES + 1, () => false, { start: 40_000 + SLICE_MS, stepMs: SLICE_MS, from: history });
    expect(after.history.probes).toMatchObject({ sumFailed: 0, above: false });
    expect(after.history.probes!.sumTotal).toBe(RATE_SLICES);
  });

  it('fires when old healthy probes leave the window and the remaining failures are over the threshold', () => {
    // 200 healthy probes in the first slice, then 2 failures of 30 in a later slice: 2 of 232 is
    // 0.9%; once the healthy slice ages out, 2 of 32 (6.3%) is above.
    let { history } = run(200, () => false, { stepMs: 100 });
    const later = run(30, (i) => i < 2, { start: 5 * SLICE_MS, from: history });
    expect(later.rateEvents).toEqual([]);
    history = later.history;
    const { rateEvents } = run(1, () => false, { start: WINDOW_MS + 1000, from: history });
    expect(rateEvents).toHaveLength(1);
    expect(rateEvents[0]!.event.details).toMatchObject({ failed_probes: 2, total_probes: 31 });
  });

  it('empties at most one ring of slices after a long gap', () => {
    const { history } = run(50, () => true);
    const out = stepFailures(history, result(), cfg, 10 * 365 * 24 * 3_600_000);
    expect(out.history.probes).toMatchObject({ sumTotal: 1, sumFailed: 0 });
  });

  it('starts counting over when failure_rate_window_minutes changes', () => {
    const { history } = run(30, () => true);
    const shorter = { ...cfg, failure_rate_window_minutes: 1 };
    const out = stepFailures(history, result(), shorter, 31_000);
    expect(out.history.probes).toMatchObject({ sliceMs: 6000, sumTotal: 1, sumFailed: 0 });
  });

  it('restores saved probe counts and rejects malformed ones', () => {
    const { history } = run(30, (i) => i % 3 === 0);
    const saved = JSON.parse(JSON.stringify(history.probes));
    expect(restoreProbeCounts(saved)).toEqual(history.probes);
    expect(restoreProbeCounts({ ...saved, total: [1, 2] })).toBeUndefined();
    expect(restoreProbeCounts({ ...saved, failed: saved.total.map((t: number) => t + 1) })).toBeUndefined();
    expect(restoreProbeCounts({ ...saved, sliceMs: 0 })).toBeUndefined();
    expect(restoreProbeCounts({ ...saved, failed: [1] })).toBeUndefined();
    expect(restoreProbeCounts('x')).toBeUndefined();
  });

  it('keeps no ring of failed probes while the window holds none, and drops it once they age out', () => {
    const healthy = run(30, () => false);
    expect(healthy.history.probes!.failed).toBeUndefined();
    expect(JSON.parse(JSON.stringify(healthy.history.probes))).not.toHaveProperty('failed');
    const failing = run(3, () => true, { start: 30_000, from: healthy.history });
    expect(failing.history.probes).toMatchObject({ sumFailed: 3 });
    expect(failing.history.probes!.failed!.reduce((a, b) => a + b, 0)).toBe(3);
    // One healthy probe per slice for a whole window: the failures leave it, and so does the ring.
    const after = run(RATE_SLICES + 1, () => false, { start: 33_000 + SLICE_MS, stepMs: SLICE_MS, from: failing.history });
    expect(after.history.probes).toMatchObject({ sumFailed: 0, above: false });
    expect(after.history.probes!.failed).toBeUndefined();
    // And it counts failures again from zero.
    const again = run(2, () => true, { start: 33_000 + (RATE_SLICES + 2) * SLICE_MS, from: after.history });
    expect(again.history.probes).toMatchObject({ sumFailed: 2 });
  });

  it('restores counts saved without a ring of failed probes (or an all-zero one) as none failed', () => {
    const { history } = run(30, () => false);
    const saved = JSON.parse(JSON.stringify(history.probes));
    expect(restoreProbeCounts(saved)).toMatchObject({ sumTotal: 30, sumFailed: 0 });
    const zeros = restoreProbeCounts({ ...saved, failed: new Array(RATE_SLICES).fill(0) });
    expect(zeros).toMatchObject({ sumTotal: 30, sumFailed: 0 });
    expect(zeros!.failed).toBeUndefined();
  });
});

describe('failures Docker reports', () => {
  it('become failure events of the backend, with the seed severity and a streak of one', () => {
    const e = containerFailureEvent({ failureType: 'container_oom_killed', app: 'web', details: { exit_code: 137 } }, 'web/127.0.0.1:8001', 'web-1', 5000);
    expect(e).toEqual({
      failureType: 'container_oom_killed',
      backendId: 'web/127.0.0.1:8001',
      app: 'web',
      severity: 'critical',
      message: 'container_oom_killed: container web-1',
      details: { exit_code: 137 },
      timestamp: 5000,
      consecutiveCount: 1,
      totalCount: 1,
      firstOccurrence: 5000,
      critical: true,
    });
    const loop = containerFailureEvent({ failureType: 'container_restart_loop', app: 'web', details: {} }, 'b', 'c', 1);
    expect([loop.severity, loop.critical]).toEqual(['high', false]);
  });
});
