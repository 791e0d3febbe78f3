/** `store`: the embedded SQLite state store (node:sqlite). */
import { isAbsolute, resolve } from 'node:path';
import { fsPath } from './allowlists.js';
import { bool, duration, num, readSection, type Report, type Section } from './check.js';
import { DEFAULT_STORE } from './defaults.js';
import type { StoreConfig } from './types.js';

/** `store`'s keys. */
export const STORE: Section<StoreConfig> = {
  defaults: DEFAULT_STORE,
  fields: {
    enabled: { check: bool, meaning: 'Keep state and history in a SQLite file; off, nothing survives a restart.' },
    path: { check: fsPath, meaning: "The database file, relative to the config file's directory; ORCHESTRY_STORE_PATH overrides it." },
    raw_retention_hours: { check: duration({ unit: 'hours', above: 0, max: 24 * 366 }), meaning: 'How long every probe result is kept.' },
    rollup_retention_days: { check: duration({ unit: 'days', above: 0, max: 3660 }), meaning: 'How long per-minute rollups, failures, transitions, recovery actions and alerts are kept.' },
    flush_interval_seconds: { check: duration({ above: 0, max: 60 }), meaning: 'Queued writes are committed at least this often.' },
    max_queue: { check: num({ int: true, min: 1000, max: 10_000_000 }), meaning: 'Probe results held while the database lags; beyond it they are dropped and counted.' },
  },
};

/** `store`, with a relative path resolved against `baseDir` (the config file's directory). */
export function parseStore(value: unknown, baseDir: string | undefined, report: Report): StoreConfig {
  const store = readSection(value, 'store', STORE, report);
  return { ...store, path: baseDir && !isAbsolute(store.path) ? resolve(baseDir, store.path) : store.path };
}
