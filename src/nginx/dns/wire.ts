/**
 * DNS wire format (RFC 1035), the part an authoritative server needs: reading one query and
 * writing one response. Pure: bytes in, data out, and the reverse.
 *
 * Written by hand rather than with a library because the server answers a handful of record
 * types for one zone, and what matters here is how it treats hostile bytes: every read is
 * bounds-checked and returns a result instead of throwing, names are capped at 255 bytes, and a
 * compression pointer may only jump strictly backwards, so a pointer loop cannot exist (each
 * jump lands before the previous one, and a name is read in at most packet-length steps).
 */

/** Record types this server reads or writes. */
export const RR_TYPE = {
  A: 1,
  NS: 2,
  SOA: 6,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  MAILB: 253,
  MAILA: 254,
  ANY: 255,
} as const;

/** Class IN, the only one this server has records in. */
export const CLASS_IN = 1;
/** QCLASS ANY, answered like IN. */
export const CLASS_ANY = 255;

/** Response codes; BADVERS (16) only exists with EDNS (its upper bits travel in the OPT record). */
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;

/** Size of the fixed header. */
export const HEADER_SIZE = 12;
/** Largest UDP answer to a client that did not announce more with EDNS (RFC 1035 4.2.1). */
export const CLASSIC_UDP_SIZE = 512;
/** Largest UDP answer we send even when EDNS offers more (the DNS flag day 2020 figure). */
export const MAX_EDNS_UDP_SIZE = 1232;
/** A TCP message's length prefix is 16 bits. */
export const MAX_MESSAGE_SIZE = 65535;

const MAX_NAME_WIRE = 255;
const MAX_LABEL = 63;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;

/** A domain name as its labels, each a byte string held in a latin1 string (one char per byte). */
export type Labels = readonly string[];

/** The one question of a query. */
export interface Question {
  labels: Labels;
  type: number;
  cls: number;
}

/** What a client announced with an EDNS OPT record (RFC 6891). */
export interface Edns {
  udpSize: number;
  version: number;
}

/** A well-formed standard query. */
export interface Query {
  id: number;
  opcode: number;
  rd: boolean;
  question: Question;
  edns: Edns | null;
}

/** A parsed packet: a query to answer, an error to send back, or nothing to send at all. */
export type ParsedPacket =
  | { kind: 'query'; query: Query }
  | { kind: 'error'; id: number; opcode: number; rd: boolean; rcode: number; reason: string }
  | { kind: 'drop'; reason: string };

/** The data of the record types this server writes. */
export type RecordData =
  | { type: 'A'; address: Uint8Array }
  | { type: 'AAAA'; address: Uint8Array }
  | { type: 'NS'; host: Labels }
  | { type: 'SRV'; priority: number; weight: number; port: number; target: Labels }
  | {
      type: 'SOA';
      mname: Labels;
      rname: Labels;
      serial: number;
      refresh: number;
      retry: number;
      expire: number;
      minimum: number;
    };

/** One record of an answer, authority or additional section. */
export interface ResourceRecord {
  labels: Labels;
  ttl: number;
  data: RecordData;
}

/** Everything encodeResponse() writes. */
export interface Response {
  id: number;
  opcode: number;
  rd: boolean;
  aa: boolean;
  /** Up to 12 bits; values above 15 need `edns`. */
  rcode: number;
  /** Echoed as received (case included: resolvers may randomise it and compare). */
  question: Question | null;
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  /** Sent only as far as it fits; leaving it out never sets TC (RFC 2181 9). */
  additional: ResourceRecord[];
  /** Our OPT record, when the query carried one. */
  edns: { udpSize: number } | null;
}

