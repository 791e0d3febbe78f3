/**
 * The store's schema: ordered migrations tracked in PRAGMA user_version, plus the time-partitioned
 * tables created on demand. Raw probe rows go to one table per hour and rollups to one table per
 * day so that retention drops whole tables: no per-row delete work, and the freed pages are
 * reused by the next partition, which keeps the file's size flat once retention is reached.
 */
import type { DatabaseSync } from 'node:sqlite';

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** Applied in order; never edit a shipped migration, append a new one. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'core tables: backends, state, failures, transitions, recovery actions',
    sql: `
      CREATE TABLE backends (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        app TEXT NOT NULL
      );
      CREATE INDEX backends_app ON backends(app);
      CREATE TABLE state (
        key TEXT PRIMARY KEY,
        json TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE failures (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        backend INTEGER NOT NULL,
        type TEXT NOT NULL,
        json TEXT NOT NULL
      );
      CREATE INDEX failures_at ON failures(at);
      CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        backend INTEGER NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT NOT NULL
      );
      CREATE INDEX transitions_at ON transitions(at);
      CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        backend INTEGER NOT NULL,
        strategy TEXT NOT NULL,
        json TEXT NOT NULL
      );
      CREATE INDEX actions_at ON actions(at);
    `,
  },
  {
    version: 2,
    description: 'alert outbox and delivery log',
    sql: `
      CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        json TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY,
        alert_id TEXT NOT NULL,
        receiver TEXT NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        at INTEGER NOT NULL
      );
      CREATE INDEX alert_deliveries_at ON alert_deliveries(at);
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Brings the database to `target` (default: the latest), one transaction per migration, and
 * returns the resulting version. A database newer than this build is refused, not touched.
 */
export function migrate(db: DatabaseSync, target = SCHEMA_VERSION): number {
  const current = userVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new Error(`schema version ${current} is newer than this build supports (${SCHEMA_VERSION})`);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= current || m.version > target) continue;
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(m.sql);
      db.exec(`PRAGMA user_version = ${m.version}`);
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  }
  return userVersion(db);
}

function userVersion(db: DatabaseSync): number {
  return Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
export const MINUTE_MS = 60_000;

/**
 * Raw probe rows of hour h (epoch ms / HOUR_MS). About 20 bytes a row: `t` is ms within the
 * hour (3 bytes), `b` the backends.id, `us` the response time in µs, `e` 0 for a healthy
 * result or ERROR_CLASSES index + 1 (0 and 1 take no payload bytes in SQLite's record format).
 */
export function rawTable(hour: number): string {
  return `raw_h${hour}`;
}

export function rawTableSql(hour: number): string {
  return `CREATE TABLE IF NOT EXISTS ${rawTable(hour)} (t INTEGER NOT NULL, b INTEGER NOT NULL, us INTEGER NOT NULL, e INTEGER NOT NULL)`;
}

/**
 * Per-minute rollups of day d (epoch ms / DAY_MS), keyed (backend, minute of the day) so that a
 * report reads each backend's range directly. `sketch` and `errors` are encodeCounts() BLOBs
 * (latency buckets; error code → count, NULL when none failed).
 */
export function rollupTable(day: number): string {
  return `rollup_d${day}`;
}

export function rollupTableSql(day: number): string {
  return `CREATE TABLE IF NOT EXISTS ${rollupTable(day)} (
    b INTEGER NOT NULL, m INTEGER NOT NULL, n INTEGER NOT NULL, failures INTEGER NOT NULL,
    sum_us INTEGER NOT NULL, max_us INTEGER NOT NULL, sketch BLOB NOT NULL, errors BLOB,
    PRIMARY KEY (b, m)) WITHOUT ROWID`;
}

/** The partitions present: kind `raw` → hours, `rollup` → days, ascending. */
export function listPartitions(db: DatabaseSync, kind: 'raw' | 'rollup'): number[] {
  const prefix = kind === 'raw' ? 'raw_h' : 'rollup_d';
  const rows = db
    .prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB '${prefix}[0-9]*'`)
    .all() as { name: string }[];
  return rows.map((r) => Number(r.name.slice(prefix.length))).sort((a, b) => a - b);
}
