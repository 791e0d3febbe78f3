import { describe, expect, it } from 'vitest';
import { createAlertState, nextDue, routeReceivers, step, type AlertInput, type AlertState, type Notification } from '../../src/alerting/state.js';
import type { AlertingConfig } from '../../src/config/types.js';
import { alertConfig, alertReceiver as receiver, alertRoute as route, backendView as view, failureEvent as failure } from '../helpers/fixtures.js';

/** Runs inputs in order at the given times; returns the final state and every notification. */
function run(cfg: AlertingConfig, inputs: [number, AlertInput][], start: AlertState = createAlertState()) {
  let state = start;
  const notifications: Notification[] = [];
  for (const [now, input] of inputs) {
    const r = step(state, input, cfg, now);
    state = r.state;
    notifications.push(...r.notifications);
  }
  return { state, notifications };
}

const summary = (ns: Notification[]) => ns.map((n) => `${n.receiver}:${n.alert.status}${n.escalated ? ':escalated' : ''}`);

describe('alert state reducer', () => {
  const cfg = alertConfig();

  it('does not fire for a failed probe of a backend that is still routed', () => {
    const { state, notifications } = run(cfg, [[1000, { kind: 'failure', event: failure({ timestamp: 1000 }), ejected: false }]]);
    expect(notifications).toEqual([]);
    expect(state.alerts.size).toBe(0);
  });

  it('fires when the failing backend is ejected', () => {
    const { state, notifications } = run(cfg, [[1000, { kind: 'failure', event: failure({ timestamp: 1000 }), ejected: true }]]);
    expect(summary(notifications)).toEqual(['ops:firing']);
    const alert = [...state.alerts.values()][0]!;
    expect(alert).toMatchObject({
      id: 'web/127.0.0.1:8001/health_check_failed@1000',
      backendId: 'web/127.0.0.1:8001',
      app: 'web',
      failureType: 'health_check_failed',
      severity: 'high',
      status: 'firing',
      startsAt: 1000,
      endsAt: null,
      receivers: ['ops'],
    });
  });

  it('fires for a critical event even while the backend is routed', () => {
    const event = failure({ failureType: 'container_oom_killed', severity: 'critical', critical: true, timestamp: 1000 });
    const { notifications } = run(cfg, [[1000, { kind: 'failure', event, ejected: false }]]);
    expect(notifications).toHaveLength(1);
    expect(notifications[0]!.alert.failureType).toBe('container_oom_killed');
  });

  it('keeps one alert per backend and failure type while it lasts: ten failures, one notification', () => {
    const inputs: [number, AlertInput][] = Array.from({ length: 10 }, (_, i) => [
      1000 * (i + 1),
      { kind: 'failure', event: failure({ timestamp: 1000 * (i + 1), message: `failure ${i + 1}` }), ejected: true },
    ]);
    const { state, notifications } = run(cfg, inputs);
    expect(notifications).toHaveLength(1);
    expect(state.alerts.size).toBe(1);
    const alert = [...state.alerts.values()][0]!;
    expect(alert.message).toBe('failure 10');
    expect(alert.startsAt).toBe(1000);
  });

  it('keeps separate alerts for separate failure types and backends', () => {
    const { state, notifications } = run(cfg, [
      [1000, { kind: 'failure', event: failure(), ejected: true }],
      [2000, { kind: 'failure', event: failure({ failureType: 'health_check_timeout' }), ejected: true }],
      [3000, { kind: 'failure', event: failure({ backendId: 'web/127.0.0.1:8002' }), ejected: true }],
    ]);
    expect(notifications).toHaveLength(3);
    expect(state.alerts.size).toBe(3);
  });

  it('resolves when the backend is routed and healthy again, to the receivers it fired to', () => {
    const { state, notifications } = run(cfg, [
      [1000, { kind: 'failure', event: failure({ timestamp: 1000 }), ejected: true }],
      [5000, { kind: 'backend', view: view({ health: 'unhealthy', ejected: true, since: 1000 }) }],
      [9000, { kind: 'backend', view: view({ health: 'healthy', ejected: false, since: 9000 }) }],
    ]);
    expect(summary(notifications)).toEqual(['ops:firing', 'ops:resolved']);
    expect(notifications[1]!.alert).toMatchObject({ status: 'resolved', startsAt: 1000, endsAt: 9000 });
    expect(state.alerts.size).toBe(0);
  });

  it('does not resolve while the breaker still ejects a healthy backend', () => {
    const { notifications } = run(cfg, [
      [1000, { kind: 'failure', event: failure({ timestamp: 1000 }), ejected: true }],
      [9000, { kind: 'backend', view: view({ health: 'healthy', breaker: 'open', ejected: true, since: 9000 }) }],
    ]);
    expect(summary(notifications)).toEqual(['ops:firing']);
  });

  it('resolves a critical alert of a routed backend only after a successful probe that followed it', () => {
    const event = failure({ failureType: 'container_stopped', severity: 'critical', critical: true, timestamp: 5000 });
    const probe = (startedAt: number, healthy: boolean) => ({
      backendId: 'web/127.0.0.1:8001', app: 'web', checkType: 'http' as const, healthy, responseTimeMs: 1,
      statusCode: 200, body: null, errorClass: null, error: null, startedAt, finishedAt: startedAt + 1, attempts: 1,
    });
    const { notifications } = run(cfg, [
      [5000, { kind: 'failure', event, ejected: false }],
      // The view the registry had before the event: healthy since long ago, last probe before it.
      [5001, { kind: 'backend', view: view({ since: 0, lastProbe: probe(4000, true) }) }],
      [8000, { kind: 'backend', view: view({ since: 0, lastProbe: probe(7000, true) }) }],
    ]);
    expect(summary(notifications)).toEqual(['ops:firing', 'ops:resolved']);
    expect(notifications[1]!.alert.endsAt).toBe(8000);
  });

  it('resolves when the backend disappears from discovery', () => {
    const { state, notifications } = run(cfg, [
      [1000, { kind: 'failure', event: failure(), ejected: true }],
      [1000, { kind: 'failure', event: failure({ backendId: 'web/127.0.0.1:8002' }), ejected: true }],
      [2000, { kind: 'removed', backendIds: ['web/127.0.0.1:8001'] }],
    ]);
    expect(summary(notifications)).toEqual(['ops:firing', 'ops:firing', 'ops:resolved']);
    expect(notifications[2]!.alert.backendId).toBe('web/127.0.0.1:8001');
    expect([...state.alerts.values()].map((a) => a.backendId)).toEqual(['web/127.0.0.1:8002']);
  });

  it('resolves alerts of backends missing from a full list of present backends', () => {
    const { state, notifications } = run(cfg, [
      [1000, { kind: 'failure', event: failure(), ejected: true }],
      [1000, { kind: 'failure', event: failure({ backendId: 'web/127.0.0.1:8002' }), ejected: true }],
      [2000, { kind: 'present', backendIds: ['web/127.0.0.1:8002'] }],
    ]);
    expect(notifications.filter((n) => n.alert.status === 'resolved').map((n) => n.alert.backendId)).toEqual(['web/127.0.0.1:8001']);
    expect(state.alerts.size).toBe(1);
  });

  it('routes by minimum severity, app and failure type, each receiver once', () => {
    const routed = alertConfig({
      receivers: ['all', 'pager', 'web-team', 'oom', 'api-team'].map((n) => receiver(n)),
      routes: [
        route(['all']),
        route(['pager', 'all'], { min_severity: 'critical' }),
        route(['web-team'], { apps: ['web'] }),
        route(['oom'], { failure_types: ['container_oom_killed'] }),
        route(['api-team'], { apps: ['api'] }),
      ],
    });
    expect(routeReceivers({ app: 'web', failureType: 'health_check_failed', severity: 'high' }, routed)).toEqual(['all', 'web-team']);
    expect(routeReceivers({ app: 'web', failureType: 'container_oom_killed', severity: 'critical' }, routed)).toEqual([
      'all', 'pager', 'web-team', 'oom',
    ]);
    expect(routeReceivers({ app: 'api', failureType: 'health_check_timeout', severity: 'low' }, routed)).toEqual(['all', 'api-team']);
    const { notifications } = run(routed, [[0, { kind: 'failure', event: failure({ severity: 'medium' }), ejected: true }]]);
    expect(notifications.map((n) => n.receiver)).toEqual(['all', 'web-team']);
  });

  it('escalates an alert still firing after escalation.after_seconds, once, and resolves to the escalation receivers too', () => {
    const esc = alertConfig({
      receivers: [receiver('ops'), receiver('pager')],
      escalation: { after_seconds: 600, receivers: ['pager'] },
    });
    const { state, notifications } = run(esc, [
      [0, { kind: 'failure', event: failure(), ejected: true }],
      [599_999, { kind: 'tick' }],
      [600_000, { kind: 'tick' }],
      [1_200_000, { kind: 'tick' }],
      [1_300_000, { kind: 'removed', backendIds: ['web/127.0.0.1:8001'] }],
    ]);
    expect(summary(notifications)).toEqual(['ops:firing', 'pager:firing:escalated', 'ops:resolved', 'pager:resolved:escalated']);
    expect(notifications[1]!.alert.escalated).toBe(true);
    expect(state.alerts.size).toBe(0);
  });

  it('re-sends firing alerts to Alertmanager receivers every resend interval, and to nobody else', () => {
    const am = alertConfig({
      receivers: [receiver('ops'), receiver('am', { type: 'alertmanager' })],
      routes: [route(['ops', 'am'])],
      resend_interval_seconds: 60,
    });
    let { state, notifications } = run(am, [[0, { kind: 'failure', event: failure(), ejected: true }]]);
    expect(notifications.map((n) => n.receiver)).toEqual(['ops', 'am']);
    expect(nextDue(state, am)).toBe(60_000);
    ({ state, notifications } = run(am, [[30_000, { kind: 'tick' }]], state));
    expect(notifications).toEqual([]);
    ({ state, notifications } = run(am, [[60_000, { kind: 'tick' }], [120_000, { kind: 'tick' }]], state));
    expect(summary(notifications)).toEqual(['am:firing', 'am:firing']);
    expect(nextDue(state, am)).toBe(180_000);
  });

  it('has nothing due when no alert needs escalation or resends', () => {
    const { state } = run(alertConfig(), [[0, { kind: 'failure', event: failure(), ejected: true }]]);
    expect(nextDue(state, alertConfig())).toBe(900_000);
    const escalated = run(alertConfig(), [[900_000, { kind: 'tick' }]], state).state;
    expect(nextDue(escalated, alertConfig())).toBeNull();
  });
});
