import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import { DEFAULT_PASSIVE as DEFAULT_PASSIVE_CONFIG } from '../../src/config/defaults.js';
import type { PassiveConfig } from '../../src/config/types.js';
import { parseListen } from '../../src/passive/config.js';
import { medianWithout } from '../../src/passive/outlier-latency.js';
import {
  groupOutcomesByApp,
  initialAppOutliers,
  nextOutlierDeadline,
  restoreAppOutliers,
  stepOutliers,
  type AppOutlierState,
  type OutlierBackend,
  type OutlierStep,
  type OutlierVerdict,
} from '../../src/passive/outlier.js';
import { classifyStatus } from '../../src/passive/parse.js';
import type { Outcome } from '../../src/passive/types.js';

const cfg: PassiveConfig = { ...DEFAULT_PASSIVE_CONFIG, latency: { ...DEFAULT_PASSIVE_CONFIG.latency } };
const BASE = cfg.base_ejection_time_seconds * 1000;
const MAX = cfg.max_ejection_time_seconds * 1000;
const INTERVAL = cfg.interval_seconds * 1000;

const addr = (n: number) => `127.0.0.1:${8000 + n}`;
const id = (n: number) => `web/${addr(n)}`;

/** Backends 1..count of app web; `down` lists the ones not routable. */
function backends(count: number, down: number[] = []): Map<string, OutlierBackend> {
  const map = new Map<string, OutlierBackend>();
  for (let n = 1; n <= count; n++) map.set(addr(n), { id: id(n), address: addr(n), routable: !down.includes(n) });
  return map;
}

function outcome(n: number, status: number | null, ms: number | null = 5, at = 0): Outcome {
  return { app: 'web', address: addr(n), status, responseTimeMs: ms, connectTimeMs: status === 502 ? null : 1, kind: classifyStatus(status), at };
}

/** A tiny driver: one app, a clock, the state threaded through. */
function detector(opts: { count?: number; down?: number[]; config?: PassiveConfig; start?: number } = {}) {
  let state: AppOutlierState = initialAppOutliers();
  let now = opts.start ?? 1_000_000;
  let map = backends(opts.count ?? 3, opts.down);
  const c = opts.config ?? cfg;
  const step = (input: { outcomes?: Outcome[]; probeSuccesses?: string[] } = {}): OutlierStep => {
    const r = stepOutliers(state, { app: 'web', backends: map, ...input }, c, now);
    state = r.state;
    return r;
  };
  return {
    step,
    /** Sends `k` outcomes of backend n with `status`, one step; returns the verdicts. */
    send: (n: number, status: number | null, k = 1, ms: number | null = 5): OutlierVerdict[] =>
      step({ outcomes: Array.from({ length: k }, () => outcome(n, status, ms, now)) }).verdicts,
    advance: (ms: number) => (now += ms),
    get now() {
      return now;
    },
    get state() {
      return state;
    },
    setBackends: (count: number, down: number[] = []) => (map = backends(count, down)),
  };
}

describe('consecutive 5xx', () => {
  it('ejects a backend after 5 consecutive 5xx, for the base ejection time', () => {
    const d = detector();
    expect(d.send(1, 500, 4)).toEqual([]);
    const [v] = d.send(1, 500);
    expect(v).toMatchObject({ kind: 'eject', app: 'web', backendId: id(1), address: addr(1), rule: 'consecutive_5xx', durationMs: BASE, timesEjected: 1 });
    expect(v!.reason).toMatch(/^5 consecutive 5xx \(last: 500 after 5 ms from 127\.0\.0\.1:8001\); ejected for 30 s \(ejection 1 in a row\)$/);
    expect(d.state.backends[id(1)]!.ejection).toEqual({ rule: 'consecutive_5xx', at: d.now, until: d.now + BASE });
  });

  it('starts counting again after any answer below 500, 4xx included', () => {
    const d = detector();
    d.send(1, 500, 4);
    d.send(1, 404);
    expect(d.send(1, 500, 4)).toEqual([]);
    d.send(1, 200);
    expect(d.send(1, 503, 4)).toEqual([]);
    expect(d.send(1, 500)).toHaveLength(1);
  });

  it('counts gateway failures as 5xx too (Envoy), so mixed 500s and 502s eject under consecutive_5xx', () => {
    const d = detector();
    d.send(1, 500);
    d.send(1, 502);
    d.send(1, 500);
    d.send(1, 504);
    const [v] = d.send(1, 501);
    expect(v).toMatchObject({ kind: 'eject', rule: 'consecutive_5xx' });
  });

  it('is off with consecutive_5xx 0', () => {
    const d = detector({ config: { ...cfg, consecutive_5xx: 0 } });
    expect(d.send(1, 500, 50)).toEqual([]);
  });

  it('ignores outcomes without a status and "no live upstreams" lines: they neither count nor reset', () => {
    const d = detector();
    d.send(1, 500, 4);
    d.send(1, null);
    d.step({ outcomes: [{ ...outcome(1, 502), address: 'web', kind: 'no_live' }] });
    expect(d.send(1, 500)).toHaveLength(1);
  });
});

