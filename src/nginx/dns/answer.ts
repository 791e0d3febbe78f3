/**
 * Answering one question from a ZoneTable, as the zone's only authoritative server. Pure.
 *
 * Which names exist: the apex (SOA, NS), `ns.<zone>` (the NS target; no address: clients reach
 * this server by configuration, never by this name), each app's SRV owner and the names between
 * it and the apex (empty non-terminals: NOERROR without records, RFC 8020), and every name that
 * spells an address (A or AAAA from the name itself, see address-name.ts). Everything else in the
 * zone is NXDOMAIN; names outside it are REFUSED (this server is no resolver).
 * TTL 0 everywhere, SOA minimum included, so nothing is cached: nginx asks again at every
 * refresh (each second without `valid=`) and sees a change at the next one.
 */
import { labelAddress } from './address-name.js';
import type { ZoneTable } from './records.js';
import {
  CLASS_ANY,
  CLASS_IN,
  RCODE,
  RR_TYPE,
  asciiLower,
  nameKey,
  type Labels,
  type Question,
  type RecordData,
  type ResourceRecord,
} from './wire.js';

/** What a reply said, for counters and logs. */
export type AnswerOutcome = 'answer' | 'nodata' | 'nxdomain' | 'refused' | 'servfail' | 'notimp' | 'formerr';

/** The sections and codes of one reply. */
export interface Answer {
  outcome: AnswerOutcome;
  rcode: number;
  /** Authoritative: set for every answer from inside the zone. */
  aa: boolean;
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  additional: ResourceRecord[];
}

const TTL = 0;
/** SOA timers matter only to secondaries, which this zone never has; conventional values. */
const SOA_TIMERS = { refresh: 3600, retry: 600, expire: 86_400, minimum: TTL };
const UNSUPPORTED_TYPES: ReadonlySet<number> = new Set([RR_TYPE.AXFR, RR_TYPE.IXFR, RR_TYPE.MAILA, RR_TYPE.MAILB]);

/** The reply to `q` from `table`. */
export function answerQuestion(table: ZoneTable, q: Question): Answer {
  const plain = (outcome: AnswerOutcome, rcode: number): Answer => ({
    outcome,
    rcode,
    aa: false,
    answers: [],
    authority: [],
    additional: [],
  });
  if (q.type === RR_TYPE.OPT) return plain('formerr', RCODE.FORMERR); // a pseudo-type, never a question
  if (q.cls !== CLASS_IN && q.cls !== CLASS_ANY) return plain('refused', RCODE.REFUSED);
  const relative = relativeLabels(q.labels, table.zone);
  if (relative === null) return plain('refused', RCODE.REFUSED);
  // Before the first publication nothing is known yet. NXDOMAIN would make nginx drop every
  // peer of an app (a sidecar restart would empty all upstreams); after SERVFAIL nginx keeps
  // what it has and asks again.
  if (!table.published) return plain('servfail', RCODE.SERVFAIL);
  if (UNSUPPORTED_TYPES.has(q.type)) return plain('notimp', RCODE.NOTIMP);
  const found = recordsAt(table, q.labels, relative);
  if (found === null) return negative(table, 'nxdomain', RCODE.NXDOMAIN);
  const answers = found.filter((rr) => q.type === RR_TYPE.ANY || RR_TYPE[rr.data.type] === q.type);
  if (answers.length === 0) return negative(table, 'nodata', RCODE.NOERROR);
  return { outcome: 'answer', rcode: RCODE.NOERROR, aa: true, answers, authority: [], additional: targetAddresses(answers) };
}

/** The labels below the apex, lowercase; null when the name is not in the zone. */
function relativeLabels(labels: Labels, zone: Labels): string[] | null {
  const cut = labels.length - zone.length;
  if (cut < 0) return null;
  for (let i = 0; i < zone.length; i++) if (asciiLower(labels[cut + i]!) !== zone[i]) return null;
  return labels.slice(0, cut).map(asciiLower);
}

/** Every record of the name (possibly none: it exists without records), or null when it does not exist. */
function recordsAt(table: ZoneTable, labels: Labels, relative: string[]): ResourceRecord[] | null {
  const rr = (data: RecordData): ResourceRecord => ({ labels, ttl: TTL, data });
  if (relative.length === 0) return [rr(soaData(table)), rr({ type: 'NS', host: ['ns', ...table.zone] })];
  if (relative.length === 1 && relative[0] === 'ns') return [];
  const address = relative.length === 1 ? labelAddress(relative[0]!) : null;
  if (address) return [rr({ type: address.type, address: address.bytes })];
  const key = nameKey(labels);
  const app = table.srv.get(key);
  if (app) return app.records.map((r) => rr({ type: 'SRV', ...r }));
  return table.interior.has(key) ? [] : null;
}

function soaData(table: ZoneTable): RecordData {
  return { type: 'SOA', mname: ['ns', ...table.zone], rname: ['hostmaster', ...table.zone], serial: table.serial, ...SOA_TIMERS };
}

/** NXDOMAIN or NODATA: the SOA in the authority section tells how long to cache that (0 s). */
function negative(table: ZoneTable, outcome: AnswerOutcome, rcode: number): Answer {
  const soa: ResourceRecord = { labels: table.zone, ttl: TTL, data: soaData(table) };
  return { outcome, rcode, aa: true, answers: [], authority: [soa], additional: [] };
}

/** A/AAAA of each SRV target, for clients that use the additional section (nginx does not). */
function targetAddresses(answers: ResourceRecord[]): ResourceRecord[] {
  const seen = new Set<string>();
  const out: ResourceRecord[] = [];
  for (const { data } of answers) {
    if (data.type !== 'SRV') continue;
    const key = nameKey(data.target);
    const address = data.target[0] === undefined ? null : labelAddress(data.target[0]);
    if (seen.has(key) || !address) continue;
    seen.add(key);
    out.push({ labels: data.target, ttl: TTL, data: { type: address.type, address: address.bytes } });
  }
  return out;
}
