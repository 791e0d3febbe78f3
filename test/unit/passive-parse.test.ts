import { describe, expect, it } from 'vitest';
import { classifyStatus, MAX_ATTEMPTS, parseAccessLogJson, parseAccessLogLine, parseSyslogFrame, type LineResult } from '../../src/passive/parse.js';
import type { Outcome } from '../../src/passive/types.js';

const AT = 1_700_000_000_000;
const OPTS = { tag: 'orchestry', maxLineBytes: 16384 };

/** A line as nginx's `orchestry` log_format writes it (escape=json), with field overrides. */
function json(fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    time: '2025-01-02T03:04:05+00:00',
    host: 'web.example.com',
    upstream: 'web',
    status: 200,
    request_time: 0.004,
    upstream_addr: '127.0.0.1:8001',
    upstream_status: '200',
    upstream_response_time: '0.004',
    upstream_connect_time: '0.001',
    ...fields,
  });
}

/** A line whose four per-attempt lists are given, as nginx writes them. */
const lists = (addr: string, status: string, responseTime: string, connectTime: string) =>
  json({ upstream_addr: addr, upstream_status: status, upstream_response_time: responseTime, upstream_connect_time: connectTime });

/** The datagram nginx sends with `tag=orchestry,nohostname` (local7.info = PRI 190). */
const datagram = (msg: string, header = '<190>Jan  2 03:04:05 orchestry: ') => header + msg;

function outcomes(r: LineResult): Outcome[] {
  if (r.kind !== 'outcomes') throw new Error(`expected outcomes, got ${JSON.stringify(r)}`);
  return r.outcomes;
}

const parse = (text: string) => parseAccessLogLine(text, OPTS, AT);

describe('syslog framing as nginx sends it', () => {
  it('reads the message after `<PRI>TIMESTAMP TAG: ` (nohostname)', () => {
    expect(parseSyslogFrame('<190>Jan  2 03:04:05 orchestry: {"a":1}', 'orchestry')).toEqual({ message: '{"a":1}' });
  });

  it('reads the message after `<PRI>TIMESTAMP HOSTNAME TAG: ` (nginx default)', () => {
    expect(parseSyslogFrame('<190>Dec 31 23:59:59 web-1.local orchestry: {}', 'orchestry')).toEqual({ message: '{}' });
  });

  it('keeps a message that itself contains spaces and colons', () => {
    expect(parseSyslogFrame('<14>Feb 10 10:00:00 orchestry: {"x": "a : b"}', 'orchestry')).toEqual({ message: '{"x": "a : b"}' });
  });

  it.each([
    ['no PRI', 'Jan  2 03:04:05 orchestry: {}'],
    ['PRI above 191', '<192>Jan  2 03:04:05 orchestry: {}'],
    ['PRI not digits', '<1a>Jan  2 03:04:05 orchestry: {}'],
    ['empty PRI', '<>Jan  2 03:04:05 orchestry: {}'],
    ['ISO timestamp', '<190>2025-01-02T03:04:05Z orchestry: {}'],
    ['timestamp without padding', '<190>Jan 2 03:04:05 orchestry: {}'],
    ['no tag colon', '<190>Jan  2 03:04:05 host orchestry {}'],
    ['tag with a dash', '<190>Jan  2 03:04:05 orch-estry: {}'],
    ['tag over 32 characters', `<190>Jan  2 03:04:05 ${'a'.repeat(33)}: {}`],
    ['only a header', '<190>Jan  2 03:04:05 '],
    ['empty', ''],
    ['control characters in the header', '<190>Jan\x00 2 03:04:05 orchestry: {}'],
    ['a host name of 300 characters', `<190>Jan  2 03:04:05 ${'h'.repeat(300)} orchestry: {}`],
  ])('drops a line with %s as bad_syslog_header', (_what, line) => {
    expect(parse(line)).toEqual({ kind: 'dropped', reason: 'bad_syslog_header' });
  });

  it('drops lines of another tag (e.g. an error_log sent to the same port)', () => {
    expect(parse('<187>Jan  2 03:04:05 nginx: 2025/01/02 [error] 12#0: connect() failed')).toEqual({ kind: 'dropped', reason: 'wrong_tag' });
  });
});

