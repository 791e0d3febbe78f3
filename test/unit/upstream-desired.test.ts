import { describe, expect, it } from 'vitest';
import { buildDesiredSet, nginxRetries } from '../../src/upstream/desired.js';
import { app, views } from '../helpers/fixtures.js';

describe('buildDesiredSet', () => {
  it('makes one upstream per app in config order with servers in backend order', () => {
    const web = app('web', ['10.0.0.2:80', '10.0.0.1:80']);
    const api = app('api', ['10.0.1.1:90'], { balance: 'least_conn', keepalive: 4 });
    // Views arrive in any order; the output must not depend on it.
    const { set, panics } = buildDesiredSet([web, api], [...views(api), ...views(web)].reverse());
    expect(panics).toEqual([]);
    expect(set.upstreams.map((u) => u.name)).toEqual(['web', 'api']);
    expect(set.upstreams[0]!.servers.map((s) => s.address)).toEqual(['10.0.0.2:80', '10.0.0.1:80']);
    expect(set.upstreams[1]).toEqual({
      name: 'api',
      keepalive: 4,
      balance: 'least_conn',
      panic: false,
      failover: false,
      maxFails: 1,
      failTimeoutSeconds: 'auto',
      servers: [{ address: '10.0.1.1:90', weight: 1, backup: false, down: false }],
    });
  });

  it('marks an ejected server down in eject mode down', () => {
    const web = app('web', ['10.0.0.1:80', '10.0.0.2:80']);
    const { set } = buildDesiredSet([web], views(web, ['10.0.0.2:80']));
    expect(set.upstreams[0]!.servers.map((s) => [s.address, s.down])).toEqual([
      ['10.0.0.1:80', false],
      ['10.0.0.2:80', true],
    ]);
  });

  it('leaves an ejected server out in eject mode omit', () => {
    const web = app('web', ['10.0.0.1:80', '10.0.0.2:80'], { ejected: 'omit' });
    const { set } = buildDesiredSet([web], views(web, ['10.0.0.1:80']));
    expect(set.upstreams[0]!.servers.map((s) => s.address)).toEqual(['10.0.0.2:80']);
  });

  it('panics when every non-backup server is ejected: routes to all of them and reports the app', () => {
    const web = app('web', ['10.0.0.1:80', { host: '10.0.0.9', port: 80, backup: true }], { ejected: 'omit' });
    const api = app('api', ['10.0.1.1:90']);
    const { set, panics } = buildDesiredSet([web, api], [...views(web, ['10.0.0.1:80']), ...views(api)]);
    expect(panics).toEqual(['web']);
    expect(set.upstreams[0]!.panic).toBe(true);
    expect(set.upstreams[0]!.servers).toEqual([
      { address: '10.0.0.1:80', weight: 1, backup: false, down: false },
      { address: '10.0.0.9:80', weight: 1, backup: true, down: false },
    ]);
    expect(set.upstreams[1]!.panic).toBe(false);
  });

  it('does not panic while one non-backup server is left', () => {
    const web = app('web', ['10.0.0.1:80', '10.0.0.2:80']);
    const { set, panics } = buildDesiredSet([web], views(web, ['10.0.0.1:80']));
    expect(panics).toEqual([]);
    expect(set.upstreams[0]!.panic).toBe(false);
  });

  it('gives an app without backends an empty, non-panicking upstream', () => {
    const { set, panics } = buildDesiredSet([app('idle', [])], []);
    expect(panics).toEqual([]);
    expect(set.upstreams[0]).toMatchObject({ name: 'idle', servers: [], panic: false });
  });

  it('takes weights and backup flags from the views, brackets IPv6 and ignores other apps', () => {
    const web = app('web', [{ host: 'fd00::1', port: 80, weight: 7 }]);
    const stray = views(app('other', ['10.9.9.9:80']));
    const { set } = buildDesiredSet([web], [...views(web), ...stray]);
    expect(set.upstreams).toHaveLength(1);
    expect(set.upstreams[0]!.servers).toEqual([{ address: '[fd00::1]:80', weight: 7, backup: false, down: false }]);
  });

  it('lists discovered backends that are not in config after the configured ones, by address', () => {
    const web = app('web', ['10.0.0.5:80']);
    const discovered = views(app('web', ['10.0.0.9:80', '10.0.0.1:80']));
    const { set } = buildDesiredSet([web], [...discovered, ...views(web)]);
    expect(set.upstreams[0]!.servers.map((s) => s.address)).toEqual(['10.0.0.5:80', '10.0.0.1:80', '10.0.0.9:80']);
  });
});

