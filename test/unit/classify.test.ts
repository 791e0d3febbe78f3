import { describe, expect, it } from 'vitest';
import {
  MAX_HISTORY_PER_TYPE,
  failureTypeOf,
  isCritical,
  severityOf,
  stepFailures,
  type FailureHistory,
} from '../../src/health/classify.js';
import { DEFAULT_FAILURE_DETECTION } from '../../src/config/schema.js';
import type { FailureDetectionConfig } from '../../src/config/types.js';
import type { ProbeErrorClass, ProbeResult } from '../../src/model.js';
import type { FailureEvent, FailureType } from '../../src/health/types.js';

const detection: FailureDetectionConfig = {
  ...DEFAULT_FAILURE_DETECTION,
  max_response_time_ms: 5000,
  max_error_rate_percent: 5,
  consecutive_failure_limit: 3,
  failure_rate_window_minutes: 10,
};
const WINDOW_MS = 10 * 60_000;

function result(over: Partial<ProbeResult> = {}): ProbeResult {
  return {
    backendId: 'web/127.0.0.1:8001',
    app: 'web',
    checkType: 'http',
    healthy: true,
    responseTimeMs: 12,
    statusCode: 200,
    body: 'ok',
    errorClass: null,
    error: null,
    startedAt: 0,
    finishedAt: 12,
    attempts: 1,
    ...over,
  };
}

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
    expect(history).toEqual({});
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

  it('does not change the history it was given', () => {
    const first = stepFailures({}, failed('timeout'), detection, 1000).history;
    const copy = JSON.parse(JSON.stringify(first));
    stepFailures(first, failed('timeout'), detection, 2000);
    stepFailures(first, result(), detection, 3000);
    expect(first).toEqual(copy);
  });

  it('keeps the history plain JSON', () => {
    const { history } = feed([
      [failed('timeout', { responseTimeMs: 7000 }), 1000],
      [result(), 2000],
    ]);
    expect(JSON.parse(JSON.stringify(history))).toEqual(history);
  });
});