describe('access-log JSON to outcomes', () => {
  it('gives one ok outcome for a proxied request, with times in ms', () => {
    expect(outcomes(parse(datagram(json())))).toEqual([
      { app: 'web', address: '127.0.0.1:8001', status: 200, responseTimeMs: 4, connectTimeMs: 1, kind: 'ok', at: AT },
    ]);
  });

  it('gives one outcome per attempt when nginx retried (proxy_next_upstream), each but the last marked retried', () => {
    const line = lists('127.0.0.1:8001, 127.0.0.1:8002', '502, 200', '0.000, 0.012', '-, 0.001');
    expect(outcomes(parse(datagram(line)))).toEqual([
      { app: 'web', address: '127.0.0.1:8001', status: 502, responseTimeMs: 0, connectTimeMs: null, kind: 'gateway', at: AT, retried: true },
      { app: 'web', address: '127.0.0.1:8002', status: 200, responseTimeMs: 12, connectTimeMs: 1, kind: 'ok', at: AT },
    ]);
  });

  it('reads $upstream_header_time when the format has it: "-" where no response header came', () => {
    const line = json({
      upstream_addr: '127.0.0.1:8001, 127.0.0.1:8002',
      upstream_status: '502, 200',
      upstream_response_time: '0.000, 0.012',
      upstream_connect_time: '0.000, 0.001',
      upstream_header_time: '-, 0.011',
    });
    expect(outcomes(parse(datagram(line))).map((o) => [o.status, o.connectTimeMs, o.headerTimeMs])).toEqual([
      [502, 0, null],
      [200, 1, 11],
    ]);
    expect(parse(datagram(json({ upstream_header_time: 'soon' })))).toEqual({ kind: 'dropped', reason: 'bad_time' });
  });

  it('reads attempts across an internal redirect (" : " between upstream groups)', () => {
    const line = lists('127.0.0.1:8001, 127.0.0.1:8002 : 127.0.0.1:9001', '500, 504 : 200', '0.002, 3.001 : 0.010', '0.000, 0.001 : 0.000');
    const got = outcomes(parse(datagram(line)));
    expect(got.map((o) => [o.address, o.status, o.kind, o.responseTimeMs])).toEqual([
      ['127.0.0.1:8001', 500, '5xx', 2],
      ['127.0.0.1:8002', 504, 'gateway', 3001],
      ['127.0.0.1:9001', 200, 'ok', 10],
    ]);
  });

  it('keeps IPv6 addresses bracketed as nginx writes them', () => {
    const got = outcomes(parse(datagram(json({ upstream_addr: '[::1]:8001', upstream: '[::1]:8001' }))));
    expect(got[0]).toMatchObject({ app: '[::1]:8001', address: '[::1]:8001', kind: 'ok' });
  });

  it('accepts a unix socket address', () => {
    expect(outcomes(parse(datagram(json({ upstream_addr: 'unix:/run/app.sock' }))))[0]!.address).toBe('unix:/run/app.sock');
  });

  it('marks "no live upstreams" (the upstream name as address) as no_live, not a backend failure', () => {
    const got = outcomes(parse(datagram(json({ upstream_addr: 'web', upstream_status: '502', upstream_connect_time: '-', upstream_response_time: '0.000' }))));
    expect(got).toEqual([{ app: 'web', address: 'web', status: 502, responseTimeMs: 0, connectTimeMs: null, kind: 'no_live', at: AT }]);
  });

  it('gives kind unknown for a status of "-" (the client left before the backend answered)', () => {
    const got = outcomes(parse(datagram(json({ upstream_status: '-', upstream_response_time: '1.500', upstream_connect_time: '0.000' }))));
    expect(got[0]).toMatchObject({ status: null, kind: 'unknown', responseTimeMs: 1500 });
  });

  it('reads lines of a log_format without the time fields', () => {
    const line = JSON.stringify({ upstream: 'api', upstream_addr: '10.0.0.5:80', upstream_status: '503' });
    expect(outcomes(parse(datagram(line)))).toEqual([
      { app: 'api', address: '10.0.0.5:80', status: 503, responseTimeMs: null, connectTimeMs: null, kind: 'gateway', at: AT },
    ]);
  });

  it('skips requests nginx did not proxy (return, static files)', () => {
    expect(parse(datagram(json({ upstream: '', upstream_addr: '', upstream_status: '', upstream_response_time: '', upstream_connect_time: '' })))).toEqual({
      kind: 'skipped',
      reason: 'not_proxied',
    });
  });

  it('skips a proxied request for which nginx logged no server', () => {
    expect(parse(datagram(json({ upstream_addr: '', upstream_status: '-', upstream_response_time: '-', upstream_connect_time: '-' })))).toEqual({
      kind: 'skipped',
      reason: 'no_attempt',
    });
  });

  it('classifies statuses the way Envoy does', () => {
    expect([200, 304, 404, 499, 500, 501, 502, 503, 504, 505, 599, null].map(classifyStatus)).toEqual([
      'ok', 'ok', 'ok', 'ok', '5xx', '5xx', 'gateway', 'gateway', 'gateway', '5xx', '5xx', 'unknown',
    ]);
  });
});

