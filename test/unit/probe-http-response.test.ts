import { describe, expect, it } from 'vitest';
import { HEADER_MAX_BYTES, ResponseReader, type ParseStep } from '../../src/probe/http-response.js';

/** Feeds `parts` one after the other; the last step and the reader. */
function read(parts: string[], opts: { head?: boolean; cap?: number } = {}): { step: ParseStep; r: ResponseReader } {
  const r = new ResponseReader(opts.head ?? false, opts.cap ?? 4096);
  let step: ParseStep = 'more';
  for (const p of parts) step = r.feed(Buffer.from(p, 'latin1'));
  return { step, r };
}
const bodyOf = (r: ResponseReader) => Buffer.concat(r.body).toString('latin1');

/** Every way of cutting `text` in two. */
function splits(text: string): string[][] {
  return Array.from({ length: text.length - 1 }, (_, i) => [text.slice(0, i + 1), text.slice(i + 1)]);
}

describe('http response reader', () => {
  it('reads a Content-Length response cut anywhere, and keeps the connection', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello';
    for (const parts of [[text], ...splits(text)]) {
      const { step, r } = read(parts);
      expect(step, JSON.stringify(parts)).toBe('done');
      expect(r.status).toBe(200);
      expect(bodyOf(r)).toBe('hello');
      expect(r.keepAlive).toBe(true);
    }
  });

  it('de-chunks a chunked body with extensions and trailers, cut anywhere', () => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n';
    for (const parts of [[text], ...splits(text)]) {
      const { step, r } = read(parts);
      expect(step, JSON.stringify(parts)).toBe('done');
      expect(bodyOf(r)).toBe('abcde');
      expect(r.keepAlive).toBe(true);
    }
  });

  it('waits for more while a chunked body is not finished', () => {
    expect(read(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n']).step).toBe('more');
  });

  it('reads a body framed by the connection closing, and does not reuse the connection', () => {
    const { step, r } = read(['HTTP/1.1 200 OK\r\n\r\npart one, ', 'part two']);
    expect(step).toBe('more');
    expect(r.end()).toBe('done');
    expect(bodyOf(r)).toBe('part one, part two');
    expect(r.keepAlive).toBe(false);
  });

  it('skips interim 1xx responses', () => {
    const { step, r } = read(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n']);
    expect(step).toBe('done');
    expect(r.status).toBe(204);
    expect(r.keepAlive).toBe(true);
  });

  it('expects no body after HEAD, 204 and 304', () => {
    expect(read(['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n'], { head: true }).step).toBe('done');
    expect(read(['HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n']).step).toBe('done');
  });

  it('stops at the body cap without reading the rest, and drops the connection', () => {
    const { step, r } = read(['HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n', 'x'.repeat(10)], { cap: 8 });
    expect(step).toBe('done');
    expect(r.bodySize).toBe(8);
    expect(r.keepAlive).toBe(false);
  });

  it('keeps the connection of HTTP/1.0 only when asked, and of 1.1 unless closed', () => {
    expect(read(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']).r.keepAlive).toBe(false);
    expect(read(['HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n']).r.keepAlive).toBe(true);
    expect(read(['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n']).r.keepAlive).toBe(false);
  });

  it('does not reuse a connection that sent bytes after the response', () => {
    const { step, r } = read(['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n']);
    expect(step).toBe('done');
    expect(r.keepAlive).toBe(false);
  });

  it('keeps the Location header for redirects', () => {
    expect(read(['HTTP/1.1 302 Found\r\nlocation: /next\r\nContent-Length: 0\r\n\r\n']).r.location).toBe('/next');
  });

  it('rejects what is not an HTTP/1.x response, naming what it got', () => {
    expect(read(['SSH-2.0-OpenSSH_9.2\r\n\r\n']).step).toEqual({ error: 'malformed status line "SSH-2.0-OpenSSH_9.2"' });
    expect(read(['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n']).step).toEqual({ error: 'malformed header line "no colon here"' });
    expect(read(['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n']).step).toEqual({ error: 'invalid content-length "-1"' });
    expect(read(['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n']).step).toEqual({ error: 'invalid content-length "2"' });
    expect(read(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']).step).toEqual({ error: 'malformed chunk size "zz"' });
    expect(read(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n']).step).toEqual({ error: 'malformed chunked body: no CRLF after chunk data' });
  });

  it('fails headers that never end past the limit, however they arrive', () => {
    const r = new ResponseReader(false, 4096);
    let step: ParseStep = r.feed(Buffer.from('HTTP/1.1 200 OK\r\n'));
    for (let i = 0; i < 100 && step === 'more'; i++) step = r.feed(Buffer.from(`X-Junk-${i}: ${'y'.repeat(1000)}\r\n`));
    expect(step).toEqual({ error: `response headers larger than ${HEADER_MAX_BYTES} bytes` });
  });

  it('tells a cut response from a connection closed before any byte', () => {
    expect(new ResponseReader(false, 10).end()).toEqual({ error: 'connection closed before any response' });
    const r = new ResponseReader(false, 10);
    r.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab'));
    expect(r.end()).toEqual({ error: 'connection closed before the response was complete' });
  });
});
