/**
 * The SQLite state store end to end: real database files in a temporary directory, the real
 * worker thread, time driven by a manual clock.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createManualClock, type ManualClock } from '../../src/clock.js';
import type { StoreConfig } from '../../src/config/types.js';
import type { FailureEvent, Transition } from '../../src/health/types.js';
import type { ProbeErrorClass, ProbeResult } from '../../src/model.js';
import type { ActionRecord } from '../../src/recovery/types.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { addSample, newAgg } from '../../src/store/report.js';
import { listPartitions, migrate, SCHEMA_VERSION } from '../../src/store/schema.js';
import { SKETCH_RELATIVE_ACCURACY } from '../../src/store/sketch.js';
import { createSqliteStore } from '../../src/store/sqlite-store.js';
import type { StateStore } from '../../src/store/types.js';
import { failureEvent, probeResult, seededRandom } from '../helpers/fixtures.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** 2025-03-01T12:00:00Z: a whole hour, so test times stay inside known partitions. */
const T0 = Date.UTC(2025, 2, 1, 12, 0, 0);

let dir: string;
let n = 0;
const open: StateStore[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-store-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function dbPath(): string {
  return join(dir, `store-${++n}.db`);
}

function config(path: string, over: Partial<StoreConfig> = {}): StoreConfig {
  return {
    enabled: true,
    path,
    raw_retention_hours: 24,
    rollup_retention_days: 30,
    flush_interval_seconds: 1,
    max_queue: 200_000,
    ...over,
  };
}

function store(path: string, clock: ManualClock, over: Partial<StoreConfig> = {}): StateStore {
  const s = createSqliteStore({ config: config(path, over), clock });
  open.push(s);
  return s;
}

function probe(backendId: string, at: number, ms: number, errorClass: ProbeErrorClass | null = null): ProbeResult {
  return probeResult({
    backendId,
    app: backendId.split('/')[0]!,
    healthy: errorClass === null,
    responseTimeMs: ms,
    statusCode: errorClass === null ? 200 : null,
    body: null,
    errorClass,
    error: errorClass,
    startedAt: at - ms,
    finishedAt: at,
  });
}

function transition(backendId: string, kind: 'health' | 'breaker', from: string, to: string, at: number): Transition {
  return { kind, backendId, app: backendId.split('/')[0]!, from, to, at, reason: `${from} -> ${to}` } as Transition;
}

function failure(backendId: string, at: number, failureType: FailureEvent['failureType']): FailureEvent {
  return failureEvent({
    failureType,
    backendId,
    app: backendId.split('/')[0]!,
    message: failureType,
    timestamp: at,
    consecutiveCount: 1,
    totalCount: 1,
    firstOccurrence: at,
  });
}

function action(backendId: string, at: number, strategy: ActionRecord['strategy'], id: string): ActionRecord {
  return {
    id,
    strategy,
    failureType: 'health_check_failed',
    app: backendId.split('/')[0]!,
    backendId,
    containerId: 'c1',
    ok: true,
    dryRun: false,
    reason: 'test',
    startedAt: at,
    durationMs: 1200,
  };
}

/** Reads the file directly (a second connection; WAL lets it read while the store writes). */
function query<T>(path: string, sql: string): T[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

describe('sqlite state store', () => {
  it('commits probe results, events, states and alerts on flush, with the current schema', async () => {
    const clock = createManualClock(T0);
    const path = dbPath();
    const s = store(path, clock);
    s.probe(probe('web/10.0.0.1:80', T0 - 5000, 3.25));
    s.probe(probe('web/10.0.0.2:80', T0 - 4000, 12, 'timeout'));
    s.failure(failure('web/10.0.0.2:80', T0 - 4000, 'health_check_timeout'));
    s.transition(transition('web/10.0.0.2:80', 'health', 'healthy', 'unhealthy', T0 - 4000));
    s.recoveryAction(action('web/10.0.0.2:80', T0 - 3000, 'restart_container', 'a1'));
    s.alertDelivery({ alertId: 'al1', receiver: 'ops', ok: false, error: 'HTTP 502', at: T0 - 2000 });
    await s.flush();

    expect(s.status()).toMatchObject({ state: 'ok', error: null, written: 2, queued: 0, schemaVersion: SCHEMA_VERSION });
    expect(s.status().sizeBytes).toBeGreaterThan(0);
    const raw = query<{ t: number; b: number; us: number; e: number }>(path, `SELECT t, b, us, e FROM raw_h${T0 / HOUR - 1}`);
    expect(raw).toEqual([
      { t: HOUR - 5000, b: 1, us: 3250, e: 0 },
      { t: HOUR - 4000, b: 2, us: 12000, e: 1 },
    ]);
    expect(query(path, 'SELECT key, app FROM backends ORDER BY id')).toEqual([
      { key: 'web/10.0.0.1:80', app: 'web' },
      { key: 'web/10.0.0.2:80', app: 'web' },
    ]);
    expect(query(path, 'SELECT type FROM failures')).toEqual([{ type: 'health_check_timeout' }]);
    expect(query(path, 'SELECT kind, from_state, to_state FROM transitions')).toEqual([
      { kind: 'health', from_state: 'healthy', to_state: 'unhealthy' },
    ]);
    expect(query(path, 'SELECT strategy FROM actions')).toEqual([{ strategy: 'restart_container' }]);
    expect(query(path, 'SELECT alert_id, receiver, ok, error FROM alert_deliveries')).toEqual([
      { alert_id: 'al1', receiver: 'ops', ok: 0, error: 'HTTP 502' },
    ]);
    expect(query(path, 'PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
  });

  it('restores saved states and open alerts, latest write winning and null deleting', async () => {
    const clock = createManualClock(T0);
    const path = dbPath();
    const s = store(path, clock);
    s.saveState('backend:web/a:1', '{"health":"healthy"}');
    s.saveState('backend:web/a:1', '{"health":"unhealthy"}');
    s.saveState('backend:web/b:1', '{"health":"healthy"}');
    s.saveState('planner', '{"budget":3}');
    s.saveAlert('al1', '{"id":"al1","summary":"web down"}');
    s.saveAlert('al2', '{"id":"al2"}');
    await s.flush();
    s.saveState('backend:web/b:1', null);
    s.saveAlert('al2', null);
    await s.close();

    const again = store(path, clock);
    const restored = await again.restore();
    expect(restored.states).toEqual(
      new Map<string, unknown>([
        ['backend:web/a:1', { health: 'unhealthy' }],
        ['planner', { budget: 3 }],
      ]),
    );
    expect(restored.alerts).toEqual([{ id: 'al1', summary: 'web down' }]);
  });

  it('reports uptime, average, p95, error breakdown, transitions, ejections and actions from seeded history', async () => {
    const clock = createManualClock(T0);
    const path = dbPath();
    const s = store(path, clock);
    const a = 'web/10.0.0.1:80';
    const b = 'web/10.0.0.2:80';
    // Backend a: 20 checks of 1..20 ms, one per minute over the last 20 minutes (the last one in
    // the current, still in-memory minute); checks 5 and 9 fail.
    for (let i = 1; i <= 20; i++) {
      const err: ProbeErrorClass | null = i === 5 ? 'timeout' : i === 9 ? 'connection_refused' : null;
      s.probe(probe(a, T0 - (20 - i) * 60_000 + 500, i, err));
    }
    // Backend b: 10 checks of 30 ms, all fine. Another app's backend must not count.
    for (let i = 0; i < 10; i++) s.probe(probe(b, T0 - 10 * 60_000 + i * 30_000, 30));
    s.probe(probe('api/10.0.0.9:80', T0 - 60_000, 999, 'dns'));
    // Older than the window (2 h): excluded.
    s.probe(probe(a, T0 - 3 * HOUR, 500, 'timeout'));
    s.transition(transition(a, 'health', 'healthy', 'unhealthy', T0 - 16 * 60_000));
    s.transition(transition(a, 'breaker', 'closed', 'open', T0 - 15 * 60_000));
    s.transition(transition(a, 'health', 'unhealthy', 'healthy', T0 - 5 * 60_000));
    s.transition(transition(b, 'health', 'unknown', 'healthy', T0 - 10 * 60_000));
    s.failure(failure(a, T0 - 16 * 60_000, 'health_check_timeout'));
    s.failure(failure(a, T0 - 12 * 60_000, 'port_not_listening'));
    s.recoveryAction(action(a, T0 - 14 * 60_000, 'restart_container', 'r1'));
    s.recoveryAction(action(a, T0 - 13 * 60_000, 'restart_container', 'r2'));
    s.recoveryAction(action(a, T0 - 12 * 60_000, 'recreate_container', 'r3'));
    // Let the store write every finished minute, so the report reads rollup rows and memory.
    clock.set(T0 + 30_000);
    await s.flush();

    const report = await s.report('web', 2);
    expect(report).toMatchObject({
      app_name: 'web',
      report_period_hours: 2,
      source: 'rollups',
      to: new Date(T0 + 30_000).toISOString(),
      generated_at: new Date(T0 + 30_000).toISOString(),
      // The two failed checks, what they were, and what recovery did about them.
      total_checks: 30,
      successful_checks: 28,
      failed_checks: 2,
      error_breakdown: { timeout: 1, connection_refused: 1 },
      failure_breakdown: { health_check_timeout: 1, port_not_listening: 1 },
      recovery_by_strategy: { restart_container: 2, recreate_container: 1 },
      recovery_actions: 3,
      // (1+...+20) + 10 × 30 = 510 ms over 30 checks.
      avg_response_time_ms: 17,
      max_response_time_ms: 30,
      transitions: 4,
      // a's health went unhealthy and its breaker opened: one outage.
      ejections: 1,
    });
    expect(report.uptime_percent).toBeCloseTo((28 / 30) * 100, 10);
    // Nearest rank ⌈0.95 × 30⌉ = 29th of the sorted values: 30 ms (b's ten 30 ms checks are the top ten).
    expect(Math.abs(report.p95_response_time_ms! - 30) / 30).toBeLessThanOrEqual(SKETCH_RELATIVE_ACCURACY);
    expect(report.recent_recovery_actions.map((x) => x.id)).toEqual(['r3', 'r2', 'r1']);
    expect(report.recent_transitions[0]).toEqual({
      backend_id: a,
      kind: 'health',
      from: 'unhealthy',
      to: 'healthy',
      at: new Date(T0 - 5 * 60_000).toISOString(),
      reason: 'unhealthy -> healthy',
    });

    const [ra, rb] = report.backends;
    expect(ra).toMatchObject({
      backend_id: a,
      uptime_percent: 90,
      total_checks: 20,
      failed_checks: 2,
      avg_response_time_ms: 10.5,
      ejections: 1,
      transitions: 3,
      recovery_actions: 3,
    });
    // ⌈0.95 × 20⌉ = 19th of 1..20 ms.
    expect(Math.abs(ra!.p95_response_time_ms! - 19) / 19).toBeLessThanOrEqual(SKETCH_RELATIVE_ACCURACY);
    expect(rb).toMatchObject({ backend_id: b, uptime_percent: 100, total_checks: 10, ejections: 0, transitions: 1 });

    // The same window from raw rows: the same counts, and the exact p95.
    const raw = await s.report('web', 2, { source: 'raw' });
    expect(raw).toMatchObject({ source: 'raw', total_checks: 30, failed_checks: 2, avg_response_time_ms: 17 });
    expect(raw.p95_response_time_ms).toBe(30);
    expect(raw.backends[0]!.p95_response_time_ms).toBe(19);

    // close() writes the in-memory minute: a new store on the file reports the same checks.
    await s.close();
    const reopened = store(path, clock);
    expect(await reopened.report('web', 2)).toMatchObject({ total_checks: 30, failed_checks: 2, avg_response_time_ms: 17 });
  });

  it('agrees with the raw report within the sketch accuracy over thousands of random latencies', async () => {
    const clock = createManualClock(T0);
    const s = store(dbPath(), clock);
    const rnd = seededRandom(42);
    const backends = ['web/a:1', 'web/b:1', 'web/c:1'];
    for (let i = 0; i < 6000; i++) {
      const at = T0 - 3 * HOUR + i * 1800;
      // Log-uniform 1-50 ms with a 2 % tail of slow checks and 1 % failures.
      const ms = Math.exp(rnd() * Math.log(50)) * (rnd() < 0.02 ? 20 : 1);
      s.probe(probe(backends[i % 3]!, at, ms, rnd() < 0.01 ? 'timeout' : null));
    }
    await s.flush();
    const fromRollups = await s.report('web', 4);
    const fromRaw = await s.report('web', 4, { source: 'raw' });
    expect(fromRollups.total_checks).toBe(6000);
    for (const [r, x] of [[fromRollups, fromRaw], ...fromRollups.backends.map((b, i) => [b, fromRaw.backends[i]!])] as const) {
      // The sketch's guarantee: a nearest-rank percentile read from it is within
      // SKETCH_RELATIVE_ACCURACY (1 %) of the exact nearest-rank percentile of the same values.
      expect(Math.abs(r.p95_response_time_ms! - x.p95_response_time_ms!) / x.p95_response_time_ms!).toBeLessThanOrEqual(
        SKETCH_RELATIVE_ACCURACY,
      );
      expect(r.total_checks).toBe(x.total_checks);
      expect(r.failed_checks).toBe(x.failed_checks);
      expect(r.error_breakdown).toEqual(x.error_breakdown);
      expect(r.avg_response_time_ms).toBeCloseTo(x.avg_response_time_ms!, 9);
      expect(r.max_response_time_ms).toBe(x.max_response_time_ms);
    }
  });

  it('refuses a raw report longer than raw retention', async () => {
    const s = store(dbPath(), createManualClock(T0));
    await expect(s.report('web', 48, { source: 'raw' })).rejects.toThrow(/raw retention/);
  });

  it('drops raw hours past raw_retention_hours and rollup days and events past rollup_retention_days', async () => {
    const clock = createManualClock(T0);
    const path = dbPath();
    const s = store(path, clock);
    const a = 'web/a:1';
    s.probe(probe(a, T0 - HOUR + 1000, 5));
    s.transition(transition(a, 'health', 'unknown', 'healthy', T0 - HOUR + 1000));
    s.saveState('planner', '{}');
    clock.set(T0 + 60_000);
    await s.flush();
    expect(listPartitionsOf(path, 'raw')).toEqual([T0 / HOUR - 1]);
    expect(listPartitionsOf(path, 'rollup')).toEqual([Math.floor(T0 / DAY)]);

    // 25 h later the hour is wholly past 24 h of raw retention; its rollup stays.
    clock.set(T0 + 25 * HOUR);
    s.probe(probe(a, clock.now(), 6));
    await s.flush();
    expect(listPartitionsOf(path, 'raw')).toEqual([T0 / HOUR + 25]);
    expect((await s.report('web', 26)).total_checks).toBe(2);

    // 32 days later the first day's rollups and the old transition are gone too.
    clock.set(T0 + 32 * DAY);
    await s.flush();
    expect(listPartitionsOf(path, 'rollup')).not.toContain(Math.floor(T0 / DAY));
    expect(query(path, 'SELECT count(*) AS n FROM transitions')).toEqual([{ n: 0 }]);
    // State is not history: it is kept until the daemon deletes it.
    expect(query(path, "SELECT key FROM state WHERE substr(key, 1, 7) != '_store:'")).toEqual([{ key: 'planner' }]);
  });

  it('upgrades a database made by migration 1, keeping its rows', async () => {
    const path = dbPath();
    const v1 = new DatabaseSync(path);
    expect(migrate(v1, 1)).toBe(1);
    v1.exec(`INSERT INTO backends (key, app) VALUES ('web/a:1', 'web')`);
    v1.exec(`INSERT INTO state (key, json, updated_at) VALUES ('planner', '{"budget":2}', 1)`);
    v1.exec(`INSERT INTO transitions (at, backend, kind, from_state, to_state, reason) VALUES (${T0 - 1000}, 1, 'health', 'healthy', 'unhealthy', 'x')`);
    v1.close();
    expect(query(path, `SELECT name FROM sqlite_schema WHERE name = 'alerts'`)).toEqual([]);

    const clock = createManualClock(T0);
    const s = store(path, clock);
    const restored = await s.restore();
    expect(restored.states.get('planner')).toEqual({ budget: 2 });
    expect(s.status().schemaVersion).toBe(2);
    s.saveAlert('al1', '{"id":"al1"}');
    await s.flush();
    expect(query(path, 'SELECT id FROM alerts')).toEqual([{ id: 'al1' }]);
    expect((await s.report('web', 1)).transitions).toBe(1);
    expect(query(path, 'PRAGMA user_version')).toEqual([{ user_version: 2 }]);
  });

  it('reports a corrupt file as degraded with a clear error, never throws, and leaves the file untouched', async () => {
    const path = dbPath();
    const garbage = Buffer.from('this is not a database, it is a shopping list\n'.repeat(100));
    await writeFile(path, garbage);
    const clock = createManualClock(T0);
    const s = store(path, clock);
    s.probe(probe('web/a:1', T0, 1));
    s.saveState('planner', '{}');
    s.saveAlert('al1', '{}');
    s.transition(transition('web/a:1', 'health', 'unknown', 'healthy', T0));
    await s.flush();

    expect(s.status()).toMatchObject({
      state: 'degraded',
      path,
      error: `${path}: file is not a database`,
      written: 0,
      schemaVersion: 0,
    });
    expect(await s.restore()).toEqual({ states: new Map(), alerts: [] });
    await expect(s.report('web', 1)).rejects.toThrow(`state store unavailable: ${path}: file is not a database`);
    clock.set(T0 + 60_000);
    await s.flush();
    await s.close();
    expect(await readFile(path)).toEqual(garbage);
    expect(existsSync(`${path}-wal`)).toBe(false);
  });

  it('rolls up again, after a crash, the minutes the previous process held only in memory', async () => {
    const path = dbPath();
    const retention = { rawMs: DAY, rollupMs: 30 * DAY };
    const m0 = Math.floor(T0 / 60_000) - 3;
    // A previous process: three results in each of three minutes, 10/20/30 ms; it wrote the first
    // minute's rollup, then died holding the other two in memory.
    const at = [0, 1, 2].flatMap((k) => [0, 1, 2].map((j) => (m0 + k) * 60_000 + j * 10_000));
    const previous = openStoreDatabase(path, retention);
    previous.writeBatch(
      {
        type: 'batch',
        seq: 1,
        now: T0,
        newBackends: [[0, 'web/10.0.0.1:80', 'web']],
        probes: {
          at: Float64Array.from(at),
          b: new Uint32Array(at.length),
          us: Uint32Array.from(at.map((_, i) => ((i % 3) + 1) * 10_000)),
          e: Uint8Array.from(at.map((_, i) => (i === 4 ? 1 : 0))),
        },
        events: [],
        states: [],
        alerts: [],
      },
      (i) => (i === 0 ? ['web/10.0.0.1:80', 'web'] : ['?', '?']),
    );
    const first = newAgg();
    for (const us of [10_000, 20_000, 30_000]) addSample(first, us, 0);
    previous.writeRollups([{ minute: m0, key: 'web/10.0.0.1:80', app: 'web', agg: first }], m0);
    previous.close();

    // The next process rolls up the two lost minutes once, and not the one already written.
    const s = store(path, createManualClock(T0));
    await s.flush();
    const report = await s.report('web', 1);
    expect(report).toMatchObject({ total_checks: 9, failed_checks: 1, avg_response_time_ms: 20, max_response_time_ms: 30 });
    await s.close();
    const again = store(path, createManualClock(T0 + 1000));
    expect(await again.report('web', 1)).toMatchObject({ total_checks: 9 });
  });

  it('creates a missing directory for its file', async () => {
    const path = join(dir, `fresh-${++n}`, 'data', 'db.sqlite');
    const s = store(path, createManualClock(T0));
    s.probe(probe('web/a:1', T0, 1));
    await s.flush();
    expect(s.status()).toMatchObject({ state: 'ok', error: null, written: 1 });
    expect(existsSync(path)).toBe(true);
    await s.close();
  });

  it('reports a path it cannot create as degraded', async () => {
    const parent = join(dir, `afile-${++n}`);
    await writeFile(parent, 'a regular file, not a directory');
    const path = join(parent, 'db.sqlite');
    const s = store(path, createManualClock(T0));
    s.probe(probe('web/a:1', T0, 1));
    await s.flush();
    expect(s.status()).toMatchObject({ state: 'degraded', error: `${path}: cannot create its directory ${parent} (EEXIST)` });
    expect(s.status().queued).toBe(1);
  });

  it('holds at most max_queue probe results while degraded, dropping the oldest, and writes them once it can open', async () => {
    const parent = join(dir, `later-${++n}`);
    await writeFile(parent, 'not yet a directory');
    const path = join(parent, 'db.sqlite');
    const clock = createManualClock(T0);
    const s = store(path, clock, { max_queue: 100 });
    for (let i = 0; i < 250; i++) s.probe(probe('web/a:1', T0 - 250_000 + i * 1000, 1));
    await s.flush();
    // The first 100 were queued, the next 150 dropped at once.
    expect(s.status()).toMatchObject({ state: 'degraded', queued: 100, dropped: 150 });
    for (let i = 0; i < 100; i++) s.probe(probe('web/a:1', T0 + i, 2));
    await s.flush();
    // The worker keeps the newest 100.
    expect(s.status()).toMatchObject({ queued: 100, dropped: 250 });

    // The directory appears; the next open attempt (every 10 s) succeeds and writes what was held.
    await rm(parent);
    await import('node:fs/promises').then((fs) => fs.mkdir(parent));
    clock.set(T0 + 11_000);
    await s.flush();
    expect(s.status()).toMatchObject({ state: 'ok', error: null, queued: 0, written: 100 });
    expect((await s.report('web', 1)).avg_response_time_ms).toBe(2);
  });

  it('turns degraded when its file is removed at runtime, then starts a new file on retry', async () => {
    const clock = createManualClock(T0);
    const path = dbPath();
    const s = store(path, clock);
    s.probe(probe('web/a:1', T0, 1));
    await s.flush();
    expect(s.status().state).toBe('ok');
    for (const f of [path, `${path}-wal`, `${path}-shm`]) await rm(f, { force: true });
    s.probe(probe('web/a:1', T0 + 1000, 1));
    await s.flush();
    expect(s.status()).toMatchObject({ state: 'degraded', error: `${path}: file was removed or replaced`, queued: 1 });
    s.probe(probe('web/a:1', T0 + 2000, 1));
    expect(() => s.saveState('planner', '{}')).not.toThrow();

    clock.set(T0 + 20_000);
    await s.flush();
    expect(s.status()).toMatchObject({ state: 'ok', queued: 0, schemaVersion: SCHEMA_VERSION });
    expect(query(path, "SELECT key FROM state WHERE substr(key, 1, 7) != '_store:'")).toEqual([{ key: 'planner' }]);
  });

  it('keeps nothing and says so when disabled', async () => {
    const s = createSqliteStore({ config: config(dbPath(), { enabled: false }), clock: createManualClock(T0) });
    s.probe(probe('web/a:1', T0, 1));
    await s.flush();
    expect(s.status()).toMatchObject({ state: 'disabled', written: 0 });
    expect(await s.restore()).toEqual({ states: new Map(), alerts: [] });
    await expect(s.report('web', 1)).rejects.toThrow(/disabled/);
    await s.close();
  });
});

function listPartitionsOf(path: string, kind: 'raw' | 'rollup'): number[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return listPartitions(db, kind);
  } finally {
    db.close();
  }
}