describe('buildDesiredSet: failover_to_backup (upstream.backup_app)', () => {
  const web = app('web', ['10.0.0.1:80', '10.0.0.2:80'], { backup_app: 'dr' });
  const dr = app('dr', ['10.9.0.2:80', '10.9.0.1:80', '10.0.0.2:80']);

  it('lists the backup app\'s routable servers as backup servers, once, after the app\'s own', () => {
    const { set, panics, failovers } = buildDesiredSet([web, dr], [...views(web), ...views(dr, ['10.9.0.1:80'])]);
    expect(panics).toEqual([]);
    expect(failovers).toEqual([]);
    // 10.0.0.2:80 is in both apps: listed once, as web's own; 10.9.0.1:80 is ejected in dr.
    expect(set.upstreams[0]).toMatchObject({
      failover: false,
      servers: [
        { address: '10.0.0.1:80', weight: 1, backup: false, down: false },
        { address: '10.0.0.2:80', weight: 1, backup: false, down: false },
        { address: '10.9.0.2:80', weight: 1, backup: true, down: false },
      ],
    });
    expect(set.upstreams[1]!.servers.every((s) => !s.backup)).toBe(true);
  });

  it('fails over instead of panicking when every own server is ejected: own servers down, even in omit mode', () => {
    const omit = { ...web, upstream: { ...web.upstream, ejected: 'omit' as const } };
    const { set, panics, failovers } = buildDesiredSet([omit, dr], [...views(web, ['10.0.0.1:80', '10.0.0.2:80']), ...views(dr)]);
    expect(panics).toEqual([]);
    expect(failovers).toEqual(['web']);
    expect(set.upstreams[0]).toMatchObject({
      panic: false,
      failover: true,
      servers: [
        { address: '10.0.0.1:80', backup: false, down: true },
        { address: '10.0.0.2:80', backup: false, down: true },
        { address: '10.9.0.2:80', backup: true, down: false },
        { address: '10.9.0.1:80', backup: true, down: false },
      ],
    });
  });

  it('panics as before when the backup app has nothing routable either', () => {
    const all = ['10.0.0.1:80', '10.0.0.2:80', '10.9.0.1:80', '10.9.0.2:80'];
    const { set, panics, failovers } = buildDesiredSet([web, dr], [...views(web, all), ...views(dr, all)]);
    expect(failovers).toEqual([]);
    expect(panics).toEqual(['web', 'dr']);
    expect(set.upstreams[0]).toMatchObject({ panic: true, failover: false });
    expect(set.upstreams[0]!.servers.map((s) => [s.address, s.down, s.backup])).toEqual([
      ['10.0.0.1:80', false, false],
      ['10.0.0.2:80', false, false],
    ]);
  });

  it('adds no backup servers where nginx would reject them: ip_hash/random, or an app without servers of its own', () => {
    const hashed = app('web', ['10.0.0.1:80'], { backup_app: 'dr', balance: 'ip_hash' });
    const empty = app('idle', [], { backup_app: 'dr' });
    const { set } = buildDesiredSet([hashed, empty, dr], [...views(hashed), ...views(dr)]);
    expect(set.upstreams[0]!.servers.map((s) => s.address)).toEqual(['10.0.0.1:80']);
    expect(set.upstreams[1]!.servers).toEqual([]);
  });
});

