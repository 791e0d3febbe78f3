import { describe, expect, it } from 'vitest';
import { aggOf, aggsOf, appendRow, createMinuteRows } from '../../src/store/minute-rows.js';
import { addSample, newAgg, type MinuteAgg } from '../../src/store/report.js';
import { seededRandom } from '../helpers/fixtures.js';

/** Rows for `backends` indexes (every third one left without rows), and the aggregates made row by row. */
function fixture(rowsWanted: number, backends: number) {
  const random = seededRandom(7);
  const rows = createMinuteRows();
  const expected = new Map<number, MinuteAgg>();
  for (let i = 0; i < rowsWanted; i++) {
    let b = Math.floor(random() * backends);
    if (b % 3 === 2) b -= 1;
    const us = Math.floor(random() * 5000);
    const e = random() < 0.1 ? 1 + Math.floor(random() * 4) : 0;
    appendRow(rows, b, us, e);
    let agg = expected.get(b);
    if (!agg) expected.set(b, (agg = newAgg()));
    addSample(agg, us, e);
  }
  return { rows, expected };
}

describe('a minute of probe results kept as rows', () => {
  it('gives each backend the aggregate that adding its results one by one gives, in index order', () => {
    // More rows than the first allocation holds: the columns grow and keep what they had.
    const { rows, expected } = fixture(5000, 60);
    const got = [...aggsOf(rows)];
    expect(got.map(([b]) => b)).toEqual([...expected.keys()].sort((x, y) => x - y));
    for (const [b, agg] of got) expect(agg).toEqual(expected.get(b));
    expect(got.reduce((n, [, agg]) => n + agg.n, 0)).toBe(5000);
  });

  it('gives one backend its aggregate on demand, and null for a backend without results', () => {
    const { rows, expected } = fixture(3000, 30);
    expect(aggOf(rows, 4)).toEqual(expected.get(4));
    expect(aggOf(rows, 2)).toBeNull();
    expect(aggOf(rows, 999)).toBeNull();
  });

  it('has no aggregate while empty', () => {
    expect([...aggsOf(createMinuteRows())]).toEqual([]);
  });
});
