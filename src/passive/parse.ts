/**
 * One nginx access-log datagram -> the Outcomes it reports, or the reason it was dropped. Pure
 * and total: every input, however malformed or hostile, gives a result; nothing throws.
 *
 * Framing (nginx src/core/ngx_syslog.c, ngx_syslog_add_header): `<PRI>TIMESTAMP HOSTNAME TAG: MSG`,
 * or `<PRI>TIMESTAMP TAG: MSG` with `nohostname`. TIMESTAMP is RFC 3164's `Mmm dd hh:mm:ss`
 * (day space-padded), TAG is 1..32 of [A-Za-z0-9_] (nginx refuses others at config load), and an
 * access-log message is the whole formatted line with no trailing newline and no length cut.
 *
 * MSG is the JSON of nginx/nginx.conf's `log_format orchestry escape=json`. The upstream
 * variables are per-attempt lists (ngx_http_upstream.c, ngx_http_upstream_addr_variable and its
 * siblings): entries joined by ", ", and " : " where the request moved to another upstream
 * (internal redirect, error_page). All of them walk the same array of attempt states, so their
 * shapes always agree; lists that disagree were not written by nginx. An attempt whose
 * connection failed has connect time `-`; when no server could be chosen ("no live upstreams")
 * the address is the upstream's name and the status 502.
 */
import type { DropReason, Outcome, OutcomeKind, SkipReason } from './types.js';

/** What one datagram came to. */
export type LineResult =
  | { kind: 'outcomes'; outcomes: Outcome[] }
  | { kind: 'skipped'; reason: SkipReason }
  | { kind: 'dropped'; reason: DropReason };

export interface ParseOptions {
  /** The syslog tag nginx was given (`tag=`); lines with another tag are dropped. */
  tag: string;
  /** Longer lines are dropped before any parsing. */
  maxLineBytes: number;
}

/** More attempts than this in one line is not a real request (proxy_next_upstream_tries). */
export const MAX_ATTEMPTS = 64;

const TIMESTAMP = /^[A-Z][a-z]{2} [ 123]\d [012]\d:[0-5]\d:[0-6]\d$/;
const TAG = /^[A-Za-z0-9_]{1,32}$/;
/** `$proxy_host`: an upstream name, or host:port / [v6]:port for a proxy_pass without upstream. */
const APP = /^[A-Za-z0-9_.:\-[\]]{1,255}$/;
const IPV4_ADDRESS = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}:(\d{1,5})$/;
const IPV6_ADDRESS = /^\[[0-9A-Fa-f:.]{2,45}(?:%[0-9A-Za-z_.-]{1,32})?\]:(\d{1,5})$/;
const UNIX_ADDRESS = /^unix:[^\s,\x00-\x1f\x7f]{1,200}$/;
const STATUS = /^\d{3}$/;
/** nginx writes `%T.%03M`: whole seconds, a dot, milliseconds; 9 digits is ~31 years. */
const SECONDS = /^(\d{1,9})\.(\d{3})$/;

/** Parses one datagram received at `at` (epoch ms). Never throws. */
export function parseAccessLogLine(text: string, opts: ParseOptions, at: number): LineResult {
  // A string never has more characters than its UTF-8 form has bytes.
  if (text.length > opts.maxLineBytes) return dropped('oversized');
  const frame = parseSyslogFrame(text, opts.tag);
  if (typeof frame === 'string') return dropped(frame);
  return parseAccessLogJson(frame.message, at);
}

