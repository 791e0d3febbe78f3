/**
 * In DNS mode nginx answers 502 to a retry once the upstream's servers changed since the request
 * began, so a backend that hangs is ejected only after nginx's read timeout has run out for the
 * requests the hang caught (nginx.proxy_read_timeout_seconds, from its first timed-out probe).
 */
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { DEFAULT_BREAKER_CONFIG } from '../../src/health/breaker.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { DEFAULT_HEALTH } from '../../src/config/schema.js';
import type { ProbeResult } from '../../src/model.js';
import { backend, failureDetection, probeResult } from '../helpers/fixtures.js';

const b = backend({ app: 'web', port: 8001, health: { ...DEFAULT_HEALTH, initial_delay_seconds: 0, failure_threshold: 3, success_threshold: 1, timeout_seconds: 0.5 } });

function setup(holdMs: number | ((app: string) => number)) {
  const clock = createManualClock(1_000_000);
  const registry = createHealthRegistry({ clock, breaker: { ...DEFAULT_BREAKER_CONFIG, failure_threshold: 3 }, detection: failureDetection(), timeoutHoldMs: typeof holdMs === 'number' ? () => holdMs : holdMs });
  registry.sync([b]);
  /** A probe that began `took` ms ago and ended now with `over`; returns the statuses it left. */
  const probe = (over: Partial<ProbeResult>, took = 500) => {
    const now = clock.now();
    registry.tick(b.id);
    registry.record(probeResult({ backendId: b.id, app: 'web', startedAt: now - took, finishedAt: now, responseTimeMs: took, ...over }));
    const v = registry.view(b.id)!;
    return { health: v.health, breaker: v.breaker, ejected: v.ejected };
  };
  const timeout = { healthy: false, statusCode: null, body: null, errorClass: 'timeout' as const, error: 'timeout after 500 ms' };
  const refused = { healthy: false, statusCode: null, body: null, errorClass: 'connection_refused' as const, error: 'connect ECONNREFUSED 127.0.0.1:8001' };
  return { clock, probe, timeout, refused };
}

describe('timed-out probes while nginx may still retry', () => {
  it('keep a hung backend routed until the read timeout has passed since its first timed-out probe began, then eject it at the next', () => {
    const { clock, probe, timeout } = setup(3_000);
    expect(probe({ healthy: true, statusCode: 200 })).toMatchObject({ ejected: false });
    // Fast probes: three, four, five timeouts within 2.5 s of the first one's start.
    for (let i = 0; i < 5; i++) {
      clock.advance(500);
      expect(probe(timeout)).toMatchObject({ health: 'healthy', breaker: 'closed', ejected: false });
    }
    // The first timed-out probe began at +0 ms (ended +500): +3,000 ms is nginx's read timeout.
    clock.advance(500);
    expect(probe(timeout)).toMatchObject({ health: 'unhealthy', breaker: 'open', ejected: true });
  });

  it.each([
    ['when there is no hold (reload mode)', 0],
    ["of an app nginx's DNS mode cannot resolve (its servers listed, reloaded): holds are per app", (app: string) => (app === 'web' ? 0 : 3_000)],
  ])('eject at the failure threshold %s', (_what, hold) => {
    const { clock, probe, timeout } = setup(hold);
    probe({ healthy: true, statusCode: 200 });
    clock.advance(500);
    probe(timeout);
    clock.advance(500);
    probe(timeout);
    clock.advance(500);
    expect(probe(timeout)).toMatchObject({ health: 'unhealthy', ejected: true });
  });

  it('do not hold refused connections: nginx retried those at once', () => {
    const { clock, probe, refused } = setup(3_000);
    probe({ healthy: true, statusCode: 200 });
    for (let i = 0; i < 2; i++) {
      clock.advance(250);
      expect(probe(refused, 1)).toMatchObject({ ejected: false });
    }
    clock.advance(250);
    expect(probe(refused, 1)).toMatchObject({ health: 'unhealthy', ejected: true });
  });

  it('count the hold again from a new run of timeouts after an answer', () => {
    const { clock, probe, timeout } = setup(3_000);
    probe({ healthy: true, statusCode: 200 });
    for (let i = 0; i < 4; i++) {
      clock.advance(500);
      probe(timeout);
    }
    clock.advance(500);
    expect(probe({ healthy: true, statusCode: 200 })).toMatchObject({ ejected: false });
    // 3 s after the first run began, but only 1 s into the second one.
    for (let i = 0; i < 3; i++) {
      clock.advance(500);
      expect(probe(timeout)).toMatchObject({ ejected: false });
    }
  });
});
