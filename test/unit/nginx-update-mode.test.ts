import { describe, expect, it } from 'vitest';
import { zoneSizeFor } from '../../src/nginx/dns-applier.js';
import { parseNginxVersion, versionAtLeast } from '../../src/nginx/run.js';
import { chooseUpdateMode } from '../../src/nginx/update-mode.js';
import { toViewModel } from '../../src/nginx/view-model.js';
import type { DesiredSet } from '../../src/upstream/types.js';

describe('choosing how nginx is told', () => {
  it('takes DNS mode on auto when nginx re-resolves SRV records (>= 1.27.3), reload mode below or when unknown', () => {
    expect(chooseUpdateMode('auto', '1.30.6').mode).toBe('dns');
    expect(chooseUpdateMode('auto', '1.27.3').mode).toBe('dns');
    expect(chooseUpdateMode('auto', '1.27.2').mode).toBe('reload');
    expect(chooseUpdateMode('auto', '1.22.1')).toEqual({ mode: 'reload', why: 'nginx 1.22.1 cannot re-resolve SRV records (< 1.27.3)' });
    expect(chooseUpdateMode('auto', null).mode).toBe('reload');
  });

  it('does what update_via says when it is not auto', () => {
    expect(chooseUpdateMode('dns', '1.22.1').mode).toBe('dns');
    expect(chooseUpdateMode('reload', '1.30.6').mode).toBe('reload');
  });

  it("reads nginx -v's output and compares versions numerically", () => {
    expect(parseNginxVersion('nginx version: nginx/1.30.6\n')).toBe('1.30.6');
    expect(parseNginxVersion('nginx version: openresty/1.27.1.2')).toBe('1.27.1');
    expect(() => parseNginxVersion('bash: nginx: not found')).toThrow(/cannot read nginx's version/);
    expect(versionAtLeast('1.100.0', '1.27.3')).toBe(true);
    expect(versionAtLeast('1.9.30', '1.27.3')).toBe(false);
  });
});

describe('DNS-mode rendering', () => {
  const set: DesiredSet = {
    upstreams: [
      { name: 'web', keepalive: 16, balance: 'least_conn', panic: false, maxFails: 1, failTimeoutSeconds: 1, servers: [{ address: '10.0.0.1:80', weight: 3, backup: false, down: true }] },
      { name: 'legacy', keepalive: 0, balance: 'round_robin', panic: false, servers: [{ address: 'db.internal:80', weight: 1, backup: false, down: false }] },
    ],
  };
  const dns = { apps: new Set(['web']), zone: 'orchestry.internal', service: '_http._tcp', resolver: '127.0.0.1:5353', ipv6: () => false, zoneSize: () => '64k' };

  it('renders a served app as a zone upstream resolving its SRV name, the same text whatever its servers', () => {
    const web = toViewModel(set, dns).upstreams[0]!;
    expect(web.directives).toEqual(['zone web 64k', 'resolver 127.0.0.1:5353 ipv6=off', 'resolver_timeout 2s']);
    expect(web.servers).toEqual([{ address: 'orchestry.internal', weight: 1, backup: false, down: false, params: ' service=_http._tcp.web resolve fail_timeout=1s', container: '' }]);
    const other = structuredClone(set);
    other.upstreams[0]!.servers = [{ address: '10.0.0.2:81', weight: 1, backup: true, down: false }];
    expect(toViewModel(other, dns).upstreams[0]).toEqual(web);
  });

  it('lists the servers of an app the DNS server cannot serve, as in reload mode', () => {
    const legacy = toViewModel(set, dns).upstreams[1]!;
    expect(legacy.directives).toEqual([]);
    expect(legacy.servers.map((s) => s.address)).toEqual(['db.internal:80']);
  });

  it("keeps a failed server out 2 s where nginx re-resolves (fail_timeout 'auto'), 1 s where it reloads, and as set otherwise", () => {
    const auto: DesiredSet = structuredClone(set);
    for (const u of auto.upstreams) u.failTimeoutSeconds = 'auto';
    const [web, legacy] = toViewModel(auto, dns).upstreams;
    // Re-resolution comes up to 1 s after an ejection: nginx must not go back to the server first.
    expect(web!.servers[0]!.params).toBe(' service=_http._tcp.web resolve fail_timeout=2s');
    expect(legacy!.servers[0]!.params).toBe(' fail_timeout=1s');
    expect(toViewModel(auto).upstreams[0]!.servers[0]!.params).toBe(' weight=3 fail_timeout=1s down');
    expect(toViewModel(set, dns).upstreams[0]!.servers[0]!.params).toContain('fail_timeout=1s');
  });

  it('sizes the zone for twice the servers, in powers of two from 64k', () => {
    expect([0, 3, 27, 28, 63, 64, 500].map(zoneSizeFor)).toEqual(['64k', '64k', '64k', '128k', '128k', '256k', '1024k']);
  });
});
