/**
 * One packet in, at most one packet out: the whole DNS server apart from its sockets. Pure, so
 * hostile and random bytes are tested without a socket (test/unit/dns-wire.test.ts).
 */
import { answerQuestion, type AnswerOutcome } from './answer.js';
import type { ZoneTable } from './records.js';
import {
  CLASSIC_UDP_SIZE,
  MAX_EDNS_UDP_SIZE,
  MAX_MESSAGE_SIZE,
  RCODE,
  encodeResponse,
  parseQuery,
  type Query,
  type Question,
  type Response,
} from './wire.js';

/** How a message arrived: it decides how large the answer may be. */
export type Transport = 'udp' | 'tcp';

/** What became of one packet. */
export type ReplyOutcome = AnswerOutcome | 'badvers' | 'dropped';

/** What to send back for one packet, and what it was. */
export interface Reply {
  /** Bytes to send back, or null: nothing is sent (the packet was no query to answer). */
  bytes: Uint8Array | null;
  outcome: ReplyOutcome;
  /** The answer did not fit a UDP message; TC is set and the client should ask over TCP. */
  truncated: boolean;
  /** Why a packet was refused as malformed or dropped. */
  reason?: string;
  /** The question answered, when the packet had a readable one. */
  question?: Question;
}

/** Answers one DNS message received over `transport`. Never throws. */
export function respond(packet: Uint8Array, table: ZoneTable, transport: Transport): Reply {
  try {
    return respondOnce(packet, table, transport);
  } catch (err) {
    // Unreachable by design (every read is bounds-checked); a bug must still not take the
    // server down or answer with garbage.
    return { bytes: null, outcome: 'dropped', truncated: false, reason: `internal error: ${String(err)}` };
  }
}

function respondOnce(packet: Uint8Array, table: ZoneTable, transport: Transport): Reply {
  const parsed = parseQuery(packet);
  if (parsed.kind === 'drop') return { bytes: null, outcome: 'dropped', truncated: false, reason: parsed.reason };
  if (parsed.kind === 'error') {
    const { id, opcode, rd, rcode, reason } = parsed;
    const res: Response = { ...empty(id, opcode, rd, rcode), question: null };
    const outcome = rcode === RCODE.NOTIMP ? 'notimp' : 'formerr';
    return { bytes: encodeResponse(res, CLASSIC_UDP_SIZE).bytes, outcome, truncated: false, reason };
  }
  const { query } = parsed;
  const edns = query.edns ? { udpSize: MAX_EDNS_UDP_SIZE } : null;
  if (query.edns && query.edns.version !== 0) {
    // RFC 6891 6.1.3: only version 0 exists; answer BADVERS, with our OPT record.
    const res: Response = { ...empty(query.id, 0, query.rd, RCODE.BADVERS), question: query.question, edns };
    const bytes = encodeResponse(res, CLASSIC_UDP_SIZE).bytes;
    return { bytes, outcome: 'badvers', truncated: false, question: query.question };
  }
  const answer = answerQuestion(table, query.question);
  const res: Response = {
    id: query.id,
    opcode: 0,
    rd: query.rd,
    aa: answer.aa,
    rcode: answer.rcode,
    question: query.question,
    answers: answer.answers,
    authority: answer.authority,
    additional: answer.additional,
    edns,
  };
  const { bytes, truncated } = encodeResponse(res, maxSize(query, transport));
  return { bytes, outcome: answer.outcome, truncated, question: query.question };
}

/** TCP: anything up to 64 KiB. UDP: 512 bytes, or what EDNS offered, capped at 1232. */
function maxSize(query: Query, transport: Transport): number {
  if (transport === 'tcp') return MAX_MESSAGE_SIZE;
  if (!query.edns) return CLASSIC_UDP_SIZE;
  return Math.min(Math.max(query.edns.udpSize, CLASSIC_UDP_SIZE), MAX_EDNS_UDP_SIZE);
}

function empty(id: number, opcode: number, rd: boolean, rcode: number): Omit<Response, 'question'> {
  return { id, opcode, rd, aa: false, rcode, answers: [], authority: [], additional: [], edns: null };
}