describe('consecutive gateway failures', () => {
  it('ejects after 5 consecutive 502/503/504 (connect errors and timeouts as nginx reports them)', () => {
    const d = detector();
    d.send(2, 502, 2);
    d.send(2, 504, 2);
    const [v] = d.send(2, 503);
    expect(v).toMatchObject({ kind: 'eject', rule: 'consecutive_gateway_failure', backendId: id(2), timesEjected: 1, durationMs: BASE });
    expect(v!.reason).toContain('5 consecutive gateway failures (last: 503');
  });

  it('names a failed connection in the reason', () => {
    const d = detector();
    const [v] = d.send(2, 502, 5, 0);
    expect(v!.reason).toContain('502 after 0 ms, no connection from 127.0.0.1:8002');
  });

  it('is counted separately: a 500 between gateway failures restarts the gateway count only', () => {
    const d = detector({ config: { ...cfg, consecutive_5xx: 100 } });
    d.send(1, 502, 4);
    d.send(1, 500);
    expect(d.send(1, 502, 4)).toEqual([]);
    expect(d.send(1, 502)).toMatchObject([{ rule: 'consecutive_gateway_failure' }]);
  });

  it('restarts only its own count when refused, so consecutive_5xx keeps counting (Envoy)', () => {
    const d = detector({ count: 2, down: [2], config: { ...cfg, consecutive_gateway_failure: 3 } });
    expect(d.send(1, 502, 3)).toMatchObject([{ kind: 'suppressed', rule: 'consecutive_gateway_failure' }]);
    expect(d.send(1, 500, 2)).toMatchObject([{ kind: 'suppressed', rule: 'consecutive_5xx' }]);
  });

  it('is off with consecutive_gateway_failure 0, leaving consecutive_5xx to act', () => {
    const d = detector({ config: { ...cfg, consecutive_gateway_failure: 0 } });
    expect(d.send(1, 502, 5)).toMatchObject([{ rule: 'consecutive_5xx' }]);
  });
});

describe('ejection time and its multiplier', () => {
  it('releases the backend when its time is up, not before, with counters reset', () => {
    const d = detector();
    d.send(1, 500, 5);
    d.advance(BASE - 1);
    expect(d.step().verdicts).toEqual([]);
    d.advance(1);
    const [v] = d.step().verdicts;
    expect(v).toMatchObject({ kind: 'release', backendId: id(1), rule: 'consecutive_5xx', at: d.now });
    expect(v!.reason).toBe('passive ejection of 30 s is over');
    expect(d.state.backends[id(1)]).toMatchObject({ ejection: null, consecutive5xx: 0, consecutiveGateway: 0, timesEjected: 1 });
  });

  it('ignores outcomes of an ejected backend (in-flight requests logged late)', () => {
    const d = detector();
    d.send(1, 500, 5);
    expect(d.send(1, 500, 20)).toEqual([]);
    d.advance(BASE);
    d.step();
    expect(d.state.backends[id(1)]!.consecutive5xx).toBe(0);
  });

  it('lasts base x times ejected, capped at max_ejection_time, the count stopping one step past the cap', () => {
    const d = detector();
    const durations: number[] = [];
    const times: number[] = [];
    for (let i = 0; i < 13; i++) {
      const [v] = d.send(1, 500, 5);
      if (v?.kind !== 'eject') throw new Error('expected an ejection');
      durations.push(v.durationMs / 1000);
      times.push(v.timesEjected);
      d.advance(v.durationMs);
      d.step();
    }
    expect(durations).toEqual([30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300, 300]);
    // Envoy's rule: grow while base x times < max + base.
    expect(times).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 11]);
    expect(MAX).toBe(300_000);
  });

  it('decays the multiplier by one per interval the backend stays in after release', () => {
    const d = detector();
    d.send(1, 500, 5);
    d.advance(BASE);
    d.step();
    d.send(1, 500, 5);
    d.advance(2 * BASE);
    d.step(); // released, timesEjected 2
    d.advance(INTERVAL - 1);
    d.step();
    expect(d.state.backends[id(1)]!.timesEjected).toBe(2);
    d.advance(1);
    d.step();
    expect(d.state.backends[id(1)]!.timesEjected).toBe(1);
    expect(d.send(1, 500, 5)).toMatchObject([{ kind: 'eject', durationMs: 2 * BASE, timesEjected: 2 }]);
  });

  it('decays several steps at once after a long quiet spell, never below zero', () => {
    const d = detector();
    d.send(1, 500, 5);
    d.advance(BASE);
    d.step();
    d.advance(10 * INTERVAL);
    d.step();
    expect(d.state.backends[id(1)]!.timesEjected).toBe(0);
    expect(d.send(1, 500, 5)).toMatchObject([{ durationMs: BASE, timesEjected: 1 }]);
  });

  it('does not decay while the backend is out for another reason (not routable)', () => {
    const d = detector();
    d.send(1, 500, 5);
    d.advance(BASE);
    d.step();
    d.setBackends(3, [1]);
    d.advance(5 * INTERVAL);
    d.step();
    expect(d.state.backends[id(1)]!.timesEjected).toBe(1);
    d.setBackends(3);
    d.advance(INTERVAL);
    d.step();
    expect(d.state.backends[id(1)]!.timesEjected).toBe(0);
  });
});

