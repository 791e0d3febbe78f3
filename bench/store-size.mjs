// State-store benchmark: the real store (../dist/store, worker thread and SQLite file) fed
// simulated probe results for 2,000 backends probed every 2 s (1,000 results/s) over one
// simulated hour, as fast as the store takes them, on a manual clock.
//
//   npm run bench:store
//
// Prints write throughput, main-thread cost per probe() call, the file size and how it splits
// between raw rows and rollups (dbstat), and a projection for a week and for 30 days with the
// default retention. Then compares the two ways to expire an hour of raw rows: DROP TABLE of
// the hour's partition (what the store does) against DELETE by rowid range in one big table.
//
// Env: BENCH_BACKENDS (default 2000), BENCH_PERIOD_SECONDS (2), BENCH_HOURS (1),
// BENCH_RAW_RETENTION_HOURS (24; set 1 with BENCH_HOURS=4 to watch the file stay flat once
// raw retention is reached).
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { createManualClock } from '../dist/clock.js';
import { createSqliteStore } from '../dist/store/sqlite-store.js';

const BACKENDS = Number(process.env.BENCH_BACKENDS ?? 2000);
const PERIOD_MS = Number(process.env.BENCH_PERIOD_SECONDS ?? 2) * 1000;
const HOURS = Number(process.env.BENCH_HOURS ?? 1);
const RAW_RETENTION_HOURS = Number(process.env.BENCH_RAW_RETENTION_HOURS ?? 24);
const ROLLUP_RETENTION_DAYS = 30;
const HOUR = 3_600_000;
const START = Date.UTC(2025, 2, 1, 0, 0, 0);

const dir = mkdtempSync(join(tmpdir(), 'orchestry-bench-store-'));
const path = join(dir, 'orchestry-sidecar.db');
const clock = createManualClock(START);
const store = createSqliteStore({
  config: {
    enabled: true,
    path,
    raw_retention_hours: RAW_RETENTION_HOURS,
    rollup_retention_days: ROLLUP_RETENTION_DAYS,
    flush_interval_seconds: 1,
    max_queue: 200_000,
  },
  clock,
});

// One reusable result per backend: the benchmark measures the store, not the allocator.
const results = Array.from({ length: BACKENDS }, (_, i) => ({
  backendId: `app${i % 50}/10.0.${Math.floor(i / 250)}.${i % 250}:8000`,
  app: `app${i % 50}`,
  checkType: 'http',
  healthy: true,
  responseTimeMs: 0,
  statusCode: 200,
  body: null,
  errorClass: null,
  error: null,
  startedAt: 0,
  finishedAt: 0,
  attempts: 1,
}));
// Per-backend typical latency 1-20 ms, each probe 0.5-2.5x that (so 1-50 ms overall); ~1 % fail.
const base = results.map((_, i) => 1 + ((i * 7919) % 1900) / 100);
let seed = 12345;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
const ERRORS = ['timeout', 'connection_refused', 'unexpected_status'];

const rowsTotal = Math.round((HOURS * HOUR) / PERIOD_MS) * BACKENDS;
console.log(
  `store bench: ${BACKENDS} backends every ${PERIOD_MS / 1000} s for ${HOURS} simulated h = ${rowsTotal.toLocaleString()} probe results; raw retention ${RAW_RETENTION_HOURS} h`,
);

let probeNs = 0;
let probeCalls = 0;
const wallStart = performance.now();
let hourMark = performance.now();
for (let t = START; t < START + HOURS * HOUR; t += PERIOD_MS) {
  for (let i = 0; i < BACKENDS; i++) {
    const r = results[i];
    const at = t + Math.floor((i * PERIOD_MS) / BACKENDS);
    const failed = rnd() < 0.01;
    r.healthy = !failed;
    r.errorClass = failed ? ERRORS[i % 3] : null;
    r.responseTimeMs = Math.min(50, Math.max(1, base[i] * (0.5 + 2 * rnd())));
    r.startedAt = at - r.responseTimeMs;
    r.finishedAt = at;
  }
  const t0 = performance.now();
  for (let i = 0; i < BACKENDS; i++) store.probe(results[i]);
  probeNs += (performance.now() - t0) * 1e6;
  probeCalls += BACKENDS;
  // Every 10 simulated seconds: move the clock and wait for the worker (backpressure, so the
  // simulation never outruns the store and drops results).
  if ((t - START) % 10_000 === 0) {
    clock.set(t + PERIOD_MS);
    await store.flush();
  }
  if ((t + PERIOD_MS - START) % HOUR === 0) {
    const s = store.status();
    const now = performance.now();
    console.log(
      `  hour ${(t + PERIOD_MS - START) / HOUR}: ${mb(s.sizeBytes)} on disk, ${((3_600_000 / PERIOD_MS) * BACKENDS / ((now - hourMark) / 1000)).toFixed(0)} rows/s`,
    );
    hourMark = now;
  }
}
clock.set(START + HOURS * HOUR);
await store.flush();
const wallS = (performance.now() - wallStart) / 1000;
const status = store.status();
await store.close();