describe('malformed and hostile lines are counted by reason and dropped', () => {
  const cases: [string, string, string][] = [
    ['a 100 KB line', datagram(json({ host: 'x'.repeat(100_000) })), 'oversized'],
    ['plain text', datagram('GET / HTTP/1.1 200'), 'not_json'],
    ['truncated JSON', datagram(json().slice(0, 80)), 'not_json'],
    ['raw control characters inside a string', datagram(json().replace('web.example.com', 'web\x01\x07.example')), 'not_json'],
    ['a JSON array', datagram('[1,2,3]'), 'not_json'],
    ['JSON null', datagram('null'), 'not_json'],
    ['an object nested 2,000 deep', datagram('{"a":'.repeat(2000) + '1' + '}'.repeat(2000)), 'wrong_types'],
    ['arrays nested 7,000 deep inside an object', datagram('{"a":' + '['.repeat(7000) + ']'.repeat(7000) + '}'), 'wrong_types'],
    ['a number where a string belongs', datagram(json({ upstream_status: 502 })), 'wrong_types'],
    ['an object where a string belongs', datagram(json({ upstream_addr: { a: 1 } })), 'wrong_types'],
    ['a missing upstream field', datagram(JSON.stringify({ upstream_addr: '1.2.3.4:1', upstream_status: '200' })), 'wrong_types'],
    ['a response time that is a number', datagram(json({ upstream_response_time: 0.5 })), 'wrong_types'],
    ['an upstream name with spaces', datagram(json({ upstream: 'web; rm -rf' })), 'bad_upstream'],
    ['an upstream name with a control character', datagram(json({ upstream: 'web\u0000' })), 'bad_upstream'],
    ['an address without a port', datagram(json({ upstream_addr: '127.0.0.1' })), 'bad_address'],
    ['an address with a port above 65535', datagram(json({ upstream_addr: '127.0.0.1:99999' })), 'bad_address'],
    ['an address with an escape sequence', datagram(json({ upstream_addr: '127.0.0.1:80\u001b[2J' })), 'bad_address'],
    ['an address with a slash', datagram(json({ upstream_addr: 'http://x:80/' })), 'bad_address'],
    ['a status of four digits', datagram(json({ upstream_status: '2000' })), 'bad_status'],
    ['a status of 999', datagram(json({ upstream_status: '999' })), 'bad_status'],
    ['a status that is text', datagram(json({ upstream_status: 'OK' })), 'bad_status'],
    ['a huge response time', datagram(json({ upstream_response_time: '99999999999999999999.000' })), 'bad_time'],
    ['a negative response time', datagram(json({ upstream_response_time: '-1.000' })), 'bad_time'],
    ['a response time in exponent form', datagram(json({ upstream_response_time: '1e308' })), 'bad_time'],
    ['a connect time that is NaN', datagram(json({ upstream_connect_time: 'NaN' })), 'bad_time'],
    ['more statuses than addresses', datagram(json({ upstream_status: '502, 200' })), 'mismatched_lists'],
    ['more times than addresses', datagram(json({ upstream_response_time: '0.001, 0.002' })), 'mismatched_lists'],
    ['groups that do not line up', datagram(lists('1.1.1.1:1, 1.1.1.2:1', '502 : 200', '0.001 : 0.001', '- : -')), 'mismatched_lists'],
    [
      `${MAX_ATTEMPTS + 1} attempts`,
      datagram(lists(...['1.1.1.1:1', '502', '0.001', '-'].map((e) => Array(MAX_ATTEMPTS + 1).fill(e).join(', ')) as [string, string, string, string])),
      'too_many_attempts',
    ],
  ];

  it.each(cases)('%s', (_what, line, reason) => {
    expect(parse(line)).toEqual({ kind: 'dropped', reason });
  });

  it('never throws, whatever the bytes', () => {
    // Deterministic pseudo-random lines: valid headers with garbage bodies, and garbage everywhere.
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const base = datagram(json());
    for (let i = 0; i < 2000; i++) {
      const chars = [...base];
      for (let k = 0; k < 1 + Math.floor(rnd() * 8); k++) chars[Math.floor(rnd() * chars.length)] = String.fromCharCode(Math.floor(rnd() * 0x3000));
      const line = i % 2 === 0 ? chars.join('') : chars.slice(0, Math.floor(rnd() * chars.length)).join('');
      const r = parse(line);
      expect(['outcomes', 'skipped', 'dropped']).toContain(r.kind);
    }
  });

  it('survives JSON nested a million deep (the size limit is not the only guard)', () => {
    const deep = '{"a":' + '['.repeat(1_000_000) + ']'.repeat(1_000_000) + '}';
    expect(parseAccessLogJson(deep, AT).kind).toBe('dropped');
  });

  it('reads a message body only as far as it is JSON of the right shape', () => {
    expect(parseAccessLogJson('{"upstream":"web","upstream_addr":"1.2.3.4:5","upstream_status":"200"} trailing', AT)).toEqual({
      kind: 'dropped',
      reason: 'not_json',
    });
  });
});
