import type { IncomingHttpHeaders, RequestListener } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpProber } from '../../src/probe/http.js';
import { probeBackend } from '../helpers/fixtures.js';
import { proberSuite } from '../helpers/probe-suite.js';
import {
  listenHttp,
  listenHttps,
  listenResetting,
  listenSilent,
  listenTcp,
  selfSignedCert,
  type LoopbackServer,
} from '../helpers/probe-servers.js';

proberSuite(
  'http prober',
  () => createHttpProber({ version: '9.9.9' }),
  async (c) => {
    if (c === 'healthy') return listenHttp((_req, res) => res.end('ok'));
    return c === 'silent' ? listenSilent() : listenResetting();
  },
  { checkType: 'http', health: { protocol: 'HTTP' }, silent: 'timeout', reset: 'connection_reset' },
);

describe('http prober', () => {
  const prober = createHttpProber({ version: '1.2.3' });
  const servers: LoopbackServer[] = [];
  afterAll(async () => {
    await prober.close();
    await Promise.all(servers.map((s) => s.close()));
  });
  const serve = async (handler: RequestListener) => {
    const s = await listenHttp(handler);
    servers.push(s);
    return s;
  };

  it('reports unexpected_status with the status when it is not an expected one', async () => {
    const s = await serve((_req, res) => {
      res.statusCode = 503;
      res.end('draining');
    });
    const r = await prober.probe(probeBackend(s.port));
    expect(r).toMatchObject({
      healthy: false,
      statusCode: 503,
      body: 'draining',
      errorClass: 'unexpected_status',
      error: 'unexpected status 503 (expected 200)',
    });
  });

  it('accepts any of the expected status codes', async () => {
    const s = await serve((_req, res) => {
      res.statusCode = 204;
      res.end();
    });
    const r = await prober.probe(probeBackend(s.port, { expected_status_codes: [200, 204] }));
    expect(r).toMatchObject({ healthy: true, statusCode: 204, body: '' });
  });

  describe('expected_body', () => {
    let port = 0;
    beforeAll(async () => {
      port = (await serve((_req, res) => res.end('{"status":"UP","db":"ok"}'))).port;
    });

    it('passes when the body contains the substring', async () => {
      const r = await prober.probe(probeBackend(port, { expected_body: '"status":"UP"' }));
      expect(r.healthy).toBe(true);
    });

    it('fails with unexpected_body when the substring is missing', async () => {
      const r = await prober.probe(probeBackend(port, { expected_body: '"status":"DOWN"' }));
      expect(r).toMatchObject({ healthy: false, statusCode: 200, errorClass: 'unexpected_body' });
      expect(r.body).toBe('{"status":"UP","db":"ok"}');
    });

    it('reads /pattern/flags as a regular expression', async () => {
      expect((await prober.probe(probeBackend(port, { expected_body: '/"([Ss]tatus|STATUS)":"(UP|WARN)"/' }))).healthy).toBe(true);
      const miss = await prober.probe(probeBackend(port, { expected_body: '/^"status"/' }));
      expect(miss.errorClass).toBe('unexpected_body');
    });
  });

  it('sends the identity headers and the configured headers', async () => {
    let seen: IncomingHttpHeaders = {};
    const s = await serve((req, res) => {
      seen = req.headers;
      res.end('ok');
    });
    await prober.probe(probeBackend(s.port, { headers: { Authorization: 'Bearer t0k', 'X-Health-Check': 'spoofed' } }));
    expect(seen).toMatchObject({
      'user-agent': 'orchestry-sidecar/1.2.3',
      'x-health-check': 'true',
      'x-app-name': 'web',
      'x-instance-id': `127.0.0.1:${s.port}`,
      authorization: 'Bearer t0k',
    });
  });

  it('names each backend of an app in its own host and instance headers, and sends a configured Host once', async () => {
    const seen: string[][] = [];
    const a = await serve((req, res) => {
      seen.push(req.rawHeaders);
      res.end('ok');
    });
    const b = await serve((req, res) => {
      seen.push(req.rawHeaders);
      res.end('ok');
    });
    const health = { headers: { Authorization: 'Bearer t0k' } };
    await prober.probe(probeBackend(a.port, health));
    await prober.probe(probeBackend(b.port, health));
    await prober.probe(probeBackend(a.port, { headers: { Host: 'svc.internal' } }));
    const names = (raw: string[]) => raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    const value = (raw: string[], name: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name);
    expect(names(seen[0]!)).toEqual(['host', 'user-agent', 'authorization', 'x-health-check', 'x-app-name', 'x-instance-id']);
    for (const [raw, port] of [[seen[0]!, a.port], [seen[1]!, b.port]] as const) {
      expect(value(raw, 'host')).toEqual([`127.0.0.1:${port}`]);
      expect(value(raw, 'x-instance-id')).toEqual([`127.0.0.1:${port}`]);
      expect(value(raw, 'authorization')).toEqual(['Bearer t0k']);
    }
    expect(value(seen[2]!, 'host')).toEqual(['svc.internal']);
    expect(value(seen[2]!, 'x-instance-id')).toEqual([`127.0.0.1:${a.port}`]);
    expect(value(seen[2]!, 'authorization')).toEqual([]);
  });

  it('keeps the first 1000 characters of the body', async () => {
    const s = await serve((_req, res) => res.end('a'.repeat(3000)));
    const r = await prober.probe(probeBackend(s.port));
    expect(r.healthy).toBe(true);
    expect(r.body).toBe('a'.repeat(1000));
  });

  it('stops reading a body that never ends', async () => {
    const s = await serve((_req, res) => {
      const chunk = 'b'.repeat(16 * 1024);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const r = await prober.probe(probeBackend(s.port, { timeout_seconds: 5 }));
    expect(r).toMatchObject({ healthy: true, body: 'b'.repeat(1000) });
  });

  it('times out when the body stalls after the headers (the deadline covers the body read)', async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    });
    const r = await prober.probe(probeBackend(s.port, { timeout_seconds: 1 }));
    expect(r).toMatchObject({ healthy: false, errorClass: 'timeout' });
  });

  it('sends HEAD requests', async () => {
    let method = '';
    const s = await serve((req, res) => {
      method = req.method ?? '';
      res.end();
    });
    const r = await prober.probe(probeBackend(s.port, { method: 'HEAD' }));
    expect(r.healthy).toBe(true);
    expect(method).toBe('HEAD');
  });

  it('sends POST requests with the configured body', async () => {
    let received = '';
    const s = await serve((req, res) => {
      req.setEncoding('utf8');
      req.on('data', (d: string) => (received += d));
      req.on('end', () => res.end(req.method));
    });
    const r = await prober.probe(
      probeBackend(s.port, { method: 'POST', body: '{"ping":1}', headers: { 'content-type': 'application/json' } }),
    );
    expect(r).toMatchObject({ healthy: true, body: 'POST' });
    expect(received).toBe('{"ping":1}');
  });

  describe('redirects', () => {
    let other: Awaited<ReturnType<typeof listenHttp>>;
    let otherHits = 0;
    let port = 0;
    beforeAll(async () => {
      other = await serve((_req, res) => {
        otherHits++;
        res.end('elsewhere');
      });
      port = (
        await serve((req, res) => {
          const to: Record<string, string> = {
            '/health': '/health/',
            '/health/': '/ready',
            '/away': `http://127.0.0.1:${other.port}/health`,
            '/loop': '/loop',
          };
          const location = to[req.url ?? ''];
          if (location) res.writeHead(302, { location }).end();
          else res.end(`at ${req.url}`);
        })
      ).port;
    });

    it('are not followed unless follow_redirects is set', async () => {
      const r = await prober.probe(probeBackend(port));
      expect(r).toMatchObject({ healthy: false, statusCode: 302, errorClass: 'unexpected_status' });
    });

    it('are followed on the same backend when follow_redirects is set', async () => {
      const r = await prober.probe(probeBackend(port, { follow_redirects: true }));
      expect(r).toMatchObject({ healthy: true, statusCode: 200, body: 'at /ready' });
    });

    it('never leave the backend, even to another loopback port', async () => {
      const r = await prober.probe(probeBackend(port, { follow_redirects: true, path: '/away' }));
      expect(r).toMatchObject({ healthy: false, errorClass: 'error', statusCode: 302 });
      expect(r.error).toContain(`leaves backend http://127.0.0.1:${port}`);
      expect(otherHits).toBe(0);
    });

    it('stop after 5 hops', async () => {
      const r = await prober.probe(probeBackend(port, { follow_redirects: true, path: '/loop' }));
      expect(r).toMatchObject({ healthy: false, errorClass: 'error', error: 'more than 5 redirects' });
    });

    it('a path that names another host is refused before any request', async () => {
      for (const path of [`//127.0.0.1:${other.port}/health`, `http://127.0.0.1:${other.port}/health`]) {
        const r = await prober.probe(probeBackend(port, { path }));
        expect(r).toMatchObject({ healthy: false, errorClass: 'error' });
        expect(r.error).toContain('does not target backend');
      }
      expect(otherHits).toBe(0);
    });
  });

  it('reports the attempts used when a retry succeeds', async () => {
    let requests = 0;
    const s = await serve((_req, res) => {
      requests++;
      res.statusCode = requests <= 2 ? 500 : 200;
      res.end();
    });
    const r = await prober.probe(probeBackend(s.port, { max_retries: 3 }));
    expect(r).toMatchObject({ healthy: true, attempts: 3 });
  });

  it('reuses the keep-alive connection between probes', async () => {
    const s = await listenHttp((_req, res) => res.end('ok'));
    servers.push(s);
    for (let i = 0; i < 3; i++) expect((await prober.probe(probeBackend(s.port))).healthy).toBe(true);
    expect(s.connections()).toBe(1);
  });

  it('sees a backend that stopped listening as failed on the next probe', async () => {
    const s = await listenHttp((_req, res) => res.end('ok'));
    const backend = probeBackend(s.port);
    expect((await prober.probe(backend)).healthy).toBe(true);
    await s.close();
    const r = await prober.probe(backend);
    expect(r.healthy).toBe(false);
    expect(r.errorClass).toBe('connection_refused');
  });

  it('reads a body framed by the backend closing its side, and does not wait for the deadline', async () => {
    // No length, no chunks: the body ends with the backend's FIN. The backend only half-closes
    // (end(), its socket stays open for reading), so the probe must end on that FIN alone; with
    // the deadline at 5 s a probe that waited for more would report a timeout.
    const s = await listenTcp((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nstill ok'));
    });
    servers.push(s);
    const backend = probeBackend(s.port, { timeout_seconds: 5 });
    for (let i = 0; i < 2; i++) expect(await prober.probe(backend)).toMatchObject({ healthy: true, statusCode: 200, body: 'still ok', errorClass: null });
  });

  it('retries once on a fresh connection when a kept-alive one turns out to be closed', async () => {
    // Answers the first request of each connection, resets on the second: what a server does
    // when its idle timeout fires just as the probe reuses the connection.
    let connections = 0;
    const s = await listenTcp((socket) => {
      connections++;
      let requests = 0;
      socket.on('data', () => {
        if (++requests === 1) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=60\r\n\r\nok');
        else socket.resetAndDestroy();
      });
    });
    servers.push(s);
    const backend = probeBackend(s.port);
    expect((await prober.probe(backend)).healthy).toBe(true);
    const r = await prober.probe(backend);
    expect(r).toMatchObject({ healthy: true, attempts: 1 });
    expect(connections).toBe(2);
  });

  describe('https', () => {
    let port = 0;
    beforeAll(async () => {
      const s = await listenHttps(await selfSignedCert(), (_req, res) => res.end('secure'));
      servers.push(s);
      port = s.port;
    });

    it('fails with tls against a self-signed certificate when verify_ssl is set', async () => {
      const r = await prober.probe(probeBackend(port, { scheme: 'https' }));
      expect(r).toMatchObject({ healthy: false, errorClass: 'tls' });
      expect(r.error).toContain('self-signed');
    });

    it('passes against a self-signed certificate when verify_ssl is off', async () => {
      const r = await prober.probe(probeBackend(port, { scheme: 'https', verify_ssl: false }));
      expect(r).toMatchObject({ healthy: true, statusCode: 200, body: 'secure' });
    });

    it('never lends a connection opened without verification to a probe that verifies', async () => {
      // The unverified probe leaves its keep-alive connection idle for this origin.
      expect((await prober.probe(probeBackend(port, { scheme: 'https', verify_ssl: false }))).healthy).toBe(true);
      const r = await prober.probe(probeBackend(port, { scheme: 'https' }));
      expect(r).toMatchObject({ healthy: false, errorClass: 'tls' });
      expect((await prober.probe(probeBackend(port, { scheme: 'https', verify_ssl: false }))).healthy).toBe(true);
    });
  });
});
