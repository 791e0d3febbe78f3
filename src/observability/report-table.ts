/**
 * The health report as a readable table for `orchestry-sidecar report APP` (`--json` prints the
 * API's JSON instead). Pure: report in, text out.
 */
import type { CheckStats, HealthReport } from '../store/types.js';

/** How many recent transitions and recovery actions the table lists. */
const RECENT = 10;

export function formatReport(r: HealthReport): string {
  const lines: string[] = [];
  const span = `${iso(r.from)} to ${iso(r.to)}`;
  lines.push(`${r.app_name}: last ${r.report_period_hours} h (${span}), from ${r.source === 'raw' ? 'raw probe results' : 'per-minute rollups'}`);
  lines.push('');
  lines.push(
    `uptime ${percent(r.uptime_percent)}   checks ${r.total_checks} (ok ${r.successful_checks}, failed ${r.failed_checks})   ` +
      `avg ${ms(r.avg_response_time_ms)}   p95 ${ms(r.p95_response_time_ms)}   max ${ms(r.max_response_time_ms)}`,
  );
  lines.push(`errors: ${breakdown(r.error_breakdown)}`);
  lines.push(`failures: ${breakdown(r.failure_breakdown)}`);
  lines.push(
    `transitions ${r.transitions}   ejections ${r.ejections}   recovery actions ${r.recovery_actions}` +
      (r.recovery_actions > 0 ? ` (${breakdown(r.recovery_by_strategy)})` : ''),
  );
  if (r.backends.length > 0) {
    lines.push('');
    lines.push(
      ...table([
        ['BACKEND', 'UPTIME', 'CHECKS', 'FAILED', 'AVG', 'P95', 'EJECTIONS', 'RECOVERY'],
        ...r.backends.map((b) => [
          b.backend_id,
          percent(b.uptime_percent),
          String(b.total_checks),
          String(b.failed_checks),
          ms(b.avg_response_time_ms),
          ms(b.p95_response_time_ms),
          String(b.ejections),
          String(b.recovery_actions),
        ]),
      ]),
    );
  }
  const transitions = r.recent_transitions.slice(0, RECENT);
  if (transitions.length > 0) {
    lines.push('', 'Recent transitions:');
    lines.push(...table(transitions.map((t) => [iso(t.at), t.backend_id, `${t.kind} ${t.from} -> ${t.to}`, t.reason])).map((l) => `  ${l}`));
  }
  const actions = r.recent_recovery_actions.slice(0, RECENT);
  if (actions.length > 0) {
    lines.push('', 'Recent recovery actions:');
    lines.push(
      ...table(
        actions.map((a) => [
          iso(a.started_at),
          a.backend_id,
          a.strategy + (a.dry_run ? ' (dry-run)' : ''),
          a.ok ? 'ok' : `failed: ${a.error ?? ''}`,
        ]),
      ).map((l) => `  ${l}`),
    );
  }
  return `${lines.join('\n')}\n`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
}

/** An ISO time to the second. */
function iso(time: string): string {
  return time.replace(/\.\d{3}Z$/, 'Z');
}

function percent(p: CheckStats['uptime_percent']): string {
  return p === null ? '-' : `${p.toFixed(2)}%`;
}

function ms(v: number | null): string {
  return v === null ? '-' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
}

function breakdown(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return entries.length === 0 ? 'none' : entries.map(([k, n]) => `${k} ${n}`).join(', ');
}