/** Reads a name at `offset`; null when it is malformed, too long or loops. */
export function readName(buf: Uint8Array, offset: number): { labels: string[]; end: number } | null {
  const labels: string[] = [];
  let pos = offset;
  let end = -1;
  let wire = 1; // the root label's length byte
  // A pointer must land before `floor`, the start of the labels being read; so every jump goes
  // strictly backwards and the walk ends.
  let floor = offset;
  for (;;) {
    const len = buf[pos];
    if (len === undefined) return null;
    if (len === 0) return { labels, end: end < 0 ? pos + 1 : end };
    if ((len & 0xc0) === 0xc0) {
      const low = buf[pos + 1];
      if (low === undefined) return null;
      const target = ((len & 0x3f) << 8) | low;
      if (end < 0) end = pos + 2;
      if (target >= floor) return null;
      floor = target;
      pos = target;
      continue;
    }
    if (len > MAX_LABEL) return null; // 0x40 and 0x80: extended label types, never deployed
    wire += 1 + len;
    if (wire > MAX_NAME_WIRE || pos + 1 + len > buf.length) return null;
    labels.push(latin1(buf, pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
}

/** ASCII-only lowercase (DNS names compare case-insensitively in ASCII only, RFC 4343). */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** A key that is equal for two names exactly when DNS considers them the same name. */
export function nameKey(labels: Labels): string {
  return labels.map((l) => `${l.length}:${asciiLower(l)}`).join('');
}

function latin1(buf: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!);
  return s;
}

function u16(buf: Uint8Array, at: number): number | null {
  return at + 2 <= buf.length ? (buf[at]! << 8) | buf[at + 1]! : null;
}

function u32(buf: Uint8Array, at: number): number | null {
  const hi = u16(buf, at);
  const lo = u16(buf, at + 2);
  return hi === null || lo === null ? null : hi * 0x10000 + lo;
}

/**
 * Reads one query. Anything that is not a well-formed standard query becomes an error to send
 * back (FORMERR, NOTIMP) when it has a header to answer, or a drop: fewer than 12 bytes, or a
 * response (answering responses could start a loop between two servers).
 */
export function parseQuery(buf: Uint8Array): ParsedPacket {
  if (buf.length < HEADER_SIZE) return { kind: 'drop', reason: 'shorter than a header' };
  const id = u16(buf, 0)!;
  const flags = u16(buf, 2)!;
  if (flags & FLAG_QR) return { kind: 'drop', reason: 'a response, not a query' };
  const opcode = (flags >> 11) & 0xf;
  const rd = (flags & FLAG_RD) !== 0;
  const error = (rcode: number, reason: string): ParsedPacket => ({ kind: 'error', id, opcode, rd, rcode, reason });
  if (opcode !== 0) return error(RCODE.NOTIMP, `opcode ${opcode}`);
  const [qd, an, ns, ar] = [u16(buf, 4)!, u16(buf, 6)!, u16(buf, 8)!, u16(buf, 10)!];
  if (qd !== 1) return error(RCODE.FORMERR, `${qd} questions`);
  if (an !== 0 || ns !== 0) return error(RCODE.FORMERR, 'answer or authority records in a query');
  const name = readName(buf, HEADER_SIZE);
  if (!name) return error(RCODE.FORMERR, 'malformed question name');
  const type = u16(buf, name.end);
  const cls = u16(buf, name.end + 2);
  if (type === null || cls === null) return error(RCODE.FORMERR, 'truncated question');
  const extra = readAdditional(buf, name.end + 4, ar);
  if (typeof extra === 'string') return error(RCODE.FORMERR, extra);
  return { kind: 'query', query: { id, opcode, rd, question: { labels: name.labels, type, cls }, edns: extra.edns } };
}

/**
 * The additional section of a query: at most one OPT record (RFC 6891 6.1.1), other records
 * skipped. The packet must end exactly after the last record. Returns a reason when malformed.
 */
function readAdditional(buf: Uint8Array, start: number, count: number): { edns: Edns | null } | string {
  let pos = start;
  let edns: Edns | null = null;
  // Each record takes at least 11 bytes, so `count` cannot make this loop outrun the packet.
  for (let i = 0; i < count; i++) {
    const name = readName(buf, pos);
    if (!name) return 'malformed additional record name';
    const type = u16(buf, name.end);
    const cls = u16(buf, name.end + 2);
    const ttl = u32(buf, name.end + 4);
    const rdlength = u16(buf, name.end + 8);
    if (type === null || cls === null || ttl === null || rdlength === null) return 'truncated additional record';
    pos = name.end + 10 + rdlength;
    if (pos > buf.length) return 'additional record longer than the packet';
    if (type !== RR_TYPE.OPT) continue;
    if (edns) return 'more than one OPT record';
    if (name.labels.length > 0) return 'OPT record not at the root';
    edns = { udpSize: cls, version: Math.floor(ttl / 0x10000) & 0xff };
  }
  if (pos !== buf.length) return `${buf.length - pos} bytes after the last record`;
  return { edns };
}

/**
 * Writes a response of at most `maxSize` bytes (at least 512). When the answer and authority
 * sections do not fit, the message is cut to header + question (+ OPT) with TC set, so the
 * client asks again over TCP; additional records that do not fit are just left out.
 */
export function encodeResponse(res: Response, maxSize: number): { bytes: Uint8Array; truncated: boolean } {
  const w = new Writer(Math.min(Math.max(maxSize, CLASSIC_UDP_SIZE), MAX_MESSAGE_SIZE));
  // Room kept for the OPT record (11 bytes), which must survive every cut.
  const reserve = res.edns ? 11 : 0;
  w.limit -= reserve;
  w.u16(res.id);
  w.u16(0); // flags, written at the end
  w.u16(res.question ? 1 : 0);
  w.u16(0);
  w.u16(0);
  w.u16(0);
  if (res.question && !w.question(res.question)) throw new RangeError('question larger than any message');
  const afterQuestion = w.mark();
  let truncated = false;
  const counts = [0, 0, 0];
  for (const [section, records] of [res.answers, res.authority].entries()) {
    for (const rr of records) {
      if (!w.record(rr)) truncated = true;
      else counts[section]!++;
      if (truncated) break;
    }
    if (truncated) break;
  }
  if (truncated) {
    w.reset(afterQuestion);
    counts.fill(0);
  } else {
    for (const rr of res.additional) if (w.record(rr)) counts[2]!++;
  }
  w.limit += reserve;
  if (res.edns) {
    w.opt(res.edns.udpSize, res.rcode >> 4);
    counts[2]!++;
  }
  const flags =
    FLAG_QR |
    ((res.opcode & 0xf) << 11) |
    (res.aa ? FLAG_AA : 0) |
    (truncated ? FLAG_TC : 0) |
    (res.rd ? FLAG_RD : 0) |
    (res.rcode & 0xf);
  w.patch(2, flags);
  counts.forEach((n, i) => w.patch(6 + 2 * i, n));
  return { bytes: w.bytes(), truncated };
}

/** An append-only message buffer with name compression and all-or-nothing record writes. */
class Writer {
  private readonly buf: Uint8Array;
  private pos = 0;
  limit: number;
  /** Lowercased name suffix -> offset where it was written (only offsets a pointer can reach). */
  private readonly names = new Map<string, number>();

  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.limit = size;
  }

  mark(): number {
    return this.pos;
  }

  /** Forgets everything written after `at`, compression targets included. */
  reset(at: number): void {
    this.pos = at;
    for (const [key, offset] of this.names) if (offset >= at) this.names.delete(key);
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  u16(v: number): boolean {
    if (this.pos + 2 > this.limit) return false;
    this.buf[this.pos++] = (v >> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return true;
  }

  u32(v: number): boolean {
    return this.u16(Math.floor(v / 0x10000) & 0xffff) && this.u16(v & 0xffff);
  }

  raw(data: Uint8Array): boolean {
    if (this.pos + data.length > this.limit) return false;
    this.buf.set(data, this.pos);
    this.pos += data.length;
    return true;
  }

  patch(at: number, v: number): void {
    this.buf[at] = (v >> 8) & 0xff;
    this.buf[at + 1] = v & 0xff;
  }

  /** Writes a name, compressed against names written before unless `compress` is false. */
  name(labels: Labels, compress = true): boolean {
    for (let i = 0; i < labels.length; i++) {
      const key = nameKey(labels.slice(i));
      const seen = compress ? this.names.get(key) : undefined;
      if (seen !== undefined) return this.u16(0xc000 | seen);
      if (this.pos < 0x4000 && !this.names.has(key)) this.names.set(key, this.pos);
      const label = labels[i]!;
      if (this.pos + 1 + label.length > this.limit) return false;
      this.buf[this.pos++] = label.length;
      for (let j = 0; j < label.length; j++) this.buf[this.pos++] = label.charCodeAt(j) & 0xff;
    }
    if (this.pos + 1 > this.limit) return false;
    this.buf[this.pos++] = 0;
    return true;
  }

  question(q: Question): boolean {
    return this.name(q.labels) && this.u16(q.type) && this.u16(q.cls);
  }

  /** One resource record, or nothing (and false) when it does not fit. */
  record(rr: ResourceRecord): boolean {
    const start = this.mark();
    const ok =
      this.name(rr.labels) && this.u16(RR_TYPE[rr.data.type]) && this.u16(CLASS_IN) && this.u32(rr.ttl) && this.rdata(rr.data);
    if (!ok) this.reset(start);
    return ok;
  }

  private rdata(data: RecordData): boolean {
    const lengthAt = this.pos;
    if (!this.u16(0)) return false;
    const ok = this.rdataBody(data);
    if (ok) this.patch(lengthAt, this.pos - lengthAt - 2);
    return ok;
  }

  private rdataBody(data: RecordData): boolean {
    switch (data.type) {
      case 'A':
      case 'AAAA':
        return this.raw(data.address);
      case 'NS':
        return this.name(data.host);
      case 'SRV':
        // RFC 2782: the target is never compressed.
        return this.u16(data.priority) && this.u16(data.weight) && this.u16(data.port) && this.name(data.target, false);
      case 'SOA':
        return (
          this.name(data.mname) &&
          this.name(data.rname) &&
          [data.serial, data.refresh, data.retry, data.expire, data.minimum].every((v) => this.u32(v))
        );
    }
  }

  /** Our OPT record: root name, payload size as class, extended rcode in the TTL's top byte. */
  opt(udpSize: number, extendedRcode: number): void {
    this.raw(Uint8Array.of(0, 0, RR_TYPE.OPT));
    this.u16(udpSize);
    this.u32((extendedRcode & 0xff) * 0x1000000);
    this.u16(0);
  }
}
