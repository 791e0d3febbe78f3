/**
 * Synchronous access to the store's SQLite file (node:sqlite). Runs only inside the store
 * worker: every method may block on disk. Throws on any database error; the worker turns
 * errors into a degraded status.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { ActionRecord } from '../recovery/types.js';
import type { Batch } from './protocol.js';
import { createDatabaseHandle, type DatabaseHandle } from './database-handle.js';
import { report, restore } from './database-readers.js';
import { enforceRetention } from './database-retention.js';
import { rebuildRollups, writeBatch, writeRollups } from './database-writers.js';
import type { MinuteAgg } from './report.js';
import { migrate } from './schema.js';
import { decodeCounts, encodeCounts } from './sketch.js';
import type { HealthReport, ReportSource, RestoredState } from './types.js';

/** The recovery record type the action rows hold, for the readers. */

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
  writeRollups(entries: Iterable<RollupEntry>, throughMinute: number): void;
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

/**
 * Opens (creating it and its directory if missing) and migrates the database. Throws what
 * SQLite or the file system says is wrong.
 */
export function openStoreDatabase(path: string, retention: Retention): StoreDatabase {
  const { db, schemaVersion } = openMigrated(path);
  const ino = statSync(path).ino;
  const h: DatabaseHandle = createDatabaseHandle(db, retention);
  return {
    schemaVersion,
    writeBatch: (batch, backendOf) => writeBatch(h, batch, backendOf),
    writeRollups: (entries, throughMinute) => writeRollups(h, entries, throughMinute),
    rebuildRollups: () => rebuildRollups(h),
    enforceRetention: (now) => enforceRetention(h, now),
    restore: () => restore(h),
    report: (q, openMinutes) => report(h, q, openMinutes),
    sizeBytes: () => sizeBytes(db, path),
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
}

/** Opens and migrates the file, and registers the SQL functions the rollup upserts use. */
function openMigrated(path: string): { db: DatabaseSync; schemaVersion: number } {
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
    // SQLite's default page cache, 2 MB, said out loud: 8 MB (to keep a minute's rollup pages of
    // 2,000 backends cached) cost 8 MB of RSS at 10,000 backends (263-266 against 254-259 MB) and
    // bought nothing: bench:store writes as fast with 2 MB (the pages come from the OS's cache).
    db.exec('PRAGMA cache_size = -2000');
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
  return { db, schemaVersion };
}

/** The database file plus its WAL, bytes. */
function sizeBytes(db: DatabaseSync, path: string): number {
  const pages = db.prepare('PRAGMA page_count').get() as { page_count: number };
  const size = db.prepare('PRAGMA page_size').get() as { page_size: number };
  let wal = 0;
  try {
    wal = statSync(`${path}-wal`).size;
  } catch {
    // No WAL file right after a checkpoint-and-truncate.
  }
  return Number(pages.page_count) * Number(size.page_size) + wal;
}
