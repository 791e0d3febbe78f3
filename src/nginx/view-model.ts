/**
 * DesiredSet -> template context. Every value is checked again here, whatever validated it
 * before: names and addresses can come from Docker labels, and anything that reaches the
 * template is written verbatim into nginx's config (the template runs with noEscape).
 */
import { isIPv6 } from 'node:net';
import { SidecarError } from '../errors.js';
import type { DesiredSet, DesiredUpstream } from '../upstream/types.js';

/** What every upstreams template is rendered with. */
export interface UpstreamsContext {
  generatedBy: string;
  /** Which file this is: `http` (nginx.output_path) or `stream` (nginx.stream_output_path). */
  context: 'http' | 'stream';
  upstreams: UpstreamContext[];
}

export interface UpstreamContext {
  name: string;
  /** Directive without `;` (`least_conn`), or '' for nginx's default round robin. */
  balanceDirective: string;
  /** 0 means no keepalive directive (always 0 for stream apps: nginx has none there). */
  keepalive: number;
  panic: boolean;
  /** The app has no backends; templates render a `down` placeholder (see the default). */
  empty: boolean;
  /**
   * Directives without `;` that go first in the block (DNS mode: `zone web 64k`, `resolver
   * 127.0.0.1:5353 ipv6=off`, `resolver_timeout 2s`); empty otherwise.
   */
  directives: string[];
  servers: ServerContext[];
}

