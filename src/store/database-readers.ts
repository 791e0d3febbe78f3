/**
 * The store database's readers: the persisted state for start-up, and health reports from the
 * rollups (plus the minutes the worker still holds) or from raw rows.
 */
import type { ActionRecord } from '../recovery/types.js';
import type { ReportQuery } from './database.js';
import { STORE_KEY_PREFIX, type DatabaseHandle } from './database-handle.js';
import { eventStats, exactStats, isoTime, mergeAgg, newAgg, statsFromAgg, type MinuteAgg, type TransitionRow } from './report.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, listPartitions, rawTable, rollupTable } from './schema.js';
import { decodeCounts } from './sketch.js';
import type { BackendReport, CheckStats, HealthReport, RestoredState } from './types.js';

/** Per backend key: its stats, plus what the app total is built from (aggregate, or raw samples). */
type Checks = Map<string, { stats: CheckStats; agg?: MinuteAgg; us?: number[]; e?: number[] }>;

type BackendRow = { id: number; key: string };

interface RollupRow {
  n: number;
  failures: number;
  sum_us: number;
  max_us: number;
  sketch: Uint8Array;
  errors: Uint8Array | null;
}

/** See StoreDatabase.restore. */
export function restore(h: DatabaseHandle): RestoredState {
  const states = new Map<string, unknown>();
  for (const row of h.db.prepare('SELECT key, json FROM state ORDER BY key').all() as { key: string; json: string }[]) {
    if (row.key.startsWith(STORE_KEY_PREFIX)) continue;
    const value = parseJson(row.json);
    if (value !== undefined) states.set(row.key, value);
  }
  const alerts = (h.db.prepare('SELECT json FROM alerts ORDER BY rowid').all() as { json: string }[])
    .map((r) => parseJson(r.json))
    .filter((v) => v !== undefined);
  return { states, alerts };
}

/** See StoreDatabase.report. */
export function report(h: DatabaseHandle, q: ReportQuery, openMinutes: (key: string) => MinuteAgg | null): HealthReport {
  const fromMs = q.fromMinute * MINUTE_MS;
  const toMs = q.toMinute * MINUTE_MS;
  const backends = h.db.prepare('SELECT id, key FROM backends WHERE app = ? ORDER BY key').all(q.app) as BackendRow[];
  const checks =
    q.source === 'raw'
      ? rawChecks(h, backends, fromMs, toMs)
      : rollupChecks(h, backends, q.fromMinute, q.toMinute, openMinutes);
  const events = eventRows(h, q.app, fromMs, toMs);
  const perBackend: BackendReport[] = backends.map(({ key }) => {
    const c = checks.get(key)!;
    return {
      backend_id: key,
      ...c.stats,
      ...eventStats({
        failureTypes: events.failures.filter((f) => f.key === key).map((f) => f.type),
        transitions: events.transitions.filter((t) => t.backend_id === key),
        actions: events.actions.filter((a) => a.backendId === key),
      }),
    };
  });
  return {
    app_name: q.app,
    report_period_hours: q.hours,
    source: q.source,
    from: isoTime(fromMs),
    to: isoTime(q.now),
    generated_at: isoTime(q.now),
    ...appStats(q, checks),
    ...eventStats({
      failureTypes: events.failures.map((f) => f.type),
      transitions: events.transitions,
      actions: events.actions,
    }),
    backends: perBackend,
  };
}

/** The app's total over its backends: exact from raw samples, else from the merged aggregates. */
function appStats(q: ReportQuery, checks: Checks): CheckStats {
  if (q.source === 'raw') {
    const us: number[] = [];
    const e: number[] = [];
    for (const c of checks.values()) {
      us.push(...c.us!);
      e.push(...c.e!);
    }
    return exactStats(us, e);
  }
  const appAgg = newAgg();
  for (const c of checks.values()) mergeAgg(appAgg, c.agg!);
  return statsFromAgg(appAgg);
}

