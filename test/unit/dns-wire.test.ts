import { describe, expect, it } from 'vitest';
import { buildZoneTable, unpublishedZone, type ZoneTable } from '../../src/nginx/dns/records.js';
import { respond, type Transport } from '../../src/nginx/dns/respond.js';
import { RCODE, RR_TYPE, encodeResponse, parseQuery, readName, type ResourceRecord } from '../../src/nginx/dns/wire.js';
import type { DesiredUpstream } from '../../src/upstream/types.js';
import { buildQuery, decodeMessage, desiredUpstream } from '../helpers/dns-messages.js';

const SPEC = { zone: 'orchestry.internal', service: '_http._tcp' };


function zoneWith(...upstreams: DesiredUpstream[]): ZoneTable {
  return buildZoneTable({ upstreams }, SPEC, 7).table;
}

const WEB = zoneWith(
  desiredUpstream('web', [
    { address: '127.0.0.1:8001', weight: 5 },
    { address: '127.0.0.1:8002' },
    { address: '127.0.0.2:8003', backup: true },
  ]),
);

/** Thirty backends: about 1.5 KB of SRV records, three times a classic UDP message. */
const BIG = zoneWith(
  desiredUpstream(
    'big',
    Array.from({ length: 30 }, (_, i) => ({ address: `127.0.0.${i + 1}:${9000 + i}` })),
  ),
);

function ask(table: ZoneTable, q: Parameters<typeof buildQuery>[0], transport: Transport = 'udp') {
  const reply = respond(buildQuery(q), table, transport);
  if (!reply.bytes) throw new Error(`no reply (${reply.outcome}: ${reply.reason})`);
  return { reply, msg: decodeMessage(reply.bytes) };
}

/** A header (id 0x4242, RD) with these counts, then `body`. */
function packet(counts: [number, number, number, number], body: number[], flags = 0x0100): Uint8Array {
  const head = [0x42, 0x42, flags >> 8, flags & 0xff];
  for (const c of counts) head.push(c >> 8, c & 0xff);
  return Uint8Array.from([...head, ...body]);
}

const SRV_QUESTION = [...Buffer.from('\x03web\x09orchestry\x08internal\x00', 'latin1'), 0, 33, 0, 1];