export interface ServerContext {
  address: string;
  weight: number;
  backup: boolean;
  down: boolean;
  /** Ready-made server parameters with a leading space, e.g. ` weight=2 backup down`. */
  params: string;
  /** Name of the container behind the server, for a comment (docker-gen's template has one); '' when none. */
  container: string;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOST_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** Docker's own rule for container names (plus a length cap): nothing else reaches a comment. */
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const BALANCE: Record<DesiredUpstream['balance'], string> = {
  round_robin: '',
  least_conn: 'least_conn',
  ip_hash: 'ip_hash',
  random: 'random',
};
/** nginx rejects `backup` under these methods. */
const NO_BACKUP = new Set(['ip_hash', 'random']);
/** What nginx's stream module lacks (`ip_hash`: use `hash $remote_addr consistent` there). */
const NOT_IN_STREAM = new Set(['ip_hash']);

/**
 * DNS mode: the apps whose servers nginx resolves (SRV records the sidecar serves) instead of
 * listing them, and what their upstream blocks need for it.
 */
export interface DnsRendering {
  /** Apps rendered as one `server <zone> service=... resolve` line. */
  apps: ReadonlySet<string>;
  zone: string;
  /** SRV service prefix, `_http._tcp`. */
  service: string;
  /** `ip:port` or `[v6]:port` of the sidecar's DNS server, as nginx reaches it. */
  resolver: string;
  /** Whether nginx must ask for AAAA records for this app (one of its servers is IPv6). */
  ipv6(app: string): boolean;
  /** Shared memory for one app's resolved servers, e.g. `64k`. */
  zoneSize(app: string): string;
}

/** Builds the template context; throws SidecarError('RENDER_INVALID_VALUE') on any bad value. */
export function toViewModel(set: DesiredSet, dns?: DnsRendering): UpstreamsContext {
  const seen = new Set<string>();
  const upstreams = set.upstreams.map((u): UpstreamContext => {
    if (typeof u.name !== 'string' || !NAME.test(u.name)) {
      invalid(`invalid upstream name ${show(u.name)}`);
    }
    if (seen.has(u.name)) invalid(`duplicate upstream name ${show(u.name)}`);
    seen.add(u.name);
    const where = `upstream ${show(u.name)}`;
    if (!Object.hasOwn(BALANCE, u.balance)) invalid(`${where}: invalid balance ${show(u.balance)}`);
    if (!isIntIn(u.keepalive, 0, 10_000)) {
      invalid(`${where}: invalid keepalive ${show(u.keepalive)} (integer 0..10000)`);
    }
    if (typeof u.panic !== 'boolean') invalid(`${where}: invalid panic flag ${show(u.panic)}`);
    const stream = u.context === 'stream';
    if (u.context !== undefined && u.context !== 'http' && !stream) invalid(`${where}: invalid context ${show(u.context)}`);
    if (stream && NOT_IN_STREAM.has(u.balance)) invalid(`${where}: balance ${show(u.balance)} does not exist in nginx's stream module`);
    const failParams = failParamsOf(u, where, dns?.apps.has(u.name) ?? false);
    // nginx has no keepalive in stream upstreams (each TCP connection is proxied as one).
    const keepalive = stream ? 0 : u.keepalive;
    if (dns?.apps.has(u.name)) return { ...dnsUpstream(u, dns, failParams), keepalive };
    const servers = u.servers.map((s): ServerContext => {
      if (!isAddress(s.address)) {
        const expected = 'IPv4:port, [IPv6]:port or hostname:port';
        invalid(`${where}: invalid server address ${show(s.address)} (${expected})`);
      }
      const server = `${where}: server ${s.address}`;
      if (!isIntIn(s.weight, 1, 1000)) invalid(`${server}: invalid weight ${show(s.weight)} (integer 1..1000)`);
      if (typeof s.backup !== 'boolean') invalid(`${server}: invalid backup flag ${show(s.backup)}`);
      if (typeof s.down !== 'boolean') invalid(`${server}: invalid down flag ${show(s.down)}`);
      if (s.backup && NO_BACKUP.has(u.balance)) {
        invalid(`${server}: backup is not supported with balance ${show(u.balance)}`);
      }
      const params =
        (s.weight === 1 ? '' : ` weight=${s.weight}`) + failParams + (s.backup ? ' backup' : '') + (s.down ? ' down' : '');
      // Only a comment: a name that breaks Docker's rule is left out rather than refused.
      const container = typeof s.container === 'string' && CONTAINER_NAME.test(s.container) ? s.container : '';
      return { address: s.address, weight: s.weight, backup: s.backup, down: s.down, params, container };
    });
    if (servers.length > 0 && servers.every((s) => s.backup)) {
      invalid(`${where}: every server is a backup; nginx needs at least one non-backup server`);
    }
    return {
      name: u.name,
      balanceDirective: BALANCE[u.balance],
      keepalive,
      panic: u.panic,
      empty: servers.length === 0,
      directives: [],
      servers,
    };
  });
  return { generatedBy: 'orchestry-sidecar', context: 'http', upstreams };
}

/**
 * ` max_fails=N fail_timeout=Ns`, each only when it differs from nginx's default (1, 10 s).
 * 'auto' is 2 s where nginx re-resolves the app (it sees an ejection up to 1 s late), else 1 s.
 */
function failParamsOf(u: DesiredUpstream, where: string, resolved: boolean): string {
  const maxFails = u.maxFails ?? 1;
  const timeout = u.failTimeoutSeconds === 'auto' ? (resolved ? 2 : 1) : (u.failTimeoutSeconds ?? 10);
  if (!isIntIn(maxFails, 0, 1000)) invalid(`${where}: invalid max_fails ${show(maxFails)} (integer 0..1000)`);
  if (!isIntIn(timeout, 1, 3600)) invalid(`${where}: invalid fail_timeout ${show(timeout)} (seconds 1..3600)`);
  return (maxFails === 1 ? '' : ` max_fails=${maxFails}`) + (timeout === 10 ? '' : ` fail_timeout=${timeout}s`);
}

/**
 * One app in DNS mode: nginx resolves its servers, so the block names only the zone, the
 * resolver and one `resolve` line, and stays the same text whatever the servers do.
 */
function dnsUpstream(u: DesiredUpstream, dns: DnsRendering, failParams: string): UpstreamContext {
  const zoneName = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
  if (!zoneName.test(dns.zone) || !isAddress(dns.resolver) || !/^\d{1,6}k$/.test(dns.zoneSize(u.name))) {
    invalid(`upstream ${show(u.name)}: invalid DNS settings (zone ${show(dns.zone)}, resolver ${show(dns.resolver)})`);
  }
  return {
    name: u.name,
    balanceDirective: BALANCE[u.balance],
    keepalive: u.keepalive,
    panic: u.panic,
    empty: false,
    directives: [
      `zone ${u.name} ${dns.zoneSize(u.name)}`,
      // TTL 0 answers: nginx asks again every second. A short timeout, because the default 30 s
      // freezes updates for 30 s after one lost answer.
      `resolver ${dns.resolver} ipv6=${dns.ipv6(u.name) ? 'on' : 'off'}`,
      'resolver_timeout 2s',
    ],
    servers: [{ address: dns.zone, weight: 1, backup: false, down: false, params: ` service=${dns.service}.${u.name} resolve${failParams}`, container: '' }],
  };
}

function isAddress(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(value);
  if (bracketed) return isIPv6(bracketed[1]!) && isPort(bracketed[2]!);
  const plain = /^([^:]+):(\d{1,5})$/.exec(value);
  if (!plain) return false;
  const host = plain[1]!;
  return isPort(plain[2]!) && (IPV4.test(host) || isHostname(host));
}

function isHostname(host: string): boolean {
  // A dotted all-numeric name is a malformed IPv4 address, not a hostname.
  if (host.length > 253 || /^[\d.]+$/.test(host)) return false;
  return host.split('.').every((label) => HOST_LABEL.test(label));
}

function isPort(text: string): boolean {
  const n = Number(text);
  return n >= 1 && n <= 65535;
}

function isIntIn(value: unknown, min: number, max: number): boolean {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function invalid(message: string): never {
  throw new SidecarError('RENDER_INVALID_VALUE', message);
}