describe('buildDesiredSet: redirect_traffic weight factors', () => {
  it('halves a backend\'s share by doubling the others when weights are equal', () => {
    const web = app('web', ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
    const v = views(web);
    const { set } = buildDesiredSet([web], v, { weightFactors: new Map([[v[2]!.backendId, 0.5]]) });
    expect(set.upstreams[0]!.servers.map((s) => s.weight)).toEqual([2, 2, 1]);
  });

  it('scales relative to configured weights, caps at nginx\'s 1000 and leaves other groups and apps alone', () => {
    const web = app('web', [
      { host: '10.0.0.1', port: 80, weight: 5 },
      { host: '10.0.0.2', port: 80, weight: 2 },
      { host: '10.0.0.3', port: 80, weight: 700 },
      { host: '10.0.0.9', port: 80, weight: 3, backup: true },
    ]);
    const api = app('api', ['10.0.1.1:90']);
    const v = views(web);
    const { set } = buildDesiredSet([web, api], [...v, ...views(api)], { weightFactors: new Map([[v[0]!.backendId, 0.5]]) });
    expect(set.upstreams[0]!.servers.map((s) => s.weight)).toEqual([5, 4, 1000, 3]);
    expect(set.upstreams[1]!.servers.map((s) => s.weight)).toEqual([1]);
  });

  it('renders exactly the configured weights without factors', () => {
    const web = app('web', [{ host: '10.0.0.1', port: 80, weight: 7 }, '10.0.0.2:80']);
    const plain = buildDesiredSet([web], views(web));
    expect(buildDesiredSet([web], views(web), { weightFactors: new Map() })).toEqual(plain);
    expect(plain.set.upstreams[0]!.servers.map((s) => s.weight)).toEqual([7, 1]);
  });
});

describe('buildDesiredSet: slow start of readmitted backends', () => {
  it('gives a readmitted backend its slow-start share by raising the others, in tenths', () => {
    const web = app('web', ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
    const v = views(web).map((x, i) => (i === 2 ? { ...x, breaker: 'half_open' as const, slowStart: 0.1 } : x));
    expect(buildDesiredSet([web], v).set.upstreams[0]!.servers.map((s) => s.weight)).toEqual([10, 10, 1]);
    const later = v.map((x, i) => (i === 2 ? { ...x, slowStart: 0.57 } : x));
    expect(buildDesiredSet([web], later).set.upstreams[0]!.servers.map((s) => s.weight)).toEqual([2, 2, 1]);
  });

  it('routes a readmitted backend at full weight where weight changes cost a reload', () => {
    const web = app('web', ['10.0.0.1:80', '10.0.0.2:80']);
    const v = views(web).map((x, i) => (i === 1 ? { ...x, slowStart: 0.1 } : x));
    expect(buildDesiredSet([web], v, { slowStart: false }).set.upstreams[0]!.servers.map((s) => s.weight)).toEqual([1, 1]);
  });
});

describe('buildDesiredSet: failures left to nginx in reload mode', () => {
  const probe = (over: Record<string, unknown>) => ({
    backendId: 'x', app: 'web', checkType: 'http' as const, healthy: false, responseTimeMs: 1, statusCode: null, body: null,
    errorClass: 'connection_refused' as const, error: 'refused', startedAt: 0, finishedAt: 0, attempts: 1, ...over,
  });

  it('keeps a refused or 5xx backend routed when told to leave that to nginx, and ejects a timed-out one', () => {
    const web = app('web', ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80']);
    const [ok, refused, failing, hung] = views(web, ['10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80']);
    const v = [
      ok!,
      { ...refused!, lastProbe: probe({}) },
      { ...failing!, lastProbe: probe({ errorClass: 'unexpected_status', statusCode: 500 }), nginx5xx: 'retried' as const },
      { ...hung!, lastProbe: probe({ errorClass: 'timeout' }) },
    ];
    const down = (leave: Array<'refused' | '5xx'>) =>
      buildDesiredSet([web], v, { leaveToNginx: new Set(leave) }).set.upstreams[0]!.servers.filter((s) => s.down).map((s) => s.address);
    expect(down([])).toEqual(['10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80']);
    expect(down(['refused'])).toEqual(['10.0.0.3:80', '10.0.0.4:80']);
    expect(down(['refused', '5xx'])).toEqual(['10.0.0.4:80']);
  });

  it("leaves 5xx to nginx only while nginx's log shows it passing that backend's 5xx on to another server", () => {
    const [v] = views(app('w', ['10.0.0.1:80']), ['10.0.0.1:80']);
    const failing = { ...v!, lastProbe: probe({ errorClass: 'unexpected_status', statusCode: 503 }) };
    expect(nginxRetries(failing)).toBeNull();
    expect(nginxRetries({ ...failing, nginx5xx: 'served' })).toBeNull();
    expect(nginxRetries({ ...failing, nginx5xx: 'retried' })).toBe('5xx');
    expect(nginxRetries({ ...v!, passiveCause: 'status', nginx5xx: 'served' })).toBeNull();
    // Refused connections are retried by nginx whatever its log says of 5xx.
    expect(nginxRetries({ ...v!, lastProbe: probe({}), nginx5xx: 'served' })).toBe('refused');
  });

  it("follows nginx's own evidence for a passive ejection, and never leaves a draining backend", () => {
    expect(nginxRetries({ ...views(app('w', ['10.0.0.1:80']))[0]!, ejected: true, passiveCause: 'status', nginx5xx: 'retried' })).toBe('5xx');
    expect(nginxRetries({ ...views(app('w', ['10.0.0.1:80']))[0]!, ejected: true, passiveCause: 'timeout' })).toBeNull();
    expect(nginxRetries({ ...views(app('w', ['10.0.0.1:80']))[0]!, ejected: true, draining: true, lastProbe: probe({}) })).toBeNull();
  });
});
