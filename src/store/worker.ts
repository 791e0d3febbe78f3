/**
 * The store's database thread: the only writer. Receives batches from sqlite-store.ts, commits
 * them, keeps the open minutes' rollups in memory, enforces retention once a minute and answers
 * restore/report requests. While the database cannot be used it holds batches (at most maxQueue
 * probe rows, dropping the oldest) and tries to open it again every retryMs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openStoreDatabase, type RollupEntry, type StoreDatabase } from './database.js';
import type { Batch, FromWorker, ToWorker, WorkerInit, WorkerStatus } from './protocol.js';
import { aggOf, aggsOf, appendRow, createMinuteRows, type MinuteRows } from './minute-rows.js';
import { mergeAgg, newAgg, reportMinutes, type MinuteAgg } from './report.js';
import { DAY_MS, HOUR_MS, MINUTE_MS } from './schema.js';

/** A minute's rollups are written this long after it ends, so that late results still land in memory. */
const CLOSE_DELAY_MS = 5_000;

const init = workerData as WorkerInit;
const port = parentPort!;
const retention = { rawMs: init.rawRetentionHours * HOUR_MS, rollupMs: init.rollupRetentionDays * DAY_MS };

let db: StoreDatabase | null = null;
let error: string | null = null;
let lastOpenAttempt = -Infinity;
/** The latest `now` a message carried; failures start the retry wait from it. */
let latestNow = -Infinity;
let lastRetention = -Infinity;
let written = 0;
/** The crash recovery of rollups ran (it runs once, at the first successful open). */
let rebuilt = false;
let dropped = 0;
let heldRows = 0;
const held: Batch[] = [];
/** Backend index (assigned by the main thread) → [key, app]. */
const backends: [string, string][] = [];
/** minute → its probe results, for minutes not yet written (aggregated when written or asked for). */
const openMinutes = new Map<number, MinuteRows>();

tryOpen(-Infinity);
send({ type: 'status', status: status() });

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'batch': {
      for (const [index, key, app] of msg.newBackends) backends[index] = [key, app];
      held.push(msg);
      const rows = msg.probes?.at.length ?? 0;
      heldRows += rows;
      work(msg.now);
      trimHeld();
      send({ type: 'ack', seq: msg.seq, rows, status: status() });
      break;
    }
    case 'restore': {
      send({ type: 'reply', id: msg.id, ok: true, value: db ? db.restore() : { states: new Map(), alerts: [] } });
      break;
    }
    case 'report': {
      if (msg.source === 'raw' && msg.hours > init.rawRetentionHours) {
        const error = `a raw report covers at most raw retention (${init.rawRetentionHours} h), not ${msg.hours} h`;
        send({ type: 'reply', id: msg.id, ok: false, error });
        break;
      }
      work(msg.now);
      if (!db) {
        send({ type: 'reply', id: msg.id, ok: false, error: `state store unavailable: ${error}` });
        break;
      }
      try {
        const value = db.report(
          {
            app: msg.app,
            hours: msg.hours,
            now: msg.now,
            ...reportMinutes(msg.hours, msg.now),
            source: msg.source,
          },
          (key) => openAggOf(key),
        );
        send({ type: 'reply', id: msg.id, ok: true, value });
      } catch (err) {
        send({ type: 'reply', id: msg.id, ok: false, error: `report failed: ${oneLine(err)}` });
      }
      break;
    }
    case 'close': {
      work(msg.now);
      if (db) {
        writeMinutes(Infinity);
        try {
          db.close();
        } catch (err) {
          fail(err);
        }
        db = null;
      }
      send({ type: 'reply', id: msg.id, ok: true, value: null });
      port.close();
      break;
    }
  }
});

