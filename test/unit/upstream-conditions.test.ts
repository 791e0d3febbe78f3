import { describe, expect, it } from 'vitest';
import { diffConditions, NO_CONDITIONS } from '../../src/upstream/conditions.js';

const state = (app: string, panic: boolean, failover = false) => ({ app, panic, failover });

describe('panic and failover edges', () => {
  it('reports a condition once when it begins and once when it ends', () => {
    const first = diffConditions(NO_CONDITIONS, [state('web', true), state('shop', false, true), state('api', false)]);
    expect(first.edges).toEqual([
      { kind: 'panic', app: 'web', active: true },
      { kind: 'failover', app: 'shop', active: true },
    ]);
    const same = diffConditions(first.conditions, [state('web', true), state('shop', false, true)]);
    expect(same.edges).toEqual([]);
    const over = diffConditions(same.conditions, [state('web', false)]);
    expect(over.edges).toEqual([{ kind: 'panic', app: 'web', active: false }]);
    // shop was not recomputed: it keeps its failover.
    expect([...over.conditions.failover]).toEqual(['shop']);
  });

  it('lists failover before panic for one app, and forgets apps that are gone without an edge', () => {
    const both = diffConditions(NO_CONDITIONS, [state('web', true, true)]);
    expect(both.edges.map((e) => e.kind)).toEqual(['failover', 'panic']);
    const gone = diffConditions(both.conditions, [], new Set(['api']));
    expect(gone.edges).toEqual([]);
    expect(gone.conditions.panic.size + gone.conditions.failover.size).toBe(0);
  });
});