/** Splits nginx's RFC 3164 header off; returns the message or the reason the header is wrong. */
export function parseSyslogFrame(text: string, tag: string): { message: string } | DropReason {
  if (text.charCodeAt(0) !== 0x3c /* < */) return 'bad_syslog_header';
  const close = text.indexOf('>', 1);
  // PRI is facility * 8 + severity: 0..191, one to three digits.
  if (close < 2 || close > 4 || !/^\d+$/.test(text.slice(1, close)) || Number(text.slice(1, close)) > 191) {
    return 'bad_syslog_header';
  }
  const tsStart = close + 1;
  if (!TIMESTAMP.test(text.slice(tsStart, tsStart + 15)) || text[tsStart + 15] !== ' ') return 'bad_syslog_header';
  const first = nextToken(text, tsStart + 16);
  if (!first) return 'bad_syslog_header';
  // With `nohostname` the first token is already `TAG:`; otherwise it is the host name.
  const tagToken = first.token.endsWith(':') ? first : nextToken(text, first.end + 1);
  if (!tagToken || !tagToken.token.endsWith(':')) return 'bad_syslog_header';
  const found = tagToken.token.slice(0, -1);
  if (!TAG.test(found)) return 'bad_syslog_header';
  if (found !== tag) return 'wrong_tag';
  return { message: text.slice(tagToken.end + 1) };
}

/** The space-free token starting at `start`, at most 256 characters (a host name's limit). */
function nextToken(text: string, start: number): { token: string; end: number } | null {
  const end = text.indexOf(' ', start);
  if (end <= start || end - start > 256) return null;
  return { token: text.slice(start, end), end };
}

