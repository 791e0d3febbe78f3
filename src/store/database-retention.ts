/**
 * Retention: raw hours and rollup days wholly past it are dropped as tables (see schema.ts for
 * why partitions), and events older than rollup retention are deleted.
 */
import { transaction, type DatabaseHandle } from './database-handle.js';
import { DAY_MS, HOUR_MS, listPartitions, rawTable, rollupTable } from './schema.js';

/** See StoreDatabase.enforceRetention. */
export function enforceRetention(h: DatabaseHandle, now: number): void {
  const { db, retention } = h;
  transaction(h, () => {
    for (const hr of listPartitions(db, 'raw')) {
      if ((hr + 1) * HOUR_MS > now - retention.rawMs) break;
      db.exec(`DROP TABLE ${rawTable(hr)}`);
      h.rawInserts.delete(hr);
    }
    const cutoff = now - retention.rollupMs;
    for (const d of listPartitions(db, 'rollup')) {
      if ((d + 1) * DAY_MS > cutoff) break;
      db.exec(`DROP TABLE ${rollupTable(d)}`);
      h.rollupUpserts.delete(d);
    }
    for (const table of ['failures', 'transitions', 'actions', 'alert_deliveries']) {
      db.prepare(`DELETE FROM ${table} WHERE at < ?`).run(cutoff);
    }
  });
}
