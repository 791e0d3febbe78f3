/** callBackend, the clear_cache strategy's HTTP call, against loopback servers. */
import { describe, expect, it } from 'vitest';
import { callBackend } from '../../src/recovery/backend-call.js';
import { listenHttp } from '../helpers/probe-servers.js';

describe('callBackend', () => {
  it('sends the declared method and path to the backend and takes 2xx as success', async () => {
    const seen: string[] = [];
    const srv = await listenHttp((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(req.url === '/cache/clear' ? 204 : 404).end();
    });
    try {
      expect(await callBackend({ method: 'DELETE', path: '/cache/clear', host: '127.0.0.1', port: srv.port })).toEqual({ ok: true, status: 204 });
      expect(await callBackend({ method: 'POST', path: '/nope', host: '127.0.0.1', port: srv.port })).toEqual({
        ok: false,
        status: 404,
        error: `POST http://127.0.0.1:${srv.port}/nope answered HTTP 404 (expected 2xx)`,
      });
      expect(seen).toEqual(['DELETE /cache/clear', 'POST /nope']);
    } finally {
      await srv.close();
    }
  });

  it('gives up after its timeout, and reports a refused connection', async () => {
    const srv = await listenHttp(() => undefined); // never answers
    try {
      const r = await callBackend({ method: 'POST', path: '/x', host: '127.0.0.1', port: srv.port }, 200);
      expect(r).toEqual({ ok: false, error: `POST http://127.0.0.1:${srv.port}/x failed: no answer within 200 ms` });
    } finally {
      await srv.close();
    }
    const refused = await callBackend({ method: 'POST', path: '/x', host: '127.0.0.1', port: srv.port }, 1000);
    expect(refused.ok).toBe(false);
    expect(refused.error).toMatch(new RegExp(`^POST http://127\\.0\\.0\\.1:${srv.port}/x failed: .*ECONNREFUSED`));
  });
});
