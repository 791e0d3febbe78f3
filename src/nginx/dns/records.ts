/**
 * The pure mapping from the pipeline's DesiredSet to the DNS records nginx resolves in DNS mode:
 * one SRV record set per app under `<service>.<app>.<zone>`, each record pointing at a name that
 * spells its backend's address (address-name.ts), which the same server answers A/AAAA for.
 *
 * nginx side (>= 1.27.3): `upstream app { zone app 64k; server <zone> service=<service>.app resolve; }`
 * with `resolver <this server>`. nginx maps SRV priority to its two tiers (the lowest number
 * present is primary, every other number is backup) and SRV weight to `weight=` when the server
 * line has none.
 */
import { SidecarError } from '../../errors.js';
import type { DesiredSet, DesiredUpstream } from '../../upstream/types.js';
import { addressLabel, splitHostPort } from './address-name.js';
import { asciiLower, nameKey, type Labels } from './wire.js';

/** The zone the server answers for unless configured otherwise. */
export const DEFAULT_ZONE = 'orchestry.internal';
/** The SRV service prefix nginx's `service=_http._tcp.<app>` asks for. */
export const DEFAULT_SERVICE = '_http._tcp';

/** SRV priorities: nginx routes to the lowest number present and keeps the others as backup. */
export const SRV_PRIORITY = { primary: 10, backup: 20, placeholder: 30 } as const;

/**
 * Where the placeholder record points when an app has no routable server: 127.0.0.1:9 (discard),
 * where nothing listens, so nginx's connect is refused at once and the client gets a 502: the
 * same outcome as the reload mode's `server 127.0.0.1:9 down;` placeholder for an empty app.
 * Why publish it instead of an empty answer: an empty SRV answer or NXDOMAIN makes nginx drop
 * every peer of the host, leaving the upstream empty (measured: nginx-reload-vs-dns.md), and an
 * app that still exists in the config must never look nonexistent. Its priority is above every
 * real record, so if it ever stood beside them it could only be a backup.
 */
export const PLACEHOLDER = { host: '127.0.0.1', port: 9 } as const;

/** Which zone and SRV service name the records live under. */
export interface ZoneSpec {
  /** Zone apex, e.g. `orchestry.internal`. */
  zone: string;
  /** SRV service prefix, e.g. `_http._tcp`: owners are `<service>.<app>.<zone>`. */
  service: string;
}

/** The data of one SRV record. */
export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  /** Target host name, as labels. */
  target: Labels;
}

/** A server that got no record, and why (e.g. a host name: nginx could not resolve it here). */
export interface SkippedServer {
  app: string;
  address: string;
  reason: string;
}

/** What one app publishes. */
export interface AppRecords {
  app: string;
  owner: Labels;
  records: SrvRecord[];
  /** No server was routable, so `records` is the placeholder alone. */
  placeholder: boolean;
  skipped: SkippedServer[];
}

/**
 * One SRV record per routable server of `upstream` (servers marked `down` are left out), in the
 * upstream's order: weight as SRV weight, backups at a higher priority number than primaries,
 * the target a name of `zone` that spells the server's address (servers sharing a host share
 * the target and differ by port). When nothing is routable, the placeholder record alone.
 */
export function srvRecordsFor(upstream: DesiredUpstream, zone: Labels): Omit<AppRecords, 'owner'> {
  const records: SrvRecord[] = [];
  const skipped: SkippedServer[] = [];
  for (const server of upstream.servers) {
    if (server.down) continue;
    const skip = (reason: string) => skipped.push({ app: upstream.name, address: server.address, reason });
    const hp = splitHostPort(server.address);
    const label = hp ? addressLabel(hp.host) : null;
    if (!hp) skip('not host:port');
    else if (!label) skip('not an IP address (the DNS server answers only names that spell an address)');
    else if (!Number.isInteger(server.weight) || server.weight < 1 || server.weight > 65535) skip('invalid weight');
    else {
      const priority = server.backup ? SRV_PRIORITY.backup : SRV_PRIORITY.primary;
      records.push({ priority, weight: server.weight, port: hp.port, target: [label, ...zone] });
    }
  }
  if (records.length > 0) return { app: upstream.name, records, placeholder: false, skipped };
  const target = [addressLabel(PLACEHOLDER.host)!, ...zone];
  const placeholder = { priority: SRV_PRIORITY.placeholder, weight: 1, port: PLACEHOLDER.port, target };
  return { app: upstream.name, records: [placeholder], placeholder: true, skipped };
}

