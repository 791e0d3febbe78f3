import { describe, expect, it } from 'vitest';
import { buildDesiredSet } from '../../src/upstream/desired.js';
import { describeChanges, diffDesiredSets } from '../../src/upstream/diff.js';
import type { DesiredServer, DesiredSet, DesiredUpstream } from '../../src/upstream/types.js';
import { app, backendView, containerRef, views } from '../helpers/fixtures.js';

const server = (address: string, over: Partial<DesiredServer> = {}): DesiredServer => ({ address, weight: 1, backup: false, down: false, ...over });
const upstream = (name: string, servers: DesiredServer[], over: Partial<DesiredUpstream> = {}): DesiredUpstream => ({
  name, servers, panic: false, keepalive: 32, balance: 'round_robin', ...over,
});
const set = (...upstreams: DesiredUpstream[]): DesiredSet => ({ upstreams });

describe('what changed between two routing decisions', () => {
  it('lists nothing for equal decisions', () => {
    const a = set(upstream('web', [server('10.0.0.1:80')]));
    expect(diffDesiredSets(a, structuredClone(a))).toEqual([]);
  });

  it('does not walk the servers of an upstream the router kept as it was (work in proportion to what changed)', () => {
    let walked = 0;
    const servers = Array.from({ length: 1000 }, (_, i) => server(`10.0.${i >> 8}.${i & 255}:80`));
    const kept = upstream('big', new Proxy(servers, { get: (t, k, r) => ((walked += k === 'map' || k === Symbol.iterator ? 1 : 0), Reflect.get(t, k, r)) }));
    const before = set(kept, upstream('web', [server('10.1.0.1:80')]));
    const after = set(kept, upstream('web', [server('10.1.0.1:80', { down: true })]));
    expect(diffDesiredSets(before, after).map((c) => [c.app, c.ejected])).toEqual([['web', ['10.1.0.1:80']]]);
    expect(walked).toBe(0);
  });

  it('names ejected, readmitted, added and removed servers and changed weights, by app', () => {
    const prev = set(
      upstream('web', [server('10.0.0.1:80', { container: 'web-1' }), server('10.0.0.2:80', { down: true }), server('10.0.0.3:80')]),
      upstream('api', [server('10.0.1.1:80')]),
    );
    const next = set(
      upstream('web', [server('10.0.0.1:80', { down: true, container: 'web-1' }), server('10.0.0.2:80', { weight: 3 }), server('10.0.0.4:80')]),
      upstream('api', [server('10.0.1.1:80')]),
    );
    expect(diffDesiredSets(prev, next)).toEqual([
      {
        app: 'web',
        added: ['10.0.0.4:80'],
        removed: ['10.0.0.3:80'],
        ejected: ['10.0.0.1:80 (web-1)'],
        readmitted: ['10.0.0.2:80'],
        weights: [{ server: '10.0.0.2:80', from: 1, to: 3 }],
      },
    ]);
    expect(describeChanges(diffDesiredSets(prev, next))).toEqual([
      'web: added 10.0.0.4:80; removed 10.0.0.3:80; ejected 10.0.0.1:80 (web-1); readmitted 10.0.0.2:80; weight 10.0.0.2:80 1 -> 3',
    ]);
  });

  it('lists apps added and removed, and panic and failover edges', () => {
    const prev = set(upstream('web', [server('10.0.0.1:80')]), upstream('old', [server('10.0.9.1:80')]));
    const next = set(
      upstream('web', [server('10.0.0.1:80')], { panic: true }),
      upstream('new', [server('10.0.2.1:80'), server('10.0.2.2:80')]),
      upstream('shop', [], { failover: true }),
    );
    const changes = diffDesiredSets(prev, { upstreams: [...next.upstreams] });
    expect(changes.map((c) => [c.app, c.upstream, c.panic])).toEqual([
      ['web', undefined, true],
      ['new', 'added', undefined],
      ['shop', 'added', undefined],
      ['old', 'removed', undefined],
    ]);
    expect(describeChanges(changes)).toEqual([
      'web: panic: every server ejected, routing to all',
      'new: upstream added; servers 10.0.2.1:80, 10.0.2.2:80',
      'shop: upstream added',
      'old: upstream removed',
    ]);
    const back = diffDesiredSets(set(upstream('shop', [], { failover: true })), set(upstream('shop', [])));
    expect(describeChanges(back)).toEqual(['shop: failover over']);
  });

  it('lists every app as added against nothing applied yet, and caps the lines', () => {
    const many = set(...Array.from({ length: 25 }, (_, i) => upstream(`app${i}`, [server(`10.0.0.${i + 1}:80`)])));
    const lines = describeChanges(diffDesiredSets(null, many));
    expect(lines).toHaveLength(21);
    expect(lines[0]).toBe('app0: upstream added; servers 10.0.0.1:80');
    expect(lines[20]).toBe('... and 5 more apps');
  });

  it("carries each server's container name from the routing decision", () => {
    const web = app('web', ['10.0.0.1:80', '10.0.0.2:80']);
    const [a, b] = views(web);
    const before = buildDesiredSet([web], [{ ...a!, container: containerRef({ name: 'web-1' }) }, b!]).set;
    const after = buildDesiredSet([web], [{ ...a!, container: containerRef({ name: 'web-1' }), ejected: true }, b!]).set;
    expect(before.upstreams[0]!.servers[0]).toEqual(server('10.0.0.1:80', { container: 'web-1' }));
    expect(before.upstreams[0]!.servers[1]).toEqual(server('10.0.0.2:80'));
    expect(describeChanges(diffDesiredSets(before, after))).toEqual(['web: ejected 10.0.0.1:80 (web-1)']);
    expect(backendView().container).toBeNull();
  });
});
