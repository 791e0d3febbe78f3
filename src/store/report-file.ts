/**
 * A health report read straight from the store file, for `orchestry-sidecar report` when no
 * sidecar runs: opened read-only (a running sidecar may still hold it: SQLite's WAL lets a reader
 * in beside the writer), nothing written, nothing migrated.
 */
import { existsSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { SidecarError, describeError } from '../errors.js';
import { createDatabaseHandle } from './database-handle.js';
import { report } from './database-readers.js';
import { unrolledAggs } from './database-writers.js';
import { reportMinutes } from './report.js';
import { SCHEMA_VERSION } from './schema.js';
import type { HealthReport } from './types.js';

/**
 * The report of `app` over the last `hours` at `now` from the store file at `path`, from the
 * rollups plus the raw rows not rolled up yet (what the worker would hold in memory). Throws
 * SidecarError: STORE_MISSING, STORE_UNREADABLE, STORE_SCHEMA or UNKNOWN_APP.
 */
export function reportFromFile(path: string, app: string, hours: number, now: number): HealthReport {
  if (!existsSync(path)) throw new SidecarError('STORE_MISSING', `no store file at ${path}`);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { readOnly: true });
  } catch (err) {
    throw new SidecarError('STORE_UNREADABLE', `cannot open the store file ${path}: ${describeError(err)}`, { cause: err });
  }
  try {
    const version = readSchemaVersion(db, path);
    if (version !== SCHEMA_VERSION) {
      throw new SidecarError('STORE_SCHEMA', `${path} has store schema version ${version}; this build reads version ${SCHEMA_VERSION} (start the sidecar on it once to migrate)`);
    }
    if (db.prepare('SELECT 1 FROM backends WHERE app = ? LIMIT 1').get(app) === undefined) {
      throw new SidecarError('UNKNOWN_APP', `no history of app ${JSON.stringify(app)} in ${path}`);
    }
    const h = createDatabaseHandle(db, { rawMs: 0, rollupMs: 0 });
    const pending = unrolledAggs(h);
    return report(h, { app, hours, now, source: 'rollups', ...reportMinutes(hours, now) }, (key) => pending.get(key) ?? null);
  } finally {
    db.close();
  }
}

function readSchemaVersion(db: DatabaseSync, path: string): number {
  try {
    return Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);
  } catch (err) {
    // Not SQLite at all: the header is read on the first statement.
    throw new SidecarError('STORE_UNREADABLE', `cannot read the store file ${path}: ${describeError(err)}`, { cause: err });
  }
}