/** Everything the server answers from, immutable; swapped whole on every publication. */
export interface ZoneTable {
  /** Apex labels, lowercase. */
  zone: Labels;
  /** Until the first publication the server answers SERVFAIL in the zone (see answer.ts). */
  published: boolean;
  /** SOA serial. */
  serial: number;
  /** nameKey(owner) -> its SRV records. */
  srv: ReadonlyMap<string, AppRecords>;
  /** nameKeys of the names between the apex and an owner (`<app>.<zone>`, `_tcp.<app>.<zone>`). */
  interior: ReadonlySet<string>;
  /** The records as text, to tell whether a publication changed anything. */
  content: string;
}

/** A built table and what went into it. */
export interface ZoneBuild {
  table: ZoneTable;
  apps: AppRecords[];
  /** Apps that could not be published at all (invalid or clashing DNS names). */
  problems: string[];
}

/** Labels of a configured name; throws SidecarError('DNS_INVALID_NAME') when it is no DNS name. */
export function specLabels(spec: ZoneSpec): { zone: string[]; service: string[] } {
  const zone = nameLabels(spec.zone);
  const service = nameLabels(spec.service);
  if (!zone || zone.length === 0) throw new SidecarError('DNS_INVALID_NAME', `invalid DNS zone ${JSON.stringify(spec.zone)}`);
  if (!service) throw new SidecarError('DNS_INVALID_NAME', `invalid SRV service name ${JSON.stringify(spec.service)}`);
  return { zone, service };
}

/** The table before anything was published. */
export function unpublishedZone(spec: ZoneSpec): ZoneTable {
  const { zone } = specLabels(spec);
  return { zone, published: false, serial: 0, srv: new Map(), interior: new Set(), content: '' };
}

/** Builds the table for `set`; apps whose names cannot be DNS names are reported, not thrown. */
export function buildZoneTable(set: DesiredSet, spec: ZoneSpec, serial: number): ZoneBuild {
  const { zone, service } = specLabels(spec);
  const srv = new Map<string, AppRecords>();
  const interior = new Set<string>();
  const apps: AppRecords[] = [];
  const problems: string[] = [];
  for (const upstream of set.upstreams) {
    const app = nameLabels(upstream.name);
    const owner = app && [...service, ...app, ...zone];
    if (!owner || app.length === 0 || wireLength(owner) > 255) {
      problems.push(`app ${JSON.stringify(upstream.name)}: not a valid DNS name under ${spec.service}.<app>.${spec.zone}`);
      continue;
    }
    const key = nameKey(owner);
    if (srv.has(key)) {
      problems.push(`app ${JSON.stringify(upstream.name)}: same DNS name as another app (names compare case-insensitively)`);
      continue;
    }
    const records: AppRecords = { ...srvRecordsFor(upstream, zone), owner };
    srv.set(key, records);
    apps.push(records);
    for (let i = 1; i < owner.length - zone.length; i++) interior.add(nameKey(owner.slice(i)));
  }
  const content = JSON.stringify(apps.map((a) => [nameKey(a.owner), a.records]));
  return { table: { zone, published: true, serial, srv, interior, content }, apps, problems };
}

/** Dotted name -> lowercase labels; null when a label is empty, longer than 63 or not printable. */
function nameLabels(name: string): string[] | null {
  if (typeof name !== 'string' || name === '') return null;
  const labels = name.replace(/\.$/, '').split('.');
  if (labels.some((l) => !/^[A-Za-z0-9_-]{1,63}$/.test(l))) return null;
  return labels.map(asciiLower);
}

function wireLength(labels: Labels): number {
  return labels.reduce((n, l) => n + 1 + l.length, 1);
}
