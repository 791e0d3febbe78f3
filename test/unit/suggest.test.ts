import { describe, expect, it } from 'vitest';
import { closest, didYouMean, editDistance } from '../../src/suggest.js';

describe('did you mean', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('wieght', 'weight')).toBe(1);
    expect(editDistance('perod_seconds', 'period_seconds')).toBe(1);
    expect(editDistance('abc', 'abc')).toBe(0);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });

  it('stops counting past the limit', () => {
    expect(editDistance('a', 'completely different', 2)).toBe(3);
  });

  it('suggests the closest known word, ignoring case', () => {
    const keys = ['period_seconds', 'timeout_seconds', 'failure_threshold', 'success_threshold'];
    expect(closest('perod_seconds', keys)).toBe('period_seconds');
    expect(closest('TIMEOUT_SECONDS', keys)).toBe('timeout_seconds');
    expect(closest('failure_treshold', keys)).toBe('failure_threshold');
  });

  it('suggests a word that contains the one written (or the reverse) when no edit is close', () => {
    expect(closest('threshold', ['failure_threshold', 'window_seconds'])).toBe('failure_threshold');
    expect(closest('hours', ['hours', 'json'])).toBe('hours');
    expect(closest('--jsonn', ['--json', '--hours'])).toBe('--json');
  });

  it('suggests nothing when nothing is close', () => {
    expect(closest('bogus', ['backends', 'health', 'upstream'])).toBeUndefined();
    expect(closest('not_a_key', ['listen', 'token'])).toBeUndefined();
    expect(didYouMean('x', [])).toBe('');
  });

  it('phrases the suggestion with the quoting asked for', () => {
    expect(didYouMean('wieght', ['address', 'weight', 'backup'])).toBe(' (did you mean "weight"?)');
    expect(didYouMean('--hour', ['--hours'], (s) => s)).toBe(' (did you mean --hours?)');
  });
});
