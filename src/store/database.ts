/**
 * Synchronous access to the store's SQLite file (node:sqlite). Runs only inside the store
 * worker: every method may block on disk. Throws on any database error; the worker turns
 * errors into a degraded status.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { ActionRecord } from '../recovery/types.js';
import type { Batch } from './protocol.js';
import {
  addSample,
  exactStats,
  eventStats,
  mergeAgg,
  newAgg,
  statsFromAgg,
  type MinuteAgg,
} from './report.js';
import {
  DAY_MS,
  HOUR_MS,
  MINUTE_MS,
  listPartitions,
  migrate,
  rawTable,
  rawTableSql,
  rollupTable,
  rollupTableSql,
} from './schema.js';
import { decodeCounts, encodeCounts } from './sketch.js';
import type { BackendReport, CheckStats, HealthReport, ReportSource, ReportTransition, RestoredState } from './types.js';

/** State keys the store keeps for itself (not restored to the daemon). */
const STORE_KEY_PREFIX = '_store:';
/** The last minute whose rollups are written: raw rows after it are rolled up again after a crash. */
const ROLLUPS_THROUGH = `${STORE_KEY_PREFIX}rollups_through`;

export interface Retention {
  rawMs: number;
  rollupMs: number;
}

/** One closed minute of one backend, ready to be written. */
export interface RollupEntry {
  minute: number;
  key: string;
  app: string;
  agg: MinuteAgg;
}

export interface StoreDatabase {
  schemaVersion: number;
  /**
   * Commits one batch's raw rows, events, states and alerts in one transaction; rows older than
   * raw retention (by batch.now) are not written. `backendOf(index)` names a probe's backend.
   */
  writeBatch(batch: Batch, backendOf: (index: number) => [key: string, app: string]): void;
  /**
   * Adds closed minutes to the rollup tables (merging with rows already there), one transaction,
   * and records that every minute up to `throughMinute` is rolled up.
   */
  writeRollups(entries: RollupEntry[], throughMinute: number): void;
  /**
   * After a crash, the minutes the previous process held in memory exist only as raw rows: rolls
   * up every raw row after the recorded watermark. Call once, when the worker first opens the
   * file, before any new result is aggregated in memory. Returns the minutes rebuilt.
   */
  rebuildRollups(): number;
  /** Drops raw hours and rollup days wholly past retention; deletes old events. */
  enforceRetention(now: number): void;
  restore(): RestoredState;
  /**
   * The report for minutes [fromMinute, toMinute). `openMinutes(key)` adds what the worker holds
   * in memory for a backend (rollups source only).
   */
  report(q: ReportQuery, openMinutes: (key: string) => MinuteAgg | null): HealthReport;
  sizeBytes(): number;
  /** False once the file at the path is gone or is another file (removed, replaced). */
  stillThere(): boolean;
  close(): void;
}

export interface ReportQuery {
  app: string;
  hours: number;
  now: number;
  fromMinute: number;
  toMinute: number;
  source: ReportSource;
}

const ROLLUP_UPSERT = (table: string) => `INSERT INTO ${table} (b, m, n, failures, sum_us, max_us, sketch, errors)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (b, m) DO UPDATE SET n = n + excluded.n, failures = failures + excluded.failures,
    sum_us = sum_us + excluded.sum_us, max_us = max(max_us, excluded.max_us),
    sketch = counts_merge(sketch, excluded.sketch), errors = counts_merge(errors, excluded.errors)`;

/**
 * Opens (creating it and its directory if missing) and migrates the database. Throws what
 * SQLite or the file system says is wrong.
 */