console.log(`written ${status.written.toLocaleString()} rows, dropped ${status.dropped}`);
console.log(`write throughput: ${Math.round(status.written / wallS).toLocaleString()} rows/s (${wallS.toFixed(1)} s wall)`);
console.log(`main thread: ${(probeNs / probeCalls).toFixed(0)} ns per probe() call (amortised, incl. posting batches)`);

const db = new DatabaseSync(path);
const parts = db
  .prepare(
    `SELECT CASE WHEN name GLOB 'raw_h*' THEN 'raw' WHEN name GLOB 'rollup_d*' THEN 'rollup' ELSE 'other' END AS part,
            SUM(pgsize) AS bytes FROM dbstat GROUP BY part`,
  )
  .all();
const bytes = Object.fromEntries(parts.map((p) => [p.part, Number(p.bytes)]));
const count = (glob) =>
  db
    .prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB '${glob}'`)
    .all()
    .reduce((n, { name }) => n + Number(db.prepare(`SELECT count(*) AS n FROM ${name}`).get().n), 0);
const rawRows = count('raw_h*');
const rawTables = db
  .prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'raw_h*' ORDER BY name`)
  .all()
  .map((r) => r.name);
const rollupRows = count('rollup_d*');
const freelist = Number(db.prepare('PRAGMA freelist_count').get().freelist_count) * 4096;
db.close();
const fileBytes = statSync(path).size;
console.log(`file after ${HOURS} h: ${mb(fileBytes)} (raw ${mb(bytes.raw ?? 0)}, rollups ${mb(bytes.rollup ?? 0)}, other ${mb(bytes.other ?? 0)}, free pages ${mb(freelist)})`);
const perRaw = (bytes.raw ?? 0) / rawRows;
const perRollup = (bytes.rollup ?? 0) / rollupRows;
console.log(`  ${rawRows.toLocaleString()} raw rows: ${perRaw.toFixed(1)} B/row; ${rollupRows.toLocaleString()} rollup rows: ${perRollup.toFixed(1)} B/row`);

// Steady state: raw partitions are dropped once their whole hour is past retention, so up to
// retention + 1 hours of raw rows exist; rollups likewise up to retention + 1 days.
const rawPerHour = (3_600_000 / PERIOD_MS) * BACKENDS * perRaw;
const rollupPerDay = 1440 * BACKENDS * perRollup;
const rawSteady = rawPerHour * (RAW_RETENTION_HOURS + 1);
console.log(`projected: raw steady state ${mb(rawSteady)} (${RAW_RETENTION_HOURS + 1} h x ${mb(rawPerHour)}/h); rollups ${mb(rollupPerDay)}/day`);
console.log(`  after a week:   ${mb(rawSteady + 7 * rollupPerDay)} (raw + 7 days of rollups; events are a few KB/day)`);
console.log(`  after 30 days:  ${mb(rawSteady + (ROLLUP_RETENTION_DAYS + 1) * rollupPerDay)} (steady state with default retention)`);

// Expiring one hour of raw rows: DROP TABLE of its partition vs DELETE of the same rows from
// one table by rowid range (the alternative design), on copies of the file.
const hourTable = rawTables[0];
for (const how of ['drop', 'delete']) {
  const copy = join(dir, `${how}.db`);
  copyFileSync(path, copy);
  const c = new DatabaseSync(copy);
  c.exec('PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0');
  const max = Number(c.prepare(`SELECT max(rowid) AS m FROM ${hourTable}`).get().m);
  const t0 = performance.now();
  if (how === 'drop') c.exec(`DROP TABLE ${hourTable}`);
  else c.prepare(`DELETE FROM ${hourTable} WHERE rowid <= ?`).run(max);
  const ms = performance.now() - t0;
  const wal = statSync(`${copy}-wal`).size;
  c.close();
  console.log(`expire one hour (${max.toLocaleString()} rows) by ${how === 'drop' ? 'DROP TABLE' : 'DELETE rowid range'}: ${ms.toFixed(0)} ms, ${mb(wal)} written to the WAL`);
}

rmSync(dir, { recursive: true, force: true });

function mb(n) {
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