describe('limits', () => {
  it('never ejects more than max_ejection_percent of the app, and says so', () => {
    const d = detector({ count: 4 });
    expect(d.send(1, 500, 5)).toMatchObject([{ kind: 'eject' }]);
    expect(d.send(2, 500, 5)).toMatchObject([{ kind: 'eject' }]);
    const [v] = d.send(3, 500, 5);
    expect(v).toMatchObject({ kind: 'suppressed', rule: 'consecutive_5xx', backendId: id(3) });
    expect(v!.reason).toContain('not ejected: max_ejection_percent is 50 % and 2 of 4 backends are ejected already');
    expect(d.state.backends[id(3)]!.ejection).toBeNull();
    // The count restarted, as Envoy's does: five more before it speaks again.
    expect(d.send(3, 500, 4)).toEqual([]);
    expect(d.send(3, 500)).toMatchObject([{ kind: 'suppressed' }]);
  });

  it('never ejects the last routable backend of an app', () => {
    const d = detector({ count: 2, down: [2], config: { ...cfg, max_ejection_percent: 100 } });
    const verdicts = d.send(1, 502, 5);
    // Both rules fired on the fifth 502: one attempt, under the gateway rule, stands for both.
    expect(verdicts).toHaveLength(1);
    const [v] = verdicts;
    expect(v).toMatchObject({ kind: 'suppressed', rule: 'consecutive_gateway_failure' });
    expect(v!.reason).toContain('not ejected: it is the last routable backend of web');
  });

  it('counts its own ejections as not routable, whatever the caller says', () => {
    const d = detector({ count: 2, config: { ...cfg, max_ejection_percent: 100 } });
    expect(d.send(1, 500, 5)).toMatchObject([{ kind: 'eject' }]);
    expect(d.send(2, 500, 5)).toMatchObject([{ kind: 'suppressed' }]);
  });

  it('ejects one of two backends at the default 50 %', () => {
    const d = detector({ count: 2 });
    expect(d.send(2, 500, 5)).toMatchObject([{ kind: 'eject' }]);
  });
});

describe('probe successes', () => {
  it('end a gateway-failure ejection early (the backend accepts connections again)', () => {
    const d = detector();
    d.send(1, 502, 5);
    d.advance(1000);
    const [v] = d.step({ probeSuccesses: [id(1)] }).verdicts;
    expect(v).toMatchObject({ kind: 'release', rule: 'consecutive_gateway_failure', backendId: id(1) });
    expect(v!.reason).toBe('a probe succeeded, so the backend accepts connections again');
  });

  it('do not end a 5xx or latency ejection by default: /health passing says nothing of real requests', () => {
    const d = detector();
    d.send(1, 500, 5);
    expect(d.step({ probeSuccesses: [id(1)] }).verdicts).toEqual([]);
  });

  it('end every passive ejection with probe_success_releases all, none with none', () => {
    const all = detector({ config: { ...cfg, probe_success_releases: 'all' } });
    all.send(1, 500, 5);
    expect(all.step({ probeSuccesses: [id(1)] }).verdicts).toMatchObject([{ kind: 'release' }]);
    const none = detector({ config: { ...cfg, probe_success_releases: 'none' } });
    none.send(1, 502, 5);
    expect(none.step({ probeSuccesses: [id(1)] }).verdicts).toEqual([]);
  });

  it('of a backend that is not ejected change nothing', () => {
    const d = detector();
    expect(d.step({ probeSuccesses: [id(1), 'web/unknown:1'] }).verdicts).toEqual([]);
  });
});

