import { describe, expect, it } from 'vitest';
import { formatReport } from '../../src/observability/report-table.js';
import type { BackendReport, HealthReport } from '../../src/store/types.js';

const FROM = Date.parse('2026-11-27T09:00:00Z');
const TO = Date.parse('2026-11-28T09:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

function backend(id: string, over: Partial<BackendReport> = {}): BackendReport {
  return {
    backend_id: id,
    uptime_percent: 100,
    total_checks: 100,
    successful_checks: 100,
    failed_checks: 0,
    avg_response_time_ms: 3.25,
    p95_response_time_ms: 7.5,
    max_response_time_ms: 12,
    error_breakdown: {},
    failure_breakdown: {},
    transitions: 0,
    recent_transitions: [],
    ejections: 0,
    recovery_actions: 0,
    recovery_by_strategy: {},
    recent_recovery_actions: [],
    ...over,
  };
}

const report: HealthReport = {
  ...backend('ignored'),
  app_name: 'web',
  report_period_hours: 24,
  source: 'rollups',
  from: iso(FROM),
  to: iso(TO),
  generated_at: iso(TO),
  uptime_percent: 97.5,
  total_checks: 200,
  successful_checks: 195,
  failed_checks: 5,
  avg_response_time_ms: 14.2,
  p95_response_time_ms: 40,
  max_response_time_ms: 500,
  error_breakdown: { timeout: 3, connection_refused: 2 },
  failure_breakdown: { health_check_timeout: 3, port_not_listening: 2 },
  transitions: 2,
  ejections: 1,
  recovery_actions: 1,
  recovery_by_strategy: { restart_container: 1 },
  recent_transitions: [
    { backend_id: 'web/127.0.0.1:8002', kind: 'health', from: 'healthy', to: 'unhealthy', at: iso(FROM + 3_600_000), reason: '3 consecutive failures: timeout' },
  ],
  recent_recovery_actions: [
    {
      id: 'a1',
      strategy: 'restart_container',
      failure_type: 'health_check_timeout',
      backend_id: 'web/127.0.0.1:8002',
      container_id: 'c1',
      new_container_id: null,
      ok: false,
      dry_run: false,
      error: 'no such container',
      reason: 'r',
      started_at: iso(FROM + 3_700_000),
      duration_ms: 40,
    },
  ],
  backends: [
    backend('web/127.0.0.1:8001'),
    backend('web/127.0.0.1:8002', { uptime_percent: 95, failed_checks: 5, p95_response_time_ms: null, ejections: 1, recovery_actions: 1 }),
  ],
};
delete (report as Partial<BackendReport>).backend_id;

describe('report table', () => {
  it('summarises the app, lists backends and recent events', () => {
    expect(formatReport(report)).toBe(
      [
        'web: last 24 h (2026-11-27T09:00:00Z to 2026-11-28T09:00:00Z), from per-minute rollups',
        '',
        'uptime 97.50%   checks 200 (ok 195, failed 5)   avg 14 ms   p95 40 ms   max 500 ms',
        'errors: timeout 3, connection_refused 2',
        'failures: health_check_timeout 3, port_not_listening 2',
        'transitions 2   ejections 1   recovery actions 1 (restart_container 1)',
        '',
        'BACKEND             UPTIME   CHECKS  FAILED  AVG     P95     EJECTIONS  RECOVERY',
        'web/127.0.0.1:8001  100.00%  100     0       3.3 ms  7.5 ms  0          0',
        'web/127.0.0.1:8002  95.00%   100     5       3.3 ms  -       1          1',
        '',
        'Recent transitions:',
        '  2026-11-27T10:00:00Z  web/127.0.0.1:8002  health healthy -> unhealthy  3 consecutive failures: timeout',
        '',
        'Recent recovery actions:',
        '  2026-11-27T10:01:40Z  web/127.0.0.1:8002  restart_container  failed: no such container',
        '',
      ].join('\n'),
    );
  });

  it('says none and dashes when the window had no checks', () => {
    const empty: HealthReport = {
      ...report,
      uptime_percent: null,
      total_checks: 0,
      successful_checks: 0,
      failed_checks: 0,
      avg_response_time_ms: null,
      p95_response_time_ms: null,
      max_response_time_ms: null,
      error_breakdown: {},
      failure_breakdown: {},
      transitions: 0,
      ejections: 0,
      recovery_actions: 0,
      recovery_by_strategy: {},
      recent_transitions: [],
      recent_recovery_actions: [],
      backends: [],
    };
    expect(formatReport(empty).split('\n').slice(2, 6)).toEqual([
      'uptime -   checks 0 (ok 0, failed 0)   avg -   p95 -   max -',
      'errors: none',
      'failures: none',
      'transitions 0   ejections 0   recovery actions 0',
    ]);
  });
});