function rollupChecks(
  h: DatabaseHandle,
  backends: BackendRow[],
  fromMinute: number,
  toMinute: number,
  openMinutes: (key: string) => MinuteAgg | null,
): Checks {
  const aggs = new Map(backends.map((b) => [b.id, newAgg()]));
  const firstDay = Math.floor((fromMinute * MINUTE_MS) / DAY_MS);
  const lastDay = Math.floor(((toMinute - 1) * MINUTE_MS) / DAY_MS);
  for (const day of listPartitions(h.db, 'rollup')) {
    if (day < firstDay || day > lastDay) continue;
    const base = (day * DAY_MS) / MINUTE_MS;
    const stmt = h.db.prepare(
      `SELECT n, failures, sum_us, max_us, sketch, errors FROM ${rollupTable(day)} WHERE b = ? AND m >= ? AND m < ?`,
    );
    for (const [id, agg] of aggs) {
      for (const row of stmt.all(id, fromMinute - base, toMinute - base) as unknown as RollupRow[]) {
        agg.n += Number(row.n);
        agg.failures += Number(row.failures);
        agg.sumUs += Number(row.sum_us);
        agg.maxUs = Math.max(agg.maxUs, Number(row.max_us));
        decodeCounts(row.sketch, agg.sketch);
        decodeCounts(row.errors, agg.errors);
      }
    }
  }
  const out: Checks = new Map();
  for (const { id, key } of backends) {
    const agg = aggs.get(id)!;
    const open = openMinutes(key);
    if (open) mergeAgg(agg, open);
    out.set(key, { stats: statsFromAgg(agg), agg });
  }
  return out;
}

function rawChecks(h: DatabaseHandle, backends: BackendRow[], fromMs: number, toMs: number): Checks {
  const samples = new Map(backends.map((b) => [b.id, { us: [] as number[], e: [] as number[] }]));
  for (const hour of listPartitions(h.db, 'raw')) {
    const base = hour * HOUR_MS;
    if (base + HOUR_MS <= fromMs || base >= toMs) continue;
    const stmt = h.db.prepare(`SELECT b, us, e FROM ${rawTable(hour)} WHERE t >= ? AND t < ?`);
    stmt.setReturnArrays(true);
    for (const row of stmt.iterate(fromMs - base, toMs - base) as Iterable<[number, number, number]>) {
      const s = samples.get(row[0]);
      if (!s) continue;
      s.us.push(row[1]);
      s.e.push(row[2]);
    }
  }
  const out: Checks = new Map();
  for (const { id, key } of backends) {
    const s = samples.get(id)!;
    out.set(key, { stats: exactStats(s.us, s.e), us: s.us, e: s.e });
  }
  return out;
}

function eventRows(h: DatabaseHandle, app: string, fromMs: number, toMs: number) {
  const { db } = h;
  const failures = db
    .prepare(
      `SELECT b.key AS key, f.type AS type FROM failures f JOIN backends b ON b.id = f.backend
       WHERE f.at >= ? AND f.at < ? AND b.app = ? ORDER BY f.at DESC, f.id DESC`,
    )
    .all(fromMs, toMs, app) as { key: string; type: string }[];
  const transitions = (
    db
      .prepare(
        `SELECT b.key AS backend_id, t.kind AS kind, t.from_state AS "from", t.to_state AS "to", t.at AS at,
           t.reason AS reason
         FROM transitions t JOIN backends b ON b.id = t.backend
         WHERE t.at >= ? AND t.at < ? AND b.app = ? ORDER BY t.at DESC, t.id DESC`,
      )
      .all(fromMs, toMs, app) as unknown as TransitionRow[]
  ).map((t) => ({ ...t, at: Number(t.at) }));
  const actions = (
    db
      .prepare(
        `SELECT a.json AS json FROM actions a JOIN backends b ON b.id = a.backend
         WHERE a.at >= ? AND a.at < ? AND b.app = ? ORDER BY a.at DESC, a.id DESC`,
      )
      .all(fromMs, toMs, app) as { json: string }[]
  ).map((r) => JSON.parse(r.json) as ActionRecord);
  return { failures, transitions, actions };
}

/** The parsed value, or undefined for text that is not JSON (skipped, never thrown). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
