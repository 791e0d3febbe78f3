import { describe, expect, it } from 'vitest';
import { buildDesiredSet } from '../../src/upstream/desired.js';
import { app, views } from '../helpers/nginx-fixtures.js';

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