export function openStoreDatabase(path: string, retention: Retention): StoreDatabase {
  // A fresh data directory (a new volume, a first run) is normal; a parent that is a file is not,
  // and fails here with ENOTDIR/EEXIST.
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`cannot create its directory ${dirname(path)} (${code})`);
  }
  const db = new DatabaseSync(path);
  let schemaVersion: number;
  try {
    // The first statement reads the header: a file that is not SQLite fails here, untouched.
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = NORMAL');
    // The day's rollup table takes about one leaf page per backend a minute's write touches:
    // 8 MB keeps 2,000 of them cached (SQLite's default is 2 MB).
    db.exec('PRAGMA cache_size = -8000');
    schemaVersion = migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }
  db.function('counts_merge', { deterministic: true }, (a, b) => {
    if (!(a instanceof Uint8Array)) return b instanceof Uint8Array ? b : null;
    if (!(b instanceof Uint8Array)) return a;
    return encodeCounts(decodeCounts(b, decodeCounts(a)));
  });
  const ino = statSync(path).ino;

  const backendIds = new Map<string, number>();
  const upsertBackend = db.prepare(
    'INSERT INTO backends (key, app) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET app = excluded.app RETURNING id',
  );
  const backendId = (key: string, app: string): number => {
    let id = backendIds.get(key);
    if (id === undefined) {
      id = Number((upsertBackend.get(key, app) as { id: number }).id);
      backendIds.set(key, id);
    }
    return id;
  };

  const rawInserts = new Map<number, StatementSync>();
  const rawInsert = (hour: number): StatementSync => {
    let stmt = rawInserts.get(hour);
    if (!stmt) {
      db.exec(rawTableSql(hour));
      stmt = db.prepare(`INSERT INTO ${rawTable(hour)} (t, b, us, e) VALUES (?, ?, ?, ?)`);
      rawInserts.set(hour, stmt);
    }
    return stmt;
  };
  const rollupUpserts = new Map<number, StatementSync>();
  const rollupUpsert = (day: number): StatementSync => {
    let stmt = rollupUpserts.get(day);
    if (!stmt) {
      db.exec(rollupTableSql(day));
      stmt = db.prepare(ROLLUP_UPSERT(rollupTable(day)));
      rollupUpserts.set(day, stmt);
    }
    return stmt;
  };

  const insertFailure = db.prepare('INSERT INTO failures (at, backend, type, json) VALUES (?, ?, ?, ?)');
  const insertTransition = db.prepare(
    'INSERT INTO transitions (at, backend, kind, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const insertAction = db.prepare('INSERT INTO actions (at, backend, strategy, json) VALUES (?, ?, ?, ?)');
  const insertDelivery = db.prepare(
    'INSERT INTO alert_deliveries (alert_id, receiver, ok, error, at) VALUES (?, ?, ?, ?, ?)',
  );
  const upsertState = db.prepare(
    'INSERT INTO state (key, json, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at',
  );
  const deleteState = db.prepare('DELETE FROM state WHERE key = ?');
  const upsertAlert = db.prepare(
    'INSERT INTO alerts (id, json, updated_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at',
  );
  const deleteAlert = db.prepare('DELETE FROM alerts WHERE id = ?');

  const readState = db.prepare('SELECT json FROM state WHERE key = ?');
  /** The last minute whose rollups are written, or null on a database that has none yet. */
  const watermark = (): number | null => {
    const row = readState.get(ROLLUPS_THROUGH) as { json: string } | undefined;
    const value = row ? Number(JSON.parse(row.json)) : NaN;
    return Number.isSafeInteger(value) ? value : null;
  };

  const transaction = (fn: () => void) => {
    db.exec('BEGIN IMMEDIATE');
    try {
      fn();
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  };

  return {
    schemaVersion,
    writeBatch(batch, backendOf) {
      transaction(() => {
        const p = batch.probes;
        if (p) {
          const rawCutoff = batch.now - retention.rawMs;
          const ids = new Map<number, number>();
          let hour = -1;
          let stmt: StatementSync | null = null;
          for (let i = 0; i < p.at.length; i++) {
            const at = p.at[i]!;
            if (at < rawCutoff) continue;
            const h = Math.floor(at / HOUR_MS);
            if (h !== hour) {
              hour = h;
              stmt = rawInsert(h);
            }
            const index = p.b[i]!;
            let id = ids.get(index);
            if (id === undefined) {
              id = backendId(...backendOf(index));
              ids.set(index, id);
            }
            stmt!.run(at - h * HOUR_MS, id, p.us[i]!, p.e[i]!);
          }
        }
        for (const op of batch.events) {
          switch (op[0]) {
            case 'failure': {
              const f = op[1];
              insertFailure.run(f.timestamp, backendId(f.backendId, f.app), f.failureType, JSON.stringify(f));
              break;
            }
            case 'transition': {
              const t = op[1];
              insertTransition.run(t.at, backendId(t.backendId, t.app), t.kind, t.from, t.to, t.reason);
              break;
            }
            case 'action': {
              const a = op[1];
              insertAction.run(a.startedAt, backendId(a.backendId, a.app), a.strategy, JSON.stringify(a));
              break;
            }
            case 'delivery': {
              const d = op[1];
              insertDelivery.run(d.alertId, d.receiver, d.ok ? 1 : 0, d.error, d.at);
              break;
            }
          }
        }
        for (const [key, json] of batch.states) {
          if (json === null) deleteState.run(key);
          else upsertState.run(key, json, batch.now);
        }
        for (const [id, json] of batch.alerts) {
          if (json === null) deleteAlert.run(id);
          else upsertAlert.run(id, json, batch.now);
        }
      });
    },

    writeRollups(entries, throughMinute) {
      transaction(() => {
        const prev = watermark();
        if (prev === null || throughMinute > prev) upsertState.run(ROLLUPS_THROUGH, JSON.stringify(throughMinute), throughMinute * MINUTE_MS);
        for (const { minute, key, app, agg } of entries) {
          const day = Math.floor((minute * MINUTE_MS) / DAY_MS);
          rollupUpsert(day).run(
            backendId(key, app),
            minute - (day * DAY_MS) / MINUTE_MS,
            agg.n,
            agg.failures,
            agg.sumUs,
            agg.maxUs,
            encodeCounts(agg.sketch),
            agg.errors.size > 0 ? encodeCounts(agg.errors) : null,
          );
        }
      });
    },

    rebuildRollups() {
      // No watermark: no minute was ever rolled up, so every raw row is still to do (a file with
      // rollups but no watermark predates it: leave it alone rather than count twice).
      const from = watermark() ?? (listPartitions(db, 'rollup').length === 0 ? -1 : null);
      if (from === null) return 0;
      const firstMs = (from + 1) * MINUTE_MS;
      const byMinute = new Map<number, Map<number, MinuteAgg>>();
      for (const hour of listPartitions(db, 'raw')) {
        const base = hour * HOUR_MS;
        if (base + HOUR_MS <= firstMs) continue;
        const stmt = db.prepare(`SELECT t, b, us, e FROM ${rawTable(hour)} WHERE t >= ?`);
        stmt.setReturnArrays(true);
        for (const [t, b, us, e] of stmt.iterate(Math.max(0, firstMs - base)) as Iterable<[number, number, number, number]>) {
          const minute = Math.floor((base + t) / MINUTE_MS);
          let aggs = byMinute.get(minute);
          if (!aggs) byMinute.set(minute, (aggs = new Map()));
          let agg = aggs.get(b);
          if (!agg) aggs.set(b, (agg = newAgg()));
          addSample(agg, us, e);
        }
      }
      if (byMinute.size === 0) return 0;
      const names = new Map(
        (db.prepare('SELECT id, key, app FROM backends').all() as { id: number; key: string; app: string }[]).map((r) => [r.id, r]),
      );
      const entries: RollupEntry[] = [];
      for (const [minute, aggs] of byMinute) {
        for (const [b, agg] of aggs) {
          const name = names.get(b);
          if (name) entries.push({ minute, key: name.key, app: name.app, agg });
        }
      }
      this.writeRollups(entries, Math.max(...byMinute.keys()));
      return byMinute.size;
    },

    enforceRetention(now) {
      transaction(() => {
        for (const h of listPartitions(db, 'raw')) {
          if ((h + 1) * HOUR_MS > now - retention.rawMs) break;
          db.exec(`DROP TABLE ${rawTable(h)}`);
          rawInserts.delete(h);
        }
        const cutoff = now - retention.rollupMs;
        for (const d of listPartitions(db, 'rollup')) {
          if ((d + 1) * DAY_MS > cutoff) break;
          db.exec(`DROP TABLE ${rollupTable(d)}`);
          rollupUpserts.delete(d);
        }
        for (const table of ['failures', 'transitions', 'actions', 'alert_deliveries']) {
          db.prepare(`DELETE FROM ${table} WHERE at < ?`).run(cutoff);
        }
      });
    },

    restore() {
      const states = new Map<string, unknown>();
      for (const row of db.prepare('SELECT key, json FROM state ORDER BY key').all() as { key: string; json: string }[]) {
        if (row.key.startsWith(STORE_KEY_PREFIX)) continue;
        const value = parseJson(row.json);
        if (value !== undefined) states.set(row.key, value);
      }
      const alerts = (db.prepare('SELECT json FROM alerts ORDER BY rowid').all() as { json: string }[])
        .map((r) => parseJson(r.json))
        .filter((v) => v !== undefined);
      return { states, alerts };
    },

    report(q, openMinutes) {
      const fromMs = q.fromMinute * MINUTE_MS;
      const toMs = q.toMinute * MINUTE_MS;
      const backends = db.prepare('SELECT id, key FROM backends WHERE app = ? ORDER BY key').all(q.app) as {
        id: number;
        key: string;
      }[];
      const checks =
        q.source === 'raw'
          ? rawChecks(backends, fromMs, toMs)
          : rollupChecks(backends, q.fromMinute, q.toMinute, openMinutes);
      const events = eventRows(q.app, fromMs, toMs);
      const appAgg = newAgg();
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
      let appStats: CheckStats;
      if (q.source === 'raw') {
        const us: number[] = [];
        const e: number[] = [];
        for (const c of checks.values()) {
          us.push(...c.us!);
          e.push(...c.e!);
        }
        appStats = exactStats(us, e);
      } else {
        for (const c of checks.values()) mergeAgg(appAgg, c.agg!);
        appStats = statsFromAgg(appAgg);
      }
      return {
        app_name: q.app,
        report_period_hours: q.hours,
        source: q.source,
        from: fromMs,
        to: q.now,
        generated_at: q.now,
        ...appStats,
        ...eventStats({
          failureTypes: events.failures.map((f) => f.type),
          transitions: events.transitions,
          actions: events.actions,
        }),
        backends: perBackend,
      };
    },

    sizeBytes() {
      const pages = db.prepare('PRAGMA page_count').get() as { page_count: number };
      const size = db.prepare('PRAGMA page_size').get() as { page_size: number };
      let wal = 0;
      try {
        wal = statSync(`${path}-wal`).size;
      } catch {
        // No WAL file right after a checkpoint-and-truncate.
      }
      return Number(pages.page_count) * Number(size.page_size) + wal;
    },

    stillThere() {
      try {
        return statSync(path).ino === ino;
      } catch {
        return false;
      }
    },

    close() {
      if (db.isOpen) {
        try {
          db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
        } finally {
          db.close();
        }
      }
    },
  };

  /** Per backend key: its stats, plus what the app total is built from (aggregate, or raw samples). */
  type Checks = Map<string, { stats: CheckStats; agg?: MinuteAgg; us?: number[]; e?: number[] }>;

  function rollupChecks(
    backends: { id: number; key: string }[],
    fromMinute: number,
    toMinute: number,
    openMinutes: (key: string) => MinuteAgg | null,
  ): Checks {
    const aggs = new Map(backends.map((b) => [b.id, newAgg()]));
    const firstDay = Math.floor((fromMinute * MINUTE_MS) / DAY_MS);
    const lastDay = Math.floor(((toMinute - 1) * MINUTE_MS) / DAY_MS);
    for (const day of listPartitions(db, 'rollup')) {
      if (day < firstDay || day > lastDay) continue;
      const base = (day * DAY_MS) / MINUTE_MS;
      const stmt = db.prepare(
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

  function rawChecks(backends: { id: number; key: string }[], fromMs: number, toMs: number): Checks {
    const samples = new Map(backends.map((b) => [b.id, { us: [] as number[], e: [] as number[] }]));
    for (const hour of listPartitions(db, 'raw')) {
      const base = hour * HOUR_MS;
      if (base + HOUR_MS <= fromMs || base >= toMs) continue;
      const stmt = db.prepare(`SELECT b, us, e FROM ${rawTable(hour)} WHERE t >= ? AND t < ?`);
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

  function eventRows(app: string, fromMs: number, toMs: number) {
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
        .all(fromMs, toMs, app) as unknown as ReportTransition[]
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
}

interface RollupRow {
  n: number;
  failures: number;
  sum_us: number;
  max_us: number;
  sketch: Uint8Array;
  errors: Uint8Array | null;
}

/** The parsed value, or undefined for text that is not JSON (skipped, never thrown). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
