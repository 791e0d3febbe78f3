import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { DEFAULT_BREAKER_CONFIG } from '../../src/health/breaker.js';
import { fastPeriodMs } from '../../src/health/monitor.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { DEFAULT_HEALTH } from '../../src/config/schema.js';
import { formatAddress } from '../../src/model.js';
import type { OutlierBackend } from '../../src/passive/outlier.js';
import { suspectsOf } from '../../src/passive/monitor.js';
import type { Outcome } from '../../src/passive/types.js';
import { backend, failureDetection, probeResult } from '../helpers/fixtures.js';

const health = { ...DEFAULT_HEALTH, period_seconds: 2, fast_period_seconds: 0.25, ejected_period_seconds: 0.5, failure_threshold: 3, success_threshold: 2 };

function rig() {
  const clock = createManualClock(0);
  const registry = createHealthRegistry({ clock, breaker: DEFAULT_BREAKER_CONFIG, detection: failureDetection() });
  const b = backend({ app: 'web', port: 8001, health });
  registry.sync([b]);
  const probe = (healthy: boolean) =>
    registry.record(probeResult({ backendId: b.id, app: 'web', healthy, statusCode: healthy ? 200 : 500, errorClass: healthy ? null : 'unexpected_status', error: healthy ? null : 'HTTP 500' }));
  return { registry, b, probe, clock };
}

describe('the probe period while a verdict may change (HAProxy fastinter and downinter)', () => {
  it('keeps the backend its own period while it passes', () => {
    const r = rig();
    r.probe(true);
    r.probe(true);
    expect(fastPeriodMs(r.registry, r.b)).toBeUndefined();
  });

  it('probes a routed backend at its fast period from its first failed probe until it is out', () => {
    const r = rig();
    r.probe(true);
    r.probe(false);
    expect(fastPeriodMs(r.registry, r.b)).toBe(250);
    r.probe(false);
    expect(fastPeriodMs(r.registry, r.b)).toBe(250);
    r.probe(false);
    expect(r.registry.isEjected(r.b.id)).toBe(true);
    expect(fastPeriodMs(r.registry, r.b)).toBe(500);
  });

  it('probes an ejected backend that passed its last probe at its fast period once its hold is served, until it is readmitted', () => {
    const r = rig();
    for (let i = 0; i < 3; i++) r.probe(false);
    expect(fastPeriodMs(r.registry, r.b)).toBe(500);
    // The ejection's breaker hold (recovery_timeout_seconds, 2 s) is not over: no hurry.
    r.probe(true);
    expect(fastPeriodMs(r.registry, r.b)).toBe(500);
    r.clock.advance(2000);
    expect(r.registry.isEjected(r.b.id)).toBe(true);
    expect(fastPeriodMs(r.registry, r.b)).toBe(250);
    r.probe(false);
    expect(fastPeriodMs(r.registry, r.b)).toBe(500);
    r.probe(true);
    expect(fastPeriodMs(r.registry, r.b)).toBe(250);
    r.probe(true);
    expect(r.registry.isEjected(r.b.id)).toBe(false);
  });

  it('goes back to the own period when the next probe passes', () => {
    const r = rig();
    r.probe(false);
    r.probe(true);
    expect(fastPeriodMs(r.registry, r.b)).toBeUndefined();
  });

  it('keeps deciding and ejected backends at their own period while the sidecar is overloaded', () => {
    const r = rig();
    r.probe(false);
    expect(fastPeriodMs(r.registry, r.b, () => true)).toBeUndefined();
    r.probe(false);
    r.probe(false);
    expect(r.registry.isEjected(r.b.id)).toBe(true);
    expect(fastPeriodMs(r.registry, r.b, () => true)).toBeUndefined();
    expect(fastPeriodMs(r.registry, r.b, () => false)).toBe(500);
  });

  it('never probes slower than the own period when that is the shorter', () => {
    const r = rig();
    const quick = { ...r.b, health: { ...health, period_seconds: 0.2 } };
    r.probe(false);
    expect(fastPeriodMs(r.registry, quick)).toBe(200);
  });
});

describe("suspects from nginx's log", () => {
  const outcome = (address: string, kind: Outcome['kind'], status: number | null, at = 1): Outcome => ({
    app: 'web', address, status, responseTimeMs: 1, connectTimeMs: status === null ? null : 0.1, kind, at,
  });
  const a1 = formatAddress('127.0.0.1', 8001);
  const a2 = formatAddress('127.0.0.1', 8002);
  const backends = new Map<string, OutlierBackend>([
    [a1, { id: 'web/1', address: a1, routable: true }],
    [a2, { id: 'web/2', address: a2, routable: false }],
  ]);

  it('names each routed backend that failed a real request once, with its first failure', () => {
    const got = suspectsOf(backends, [outcome(a1, 'ok', 200), outcome(a1, '5xx', 500, 2), outcome(a1, 'gateway', null, 3)]);
    expect(got).toEqual([{ backendId: 'web/1', reason: 'nginx: HTTP 500', at: 2 }]);
  });

  it('leaves out ejected backends, successes and unknown addresses', () => {
    const got = suspectsOf(backends, [outcome(a2, '5xx', 503), outcome(a1, 'ok', 200), outcome('127.0.0.1:9', 'gateway', null)]);
    expect(got).toEqual([]);
  });
});
