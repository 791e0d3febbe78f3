import { describe, expect, it } from 'vitest';
import { addressLabel, labelAddress, splitHostPort } from '../../src/nginx/dns/address-name.js';
import { PLACEHOLDER, SRV_PRIORITY, buildZoneTable, srvRecordsFor, unpublishedZone } from '../../src/nginx/dns/records.js';
import { createDnsServer } from '../../src/nginx/dns/server.js';
import type { DesiredUpstream } from '../../src/upstream/types.js';
import { desiredUpstream } from '../helpers/dns-messages.js';

const ZONE = ['orchestry', 'internal'];
const SPEC = { zone: 'orchestry.internal', service: '_http._tcp' };


/** SRV records as `priority weight port target` lines. */
function lines(u: DesiredUpstream): string[] {
  return srvRecordsFor(u, ZONE).records.map((r) => `${r.priority} ${r.weight} ${r.port} ${r.target.join('.')}`);
}

describe('srvRecordsFor', () => {
  it('publishes one record per routable server with its weight, leaving out servers marked down', () => {
    const u = desiredUpstream('web', [
      { address: '10.0.0.1:8080', weight: 5 },
      { address: '10.0.0.2:8080', down: true },
      { address: '10.0.0.3:8080', weight: 1000 },
    ]);
    expect(lines(u)).toEqual(['10 5 8080 ip-10-0-0-1.orchestry.internal', '10 1000 8080 ip-10-0-0-3.orchestry.internal']);
  });

  it('gives backups a higher priority number than primaries', () => {
    const u = desiredUpstream('web', [{ address: '10.0.0.1:80' }, { address: '10.0.0.9:80', backup: true, weight: 3 }]);
    expect(lines(u)).toEqual([
      `${SRV_PRIORITY.primary} 1 80 ip-10-0-0-1.orchestry.internal`,
      `${SRV_PRIORITY.backup} 3 80 ip-10-0-0-9.orchestry.internal`,
    ]);
    expect(SRV_PRIORITY.backup).toBeGreaterThan(SRV_PRIORITY.primary);
  });

  it('publishes one record per server when servers share a host, told apart by port', () => {
    const u = desiredUpstream('web', [{ address: '127.0.0.1:8001' }, { address: '127.0.0.1:8002' }, { address: '127.0.0.1:8003' }]);
    expect(lines(u)).toEqual([
      '10 1 8001 ip-127-0-0-1.orchestry.internal',
      '10 1 8002 ip-127-0-0-1.orchestry.internal',
      '10 1 8003 ip-127-0-0-1.orchestry.internal',
    ]);
  });

  it('names IPv6 servers by their RFC 5952 text with dashes', () => {
    const u = desiredUpstream('web', [{ address: '[2001:DB8:0:0::1]:80' }, { address: '[::1]:81' }]);
    expect(lines(u)).toEqual(['10 1 80 ip6-2001-db8--1.orchestry.internal', '10 1 81 ip6---1.orchestry.internal']);
  });

  it('publishes the placeholder backup alone when no server is routable, never an empty answer', () => {
    for (const servers of [[], [{ address: '10.0.0.1:80', down: true }]]) {
      const result = srvRecordsFor(desiredUpstream('web', servers), ZONE);
      expect(result.placeholder).toBe(true);
      expect(lines(desiredUpstream('web', servers))).toEqual([
        `${SRV_PRIORITY.placeholder} 1 ${PLACEHOLDER.port} ip-127-0-0-1.orchestry.internal`,
      ]);
    }
    expect(SRV_PRIORITY.placeholder).toBeGreaterThan(SRV_PRIORITY.backup);
  });

  it('skips servers given by host name, saying why, and falls back to the placeholder when none is left', () => {
    const result = srvRecordsFor(desiredUpstream('web', [{ address: 'backend.local:80' }, { address: 'oops' }]), ZONE);
    expect(result.placeholder).toBe(true);
    expect(result.skipped).toEqual([
      { app: 'web', address: 'backend.local:80', reason: expect.stringMatching(/not an IP address/) },
      { app: 'web', address: 'oops', reason: 'not host:port' },
    ]);
  });
});

