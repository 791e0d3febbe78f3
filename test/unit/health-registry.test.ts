import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { DEFAULT_BREAKER_CONFIG } from '../../src/health/breaker.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { DEFAULT_HEALTH } from '../../src/config/schema.js';
import type { FailureDetectionConfig, HealthCheckConfig } from '../../src/config/types.js';
import type { Backend, ProbeResult } from '../../src/model.js';
import { backend as backendFixture, failureDetection, probeResult } from '../helpers/fixtures.js';

const health: HealthCheckConfig = {
  ...DEFAULT_HEALTH,
  initial_delay_seconds: 0,
  period_seconds: 5,
  timeout_seconds: 2,
  failure_threshold: 3,
  success_threshold: 1,
};

const detection: FailureDetectionConfig = failureDetection();

function backend(app: string, port: number, over: Partial<Backend> = {}): Backend {
  return backendFixture({ app, port, health, ...over });
}

function probe(b: Backend, healthy: boolean, over: Partial<ProbeResult> = {}): ProbeResult {
  return probeResult({
    backendId: b.id,
    app: b.app,
    healthy,
    responseTimeMs: 4,
    statusCode: healthy ? 200 : null,
    body: healthy ? 'ok' : null,
    errorClass: healthy ? null : 'connection_refused',
    error: healthy ? null : `connect ECONNREFUSED 127.0.0.1:${b.port}`,
    finishedAt: 4,
    ...over,
  });
}

function setup() {
  const clock = createManualClock(1_000_000);
  const registry = createHealthRegistry({ clock, breaker: { ...DEFAULT_BREAKER_CONFIG }, detection });
  /** Tick, then record (as the health monitor does per probe); returns everything both emitted. */
  const run = (b: Backend, healthy: boolean, over: Partial<ProbeResult> = {}) => {
    const ticked = registry.tick(b.id);
    const r = registry.record(probe(b, healthy, over));
    return { transitions: [...ticked, ...r.transitions], failures: r.failures };
  };
  return { clock, registry, run };
}

