import { describe, expect, it } from 'vitest';
import { linearRegExp, parseExpectedBody } from '../../src/config/expected-body.js';

describe('expected_body', () => {
  it('reads plain text as a substring and /pattern/flags as a regular expression', () => {
    expect(parseExpectedBody('"ok"')).toEqual({ kind: 'substring', text: '"ok"' });
    expect(parseExpectedBody('/^status: (up|ok)$/m')).toEqual({ kind: 'regex', source: '^status: (up|ok)$', flags: 'm' });
  });

  it('matches what the same JavaScript regular expression matches', () => {
    const re = linearRegExp('^status: (up|ok)$', 'm');
    expect(re.test('x\nstatus: ok\n')).toBe(true);
    expect(re.test('status: degraded')).toBe(false);
    expect(linearRegExp('(?<=status":)"ok"', '').test('{"status":"ok"}')).toBe(true);
  });

  it('runs a pattern that backtracks exponentially in irregexp in linear time', () => {
    // irregexp takes ~0.4 s at 26 letters and doubles with each one; 4,096 would never end.
    const re = linearRegExp('^(\\w+\\s?)*$', '');
    const started = performance.now();
    expect(re.test(`${'a'.repeat(4096)}!`)).toBe(false);
    expect(re.test('a'.repeat(4096))).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
