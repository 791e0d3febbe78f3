import { describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors.js';
import { toViewModel } from '../../src/nginx/view-model.js';
import type { DesiredServer, DesiredSet, DesiredUpstream } from '../../src/upstream/types.js';

function setWith(upstream: Partial<DesiredUpstream> = {}, server: Partial<DesiredServer> = {}): DesiredSet {
  return {
    upstreams: [
      {
        name: 'web',
        keepalive: 32,
        balance: 'round_robin',
        panic: false,
        servers: [{ address: '10.0.0.1:80', weight: 1, backup: false, down: false, ...server }],
        ...upstream,
      },
    ],
  };
}

function rejection(set: DesiredSet): SidecarError {
  try {
    toViewModel(set);
  } catch (err) {
    expect(err).toBeInstanceOf(SidecarError);
    expect((err as SidecarError).code).toBe('RENDER_INVALID_VALUE');
    return err as SidecarError;
  }
  throw new Error('expected RENDER_INVALID_VALUE');
}

describe('toViewModel', () => {
  it('precomputes server parameters and maps the balance method to its directive', () => {
    const set = setWith({ balance: 'least_conn' });
    set.upstreams[0]!.servers.push({ address: '10.0.0.2:80', weight: 3, backup: true, down: true });
    const ctx = toViewModel(set);
    expect(ctx.generatedBy).toBe('orchestry-sidecar');
    expect(ctx.upstreams[0]).toEqual({
      name: 'web',
      balanceDirective: 'least_conn',
      keepalive: 32,
      panic: false,
      empty: false,
      directives: [],
      servers: [
        { address: '10.0.0.1:80', weight: 1, backup: false, down: false, params: '', container: '' },
        { address: '10.0.0.2:80', weight: 3, backup: true, down: true, params: ' weight=3 backup down', container: '' },
      ],
    });
  });

  it("names each server's container for a comment, leaving out a name that breaks Docker's rule", () => {
    const names = ['web-1', 'shop_api.2', 'x;\n} server evil:1;', '-starts-with-dash', 'a b', 'é', 'n'.repeat(129)];
    const set = setWith({}, { container: 'web-1' });
    set.upstreams[0]!.servers = names.map((container, i) => ({ address: `10.0.0.${i + 1}:80`, weight: 1, backup: false, down: false, container }));
    expect(toViewModel(set).upstreams[0]!.servers.map((s) => s.container)).toEqual(['web-1', 'shop_api.2', '', '', '', '', '']);
  });

  it('flags an app without servers as empty', () => {
    expect(toViewModel(setWith({ servers: [] })).upstreams[0]!.empty).toBe(true);
  });

  it.each(['10.0.0.1:80', '[::1]:8080', '[fd00::1:2]:9000', 'web-1.internal:8000', 'localhost:1', 'a:65535'])(
    'accepts the address %s',
    (address) => {
      expect(toViewModel(setWith({}, { address })).upstreams[0]!.servers[0]!.address).toBe(address);
    },
  );

  it.each([
    ['web;}'],
    ['web\n}'],
    ['web app'],
    [''],
    ['-web'],
    ['x'.repeat(65)],
  ])('rejects the upstream name %j', (name) => {
    expect(rejection(setWith({ name })).message).toContain(JSON.stringify(name));
  });

  it.each([
    ['10.0.0.1:80\n}'],
    ['evil}:80'],
    ['evil;:80'],
    ['10.0.0.1 :80'],
    ['10.0.0.1:80 backup'],
    ['10.0.0.1'],
    ['10.0.0.1:0'],
    ['10.0.0.1:65536'],
    ['256.0.0.1:80'],
    ['::1:80'],
    ['[not-ip]:80'],
    ['-host:80'],
    ['host_name:80'],
  ])('rejects the server address %j', (address) => {
    const err = rejection(setWith({}, { address }));
    expect(err.message).toContain('upstream "web"');
    expect(err.message).toContain(JSON.stringify(address));
  });

  it.each([['x'], [0], [1001], [1.5], [Number.NaN]])('rejects the weight %j', (weight) => {
    const err = rejection(setWith({}, { weight: weight as number }));
    expect(err.message).toMatch(/upstream "web": server 10\.0\.0\.1:80: invalid weight/);
    expect(err.message).toContain(typeof weight === 'string' ? '"x"' : String(weight));
  });

  it('rejects keepalive outside 0..10000 and a balance method outside the allow-list', () => {
    expect(rejection(setWith({ keepalive: -1 })).message).toContain('keepalive -1');
    expect(rejection(setWith({ keepalive: 10001 })).message).toContain('keepalive 10001');
    const hash = 'hash $remote_addr; server evil:1' as DesiredUpstream['balance'];
    expect(rejection(setWith({ balance: hash })).message).toContain(JSON.stringify(hash));
  });

  it('renders a stream app without keepalive (nginx has none in stream {}) and refuses ip_hash there', () => {
    expect(toViewModel(setWith({ context: 'stream' })).upstreams[0]!.keepalive).toBe(0);
    expect(toViewModel(setWith({})).upstreams[0]!.keepalive).toBe(32);
    expect(rejection(setWith({ context: 'stream', balance: 'ip_hash' })).message).toContain("balance \"ip_hash\" does not exist in nginx's stream module");
    expect(rejection(setWith({ context: 'udp' as 'stream' })).message).toContain('invalid context "udp"');
  });

  it('rejects flags that are not booleans', () => {
    expect(rejection(setWith({}, { down: 'yes' as unknown as boolean })).message).toContain('down flag "yes"');
    expect(rejection(setWith({}, { backup: 1 as unknown as boolean })).message).toContain('backup flag 1');
  });

  it('rejects combinations nginx would refuse', () => {
    expect(rejection(setWith({ balance: 'ip_hash' }, { backup: true })).message).toContain('backup is not supported');
    expect(rejection(setWith({}, { backup: true })).message).toContain('every server is a backup');
    const twice = setWith();
    twice.upstreams.push({ ...twice.upstreams[0]! });
    expect(rejection(twice).message).toContain('duplicate upstream name "web"');
  });
});
