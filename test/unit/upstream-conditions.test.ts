import { describe, expect, it } from 'vitest';
import { diffConditions, NO_CONDITIONS } from '../../src/upstream/conditions.js';

describe('panic and failover edges', () => {
  it('reports a condition once when it begins and once when it ends', () => {
    const first = diffConditions(NO_CONDITIONS, { panics: ['web'], failovers: ['shop'] }, ['web', 'shop', 'api']);
    expect(first.edges).toEqual([
      { kind: 'panic', app: 'web', active: true },
      { kind: 'failover', app: 'shop', active: true },
    ]);
    const same = diffConditions(first.conditions, { panics: ['web'], failovers: ['shop'] }, ['web', 'shop', 'api']);
    expect(same.edges).toEqual([]);
    const over = diffConditions(same.conditions, { panics: [], failovers: ['shop'] }, ['web', 'shop', 'api']);
    expect(over.edges).toEqual([{ kind: 'panic', app: 'web', active: false }]);
    expect([...over.conditions.failover]).toEqual(['shop']);
  });

  it('lists failover before panic for one app, and forgets apps that are gone without an edge', () => {
    const both = diffConditions(NO_CONDITIONS, { panics: ['web'], failovers: ['web'] }, ['web']);
    expect(both.edges.map((e) => e.kind)).toEqual(['failover', 'panic']);
    const gone = diffConditions(both.conditions, { panics: [], failovers: [] }, []);
    expect(gone.edges).toEqual([]);
    expect(gone.conditions.panic.size + gone.conditions.failover.size).toBe(0);
  });
});