describe('latency outliers', () => {
  /** Backends 2 and 3 answer in `others` ms, backend 1 in `slow` ms, `k` requests each. */
  function traffic(d: ReturnType<typeof detector>, slow: number, others: number, k: number): OutlierVerdict[] {
    const outcomes: Outcome[] = [];
    for (let i = 0; i < k; i++) outcomes.push(outcome(1, 200, slow, d.now), outcome(2, 200, others, d.now), outcome(3, 200, others, d.now));
    return d.step({ outcomes }).verdicts;
  }

  it('ejects a backend whose mean is above factor x the median of the others and above the floor', () => {
    const d = detector();
    const [v] = traffic(d, 2000, 10, 5);
    expect(v).toMatchObject({ kind: 'eject', rule: 'latency', backendId: id(1), durationMs: BASE });
    expect(v!.reason).toMatch(/^latency outlier: mean 2000 ms over 5 requests > 3 x 10 ms \(median of 2 other backends\) and > 500 ms; ejected/);
  });

  it('waits for min_samples of the backend', () => {
    const d = detector();
    expect(traffic(d, 2000, 10, 4)).toEqual([]);
    expect(traffic(d, 2000, 10, 1)).toHaveLength(1);
  });

  it('leaves a slow backend alone under the absolute floor', () => {
    const d = detector();
    expect(traffic(d, 400, 10, 10)).toEqual([]);
  });

  it('leaves a backend alone within factor x the others', () => {
    const d = detector();
    expect(traffic(d, 1400, 500, 10)).toEqual([]);
  });

  it('leaves an app alone when every backend is slow', () => {
    const d = detector();
    expect(traffic(d, 3000, 2900, 10)).toEqual([]);
  });

  it('needs other backends with min_samples to compare with', () => {
    const d = detector();
    const outcomes = [...Array(10).fill(0).map(() => outcome(1, 200, 3000, d.now)), outcome(2, 200, 5, d.now)];
    expect(d.step({ outcomes }).verdicts).toEqual([]);
  });

  it('forgets samples older than the window', () => {
    const d = detector();
    traffic(d, 10, 10, 5);
    d.send(1, 200, 4, 3000);
    d.advance(cfg.latency.window_seconds * 1000 + 1);
    // Backend 1's 3 s samples aged out; backends 2 and 3 too, so nothing to compare with either.
    expect(d.send(1, 200, 1, 3000)).toEqual([]);
  });

  it('counts only successful answers: fast 500s do not hide a slow backend, nor do they make one', () => {
    const d = detector({ config: { ...cfg, consecutive_5xx: 0, consecutive_gateway_failure: 0 } });
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 10; i++) outcomes.push(outcome(1, 500, 9000, d.now), outcome(2, 200, 10, d.now), outcome(3, 200, 10, d.now));
    expect(d.step({ outcomes }).verdicts).toEqual([]);
  });

  it('is refused like the other rules and then waits for min_samples again', () => {
    const d = detector({ count: 2, down: [2] });
    d.setBackends(2, [2]);
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 5; i++) outcomes.push(outcome(1, 200, 2000, d.now), outcome(2, 200, 10, d.now));
    expect(d.step({ outcomes }).verdicts).toMatchObject([{ kind: 'suppressed', rule: 'latency' }]);
    expect(d.send(1, 200, 1, 2000)).toEqual([]);
  });

  it('is off with latency.enabled false', () => {
    const d = detector({ config: { ...cfg, latency: { ...cfg.latency, enabled: false } } });
    expect(traffic(d, 5000, 10, 10)).toEqual([]);
    expect(d.state.backends[id(1)]!.samples).toEqual([]);
  });

  it('keeps at most window_samples per backend', () => {
    const d = detector();
    traffic(d, 10, 10, 50);
    expect(d.state.backends[id(1)]!.samples).toHaveLength(cfg.latency.window_samples);
  });

  it('takes the median of the others without the candidate', () => {
    expect(medianWithout([10, 20, 2000], 2000)).toBe(15);
    expect(medianWithout([10, 20, 30, 2000], 2000)).toBe(20);
    expect(medianWithout([10, 2000], 2000)).toBe(10);
    expect(medianWithout([2000], 2000)).toBeNull();
    expect(medianWithout([10, 20, 30], 99)).toBe(20);
  });
});

