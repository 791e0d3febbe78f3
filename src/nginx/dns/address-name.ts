/**
 * Host names that spell an address, for SRV targets: `ip-127-0-0-1` is 127.0.0.1 and
 * `ip6-2001-db8--1` is 2001:db8::1 (the RFC 5952 text with ':' written as '-'). The DNS server
 * answers A/AAAA for such a name from the name alone, so a target it handed out stays
 * resolvable even after its backend left the SRV answer: nginx asks for the SRV record and then
 * for each target, and a change landing between the two must not turn into NXDOMAIN.
 * Only the canonical spelling of an address is a name (no leading zeros, lowercase, longest
 * zero run compressed), so every address has exactly one.
 */
import { isIPv6 } from 'node:net';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const V4_PREFIX = 'ip-';
const V6_PREFIX = 'ip6-';

/** The address a name spells, as A or AAAA data. */
export interface ParsedAddress {
  type: 'A' | 'AAAA';
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/** `127.0.0.1:8080` or `[::1]:8080` (nginx's spelling) -> host and port; null when malformed. */
export function splitHostPort(address: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2]!, port };
}

/** The host name label of an IP address, or null for anything else (e.g. a host name). */
export function addressLabel(host: string): string | null {
  if (IPV4.test(host)) return V4_PREFIX + host.replaceAll('.', '-');
  const canonical = canonicalIPv6(host);
  return canonical === null ? null : V6_PREFIX + canonical.replaceAll(':', '-');
}

/** The address a label spells, or null when it spells none (or not canonically). */
export function labelAddress(label: string): ParsedAddress | null {
  const lower = label.toLowerCase();
  if (lower.startsWith(V6_PREFIX)) {
    const spelled = lower.slice(V6_PREFIX.length);
    const text = spelled.replaceAll('-', ':');
    if (!/^[0-9a-f-]+$/.test(spelled) || canonicalIPv6(text) !== text) return null;
    return { type: 'AAAA', bytes: ipv6Bytes(text) };
  }
  if (lower.startsWith(V4_PREFIX)) {
    const spelled = lower.slice(V4_PREFIX.length);
    const text = spelled.replaceAll('-', '.');
    if (!/^[0-9-]+$/.test(spelled) || !IPV4.test(text)) return null;
    return { type: 'A', bytes: Uint8Array.from(text.split('.').map(Number)) };
  }
  return null;
}

/**
 * RFC 5952 text of an IPv6 address, or null. WHATWG URL serialisation is that form (lowercase,
 * no leading zeros, the first longest run of two or more zero groups as `::`), and it writes
 * an embedded IPv4 part in hex, so the result never holds a dot. Zone ids (`%eth0`) are refused.
 */
function canonicalIPv6(text: string): string | null {
  if (!isIPv6(text) || text.includes('%')) return null;
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

/** 16 bytes of a canonical IPv6 text (hex groups only, at most one `::`). */
function ipv6Bytes(text: string): Uint8Array {
  const [head = '', tail] = text.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}