describe('health registry', () => {
  it('starts new backends unknown, closed and routed', () => {
    const { registry } = setup();
    const b = backend('web', 8001);
    expect(registry.sync([b])).toEqual({ added: [b.id], removed: [] });
    expect(registry.view(b.id)).toEqual({
      backendId: b.id,
      app: 'web',
      host: '127.0.0.1',
      port: 8001,
      weight: 1,
      backup: false,
      health: 'unknown',
      breaker: 'closed',
      ejected: false,
      slowStart: 1,
      draining: false,
      container: null,
      consecutiveFailures: 0,
      consecutiveSuccesses: 0,
      lastProbe: null,
      lastFailure: null,
      since: 1_000_000,
    });
  });

  it('lists one app\'s backends in snapshot order, and follows the next sync', () => {
    const { registry } = setup();
    const w1 = backend('web', 8001);
    const a1 = backend('api', 9001);
    const w2 = backend('web', 8002);
    registry.sync([w1, a1, w2]);
    expect(registry.viewsOf('web').map((v) => v.backendId)).toEqual([w1.id, w2.id]);
    expect(registry.viewsOf('api').map((v) => v.backendId)).toEqual([a1.id]);
    expect(registry.viewsOf('nope')).toEqual([]);
    registry.sync([w2, a1]);
    expect(registry.viewsOf('web').map((v) => v.backendId)).toEqual([w2.id]);
  });

  it('ejects a draining backend at once, whatever its probes say', () => {
    const { registry } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    registry.sync([{ ...b, draining: true }]);
    expect(registry.view(b.id)).toMatchObject({ health: 'unknown', breaker: 'closed', draining: true, ejected: true });
    registry.sync([b]);
    expect(registry.view(b.id)).toMatchObject({ draining: false, ejected: false });
  });

  it("reports no failure for a draining backend's failed probes: its container is being stopped on purpose", () => {
    const { registry, run } = setup();
    const b = backend('web', 8001);
    registry.sync([{ ...b, draining: true }]);
    expect(run(b, false).failures).toEqual([]);
    expect(registry.view(b.id)?.lastFailure).toBeNull();
    // Back from draining (started again), a failed probe is a failure again.
    registry.sync([b]);
    expect(run(b, false).failures.map((f) => f.failureType)).toEqual(['port_not_listening']);
  });

  it('drops backends missing from the next snapshot and keeps the state of those still present', () => {
    const { registry, run } = setup();
    const a = backend('web', 8001);
    const b = backend('web', 8002);
    registry.sync([a, b]);
    run(a, true);
    const c = backend('web', 8003);
    expect(registry.sync([{ ...a, weight: 5 }, c])).toEqual({ added: [c.id], removed: [b.id] });
    expect(registry.view(b.id)).toBeUndefined();
    expect(registry.view(a.id)).toMatchObject({ health: 'healthy', weight: 5 });
    expect(registry.view(c.id)).toMatchObject({ health: 'unknown' });
  });

  it('applies a changed failure_threshold from the next snapshot to the existing streak', () => {
    const { registry, run } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    run(b, false);
    expect(registry.view(b.id)?.health).toBe('unknown');
    const stricter = { ...b, health: { ...health, failure_threshold: 2 } };
    registry.sync([stricter]);
    expect(run(stricter, false).transitions.map((t) => `${t.kind}:${t.to}`)).toEqual(['health:unhealthy', 'breaker:open']);
  });

  it('lists views by app, then in the order the snapshot gave them', () => {
    const { registry } = setup();
    const backends = [backend('web', 8002), backend('api', 9001), backend('web', 8001), backend('api', 9000)];
    registry.sync(backends);
    expect(registry.views().map((v) => v.backendId)).toEqual([
      'api/127.0.0.1:9001',
      'api/127.0.0.1:9000',
      'web/127.0.0.1:8002',
      'web/127.0.0.1:8001',
    ]);
  });

  it('emits the health transition once, at failure_threshold, and ejects the backend through its breaker', () => {
    const { registry, run, clock } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    expect(run(b, false).transitions).toEqual([]);
    expect(run(b, false).transitions).toEqual([]);
    clock.advance(5000);
    const third = run(b, false);
    expect(third.transitions).toEqual([
      {
        kind: 'health',
        backendId: b.id,
        app: 'web',
        from: 'unknown',
        to: 'unhealthy',
        at: 1_005_000,
        reason: '3 consecutive failures: connect ECONNREFUSED 127.0.0.1:8001',
      },
      expect.objectContaining({ kind: 'breaker', from: 'closed', to: 'open', at: 1_005_000 }),
    ]);
    expect(run(b, false).transitions).toEqual([]);
    expect(registry.view(b.id)).toMatchObject({ health: 'unhealthy', ejected: true, consecutiveFailures: 4, since: 1_005_000 });
  });

  it('opens the breaker when the health check goes unhealthy, and keeps probing while it is open', () => {
    const { registry, run } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    run(b, false);
    run(b, false);
    const third = run(b, false);
    expect(third.transitions.map((t) => `${t.kind}:${t.to}`)).toEqual(['health:unhealthy', 'breaker:open']);
    expect(third.transitions[1]?.reason).toBe('health check: 3 consecutive failures: connect ECONNREFUSED 127.0.0.1:8001');
    expect(run(b, false)).toMatchObject({ transitions: [] });
    expect(registry.view(b.id)).toMatchObject({ health: 'unhealthy', breaker: 'open', ejected: true, consecutiveFailures: 4 });
  });

  it('opens the breaker at its own failure_threshold when that comes before the health verdict', () => {
    const { registry, run } = setup();
    registry.updateConfig({ ...DEFAULT_BREAKER_CONFIG, failure_threshold: 2 }, detection);
    const b = backend('web', 8001);
    registry.sync([b]);
    run(b, false);
    expect(run(b, false).transitions).toEqual([
      expect.objectContaining({ kind: 'breaker', from: 'closed', to: 'open', reason: '2 consecutive failures: connect ECONNREFUSED 127.0.0.1:8001' }),
    ]);
    expect(registry.view(b.id)).toMatchObject({ health: 'unknown', breaker: 'open', ejected: true });
  });

  it('readmits a recovered backend after its hold at a reduced weight, and closes the breaker after slow start', () => {
    const { registry, run, clock } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    for (let i = 0; i < 3; i++) run(b, false);
    const first = run(b, true);
    expect(first.transitions.map((t) => `${t.kind}:${t.to}`)).toEqual(['health:healthy']);
    expect(registry.view(b.id)).toMatchObject({ health: 'healthy', breaker: 'open', ejected: true });
    clock.advance(DEFAULT_BREAKER_CONFIG.recovery_timeout_seconds * 1000);
    expect(run(b, true).transitions.map((t) => `${t.kind}:${t.to}`)).toEqual(['breaker:half_open']);
    expect(registry.view(b.id)).toMatchObject({ health: 'healthy', breaker: 'half_open', ejected: false, slowStart: 0.1 });
    clock.advance(DEFAULT_BREAKER_CONFIG.slow_start_seconds * 500);
    expect(registry.view(b.id)?.slowStart).toBeCloseTo(0.55);
    clock.advance(DEFAULT_BREAKER_CONFIG.slow_start_seconds * 500);
    expect(registry.tick(b.id).map((t) => `${t.kind}:${t.to}`)).toEqual(['breaker:closed']);
    expect(registry.view(b.id)).toMatchObject({ breaker: 'closed', ejected: false, slowStart: 1 });
  });

  it("ejects a backend on nginx's evidence, and a failed request reopens it while readmitted, for longer", () => {
    const { registry, run, clock } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    run(b, true);
    expect(registry.eject(b.id, 'passive: 5 consecutive 5xx')).toEqual([
      expect.objectContaining({ kind: 'breaker', from: 'closed', to: 'open', reason: 'passive: 5 consecutive 5xx' }),
    ]);
    expect(registry.view(b.id)).toMatchObject({ health: 'healthy', ejected: true });
    clock.advance(DEFAULT_BREAKER_CONFIG.recovery_timeout_seconds * 1000);
    expect(registry.tick(b.id).map((t) => t.to)).toEqual(['half_open']);
    expect(registry.outcome(b.id, true)).toEqual([]);
    const reopened = registry.outcome(b.id, false, 'HTTP 502');
    expect(reopened.map((t) => t.to)).toEqual(['open']);
    expect(reopened[0]?.reason).toBe('request failed while readmitted: HTTP 502 (ejection 2, held 4s)');
  });

  it('does not eject a backend whose health is still unknown', () => {
    const { registry, run } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    run(b, false);
    expect(registry.view(b.id)).toMatchObject({ health: 'unknown', breaker: 'closed', ejected: false });
  });

  it('returns failure events and remembers the last probe and failure', () => {
    const { registry, run } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    const out = run(b, false);
    expect(out.failures.map((f) => [f.failureType, f.consecutiveCount])).toEqual([['port_not_listening', 1]]);
    run(b, true);
    const view = registry.view(b.id)!;
    expect(view.lastProbe?.healthy).toBe(true);
    expect(view.lastFailure?.failureType).toBe('port_not_listening');
  });

  it("shows each probe's verdict and times as the last probe, however often the verdict repeats", () => {
    const { registry, run } = setup();
    const b = backend('web', 8001);
    const other = backend('web', 8002);
    registry.sync([b, other]);
    const last = (id: string) => registry.view(id)!.lastProbe;
    run(b, true, { startedAt: 10, finishedAt: 14, responseTimeMs: 4 });
    run(b, true, { startedAt: 20, finishedAt: 23.5, responseTimeMs: 3.5 });
    expect(last(b.id)).toEqual({ healthy: true, statusCode: 200, errorClass: null, error: null, startedAt: 20, finishedAt: 23.5, responseTimeMs: 3.5 });
    run(b, false, { startedAt: 30, finishedAt: 31, responseTimeMs: 1 });
    expect(last(b.id)).toEqual({
      healthy: false,
      statusCode: null,
      errorClass: 'connection_refused',
      error: 'connect ECONNREFUSED 127.0.0.1:8001',
      startedAt: 30,
      finishedAt: 31,
      responseTimeMs: 1,
    });
    run(b, false, { startedAt: 40, finishedAt: 41, responseTimeMs: 1, errorClass: 'timeout', error: 'timeout after 2000 ms' });
    expect(last(b.id)).toMatchObject({ healthy: false, errorClass: 'timeout', error: 'timeout after 2000 ms', startedAt: 40 });
    run(b, true, { startedAt: 50, finishedAt: 52, responseTimeMs: 2, statusCode: 204 });
    run(other, true, { startedAt: 51, finishedAt: 52, responseTimeMs: 1 });
    expect(last(b.id)).toMatchObject({ healthy: true, statusCode: 204, errorClass: null, startedAt: 50 });
    expect(last(other.id)).toMatchObject({ healthy: true, statusCode: 200, startedAt: 51, finishedAt: 52 });
  });

  it('counts no probe that failed for a local reason: no streak, breaker, failure window or last probe moves', () => {
    const { registry, run, clock } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    run(b, true);
    run(b, false);
    const before = registry.view(b.id);
    const emfile = { errorClass: 'local_error' as const, error: 'connect EMFILE 127.0.0.1:8001 - Local (undefined:undefined)' };
    for (let i = 0; i < 20; i++) {
      clock.advance(1000);
      expect(run(b, false, emfile)).toEqual({ transitions: [], failures: [] });
    }
    expect(registry.view(b.id)).toEqual(before);
    expect(registry.view(b.id)).toMatchObject({ health: 'healthy', breaker: 'closed', ejected: false, consecutiveFailures: 1 });
  });

  it('reports a slow but healthy probe as high_response_time without ejecting', () => {
    const { registry, run } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    const out = run(b, true, { responseTimeMs: 7000 });
    expect(out.failures.map((f) => f.failureType)).toEqual(['high_response_time']);
    expect(registry.view(b.id)).toMatchObject({ health: 'healthy', ejected: false });
  });

  it('ignores results and admissions for backends it does not know', () => {
    const { registry } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    registry.sync([]);
    expect(registry.record(probe(b, false))).toEqual({ transitions: [], failures: [] });
    expect(registry.tick(b.id)).toEqual([]);
    expect(registry.eject(b.id, 'x')).toEqual([]);
    expect(registry.views()).toEqual([]);
  });

  it('uses updated breaker settings from the next probe on', () => {
    const { registry, run } = setup();
    const b = backend('web', 8001);
    registry.sync([b]);
    run(b, false);
    registry.updateConfig({ ...DEFAULT_BREAKER_CONFIG, failure_threshold: 2 }, detection);
    expect(run(b, false).transitions).toContainEqual(expect.objectContaining({ kind: 'breaker', to: 'open' }));
  });
});