/** The `orchestry` log_format's JSON -> one Outcome per upstream attempt. Never throws. */
export function parseAccessLogJson(message: string, at: number): LineResult {
  if (message.charCodeAt(0) !== 0x7b /* { */) return dropped('not_json');
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    // Includes a RangeError from absurd nesting: the line is dropped like any other bad JSON.
    return dropped('not_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return dropped('not_object');
  const fields = readFields(value as Record<string, unknown>);
  if (typeof fields === 'string') return dropped(fields);
  if (fields.app === '') return { kind: 'skipped', reason: 'not_proxied' };
  if (!APP.test(fields.app)) return dropped('bad_upstream');
  const lists = splitLists(fields);
  if (typeof lists === 'string') return dropped(lists);
  const outcomes: Outcome[] = [];
  for (let i = 0; i < lists.addr.length; i++) {
    const outcome = attempt(fields.app, lists, i, at);
    if (typeof outcome === 'string') return dropped(outcome);
    if (outcome) outcomes.push(outcome);
  }
  if (outcomes.length === 0) return { kind: 'skipped', reason: 'no_attempt' };
  return { kind: 'outcomes', outcomes };
}

interface Fields {
  app: string;
  addr: string;
  status: string;
  responseTime: string | null;
  connectTime: string | null;
  /** Absent from older log formats: then nothing is known about response headers. */
  headerTime: string | null;
}

/** The fields the outcome needs, each a string; the response and connect times may be absent. */
function readFields(obj: Record<string, unknown>): Fields | DropReason {
  const { upstream, upstream_addr, upstream_status, upstream_response_time, upstream_connect_time, upstream_header_time } = obj;
  if (typeof upstream !== 'string' || typeof upstream_addr !== 'string' || typeof upstream_status !== 'string') {
    return 'wrong_types';
  }
  const optional = (v: unknown): string | null | undefined => (v === undefined ? null : typeof v === 'string' ? v : undefined);
  const responseTime = optional(upstream_response_time);
  const connectTime = optional(upstream_connect_time);
  const headerTime = optional(upstream_header_time);
  if (responseTime === undefined || connectTime === undefined || headerTime === undefined) return 'wrong_types';
  return { app: upstream, addr: upstream_addr, status: upstream_status, responseTime, connectTime, headerTime };
}

interface Lists {
  addr: string[];
  status: string[];
  responseTime: string[] | null;
  connectTime: string[] | null;
  headerTime: string[] | null;
}

/** Each list flattened to one entry per attempt, after checking that all have nginx's shape. */
function splitLists(fields: Fields): Lists | DropReason {
  const addr = splitList(fields.addr);
  const status = splitList(fields.status);
  const responseTime = fields.responseTime === null ? null : splitList(fields.responseTime);
  const connectTime = fields.connectTime === null ? null : splitList(fields.connectTime);
  const headerTime = fields.headerTime === null ? null : splitList(fields.headerTime);
  for (const other of [status, responseTime, connectTime, headerTime]) {
    if (other && !sameShape(addr, other)) return 'mismatched_lists';
  }
  if (addr.flat.length > MAX_ATTEMPTS) return 'too_many_attempts';
  return {
    addr: addr.flat,
    status: status.flat,
    responseTime: responseTime?.flat ?? null,
    connectTime: connectTime?.flat ?? null,
    headerTime: headerTime?.flat ?? null,
  };
}

interface SplitList {
  /** Entries per upstream group (" : " separated). */
  groups: number[];
  flat: string[];
}

function splitList(value: string): SplitList {
  const groups: number[] = [];
  const flat: string[] = [];
  for (const group of value.split(' : ')) {
    const entries = group.split(', ');
    groups.push(entries.length);
    for (const e of entries) flat.push(e);
  }
  return { groups, flat };
}

function sameShape(a: SplitList, b: SplitList): boolean {
  return a.groups.length === b.groups.length && a.groups.every((n, i) => n === b.groups[i]);
}

/** Attempt `i` as an Outcome; null for an attempt nginx logged without an address. */
function attempt(app: string, lists: Lists, i: number, at: number): Outcome | null | DropReason {
  const address = lists.addr[i] ?? '';
  const statusText = lists.status[i] ?? '';
  if (address === '' || address === '-') return null;
  // nginx writes every real peer as the text of its socket address; the upstream's own name
  // stands where it could not choose one ("no live upstreams").
  const form = addressForm(address) ?? (address === app ? 'name' : null);
  if (!form) return 'bad_address';
  const status = parseStatus(statusText);
  if (status === undefined) return 'bad_status';
  const responseTimeMs = parseMs(lists.responseTime?.[i]);
  const connectTimeMs = parseMs(lists.connectTime?.[i]);
  const headerTimeMs = lists.headerTime === null ? undefined : parseMs(lists.headerTime[i]);
  if (responseTimeMs === undefined || connectTimeMs === undefined || headerTimeMs === undefined && lists.headerTime !== null) return 'bad_time';
  const kind: OutcomeKind = form === 'name' ? 'no_live' : classifyStatus(status);
  // Not the line's last attempt: nginx went on to another server (proxy_next_upstream), so the
  // client did not get this answer.
  const retried = i < lists.addr.length - 1;
  return { app, address, status, responseTimeMs, connectTimeMs, ...(headerTimeMs !== undefined ? { headerTimeMs } : {}), kind, at, ...(retried ? { retried } : {}) };
}

/** Which of nginx's peer address forms `entry` is, or null when it is neither. */
function addressForm(entry: string): 'ip' | 'unix' | null {
  const ip = IPV4_ADDRESS.exec(entry) ?? IPV6_ADDRESS.exec(entry);
  if (ip) return Number(ip[1]) <= 65535 ? 'ip' : null;
  return UNIX_ADDRESS.test(entry) ? 'unix' : null;
}

/** A status entry: null for `-` (or empty), undefined when it is not one. */
function parseStatus(text: string): number | null | undefined {
  if (text === '-' || text === '') return null;
  if (!STATUS.test(text)) return undefined;
  const n = Number(text);
  return n >= 100 && n <= 599 ? n : undefined;
}

/** A `%T.%03M` entry in ms: null for `-`, empty or absent, undefined when it is not one. */
function parseMs(text: string | undefined): number | null | undefined {
  if (text === undefined || text === '-' || text === '') return null;
  const m = SECONDS.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * 1000 + Number(m[2]);
}

/** Envoy's split: any 5xx is a 5xx; 502, 503 and 504 are also gateway failures. */
export function classifyStatus(status: number | null): OutcomeKind {
  if (status === null) return 'unknown';
  if (status === 502 || status === 503 || status === 504) return 'gateway';
  return status >= 500 ? '5xx' : 'ok';
}

function dropped(reason: DropReason): LineResult {
  return { kind: 'dropped', reason };
}
