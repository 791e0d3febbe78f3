/**
 * The store database's writers: one batch (raw probe rows, events, states, alerts), closed
 * minutes' rollups, and the rebuild of rollups from raw rows after a crash.
 */
import type { StatementSync } from 'node:sqlite';
import type { RollupEntry } from './database.js';
import {
  ROLLUPS_THROUGH,
  backendId,
  rawInsert,
  rollupUpsert,
  transaction,
  watermark,
  type DatabaseHandle,
} from './database-handle.js';
import type { Batch, EventOp, ProbeColumns } from './protocol.js';
import { addSample, mergeAgg, newAgg, type MinuteAgg } from './report.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, listPartitions, rawTable } from './schema.js';
import { encodeCounts } from './sketch.js';

/** See StoreDatabase.writeBatch. */
export function writeBatch(
  h: DatabaseHandle,
  batch: Batch,
  backendOf: (index: number) => [key: string, app: string],
): void {
  const { stmts } = h;
  transaction(h, () => {
    if (batch.probes) writeProbes(h, batch.probes, batch.now - h.retention.rawMs, backendOf);
    for (const op of batch.events) writeEvent(h, op);
    for (const [key, json] of batch.states) {
      if (json === null) stmts.deleteState.run(key);
      else stmts.upsertState.run(key, json, batch.now);
    }
    for (const [id, json] of batch.alerts) {
      if (json === null) stmts.deleteAlert.run(id);
      else stmts.upsertAlert.run(id, json, batch.now);
    }
  });
}

/** Raw rows at or after `rawCutoff`, each into its hour's table. */
function writeProbes(
  h: DatabaseHandle,
  p: ProbeColumns,
  rawCutoff: number,
  backendOf: (index: number) => [key: string, app: string],
): void {
  const ids = new Map<number, number>();
  let hour = -1;
  let stmt: StatementSync | null = null;
  for (let i = 0; i < p.at.length; i++) {
    const at = p.at[i]!;
    if (at < rawCutoff) continue;
    const hr = Math.floor(at / HOUR_MS);
    if (hr !== hour) {
      hour = hr;
      stmt = rawInsert(h, hr);
    }
    const index = p.b[i]!;
    let id = ids.get(index);
    if (id === undefined) {
      id = backendId(h, ...backendOf(index));
      ids.set(index, id);
    }
    stmt!.run(at - hr * HOUR_MS, id, p.us[i]!, p.e[i]!);
  }
}

function writeEvent(h: DatabaseHandle, op: EventOp): void {
  const { stmts } = h;
  const id = (e: { backendId: string; app: string }) => backendId(h, e.backendId, e.app);
  switch (op[0]) {
    case 'failure':
      stmts.insertFailure.run(op[1].timestamp, id(op[1]), op[1].failureType, JSON.stringify(op[1]));
      break;
    case 'transition':
      stmts.insertTransition.run(op[1].at, id(op[1]), op[1].kind, op[1].from, op[1].to, op[1].reason);
      break;
    case 'action':
      stmts.insertAction.run(op[1].startedAt, id(op[1]), op[1].strategy, JSON.stringify(op[1]));
      break;
    case 'delivery':
      stmts.insertDelivery.run(op[1].alertId, op[1].receiver, op[1].ok ? 1 : 0, op[1].error, op[1].at);
      break;
  }
}

/** See StoreDatabase.writeRollups. */
export function writeRollups(h: DatabaseHandle, entries: Iterable<RollupEntry>, throughMinute: number): void {
  transaction(h, () => {
    const prev = watermark(h);
    if (prev === null || throughMinute > prev) h.stmts.upsertState.run(ROLLUPS_THROUGH, JSON.stringify(throughMinute), throughMinute * MINUTE_MS);
    for (const { minute, key, app, agg } of entries) {
      const day = Math.floor((minute * MINUTE_MS) / DAY_MS);
      rollupUpsert(h, day).run(
        backendId(h, key, app),
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
}

/** See StoreDatabase.rebuildRollups. */
export function rebuildRollups(h: DatabaseHandle): number {
  const from = lastRolledUpMinute(h);
  if (from === null) return 0;
  const byMinute = rawAggsFrom(h, (from + 1) * MINUTE_MS);
  if (byMinute.size === 0) return 0;
  const names = new Map(
    (h.db.prepare('SELECT id, key, app FROM backends').all() as { id: number; key: string; app: string }[]).map((r) => [r.id, r]),
  );
  const entries: RollupEntry[] = [];
  for (const [minute, aggs] of byMinute) {
    for (const [b, agg] of aggs) {
      const name = names.get(b);
      if (name) entries.push({ minute, key: name.key, app: name.app, agg });
    }
  }
  writeRollups(h, entries, Math.max(...byMinute.keys()));
  return byMinute.size;
}

/**
 * What rebuildRollups would add, read only: per backend key, the raw rows after the watermark
 * merged (the minutes a running sidecar holds in memory, or a crashed one never wrote).
 */
export function unrolledAggs(h: DatabaseHandle): Map<string, MinuteAgg> {
  const from = lastRolledUpMinute(h);
  const out = new Map<string, MinuteAgg>();
  if (from === null) return out;
  const keys = new Map((h.db.prepare('SELECT id, key FROM backends').all() as { id: number; key: string }[]).map((r) => [r.id, r.key]));
  for (const aggs of rawAggsFrom(h, (from + 1) * MINUTE_MS).values()) {
    for (const [b, agg] of aggs) {
      const key = keys.get(b);
      if (key === undefined) continue;
      const into = out.get(key);
      if (into) mergeAgg(into, agg);
      else out.set(key, agg);
    }
  }
  return out;
}

/** The minute after which raw rows are not rolled up yet (-1: none ever was); null: leave them. */
function lastRolledUpMinute(h: DatabaseHandle): number | null {
  // No watermark: no minute was ever rolled up, so every raw row is still to do (a file with
  // rollups but no watermark predates it: leave it alone rather than count twice).
  return watermark(h) ?? (listPartitions(h.db, 'rollup').length === 0 ? -1 : null);
}

/** Raw rows from `firstMs` on, aggregated: minute → backends.id → aggregate. */
function rawAggsFrom(h: DatabaseHandle, firstMs: number): Map<number, Map<number, MinuteAgg>> {
  const byMinute = new Map<number, Map<number, MinuteAgg>>();
  for (const hour of listPartitions(h.db, 'raw')) {
    const base = hour * HOUR_MS;
    if (base + HOUR_MS <= firstMs) continue;
    const stmt = h.db.prepare(`SELECT t, b, us, e FROM ${rawTable(hour)} WHERE t >= ?`);
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
  return byMinute;
}
