/**
 * `expected_body` regular expressions against hostile response bodies, through the real HTTP
 * prober and its worker thread: nothing a pattern the config accepts does can stall the event
 * loop, and a match that runs too long is the sidecar's problem (a local error), not the
 * backend's.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExpectedBody } from '../../src/config/expected-body.js';
import { createBodyMatcher, MATCH_BUDGET_MS } from '../../src/probe/body-matcher.js';
import { createHttpProber } from '../../src/probe/http.js';
import { createSystemClock } from '../../src/clock.js';
import { probeBackend } from '../helpers/fixtures.js';
import { listenHttp, type LoopbackServer } from '../helpers/probe-servers.js';

/** Catastrophic backtracking for irregexp: nested quantifiers, then a character that fails. */
const EXPONENTIAL = '/^(\\w+\\s?)*$/';
/**
 * Accepted (linear time, 929 characters) but heavy: each `(?:a?a?a?a?){16}` is 64 optional
 * states, all alive at once on a body of `a`s. 0.6 to 0.7 s a match on 4 KB measured on this
 * 2-core machine, well past the budget.
 */
const HEAVY = `/${'(?:a?a?a?a?){16}'.repeat(58)}y/`;

describe('expected_body regular expressions on hostile bodies', () => {
  const prober = createHttpProber({ version: '1.2.3' });
  let hostile: LoopbackServer;
  let fine: LoopbackServer;
  beforeAll(async () => {
    // 40 letters then '!' is the report; a full 4 KB body is the worst a probe reads.
    hostile = await listenHttp((req, res) => res.end(req.url === '/short' ? `${'a'.repeat(40)}!` : 'a'.repeat(4096)));
    fine = await listenHttp((_req, res) => res.end('{"status":"ok"}'));
  });
  afterAll(async () => {
    await prober.close();
    await Promise.all([hostile.close(), fine.close()]);
  });

  it('accepts both patterns in the config check', () => {
    expect(parseExpectedBody(EXPONENTIAL)).toMatchObject({ kind: 'regex' });
    expect(parseExpectedBody(HEAVY)).toMatchObject({ kind: 'regex' });
  });

  it('judges a pattern that backtracks exponentially in irregexp at once, by its real answer', async () => {
    const started = performance.now();
    const short = await prober.probe(probeBackend(hostile.port, { path: '/short', expected_body: EXPONENTIAL }));
    const long = await prober.probe(probeBackend(hostile.port, { path: '/long', expected_body: EXPONENTIAL }));
    expect(short).toMatchObject({ healthy: false, errorClass: 'unexpected_body' });
    // 4,096 letters and no '!': the pattern does match.
    expect(long).toMatchObject({ healthy: true });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('stops a match past its budget as a local error, without stalling the event loop, and suspends the pattern', async () => {
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const started = performance.now();
    const [heavy, other] = await Promise.all([
      prober.probe(probeBackend(hostile.port, { path: '/long', expected_body: HEAVY, timeout_seconds: 5 })),
      prober.probe(probeBackend(fine.port, { expected_body: '/"status":\\s*"ok"/', timeout_seconds: 5 })),
    ]);
    delay.disable();
    expect(heavy).toMatchObject({ healthy: false, errorClass: 'local_error' });
    expect(heavy.error).toContain(`took longer than ${MATCH_BUDGET_MS} ms to match`);
    // Queued behind the heavy match, the other app's pattern still gets its answer from a new worker.
    expect(other).toMatchObject({ healthy: true });
    expect(performance.now() - started).toBeLessThan(MATCH_BUDGET_MS + 2000);
    expect(delay.max / 1e6).toBeLessThan(100);

    const again = await prober.probe(probeBackend(hostile.port, { path: '/long', expected_body: HEAVY }));
    expect(again).toMatchObject({ healthy: false, errorClass: 'local_error' });
    expect(again.error).toContain('is suspended');
  });

  it('does not charge a probe the wait behind another pattern overrunning: its match still gives the verdict', async () => {
    const own = createHttpProber({ version: '1.2.3' });
    // Answers a little after the heavy body, so its match queues behind the heavy one.
    const late = await listenHttp((_req, res) => void setTimeout(() => res.end('{"status":"ok"}'), 50));
    try {
      const [heavy, other] = await Promise.all([
        own.probe(probeBackend(hostile.port, { path: '/long', expected_body: HEAVY, timeout_seconds: 5 })),
        // A deadline shorter than the heavy match's budget: the answer is in long before it.
        own.probe(probeBackend(late.port, { expected_body: '/"status":\\s*"ok"/', timeout_seconds: 0.2 })),
      ]);
      expect(heavy).toMatchObject({ healthy: false, errorClass: 'local_error' });
      expect(heavy.error).toContain(`took longer than ${MATCH_BUDGET_MS} ms to match`);
      expect(other).toMatchObject({ healthy: true });
    } finally {
      await own.close();
      await late.close();
    }
  });
});

describe('body matcher', () => {
  it('answers in order, replaces a worker stopped mid-match and keeps answering', async () => {
    const matcher = createBodyMatcher({ clock: createSystemClock(), budgetMs: 100, suspendMs: 60_000 });
    try {
      const heavy = HEAVY.slice(1, -1);
      const results = await Promise.all([
        matcher.match('ok', '', 'it is ok'),
        matcher.match(heavy, '', 'a'.repeat(4096)),
        matcher.match('^x', 'm', 'a\nx'),
        matcher.match('^x', '', 'a\nx'),
      ]);
      expect(results[0]).toBe(true);
      expect(results[1]).toEqual(expect.stringContaining('took longer than 100 ms'));
      expect(results.slice(2)).toEqual([true, false]);
      expect(await matcher.match(heavy, '', 'short')).toEqual(expect.stringContaining('is suspended'));
      expect(await matcher.match('s', '', 'yes')).toBe(true);
    } finally {
      await matcher.close();
    }
  });

  it('answers every match still waiting when it is closed', async () => {
    const matcher = createBodyMatcher({ clock: createSystemClock() });
    const pending = matcher.match(HEAVY.slice(1, -1), '', 'a'.repeat(4096));
    await matcher.close();
    expect(await pending).toBe('expected_body matcher closed');
    expect(await matcher.match('a', '', 'a')).toBe('expected_body matcher closed');
  });
});
