import { describe, expect, it } from 'vitest';
import { countOutages, eventStats, exactStats, newAgg, addSample, statsFromAgg, mergeAgg } from '../../src/store/report.js';
import {
  SKETCH_RELATIVE_ACCURACY,
  decodeCounts,
  encodeCounts,
  sketchKey,
  sketchQuantile,
  type Counts,
} from '../../src/store/sketch.js';
import { seededRandom } from '../helpers/fixtures.js';

function nearestRank(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(q * sorted.length) - 1]!;
}

describe('counts codec', () => {
  it('round-trips negative, zero and large keys and counts', () => {
    const counts: Counts = new Map([
      [-341, 1],
      [-1, 300],
      [0, 2],
      [5, 70_000],
      [900, 1],
    ]);
    const bytes = encodeCounts(counts);
    expect(decodeCounts(bytes)).toEqual(counts);
    // Varints: zigzag(-341)·2 2 (count 1: no count), Δ340·2+1 2 + 298 2, Δ1·2+1 1 + 0 1,
    // Δ5·2+1 1 + 69998 3, Δ895·2 2.
    expect(bytes.length).toBe(14);
  });

  it('decodes into an existing map by adding counts', () => {
    const into: Counts = new Map([[3, 2]]);
    decodeCounts(encodeCounts(new Map([[3, 5], [4, 1]])), into);
    expect(into).toEqual(new Map([[3, 7], [4, 1]]));
  });

  it('decodes a NULL column as nothing', () => {
    expect(decodeCounts(null)).toEqual(new Map());
  });
});

describe('latency sketch', () => {
  it(`reads nearest-rank percentiles within ${SKETCH_RELATIVE_ACCURACY * 100}% of the exact value`, () => {
    const rnd = seededRandom(7);
    const us: number[] = [];
    for (let i = 0; i < 20_000; i++) us.push(Math.round(1000 * Math.exp(rnd() * Math.log(5000)) * (rnd() < 0.01 ? 40 : 1)));
    const sketch: Counts = new Map();
    for (const v of us) sketch.set(sketchKey(v), (sketch.get(sketchKey(v)) ?? 0) + 1);
    for (const q of [0.01, 0.5, 0.9, 0.95, 0.99, 1]) {
      const exact = nearestRank(us, q) / 1000;
      const read = sketchQuantile(sketch, q)!;
      expect(Math.abs(read - exact) / exact).toBeLessThanOrEqual(SKETCH_RELATIVE_ACCURACY + 1e-12);
    }
  });

  it('gives the same percentiles from merged per-minute sketches as from one sketch of everything', () => {
    const rnd = seededRandom(11);
    const whole = newAgg();
    const merged = newAgg();
    for (let minute = 0; minute < 60; minute++) {
      const agg = newAgg();
      for (let i = 0; i < 30; i++) {
        const v = Math.round(1000 + rnd() * 49_000);
        const e = rnd() < 0.05 ? 1 : 0;
        addSample(agg, v, e);
        addSample(whole, v, e);
      }
      // Through the codec, as the rollup table stores it.
      mergeAgg(merged, { ...agg, sketch: decodeCounts(encodeCounts(agg.sketch)) });
    }
    expect(statsFromAgg(merged)).toEqual(statsFromAgg(whole));
  });

  it('has no percentile when empty', () => {
    expect(sketchQuantile(new Map(), 0.95)).toBeNull();
  });
});

describe('report statistics', () => {
  it('computes uptime, average, nearest-rank p95 and the error breakdown exactly from raw samples', () => {
    // 20 checks: 1..20 ms; checks 3 and 7 failed (timeout = code 1, connection_refused = code 2).
    const us = Array.from({ length: 20 }, (_, i) => (i + 1) * 1000);
    const e = us.map((_, i) => (i === 2 ? 1 : i === 6 ? 2 : 0));
    expect(exactStats(us, e)).toEqual({
      uptime_percent: 90,
      total_checks: 20,
      successful_checks: 18,
      failed_checks: 2,
      avg_response_time_ms: 10.5,
      p95_response_time_ms: 19,
      max_response_time_ms: 20,
      error_breakdown: { timeout: 1, connection_refused: 1 },
    });
  });

  it('reports no uptime or latency, rather than zero, for a window without checks', () => {
    expect(exactStats([], [])).toMatchObject({
      uptime_percent: null,
      total_checks: 0,
      avg_response_time_ms: null,
      p95_response_time_ms: null,
    });
  });

  it('counts one ejection per outage, however many of health and breaker took the backend out', () => {
    const t = (kind: 'health' | 'breaker', from: string, to: string, at: number, backend = 'web/a:1') => ({
      backend_id: backend,
      kind,
      from,
      to,
      at,
      reason: '',
    });
    const stats = eventStats({
      failureTypes: ['health_check_failed', 'health_check_failed', 'health_check_timeout'],
      transitions: [
        t('health', 'unhealthy', 'healthy', 4_000),
        t('breaker', 'closed', 'open', 3_000),
        t('health', 'healthy', 'unhealthy', 2_000),
        t('breaker', 'open', 'half_open', 1_000),
      ],
      actions: [],
    });
    // The health ejection at 2 s starts an outage; the breaker opening at 3 s is the same outage.
    expect(stats.ejections).toBe(1);
    expect(stats.transitions).toBe(4);
    expect(stats.recent_transitions.map((x) => x.at)).toEqual([
      '1970-01-01T00:00:04.000Z', '1970-01-01T00:00:03.000Z', '1970-01-01T00:00:02.000Z', '1970-01-01T00:00:01.000Z',
    ]);
    expect(stats.failure_breakdown).toEqual({ health_check_failed: 2, health_check_timeout: 1 });
  });

  it('counts an outage where health and breaker both eject once, and each later outage again, per backend', () => {
    const t = (backend: string, kind: 'health' | 'breaker', from: string, to: string) => ({ backend_id: backend, kind, from, to, at: 0, reason: '' });
    const newestFirst = [
      t('a', 'health', 'healthy', 'unhealthy'), // a: outage 2 (health only)
      t('a', 'breaker', 'half_open', 'closed'),
      t('a', 'health', 'unhealthy', 'healthy'),
      t('b', 'breaker', 'closed', 'open'), // b: outage (breaker only, e.g. passive evidence)
      t('a', 'breaker', 'open', 'half_open'),
      t('a', 'breaker', 'closed', 'open'),
      t('a', 'health', 'healthy', 'unhealthy'), // a: outage 1 (health, then the breaker)
    ];
    expect(countOutages(newestFirst)).toBe(3);
    expect(countOutages(newestFirst.filter((x) => x.backend_id === 'a'))).toBe(2);
    expect(countOutages([])).toBe(0);
  });
});

describe('rollup percentiles', () => {
  it('never puts the p95 above the largest sample', () => {
    // 20 checks all at 29.4 ms: the sketch's bucket value for them lies above 29.4.
    const agg = newAgg();
    for (let i = 0; i < 20; i++) addSample(agg, 29_400, 0);
    expect(sketchQuantile(agg.sketch, 0.95)!).toBeGreaterThan(29.4);
    expect(statsFromAgg(agg)).toMatchObject({ p95_response_time_ms: 29.4, max_response_time_ms: 29.4 });
  });
});
