/**
 * Pure pieces of the health report: per-minute aggregates (what a rollup row holds), check
 * statistics from aggregates or from exact samples, and event statistics. No I/O.
 */
import type { ActionRecord } from '../recovery/types.js';
import { errorClassName } from './protocol.js';
import { HOUR_MS, MINUTE_MS } from './schema.js';
import { addCount, mergeCounts, sketchKey, sketchQuantile, type Counts } from './sketch.js';
import type { CheckStats, EventStats, ReportAction, ReportTransition } from './types.js';

/** Newest transitions and recovery actions listed per report (app and each backend). */
export const REPORT_RECENT_LIMIT = 20;

/** The minutes a report over the last `hours` at `now` covers: [fromMinute, toMinute). */
export function reportMinutes(hours: number, now: number): { fromMinute: number; toMinute: number } {
  return { fromMinute: Math.ceil((now - hours * HOUR_MS) / MINUTE_MS), toMinute: Math.floor(now / MINUTE_MS) + 1 };
}

/** One backend's checks in one minute (or merged over many): a rollup row in memory. */
export interface MinuteAgg {
  n: number;
  failures: number;
  sumUs: number;
  maxUs: number;
  sketch: Counts;
  /** Error code → failures. */
  errors: Counts;
}

export function newAgg(): MinuteAgg {
  return { n: 0, failures: 0, sumUs: 0, maxUs: 0, sketch: new Map(), errors: new Map() };
}

export function addSample(agg: MinuteAgg, us: number, e: number): void {
  agg.n++;
  agg.sumUs += us;
  if (us > agg.maxUs) agg.maxUs = us;
  addCount(agg.sketch, sketchKey(us));
  if (e !== 0) {
    agg.failures++;
    addCount(agg.errors, e);
  }
}

export function mergeAgg(into: MinuteAgg, from: MinuteAgg): void {
  into.n += from.n;
  into.failures += from.failures;
  into.sumUs += from.sumUs;
  if (from.maxUs > into.maxUs) into.maxUs = from.maxUs;
  mergeCounts(into.sketch, from.sketch);
  mergeCounts(into.errors, from.errors);
}

/** Statistics from an aggregate; p95 from its sketch. */
export function statsFromAgg(agg: MinuteAgg): CheckStats {
  const p95 = sketchQuantile(agg.sketch, 0.95);
  // A bucket's representative value can lie above every sample in it; no percentile exceeds the max.
  return stats(agg, p95 === null ? null : Math.min(p95, agg.maxUs / 1000));
}

/** Exact statistics from raw samples (µs, error code); p95 by nearest rank. */
export function exactStats(us: number[], e: number[]): CheckStats {
  const agg = newAgg();
  for (let i = 0; i < us.length; i++) {
    const v = us[i]!;
    agg.n++;
    agg.sumUs += v;
    if (v > agg.maxUs) agg.maxUs = v;
    if (e[i] !== 0) {
      agg.failures++;
      addCount(agg.errors, e[i]!);
    }
  }
  const sorted = Float64Array.from(us).sort();
  const p95 = sorted.length === 0 ? null : sorted[Math.max(1, Math.ceil(0.95 * sorted.length)) - 1]! / 1000;
  return stats(agg, p95);
}

function stats(agg: MinuteAgg, p95: number | null): CheckStats {
  const none = agg.n === 0;
  const breakdown: Record<string, number> = {};
  for (const [code, n] of [...agg.errors].sort((a, b) => a[0] - b[0])) breakdown[errorClassName(code)] = n;
  return {
    uptime_percent: none ? null : ((agg.n - agg.failures) / agg.n) * 100,
    total_checks: agg.n,
    successful_checks: agg.n - agg.failures,
    failed_checks: agg.failures,
    avg_response_time_ms: none ? null : agg.sumUs / agg.n / 1000,
    p95_response_time_ms: p95,
    max_response_time_ms: none ? null : agg.maxUs / 1000,
    error_breakdown: breakdown,
  };
}

/** A transition row as the database holds it (`at` in epoch ms). */
export type TransitionRow = Omit<ReportTransition, 'at'> & { at: number };

/** Event rows as the report query returns them, newest first. */
export interface EventRows {
  failureTypes: string[];
  transitions: TransitionRow[];
  actions: ActionRecord[];
}

/** Event statistics; times as ISO 8601 strings, as the rest of the API writes them. */
export function eventStats(rows: EventRows): EventStats {
  const failures: Record<string, number> = {};
  for (const t of rows.failureTypes) failures[t] = (failures[t] ?? 0) + 1;
  const byStrategy: Record<string, number> = {};
  for (const a of rows.actions) byStrategy[a.strategy] = (byStrategy[a.strategy] ?? 0) + 1;
  return {
    failure_breakdown: failures,
    transitions: rows.transitions.length,
    recent_transitions: rows.transitions.slice(0, REPORT_RECENT_LIMIT).map((t) => ({ ...t, at: isoTime(t.at) })),
    ejections: countOutages(rows.transitions),
    recovery_actions: rows.actions.length,
    recovery_by_strategy: byStrategy,
    recent_recovery_actions: rows.actions.slice(0, REPORT_RECENT_LIMIT).map(reportAction),
  };
}

function reportAction(a: ActionRecord): ReportAction {
  return {
    id: a.id,
    strategy: a.strategy,
    failure_type: a.failureType,
    backend_id: a.backendId,
    container_id: a.containerId,
    new_container_id: a.newContainerId ?? null,
    ok: a.ok,
    dry_run: a.dryRun,
    error: a.error ?? null,
    reason: a.reason,
    started_at: isoTime(a.startedAt),
    duration_ms: a.durationMs,
  };
}

/** What takes a backend out of nginx: health unhealthy or breaker open (either, or both). */
const OUT: Readonly<Record<TransitionRow['kind'], string>> = { health: 'unhealthy', breaker: 'open' };

/**
 * Outages in `transitions` (newest first, any backends): how often a backend went from routed to
 * ejected. A health ejection also opens the breaker, so the two transitions of one outage count
 * once. Each kind's state before the window is the `from` of its oldest transition in it; a
 * kind with none stays in its routed state (healthy, closed).
 */
export function countOutages(transitions: readonly TransitionRow[]): number {
  const oldestFirst = [...transitions].reverse();
  const state = new Map<string, Record<TransitionRow['kind'], string>>();
  const started = new Set<string>();
  for (const t of oldestFirst) {
    let s = state.get(t.backend_id);
    if (!s) state.set(t.backend_id, (s = { health: 'healthy', breaker: 'closed' }));
    if (started.has(`${t.kind} ${t.backend_id}`)) continue;
    started.add(`${t.kind} ${t.backend_id}`);
    s[t.kind] = t.from;
  }
  let outages = 0;
  for (const t of oldestFirst) {
    const s = state.get(t.backend_id)!;
    const wasOut = s.health === OUT.health || s.breaker === OUT.breaker;
    s[t.kind] = t.to;
    if (!wasOut && (s.health === OUT.health || s.breaker === OUT.breaker)) outages++;
  }
  return outages;
}

/** Epoch ms as the API writes times: ISO 8601 in UTC. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
