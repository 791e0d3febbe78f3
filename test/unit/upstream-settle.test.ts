import { describe, expect, it } from 'vitest';
import { restoreUpstreams, settleSet, upstreamProblem } from '../../src/upstream/settle.js';
import type { DesiredServer, DesiredUpstream } from '../../src/upstream/types.js';

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
