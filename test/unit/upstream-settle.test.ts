import { describe, expect, it } from 'vitest';
import type { AppConfig } from '../../src/config/types.js';
import { createSettler, restoreUpstreams, settleSet, upstreamProblem } from '../../src/upstream/settle.js';
import type { DesiredServer, DesiredUpstream } from '../../src/upstream/types.js';
import { app, DEFAULT_APP } from '../helpers/fixtures.js';

const server = (address: string, over: Partial<DesiredServer> = {}): DesiredServer => ({ address, weight: 1, backup: false, down: false, ...over });
const upstream = (name: string, servers: DesiredServer[], over: Partial<DesiredUpstream> = {}): DesiredUpstream => ({
  name, servers, panic: false, failover: false, keepalive: 32, balance: 'round_robin', ...over,
});
const PLACEHOLDER = { servers: [], panic: false, failover: false, keepalive: 0, balance: 'round_robin' };

describe('settleSet: one app nginx would refuse never stops the others', () => {
  it('writes every app that passes, and remembers each as its last good upstream', () => {
    const set = { upstreams: [upstream('web', [server('10.0.0.1:80')]), upstream('api', [])] };
    const r = settleSet(set, { lastGood: new Map() });
    expect(r.set).toEqual(set);
    expect(r.held).toEqual([]);
    expect([...r.lastGood.keys()]).toEqual(['web', 'api']);
  });

  it.each([
    ['every server a backup', [server('10.0.0.1:80', { backup: true })], {}, 'every server is a backup; nginx needs at least one that is not'],
    ['a unix: host', [server('unix:21105')], {}, 'server "unix:21105": host must not be "unix" (nginx reads "unix:" as a UNIX socket path)'],
    ['no port', [server('10.0.0.1')], {}, 'server "10.0.0.1": has no port'],
    ['a weight nginx refuses', [server('10.0.0.1:80', { weight: 0 })], {}, 'server 10.0.0.1:80: invalid weight 0'],
    ['backup with ip_hash', [server('10.0.0.1:80'), server('10.0.0.2:80', { backup: true })], { balance: 'ip_hash' as const },
      'server 10.0.0.2:80: backup is not supported with balance ip_hash'],
  ])('holds an app with %s at its last good upstream, else a placeholder', (_name, servers, over, reason) => {
    const good = upstream('shop', [server('10.0.0.9:80')]);
    const set = { upstreams: [upstream('web', [server('10.0.0.1:80')]), upstream('shop', servers, over)] };
    const held = settleSet(set, { lastGood: new Map([['shop', good]]) });
    expect(held.set?.upstreams).toEqual([set.upstreams[0], good]);
    expect(held.held).toEqual([{ app: 'shop', reason }]);
    expect(held.lastGood.get('shop')).toBe(good);
    const fresh = settleSet(set, { lastGood: new Map() });
    expect(fresh.set?.upstreams[1]).toEqual({ name: 'shop', ...PLACEHOLDER });
  });

  it('leaves out an upstream nginx would read as a duplicate (names ignore case) or cannot name', () => {
    const set = { upstreams: [upstream('web', []), upstream('WEB', []), upstream('x;}', [])] };
    const r = settleSet(set, { lastGood: new Map() });
    expect(r.set?.upstreams.map((u) => u.name)).toEqual(['web']);
    expect(r.held).toEqual([
      { app: 'WEB', reason: 'nginx reads it as the same upstream as "web"' },
      { app: 'x;}', reason: 'invalid upstream name' },
    ]);
  });

  it('writes unsettled and carried apps as they last were; nothing when one of them has no last upstream', () => {
    const last = new Map([['web', upstream('web', [server('10.0.0.5:80')])], ['shop', upstream('shop', [server('10.0.0.6:80')])]]);
    const set = { upstreams: [upstream('web', []), upstream('static', [server('10.0.0.7:80')])] };
    const r = settleSet(set, { lastGood: last, unsettled: (n) => n === 'web', carried: ['shop'] });
    expect(r.set?.upstreams.map((u) => [u.name, u.servers.map((s) => s.address)])).toEqual([
      ['web', ['10.0.0.5:80']],
      ['static', ['10.0.0.7:80']],
      ['shop', ['10.0.0.6:80']],
    ]);
    expect(settleSet(set, { lastGood: new Map(), unsettled: (n) => n === 'web' }).set).toBeNull();
  });
});