/** Writes held batches, then closes due minutes and runs retention; any error degrades. */
function work(now: number): void {
  latestNow = Math.max(latestNow, now);
  if (!db && now - lastOpenAttempt >= init.retryMs) tryOpen(now);
  if (db && !db.stillThere()) fail(new Error('file was removed or replaced'));
  while (db && held.length > 0) {
    const batch = held[0]!;
    try {
      db.writeBatch(batch, (i) => backends[i]!);
    } catch (err) {
      fail(err);
      return;
    }
    held.shift();
    const p = batch.probes;
    if (p) {
      heldRows -= p.at.length;
      written += p.at.length;
      const rollupCutoff = batch.now - retention.rollupMs;
      for (let i = 0; i < p.at.length; i++) {
        const at = p.at[i]!;
        if (at < rollupCutoff) continue;
        const minute = Math.floor(at / MINUTE_MS);
        let rows = openMinutes.get(minute);
        if (!rows) openMinutes.set(minute, (rows = createMinuteRows()));
        appendRow(rows, p.b[i]!, p.us[i]!, p.e[i]!);
      }
    }
  }
  if (!db) return;
  writeMinutes(now - CLOSE_DELAY_MS);
  if (db && now - lastRetention >= MINUTE_MS) {
    lastRetention = now;
    try {
      db.enforceRetention(now);
    } catch (err) {
      fail(err);
    }
  }
}

/** Writes (and forgets) the minutes that ended at or before `until`. */
function writeMinutes(until: number): void {
  const due = [...openMinutes.keys()].filter((m) => (m + 1) * MINUTE_MS <= until);
  if (!db || due.length === 0) return;
  // Made one backend at a time as the writer takes them (see minute-rows.ts).
  function* entries(): Generator<RollupEntry> {
    for (const minute of due) {
      for (const [index, agg] of aggsOf(openMinutes.get(minute)!)) {
        const [key, app] = backends[index]!;
        yield { minute, key, app, agg };
      }
    }
  }
  try {
    db.writeRollups(entries(), Math.max(...due));
  } catch (err) {
    fail(err);
    return;
  }
  for (const minute of due) openMinutes.delete(minute);
}

/** One backend's minutes still in memory, merged (the report adds them to the rollup rows). */
function openAggOf(key: string): MinuteAgg | null {
  let out: MinuteAgg | null = null;
  backends.forEach(([k], index) => {
    if (k !== key) return;
    for (const rows of openMinutes.values()) {
      const agg = aggOf(rows, index);
      if (agg) mergeAgg((out ??= newAgg()), agg);
    }
  });
  return out;
}

/** Keeps at most maxQueue held probe rows by dropping the oldest batches' probes. */
function trimHeld(): void {
  for (const batch of held) {
    if (heldRows <= init.maxQueue) return;
    if (!batch.probes) continue;
    dropped += batch.probes.at.length;
    heldRows -= batch.probes.at.length;
    batch.probes = null;
  }
}

function tryOpen(now: number): void {
  lastOpenAttempt = now;
  try {
    db = openStoreDatabase(init.path, retention);
    error = null;
    // Only on the first open: minutes held in memory since then are not in the raw tables' tail
    // alone, and rolling those rows up again would count them twice.
    if (!rebuilt) {
      rebuilt = true;
      db.rebuildRollups();
    }
  } catch (err) {
    db = null;
    error = `${init.path}: ${oneLine(err)}`;
  }
}

function fail(err: unknown): void {
  error = `${init.path}: ${oneLine(err)}`;
  lastOpenAttempt = latestNow;
  try {
    db?.close();
  } catch {
    // Already failing; the first error is the one worth reporting.
  }
  db = null;
}

function status(): WorkerStatus {
  let sizeBytes = 0;
  try {
    sizeBytes = db ? db.sizeBytes() : 0;
  } catch {
    // Size is informative only.
  }
  return {
    state: db ? 'ok' : 'degraded',
    error,
    held: heldRows,
    dropped,
    written,
    sizeBytes,
    schemaVersion: db ? db.schemaVersion : 0,
  };
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!;
}

function send(msg: FromWorker): void {
  port.postMessage(msg);
}
