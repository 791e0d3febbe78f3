/**
 * The open database's working state, shared by the writers, readers and retention: the
 * connection, its prepared statements (the per-partition ones created on first use) and the
 * backend key → id cache. Runs only inside the store worker.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { Retention } from './database.js';
import { rawTable, rawTableSql, rollupTable, rollupTableSql } from './schema.js';

/** State keys the store keeps for itself (not restored to the daemon). */
export const STORE_KEY_PREFIX = '_store:';
/** The last minute whose rollups are written: raw rows after it are rolled up again after a crash. */
export const ROLLUPS_THROUGH = `${STORE_KEY_PREFIX}rollups_through`;

const ROLLUP_UPSERT = (table: string) => `INSERT INTO ${table} (b, m, n, failures, sum_us, max_us, sketch, errors)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (b, m) DO UPDATE SET n = n + excluded.n, failures = failures + excluded.failures,
    sum_us = sum_us + excluded.sum_us, max_us = max(max_us, excluded.max_us),
    sketch = counts_merge(sketch, excluded.sketch), errors = counts_merge(errors, excluded.errors)`;

/** The statements every batch uses, prepared once at open. */
export interface FixedStatements {
  upsertBackend: StatementSync;
  insertFailure: StatementSync;
  insertTransition: StatementSync;
  insertAction: StatementSync;
  insertDelivery: StatementSync;
  upsertState: StatementSync;
  deleteState: StatementSync;
  upsertAlert: StatementSync;
  deleteAlert: StatementSync;
  readState: StatementSync;
}

export interface DatabaseHandle {
  db: DatabaseSync;
  retention: Retention;
  stmts: FixedStatements;
  backendIds: Map<string, number>;
  /** Insert statement per raw hour partition, by hour. */
  rawInserts: Map<number, StatementSync>;
  /** Upsert statement per rollup day partition, by day. */
  rollupUpserts: Map<number, StatementSync>;
}

/** Prepares the fixed statements of an open, migrated database. */
export function createDatabaseHandle(db: DatabaseSync, retention: Retention): DatabaseHandle {
  const stmts: FixedStatements = {
    upsertBackend: db.prepare(
      'INSERT INTO backends (key, app) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET app = excluded.app RETURNING id',
    ),
    insertFailure: db.prepare('INSERT INTO failures (at, backend, type, json) VALUES (?, ?, ?, ?)'),
    insertTransition: db.prepare(
      'INSERT INTO transitions (at, backend, kind, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertAction: db.prepare('INSERT INTO actions (at, backend, strategy, json) VALUES (?, ?, ?, ?)'),
    insertDelivery: db.prepare(
      'INSERT INTO alert_deliveries (alert_id, receiver, ok, error, at) VALUES (?, ?, ?, ?, ?)',
    ),
    upsertState: db.prepare(
      'INSERT INTO state (key, json, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at',
    ),
    deleteState: db.prepare('DELETE FROM state WHERE key = ?'),
    upsertAlert: db.prepare(
      'INSERT INTO alerts (id, json, updated_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at',
    ),
    deleteAlert: db.prepare('DELETE FROM alerts WHERE id = ?'),
    readState: db.prepare('SELECT json FROM state WHERE key = ?'),
  };
  return { db, retention, stmts, backendIds: new Map(), rawInserts: new Map(), rollupUpserts: new Map() };
}

/** The value cached under `key`, made (and cached) on first use. */
function cached<K, V>(cache: Map<K, V>, key: K, make: () => V): V {
  let value = cache.get(key);
  if (value === undefined) {
    value = make();
    cache.set(key, value);
  }
  return value;
}

/** The backends.id of `key`, inserting the backend (or updating its app) on first use. */
export function backendId(h: DatabaseHandle, key: string, app: string): number {
  return cached(h.backendIds, key, () => Number((h.stmts.upsertBackend.get(key, app) as { id: number }).id));
}

/** The insert statement of raw hour `hour`, creating its table on first use. */
export function rawInsert(h: DatabaseHandle, hour: number): StatementSync {
  return cached(h.rawInserts, hour, () => {
    h.db.exec(rawTableSql(hour));
    return h.db.prepare(`INSERT INTO ${rawTable(hour)} (t, b, us, e) VALUES (?, ?, ?, ?)`);
  });
}

/** The upsert statement of rollup day `day`, creating its table on first use. */
export function rollupUpsert(h: DatabaseHandle, day: number): StatementSync {
  return cached(h.rollupUpserts, day, () => {
    h.db.exec(rollupTableSql(day));
    return h.db.prepare(ROLLUP_UPSERT(rollupTable(day)));
  });
}

/** The last minute whose rollups are written, or null on a database that has none yet. */
export function watermark(h: DatabaseHandle): number | null {
  const row = h.stmts.readState.get(ROLLUPS_THROUGH) as { json: string } | undefined;
  const value = row ? Number(JSON.parse(row.json)) : NaN;
  return Number.isSafeInteger(value) ? value : null;
}

/** Runs `fn` in one write transaction; rolls back and rethrows on any error. */
export function transaction(h: DatabaseHandle, fn: () => void): void {
  h.db.exec('BEGIN IMMEDIATE');
  try {
    fn();
    h.db.exec('COMMIT');
  } catch (err) {
    if (h.db.isTransaction) h.db.exec('ROLLBACK');
    throw err;
  }
}