describe('upstreamProblem and restoreUpstreams', () => {
  it('accepts IPv6, hostnames and a failover of down servers and backups', () => {
    expect(upstreamProblem(upstream('a', [server('[fd00::1]:80'), server('api.internal:8080', { down: true }), server('10.0.0.3:80', { backup: true })]))).toBeNull();
  });

  it('keeps only saved upstreams that still pass, under their own name', () => {
    const good = upstream('web', [server('10.0.0.1:80')]);
    const restored = restoreUpstreams({
      web: good,
      shop: upstream('other', [server('10.0.0.2:80')]),
      evil: upstream('evil', [server('unix:/tmp/x')]),
      'x;}': upstream('x;}', []),
      broken: { name: 'broken', servers: 'no' },
    });
    expect([...restored]).toEqual([['web', good]]);
    expect(restoreUpstreams(null).size).toBe(0);
    expect(restoreUpstreams([good]).size).toBe(0);
  });
});

describe('createSettler: a transition costs the work of its own app', () => {
  /** Reads of each upstream's servers, by app: the work of checking or serializing it. */
  const reads = new Map<string, number>();
  const counted = (u: DesiredUpstream): DesiredUpstream => {
    const { servers, ...rest } = u;
    return Object.defineProperty({ ...rest }, 'servers', {
      enumerable: true,
      get: () => {
        reads.set(u.name, (reads.get(u.name) ?? 0) + 1);
        return servers;
      },
    }) as DesiredUpstream;
  };
  const APPS = 300;
  const names = Array.from({ length: APPS }, (_, i) => `app${i}`);
  // Apps that accept containers: every one is in the memory a restart needs back.
  const apps: AppConfig[] = names.map((n) => ({ ...app(n, []), docker: { ...DEFAULT_APP.docker, accept_containers: true } }));
  const upstreamOf = (n: string, port: number) => counted(upstream(n, [server(`10.0.0.1:${port}`), server(`10.0.0.2:${port}`)]));

  it('checks and serializes only the upstream a recompute replaced, and tells the memory in full', () => {
    const memories: { upstreams: Record<string, DesiredUpstream>; json: string }[] = [];
    const settler = createSettler({ restored: new Map(), onHeld: () => {}, onMemory: (upstreams, json) => memories.push({ upstreams, json }) });
    const current = new Map(names.map((n) => [n, upstreamOf(n, 80)]));
    const settle = () => settler.settle({ upstreams: names.map((n) => current.get(n)!) }, apps, false);
    settle();
    expect(reads.size).toBe(APPS);
    expect(memories).toHaveLength(1);

    reads.clear();
    current.set('app7', upstreamOf('app7', 81));
    const set = settle();
    expect([...reads.keys()]).toEqual(['app7']);
    expect(set?.upstreams[7]).toBe(current.get('app7'));
    expect(memories).toHaveLength(2);

    reads.clear();
    settle();
    expect(reads.size).toBe(0);
    expect(memories).toHaveLength(2);

    // The JSON handed over is the memory's own (read last: serializing reads every app).
    const last = memories[1]!;
    expect(JSON.parse(last.json)).toEqual(JSON.parse(JSON.stringify(last.upstreams)));
    expect(JSON.parse(last.json).app7.servers[0].address).toBe('10.0.0.1:81');
  });

  it('tells the memory again when an app is replaced by an equal upstream only if its JSON differs', () => {
    const memories: string[] = [];
    const settler = createSettler({ restored: new Map(), onHeld: () => {}, onMemory: (_u, json) => memories.push(json) });
    const few = apps.slice(0, 3);
    settler.settle({ upstreams: few.map((a) => upstream(a.name, [server('10.0.0.1:80')])) }, few, false);
    settler.settle({ upstreams: few.map((a) => upstream(a.name, [server('10.0.0.1:80')])) }, few, false);
    expect(memories).toHaveLength(1);
    settler.settle({ upstreams: few.map((a) => upstream(a.name, [server('10.0.0.1:80', { down: a.name === 'app1' })])) }, few, false);
    expect(memories).toHaveLength(2);
    expect(JSON.parse(memories[1]!).app1.servers[0].down).toBe(true);
  });
});