describe('buildZoneTable', () => {
  it('puts each app under <service>.<app>.<zone>, lowercase', () => {
    const { table, apps, problems } = buildZoneTable(
      { upstreams: [desiredUpstream('Web', [{ address: '10.0.0.1:80' }]), desiredUpstream('api.v2', [{ address: '10.0.0.2:80' }])] },
      SPEC,
      1,
    );
    expect(problems).toEqual([]);
    expect(apps.map((a) => a.owner.join('.'))).toEqual(['_http._tcp.web.orchestry.internal', '_http._tcp.api.v2.orchestry.internal']);
    expect(table).toMatchObject({ published: true, serial: 1, zone: ZONE });
  });

  it('reports apps whose names cannot be DNS names or clash, and publishes the others', () => {
    const { apps, problems } = buildZoneTable(
      {
        upstreams: [
          desiredUpstream('web', [{ address: '10.0.0.1:80' }]),
          desiredUpstream('WEB', [{ address: '10.0.0.2:80' }]),
          desiredUpstream('a'.repeat(64), [{ address: '10.0.0.3:80' }]),
        ],
      },
      SPEC,
      1,
    );
    expect(apps.map((a) => a.app)).toEqual(['web']);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/same DNS name as another app/);
    expect(problems[1]).toMatch(/not a valid DNS name/);
  });

  it('refuses an invalid zone or service name', () => {
    expect(() => unpublishedZone({ zone: 'bad..zone', service: '_http._tcp' })).toThrow(/invalid DNS zone/);
    expect(() => unpublishedZone({ zone: 'orchestry.internal', service: '_http _tcp' })).toThrow(/invalid SRV service/);
  });
});

describe('DNS server publication (no sockets)', () => {
  it('bumps the SOA serial only when the records change', () => {
    const server = createDnsServer({ port: 0 });
    expect(server.table.published).toBe(false);
    const one = { upstreams: [desiredUpstream('web', [{ address: '10.0.0.1:80' }])] };
    server.publish(one);
    expect(server.table.serial).toBe(1);
    server.publish(structuredClone(one));
    expect(server.table.serial).toBe(1);
    server.publish({ upstreams: [desiredUpstream('web', [{ address: '10.0.0.1:80', weight: 2 }])] });
    expect(server.table.serial).toBe(2);
  });
});

describe('address names', () => {
  it('round-trips IPv4 and IPv6 addresses through their names', () => {
    for (const [host, label] of [
      ['127.0.0.1', 'ip-127-0-0-1'],
      ['255.255.255.255', 'ip-255-255-255-255'],
      ['::1', 'ip6---1'],
      ['::', 'ip6---'],
      ['fe80::1:0:0:2', 'ip6-fe80--1-0-0-2'],
      ['::ffff:1.2.3.4', 'ip6---ffff-102-304'],
    ] as const) {
      expect(addressLabel(host)).toBe(label);
      expect(labelAddress(label)).not.toBeNull();
    }
    expect([...labelAddress('ip-10-20-30-40')!.bytes]).toEqual([10, 20, 30, 40]);
  });

  it('accepts only the canonical spelling of an address', () => {
    for (const label of ['ip-010-0-0-1', 'ip-1-2-3', 'ip-256-0-0-1', 'ip6-0-0-0-0-0-0-0-1', 'ip6-2001-DB8--1x', 'ip6-::1', 'ip-1.2.3.4', 'ip6-fe80--1%eth0']) {
      expect(labelAddress(label), label).toBeNull();
    }
    expect(addressLabel('backend.local')).toBeNull();
    expect(addressLabel('fe80::1%eth0')).toBeNull();
  });

  it('splits nginx server addresses', () => {
    expect(splitHostPort('127.0.0.1:80')).toEqual({ host: '127.0.0.1', port: 80 });
    expect(splitHostPort('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(splitHostPort('::1:80')).toBeNull();
    expect(splitHostPort('127.0.0.1:0')).toBeNull();
    expect(splitHostPort('127.0.0.1:65536')).toBeNull();
  });
});
