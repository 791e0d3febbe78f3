/**
 * Why a passive ejection happened decides whether reload mode leaves it to nginx
 * (nginx.leave_to_nginx): a 502 nginx wrote itself is a failure nginx retries (`refused`).
 */
import { describe, expect, it } from 'vitest';
import { causeOf, fiveXxHandling } from '../../src/passive/monitor.js';
import type { Outcome } from '../../src/passive/types.js';

const outcome = (over: Partial<Outcome>): Outcome => ({
  app: 'web', address: '127.0.0.1:8001', status: 502, responseTimeMs: 0, connectTimeMs: 0, kind: 'gateway', at: 0, ...over,
});

describe('the cause of a passive ejection', () => {
  it('is refused when nginx got no connection, or a connection closed before any response header (a killed backend resets kept-alive ones)', () => {
    expect(causeOf('consecutive_gateway_failure', outcome({ connectTimeMs: null }))).toBe('refused');
    expect(causeOf('consecutive_gateway_failure', outcome({ connectTimeMs: 0, headerTimeMs: null }))).toBe('refused');
  });

  it('is status when the backend itself answered 502, or when the log format cannot tell', () => {
    expect(causeOf('consecutive_gateway_failure', outcome({ headerTimeMs: 3 }))).toBe('status');
    expect(causeOf('consecutive_gateway_failure', outcome({}))).toBe('status');
    expect(causeOf('consecutive_5xx', outcome({ status: 500, kind: '5xx', headerTimeMs: null }))).toBe('status');
  });

  it('is timeout for a 504 and slow for the latency rule', () => {
    expect(causeOf('consecutive_gateway_failure', outcome({ status: 504, headerTimeMs: null }))).toBe('timeout');
    expect(causeOf('latency', outcome({ status: 200, kind: 'ok' }))).toBe('slow');
  });
});

describe("what nginx did with a backend's 5xx", () => {
  it('is retried when nginx went on to another server after it, served when it was the answer the client got; the latest counts', () => {
    const a = '127.0.0.1:8001';
    const b = '127.0.0.1:8002';
    const got = fiveXxHandling([
      outcome({ address: a, status: 500, kind: '5xx', retried: true }),
      outcome({ address: b, status: 503, kind: 'gateway', headerTimeMs: 2, retried: true }),
      outcome({ address: b, status: 500, kind: '5xx' }),
    ]);
    expect(Object.fromEntries(got)).toEqual({ [a]: 'retried', [b]: 'served' });
  });

  it("says nothing of nginx's own 502 (no connection or no response header), a 504 (its read timeout) or answers below 500", () => {
    expect(fiveXxHandling([
      outcome({ connectTimeMs: null }),
      outcome({ headerTimeMs: null }),
      outcome({ status: 504, headerTimeMs: null }),
      outcome({ status: 404, kind: 'ok' }),
      outcome({ status: 200, kind: 'ok', retried: true }),
    ]).size).toBe(0);
  });
});