describe('health registry state across restarts', () => {
  /** Ejects `b` (health unhealthy and breaker open) and returns its exported, JSON round-tripped state. */
  function ejectedState(b: Backend) {
    const { registry, run } = setup();
    registry.sync([b]);
    for (let i = 0; i < 5; i++) run(b, false);
    const view = registry.view(b.id)!;
    expect([view.health, view.breaker, view.ejected]).toEqual(['unhealthy', 'open', true]);
    return JSON.parse(JSON.stringify(registry.exportState(b.id)));
  }

  it('a restored ejected backend stays ejected, breaker open, until probes say otherwise', () => {
    const b = backend('web', 8001);
    const saved = ejectedState(b);
    const { registry, run, clock } = setup();
    expect(registry.restore(new Map([[b.id, saved]]))).toEqual({ restored: 1, rejected: [] });
    registry.sync([b]);
    const view = registry.view(b.id)!;
    expect([view.health, view.breaker, view.ejected, view.consecutiveFailures]).toEqual(['unhealthy', 'open', true, 5]);
    expect(view.lastFailure?.failureType).toBe('port_not_listening');
    // Still open: the hold counts from the saved ejection, not from the restart.
    expect(run(b, true).transitions.map((t) => `${t.kind}:${t.to}`)).toEqual(['health:healthy']);
    expect(registry.view(b.id)).toMatchObject({ breaker: 'open', ejected: true });
    clock.advance(DEFAULT_BREAKER_CONFIG.recovery_timeout_seconds * 1000);
    run(b, true);
    expect(registry.view(b.id)).toMatchObject({ health: 'healthy', breaker: 'half_open', ejected: false });
  });

  it('keeps the failure counts of the window', () => {
    const b = backend('web', 8001);
    const saved = ejectedState(b);
    const { registry } = setup();
    registry.restore(new Map([[b.id, saved]]));
    registry.sync([b]);
    registry.tick(b.id);
    const state = registry.exportState(b.id)!;
    expect(state.failures.port_not_listening?.times).toHaveLength(5);
    expect(state.breaker).toMatchObject({ status: 'open', timesEjected: 1 });
  });

  it('rejects malformed saved states and starts those backends fresh', () => {
    const a = backend('web', 8001);
    const b = backend('web', 8002);
    const c = backend('web', 8003);
    const { registry } = setup();
    const good = ejectedState(a);
    const result = registry.restore(
      new Map<string, unknown>([
        [a.id, good],
        [b.id, { ...good, health: { status: 'sick', consecutiveSuccesses: 0, consecutiveFailures: 0 } }],
        [c.id, { ...good, failures: { no_such_type: { times: [], consecutive: 0 } } }],
      ]),
    );
    expect(result).toEqual({ restored: 1, rejected: [b.id, c.id] });
    registry.sync([a, b, c]);
    expect(registry.views().map((v) => v.health)).toEqual(['unhealthy', 'unknown', 'unknown']);
  });

  it('marks a backend dirty when its saved state changes, not on every healthy probe', () => {
    const b = backend('web', 8001);
    const { registry, run } = setup();
    registry.sync([b]);
    run(b, true);
    expect(registry.takeDirty()).toEqual([b.id]); // unknown -> healthy
    run(b, true);
    run(b, true);
    expect(registry.takeDirty()).toEqual([]);
    run(b, false);
    expect(registry.takeDirty()).toEqual([b.id]);
    run(b, true); // ends the failure streak
    expect(registry.takeDirty()).toEqual([b.id]);
    registry.sync([]);
    expect(registry.takeDirty()).toEqual([b.id]); // removed: its saved state goes
  });
});
