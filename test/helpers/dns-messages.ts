/**
 * DNS messages for tests, pure: queries built from parts (including malformed ones on purpose)
 * and responses decoded into plain data, so tests read like `answers[0].target`.
 * The decoder is independent of src/nginx/dns/wire.ts's encoder except for reading names.
 * Also the DesiredUpstream the DNS tests publish.
 */
import { readName } from '../../src/nginx/dns/wire.js';
import type { DesiredServer, DesiredUpstream } from '../../src/upstream/types.js';

/** An upstream of `servers` (weight 1, primary, up unless given), round robin. */
export function desiredUpstream(name: string, servers: Array<Partial<DesiredServer> & { address: string }>): DesiredUpstream {
  return {
    name,
    servers: servers.map((s) => ({ weight: 1, backup: false, down: false, ...s })),
    panic: false,
    keepalive: 0,
    balance: 'round_robin',
  };
}

export interface QueryParts {
  id?: number;
  /** Dotted, e.g. `_http._tcp.web.orchestry.internal`. */
  name: string;
  type?: number;
  cls?: number;
  /** Raw header flags; default RD. */
  flags?: number;
  /** Adds an OPT record announcing this UDP size (and version). */
  edns?: { udpSize: number; version?: number };
}

/** A standard query. */
export function buildQuery(q: QueryParts): Uint8Array {
  const bytes: number[] = [];
  const u16 = (v: number) => bytes.push((v >> 8) & 0xff, v & 0xff);
  u16(q.id ?? 0x1234);
  u16(q.flags ?? 0x0100);
  u16(1);
  u16(0);
  u16(0);
  u16(q.edns ? 1 : 0);
  for (const label of q.name.split('.').filter((l) => l !== '')) {
    bytes.push(label.length, ...Buffer.from(label, 'latin1'));
  }
  bytes.push(0);
  u16(q.type ?? 33);
  u16(q.cls ?? 1);
  if (q.edns) {
    bytes.push(0);
    u16(41);
    u16(q.edns.udpSize);
    bytes.push(0, q.edns.version ?? 0, 0, 0);
    u16(0);
  }
  return Uint8Array.from(bytes);
}

export interface DecodedRecord {
  name: string;
  type: number;
  cls: number;
  ttl: number;
  /** SRV */
  priority?: number;
  weight?: number;
  port?: number;
  target?: string;
  /** A / AAAA, as text */
  address?: string;
  /** NS, SOA mname */
  host?: string;
  serial?: number;
  minimum?: number;
}

export interface DecodedMessage {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  rcode: number;
  question: { name: string; type: number; cls: number } | null;
  answers: DecodedRecord[];
  authority: DecodedRecord[];
  additional: DecodedRecord[];
}

/** Decodes a response; throws on anything malformed (a test failure, never expected). */
export function decodeMessage(buf: Uint8Array): DecodedMessage {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const flags = view.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((at) => view.readUInt16BE(at)) as [number, number, number, number];
  let pos = 12;
  let question: DecodedMessage['question'] = null;
  for (let i = 0; i < counts[0]; i++) {
    const qname = nameAt(buf, pos);
    question = { name: qname.text, type: view.readUInt16BE(qname.end), cls: view.readUInt16BE(qname.end + 2) };
    pos = qname.end + 4;
  }
  const records = (n: number) => {
    const out: DecodedRecord[] = [];
    for (let i = 0; i < n; i++) {
      const owner = nameAt(buf, pos);
      pos = owner.end;
      const rec: DecodedRecord = {
        name: owner.text,
        type: view.readUInt16BE(pos),
        cls: view.readUInt16BE(pos + 2),
        ttl: view.readUInt32BE(pos + 4),
      };
      const end = pos + 10 + view.readUInt16BE(pos + 8);
      if (end > buf.length) throw new Error('record past the end');
      decodeData(rec, buf, pos + 10);
      pos = end;
      out.push(rec);
    }
    return out;
  };
  const answers = records(counts[1]);
  const authority = records(counts[2]);
  const additional = records(counts[3]);
  if (pos !== buf.length) throw new Error(`${buf.length - pos} trailing bytes`);
  return {
    id: view.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    rcode: flags & 0xf,
    question,
    answers,
    authority,
    additional,
  };
}

function nameAt(buf: Uint8Array, at: number): { text: string; end: number } {
  const n = readName(buf, at);
  if (!n) throw new Error(`bad name at ${at}`);
  return { text: n.labels.join('.'), end: n.end };
}

function decodeData(rec: DecodedRecord, buf: Uint8Array, at: number): void {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  switch (rec.type) {
    case 1:
      rec.address = [...view.subarray(at, at + 4)].join('.');
      break;
    case 28: {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(view.readUInt16BE(at + i).toString(16));
      rec.address = groups.join(':');
      break;
    }
    case 2:
      rec.host = nameAt(buf, at).text;
      break;
    case 6: {
      const mname = nameAt(buf, at);
      const rname = nameAt(buf, mname.end);
      rec.host = mname.text;
      rec.serial = view.readUInt32BE(rname.end);
      rec.minimum = view.readUInt32BE(rname.end + 16);
      break;
    }
    case 33:
      rec.priority = view.readUInt16BE(at);
      rec.weight = view.readUInt16BE(at + 2);
      rec.port = view.readUInt16BE(at + 4);
      rec.target = nameAt(buf, at + 6).text;
      break;
  }
}
