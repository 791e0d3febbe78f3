import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { backendId, type Backend, type ProbeResult } from '../../src/model.js';
import { createPlannerState, type PlannerState } from '../../src/recovery/planner-state.js';
import { createStatePersister, PERSIST_CHUNK } from '../../src/store/persister.js';
import type { RestoredState, StateStore } from '../../src/store/types.js';
import { configOf } from '../helpers/fixtures.js';
import { createLogger } from '../../src/observability/logger.js';

const config = configOf({ apps: { web: { backends: ['127.0.0.1:8001'] } } });
const b: Backend = {
  id: backendId('web', '127.0.0.1', 8001), app: 'web', host: '127.0.0.1', port: 8001, weight: 1, backup: false, health: config.apps[0]!.health, source: 'file',
};
const failed = (at: number): ProbeResult => ({
  backendId: b.id, app: 'web', checkType: 'http', healthy: false, responseTimeMs: 1, statusCode: 500, body: null,
  errorClass: 'unexpected_status', error: 'HTTP 500', startedAt: at, finishedAt: at, attempts: 1,
});

/** A store that keeps saved states in memory: the persister's only dependency. */
function memoryStore(restored: RestoredState = { states: new Map(), alerts: [] }) {
  const writes: Array<[string, string | null]> = [];
  const store = {
    saveState: (key: string, json: string | null) => writes.push([key, json]),
    restore: async () => restored,
    status: () => ({ state: 'ok', path: ':memory:', error: null, queued: 0, dropped: 0, written: 0, sizeBytes: 0, schemaVersion: 2 }),
  } as unknown as StateStore;
  return { store, writes };
}

function rig(restored?: RestoredState) {
  const clock = createManualClock(1000);
  const registry = createHealthRegistry({ clock, breaker: config.breaker, detection: config.failure_detection });
  const { store, writes } = memoryStore(restored);
  const persister = createStatePersister({ store, registry, clock, logger: createLogger({ level: 'silent' }), intervalSeconds: () => 5 });
  return { clock, registry, persister, writes };
}

describe('the state persister', () => {
  it('writes a backend state when it changed and the planner only when it holds something new', async () => {
    const r = rig();
    await r.persister.restore();
    r.registry.sync([b]);
    let planner: PlannerState = createPlannerState();
    r.persister.start(() => planner);
    // A new backend's initial state is nothing worth saving; the planner's first state is.
    expect(r.writes.map(([k]) => k)).toEqual(['planner']);
    r.writes.length = 0;
    r.clock.advance(5000);
    expect(r.writes).toEqual([]);
    r.registry.record(failed(6000));
    planner = createPlannerState(); // a new object with the same content
    r.clock.advance(5000);
    expect(r.writes.map(([k]) => k)).toEqual([`backend:${b.id}`]);
    planner = { ...createPlannerState(), seq: 3 };
    r.persister.stop();
    expect(r.writes.map(([k]) => k)).toEqual([`backend:${b.id}`, 'planner']);
    expect(JSON.parse(r.writes[1]![1]!).seq).toBe(3);
  });

  it('writes thousands of changed states a chunk per turn of the event loop, not in one long loop', async () => {
    const r = rig();
    await r.persister.restore();
    const many = Array.from({ length: PERSIST_CHUNK * 2 + 200 }, (_, i) => ({ ...b, id: backendId('web', '127.0.0.1', 9000 + i), port: 9000 + i }));
    r.registry.sync(many);
    for (const x of many) r.registry.record({ ...failed(1000), backendId: x.id });
    const backendWrites = () => r.writes.filter(([k]) => k.startsWith('backend:')).length;
    r.persister.start(() => createPlannerState());
    expect(backendWrites()).toBe(PERSIST_CHUNK);
    // The planner waits for the backends' turn to end.
    expect(r.writes.some(([k]) => k === 'planner')).toBe(false);
    // The rest in the next turns (a 0 ms timer each), then the planner.
    r.clock.advance(0);
    expect(backendWrites()).toBe(many.length);
    expect(r.writes.at(-1)![0]).toBe('planner');
    expect(new Set(r.writes.map(([k]) => k)).size).toBe(many.length + 1);
  });

  it('stop writes every changed state at once, however many', async () => {
    const r = rig();
    await r.persister.restore();
    const many = Array.from({ length: PERSIST_CHUNK * 2 + 200 }, (_, i) => ({ ...b, id: backendId('web', '127.0.0.1', 9000 + i), port: 9000 + i }));
    r.registry.sync(many);
    r.persister.start(() => createPlannerState());
    for (const x of many) r.registry.record({ ...failed(1000), backendId: x.id });
    r.persister.stop();
    expect(r.writes.filter(([k]) => k.startsWith('backend:'))).toHaveLength(many.length);
  });

  it('puts saved backend states back before the first sync, and starts the planner over when its state is malformed', async () => {
    const first = rig();
    await first.persister.restore();
    first.registry.sync([b]);
    first.registry.record(failed(1000));
    const saved = first.registry.exportState(b.id);
    const second = rig({ states: new Map<string, unknown>([[`backend:${b.id}`, saved], ['planner', { nonsense: true }]]), alerts: ['a'] });
    const restored = await second.persister.restore();
    expect(restored.planner).toEqual(createPlannerState());
    expect(restored.alerts).toEqual(['a']);
    second.registry.sync([b]);
    expect(second.registry.view(b.id)?.consecutiveFailures).toBe(1);
  });
});