describe('state', () => {
  it('is plain data that survives JSON and a restart', () => {
    const d = detector();
    d.send(1, 500, 5);
    d.send(2, 502, 3);
    d.send(3, 200, 7, 12);
    const restored = restoreAppOutliers(JSON.parse(JSON.stringify(d.state)));
    expect(restored).toEqual(d.state);
    // The restored state goes on where the old one stopped (a fourth backend keeps 2 of 4 within 50 %).
    const r = stepOutliers(restored, { app: 'web', backends: backends(4), outcomes: [outcome(2, 502), outcome(2, 502)] }, cfg, d.now);
    expect(r.verdicts).toMatchObject([{ kind: 'eject', backendId: id(2) }]);
  });

  it('restores damaged rows as a fresh start, entry by entry', () => {
    const d = detector();
    d.send(1, 500, 5);
    const good = d.state.backends[id(1)]!;
    const restored = restoreAppOutliers({ backends: { [id(1)]: good, [id(2)]: { address: 5 }, [id(3)]: { ...good, samples: [[1, 'x']] } } });
    expect(Object.keys(restored.backends)).toEqual([id(1)]);
    for (const junk of [null, 42, 'x', { backends: 'no' }, []]) expect(restoreAppOutliers(junk)).toEqual(initialAppOutliers());
  });

  it('is never mutated by a step', () => {
    const d = detector();
    d.send(1, 500, 4);
    const before = JSON.stringify(d.state);
    const frozen = d.state;
    stepOutliers(frozen, { app: 'web', backends: backends(3), outcomes: [outcome(1, 500), outcome(2, 200, 900)] }, cfg, d.now + BASE);
    expect(JSON.stringify(frozen)).toBe(before);
  });

  it('forgets backends the app no longer has', () => {
    const d = detector();
    d.send(3, 500, 5);
    d.setBackends(2);
    d.step();
    expect(d.state.backends[id(3)]).toBeUndefined();
  });

  it('counts outcomes of addresses that are none of the app backends', () => {
    const d = detector();
    expect(d.step({ outcomes: [{ ...outcome(9, 500) }, outcome(1, 200)] }).unmatched).toBe(1);
  });

  it('tells when stepping with nothing new would change something: a release or a decay', () => {
    const d = detector();
    expect(nextOutlierDeadline(d.state, cfg)).toBeNull();
    d.send(1, 500, 5);
    const ejectedAt = d.now;
    expect(nextOutlierDeadline(d.state, cfg)).toBe(ejectedAt + BASE);
    d.advance(BASE);
    d.step();
    expect(nextOutlierDeadline(d.state, cfg)).toBe(d.now + INTERVAL);
  });

  it('splits a receiver batch by app, in order', () => {
    const a = outcome(1, 200);
    const b = { ...outcome(1, 500), app: 'api' };
    const c = outcome(2, 200);
    expect([...groupOutcomesByApp([a, b, c])]).toEqual([
      ['web', [a, c]],
      ['api', [b]],
    ]);
  });
});

describe('passive config', () => {
  it('has defaults that pass its own checks', () => {
    const r = parseConfig({ apps: { web: {} }, passive: {} });
    expect(r.ok && r.config.passive).toEqual(DEFAULT_PASSIVE_CONFIG);
  });

  it('names each bad setting by its path', () => {
    const r = parseConfig({
      apps: { web: {} },
      passive: {
        listen: 'nowhere',
        tag: 'no-dashes',
        allow_from: ['10.0.0.1', 'host'],
        max_ejection_time_seconds: 10,
        max_ejection_percent: 101,
        latency: { factor: 1, window_samples: 2 },
      },
    });
    expect(r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'passive.listen: must be "host:port" or "[ipv6]:port" (got "nowhere")',
      'passive.allow_from[1]: must be an IP address (got "host")',
      'passive.tag: must be 1 to 32 letters, digits or _, as nginx\'s tag= allows (got "no-dashes")',
      'passive.max_ejection_percent: must be between 0 and 100 (got 101)',
      'passive.latency.factor: must be greater than 1 (got 1)',
      'passive.max_ejection_time_seconds: must be at least base_ejection_time_seconds (got 10 < 30)',
      'passive.latency.window_samples: must be at least min_samples (got 2 < 5)',
    ]);
  });

  it('reads listen addresses as nginx writes syslog servers', () => {
    expect(parseListen('127.0.0.1:5514')).toEqual({ host: '127.0.0.1', port: 5514 });
    expect(parseListen('[::1]:5514')).toEqual({ host: '::1', port: 5514 });
    expect(parseListen('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseListen('127.0.0.1')).toBeNull();
    expect(parseListen('1.2.3.4:70000')).toBeNull();
  });
});