describe('parseQuery', () => {
  it('reads a well-formed query', () => {
    const parsed = parseQuery(buildQuery({ id: 7, name: '_http._tcp.web.orchestry.internal', type: 33 }));
    expect(parsed).toEqual({
      kind: 'query',
      query: {
        id: 7,
        opcode: 0,
        rd: true,
        question: { labels: ['_http', '_tcp', 'web', 'orchestry', 'internal'], type: 33, cls: 1 },
        edns: null,
      },
    });
  });

  it('drops packets shorter than a header and responses', () => {
    for (let n = 0; n < 12; n++) expect(parseQuery(new Uint8Array(n)).kind).toBe('drop');
    expect(parseQuery(packet([1, 0, 0, 0], SRV_QUESTION, 0x8100))).toEqual({ kind: 'drop', reason: 'a response, not a query' });
  });

  it('answers other opcodes with NOTIMP', () => {
    for (const opcode of [1, 2, 4, 5, 15]) {
      const parsed = parseQuery(packet([1, 0, 0, 0], SRV_QUESTION, opcode << 11));
      expect(parsed).toMatchObject({ kind: 'error', rcode: RCODE.NOTIMP, id: 0x4242, opcode });
    }
  });

  it('answers wrong section counts with FORMERR', () => {
    for (const counts of [[0, 0, 0, 0], [2, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1], [65535, 0, 0, 0]] as const) {
      expect(parseQuery(packet([...counts], SRV_QUESTION))).toMatchObject({ kind: 'error', rcode: RCODE.FORMERR });
    }
  });

  it('answers every truncation of a query with FORMERR', () => {
    const full = buildQuery({ name: '_http._tcp.web.orchestry.internal', edns: { udpSize: 1232 } });
    for (let n = 12; n < full.length; n++) {
      expect(parseQuery(full.subarray(0, n)), `cut at ${n}`).toMatchObject({ kind: 'error', rcode: RCODE.FORMERR });
    }
    expect(parseQuery(full).kind).toBe('query');
  });

  it('answers trailing bytes after the last record with FORMERR', () => {
    const full = buildQuery({ name: 'web.orchestry.internal' });
    expect(parseQuery(Uint8Array.from([...full, 0]))).toMatchObject({ rcode: RCODE.FORMERR, reason: '1 bytes after the last record' });
  });

  it('refuses compression pointers that point at themselves or forwards', () => {
    const self = packet([1, 0, 0, 0], [0xc0, 12, 0, 1, 0, 1]);
    const forward = packet([1, 0, 0, 0], [0xc0, 14, 0x01, 0x61, 0x00, 0, 1, 0, 1]);
    const intoLabel = packet([1, 0, 0, 0], [0x01, 0x61, 0xc0, 12, 0, 1, 0, 1]);
    for (const p of [self, forward, intoLabel]) {
      expect(parseQuery(p)).toMatchObject({ kind: 'error', rcode: RCODE.FORMERR, reason: 'malformed question name' });
    }
  });

  it('refuses label lengths 64-191 (extended label types) and labels longer than the packet', () => {
    for (const len of [64, 0x40, 0x7f, 0x80, 0xbf]) {
      expect(parseQuery(packet([1, 0, 0, 0], [len, ...new Array<number>(len).fill(0x61), 0, 0, 1, 0, 1]))).toMatchObject({
        rcode: RCODE.FORMERR,
      });
    }
    expect(parseQuery(packet([1, 0, 0, 0], [63, 0x61, 0x62]))).toMatchObject({ rcode: RCODE.FORMERR });
  });

  it('accepts a name of exactly 255 bytes and refuses 256', () => {
    // 3 labels of 63 + one of 62 = 4 * 64 - 1 = 255 bytes with the root byte
    const name = (last: number) => [...[63, 63, 63, last].flatMap((n) => [n, ...new Array<number>(n).fill(0x61)]), 0];
    expect(parseQuery(packet([1, 0, 0, 0], [...name(61), 0, 1, 0, 1])).kind).toBe('query');
    expect(parseQuery(packet([1, 0, 0, 0], [...name(62), 0, 1, 0, 1]))).toMatchObject({ rcode: RCODE.FORMERR });
  });

  it('reads EDNS and refuses two OPT records or one below the root', () => {
    const q = parseQuery(buildQuery({ name: 'x.orchestry.internal', edns: { udpSize: 4096 } }));
    expect(q).toMatchObject({ kind: 'query', query: { edns: { udpSize: 4096, version: 0 } } });
    const opt = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
    expect(parseQuery(packet([1, 0, 0, 2], [...SRV_QUESTION, ...opt, ...opt]))).toMatchObject({
      rcode: RCODE.FORMERR,
      reason: 'more than one OPT record',
    });
    const named = [1, 0x61, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
    expect(parseQuery(packet([1, 0, 0, 1], [...SRV_QUESTION, ...named]))).toMatchObject({ reason: 'OPT record not at the root' });
  });
});

describe('readName', () => {
  it('follows a long chain of backward pointers to its end without looping', () => {
    // 0x00 at 0, then 8,000 pointers (as many as 14-bit offsets reach), each to the one before it.
    const count = 8000;
    const buf = new Uint8Array(1 + 2 * count);
    for (let i = 0; i < count; i++) {
      const at = 1 + 2 * i;
      const target = i === 0 ? 0 : at - 2;
      buf[at] = 0xc0 | (target >> 8);
      buf[at + 1] = target & 0xff;
    }
    const last = 1 + 2 * (count - 1);
    expect(readName(buf, last)).toEqual({ labels: [], end: last + 2 });
  });

  it('refuses names that pointers make longer than 255 bytes', () => {
    // "a" labels, each followed by a pointer back to the previous label: a name of 300 labels.
    const bytes = [0];
    let prev = 0;
    for (let i = 0; i < 300; i++) {
      const at = bytes.length;
      bytes.push(1, 0x61, 0xc0 | (prev >> 8), prev & 0xff);
      prev = at;
    }
    expect(readName(Uint8Array.from(bytes), prev)).toBeNull();
  });
});

describe('encodeResponse', () => {
  const srv = (i: number): ResourceRecord => ({
    labels: ['_http', '_tcp', 'big', 'orchestry', 'internal'],
    ttl: 0,
    data: { type: 'SRV', priority: 10, weight: 1, port: 9000 + i, target: [`ip-127-0-0-${i + 1}`, 'orchestry', 'internal'] },
  });
  const base = {
    id: 1,
    opcode: 0,
    rd: true,
    aa: true,
    rcode: 0,
    question: { labels: ['_http', '_tcp', 'big', 'orchestry', 'internal'], type: 33, cls: 1 },
    authority: [],
    additional: [],
    edns: null,
  };

  it('compresses owner names against the question', () => {
    const one = encodeResponse({ ...base, answers: [srv(0)] }, 512).bytes.length;
    const two = encodeResponse({ ...base, answers: [srv(0), srv(1)] }, 512).bytes.length;
    // name pointer (2) + type, class, ttl, length (10) + priority, weight, port (6) + uncompressed target (33)
    expect(two - one).toBe(2 + 10 + 6 + 33);
  });

  it('cuts an answer that does not fit to the question with TC, and sends all of it when it fits', () => {
    const answers = Array.from({ length: 30 }, (_, i) => srv(i));
    const cut = encodeResponse({ ...base, answers }, 512);
    expect(cut.truncated).toBe(true);
    const msg = decodeMessage(cut.bytes);
    expect(msg).toMatchObject({ tc: true, answers: [], question: { name: '_http._tcp.big.orchestry.internal' } });
    const whole = encodeResponse({ ...base, answers }, 65535);
    expect(whole.truncated).toBe(false);
    expect(decodeMessage(whole.bytes).answers).toHaveLength(30);
  });

  it('leaves out additional records that do not fit without setting TC', () => {
    const additional: ResourceRecord[] = Array.from({ length: 40 }, (_, i) => ({
      labels: [`ip-127-0-0-${i + 1}`, 'orchestry', 'internal'],
      ttl: 0,
      data: { type: 'A', address: Uint8Array.of(127, 0, 0, i + 1) },
    }));
    const res = encodeResponse({ ...base, answers: [srv(0)], additional }, 512);
    const msg = decodeMessage(res.bytes);
    expect(res.truncated).toBe(false);
    expect(msg.tc).toBe(false);
    expect(msg.answers).toHaveLength(1);
    expect(msg.additional.length).toBeGreaterThan(0);
    expect(msg.additional.length).toBeLessThan(40);
    expect(res.bytes.length).toBeLessThanOrEqual(512);
  });
});

describe('respond', () => {
  it('answers the SRV query with TTL 0, authoritatively, echoing the question as asked', () => {
    const { msg } = ask(WEB, { id: 99, name: '_HTTP._tcp.Web.orchestry.INTERNAL' });
    expect(msg).toMatchObject({ id: 99, qr: true, aa: true, tc: false, rd: true, rcode: 0 });
    expect(msg.question).toEqual({ name: '_HTTP._tcp.Web.orchestry.INTERNAL', type: 33, cls: 1 });
    expect(msg.answers.map((a) => [a.name, a.ttl, a.priority, a.weight, a.port, a.target])).toEqual([
      ['_HTTP._tcp.Web.orchestry.INTERNAL', 0, 10, 5, 8001, 'ip-127-0-0-1.orchestry.internal'],
      ['_HTTP._tcp.Web.orchestry.INTERNAL', 0, 10, 1, 8002, 'ip-127-0-0-1.orchestry.internal'],
      ['_HTTP._tcp.Web.orchestry.INTERNAL', 0, 20, 1, 8003, 'ip-127-0-0-2.orchestry.internal'],
    ]);
    expect(msg.additional.map((a) => [a.name, a.address])).toEqual([
      ['ip-127-0-0-1.orchestry.internal', '127.0.0.1'],
      ['ip-127-0-0-2.orchestry.internal', '127.0.0.2'],
    ]);
  });

  it('answers A and AAAA for names that spell an address, whatever their case', () => {
    expect(ask(WEB, { name: 'IP-10-1-2-3.orchestry.internal', type: 1 }).msg.answers).toMatchObject([
      { type: 1, ttl: 0, address: '10.1.2.3' },
    ]);
    expect(ask(WEB, { name: 'ip6-2001-db8--1.orchestry.internal', type: 28 }).msg.answers).toMatchObject([
      { type: 28, address: '2001:db8:0:0:0:0:0:1' },
    ]);
    // A question for the other family: the name exists, no record of that type.
    const nodata = ask(WEB, { name: 'ip-10-1-2-3.orchestry.internal', type: 28 });
    expect(nodata.reply.outcome).toBe('nodata');
    expect(nodata.msg).toMatchObject({ rcode: 0, aa: true, answers: [] });
  });

  it('answers NXDOMAIN with a zero-TTL SOA for unknown names and non-canonical address names', () => {
    for (const name of ['nothing.orchestry.internal', 'ip-127-000-0-1.orchestry.internal', 'ip6-0--1.orchestry.internal', '_http._tcp.other.orchestry.internal']) {
      const { msg, reply } = ask(WEB, { name, type: 1 });
      expect(reply.outcome, name).toBe('nxdomain');
      expect(msg.rcode).toBe(RCODE.NXDOMAIN);
      expect(msg.authority).toMatchObject([{ type: RR_TYPE.SOA, name: 'orchestry.internal', ttl: 0, minimum: 0, serial: 7 }]);
    }
  });

  it('answers names between an app and the apex with NOERROR and no records', () => {
    for (const name of ['web.orchestry.internal', '_tcp.web.orchestry.internal', 'ns.orchestry.internal']) {
      expect(ask(WEB, { name, type: 33 }).reply.outcome, name).toBe('nodata');
    }
  });

  it('answers SOA and NS at the apex', () => {
    expect(ask(WEB, { name: 'orchestry.internal', type: 6 }).msg.answers).toMatchObject([{ type: 6, host: 'ns.orchestry.internal' }]);
    expect(ask(WEB, { name: 'orchestry.internal', type: 2 }).msg.answers).toMatchObject([{ type: 2, host: 'ns.orchestry.internal' }]);
    expect(ask(WEB, { name: 'orchestry.internal', type: 255 }).msg.answers).toHaveLength(2);
  });

  it('refuses other zones and classes, and refuses zone transfers', () => {
    expect(ask(WEB, { name: 'example.com', type: 1 }).msg).toMatchObject({ rcode: RCODE.REFUSED, aa: false });
    expect(ask(WEB, { name: 'internal', type: 1 }).msg.rcode).toBe(RCODE.REFUSED);
    expect(ask(WEB, { name: 'version.bind', type: 16, cls: 3 }).msg.rcode).toBe(RCODE.REFUSED);
    expect(ask(WEB, { name: 'orchestry.internal', type: 252 }).msg.rcode).toBe(RCODE.NOTIMP);
  });

  it('answers SERVFAIL in its zone until something is published, so nginx keeps what it has', () => {
    const empty = unpublishedZone(SPEC);
    expect(ask(empty, { name: '_http._tcp.web.orchestry.internal' }).msg.rcode).toBe(RCODE.SERVFAIL);
    expect(ask(empty, { name: 'example.com' }).msg.rcode).toBe(RCODE.REFUSED);
  });

  it('truncates a large answer over UDP and sends it whole over TCP', () => {
    const udp = ask(BIG, { name: '_http._tcp.big.orchestry.internal' });
    expect(udp.reply.truncated).toBe(true);
    expect(udp.msg).toMatchObject({ tc: true, answers: [] });
    expect(udp.reply.bytes!.length).toBeLessThanOrEqual(512);
    const tcp = ask(BIG, { name: '_http._tcp.big.orchestry.internal' }, 'tcp');
    expect(tcp.msg.tc).toBe(false);
    expect(tcp.msg.answers).toHaveLength(30);
  });

  it('uses the UDP size EDNS offers, up to 1232 bytes, and answers EDNS version 1 with BADVERS', () => {
    const twenty = zoneWith(desiredUpstream('mid', Array.from({ length: 20 }, (_, i) => ({ address: `127.0.0.${i + 1}:80` }))));
    const q = { name: '_http._tcp.mid.orchestry.internal' };
    expect(ask(twenty, q).msg.tc).toBe(true);
    const edns = ask(twenty, { ...q, edns: { udpSize: 4096 } });
    expect(edns.msg.tc).toBe(false);
    expect(edns.msg.answers).toHaveLength(20);
    expect(edns.reply.bytes!.length).toBeLessThanOrEqual(1232);
    expect(edns.msg.additional.at(-1)).toMatchObject({ type: 41, cls: 1232 });
    const bad = ask(twenty, { ...q, edns: { udpSize: 4096, version: 1 } });
    // BADVERS is 16: 0 in the header, 1 in the OPT record's extended rcode (TTL top byte).
    expect(bad.reply.outcome).toBe('badvers');
    expect(bad.msg.rcode).toBe(0);
    expect(bad.msg.additional).toMatchObject([{ type: 41, ttl: 0x01000000 }]);
  });
});

/** mulberry32: a small seeded PRNG, so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('respond to random and mutated packets', () => {
  const seeds = [
    buildQuery({ name: '_http._tcp.web.orchestry.internal' }),
    buildQuery({ name: 'ip-127-0-0-1.orchestry.internal', type: 1, edns: { udpSize: 1400 } }),
    buildQuery({ name: '_http._tcp.big.orchestry.internal' }),
    buildQuery({ name: 'orchestry.internal', type: 255 }),
  ];

  it('either answers with a well-formed message or drops, never throws (seeded)', () => {
    const random = prng(0x5eed);
    const int = (n: number) => Math.floor(random() * n);
    const table = zoneWith(
      desiredUpstream('web', [{ address: '127.0.0.1:8001' }]),
      desiredUpstream('big', Array.from({ length: 30 }, (_, i) => ({ address: `127.0.0.${i + 1}:${9000 + i}` }))),
    );
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      let bytes: Uint8Array;
      if (i % 4 === 0) {
        bytes = Uint8Array.from({ length: int(300) }, () => int(256));
        if (bytes.length > 3 && random() < 0.8) bytes[2] = bytes[2]! & 0x07; // mostly queries, opcode 0
      } else {
        const copy = [...seeds[int(seeds.length)]!];
        for (let m = 1 + int(4); m > 0; m--) {
          const at = int(copy.length);
          const op = int(4);
          if (op === 0) copy[at] = int(256);
          else if (op === 1) copy[at] = copy[at]! ^ (1 << int(8));
          else if (op === 2) copy.splice(at, 0, ...Array.from({ length: 1 + int(4) }, () => (random() < 0.5 ? 0xc0 : int(256))));
          else copy.length = at;
        }
        bytes = Uint8Array.from(copy);
      }
      const transport = random() < 0.5 ? 'udp' : 'tcp';
      const reply = respond(bytes, table, transport);
      outcomes.set(reply.outcome, (outcomes.get(reply.outcome) ?? 0) + 1);
      expect(reply.reason ?? '', `case ${i}`).not.toMatch(/internal error/);
      if (!reply.bytes) continue;
      const msg = decodeMessage(reply.bytes);
      expect(msg.qr).toBe(true);
      expect(msg.id).toBe((bytes[0]! << 8) | bytes[1]!);
      if (transport === 'udp') expect(reply.bytes.length).toBeLessThanOrEqual(1232);
    }
    // The mix reached every kind of reply, not just one error path.
    for (const o of ['answer', 'nxdomain', 'refused', 'formerr', 'notimp', 'dropped']) expect(outcomes.get(o), o).toBeGreaterThan(0);
  });
});
