import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, SidecarError } from '../../src/errors.js';
import { createAdminServer, parseListenAddress, type AdminServerOptions } from '../../src/observability/admin-server.js';
import { createEventLog } from '../../src/observability/event-log.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** An admin server with nothing to report, ready, logging nothing; on an ephemeral port by default. */
function bareServer(listen = '127.0.0.1:0') {
  return createAdminServer({
    listen,
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics({ collectDefault: false }),
    getApps: () => [],
    getApp: () => undefined,
    readiness: () => ({ ready: true, reasons: [] }),
  });
}

interface Harness {
  base: string;
  port: number;
  logLines: Record<string, unknown>[];
  state: { ready: boolean; reasons: string[]; apps: Record<string, unknown> };
}

async function startAdmin(over: Partial<AdminServerOptions> = {}): Promise<Harness> {
  const logLines: Record<string, unknown>[] = [];
  const state = {
    ready: true,
    reasons: [] as string[],
    apps: { web: { name: 'web', backends: [{ address: '127.0.0.1:8001', health: 'healthy' }] } } as Record<string, unknown>,
  };
  const metrics = createMetrics({ collectDefault: false });
  metrics.setDegraded(true);
  const server = createAdminServer({
    listen: '127.0.0.1:0',
    logger: createLogger({ level: 'info', destination: { write: (line: string) => void logLines.push(JSON.parse(line)) } }),
    metrics,
    getApps: (q) => {
      if (q.app !== undefined && !state.apps[q.app]) return undefined;
      const apps = q.app !== undefined ? [state.apps[q.app]] : Object.values(state.apps);
      return { apps: q.summary ? apps.map((a) => ({ name: (a as { name: string }).name, summary: true })) : apps };
    },
    getApp: (name) => state.apps[name],
    readiness: () => ({ ready: state.ready, reasons: state.reasons }),
    ...over,
  });
  servers.push(server);
  const address = await server.start();
  return { base: `http://127.0.0.1:${address.port}`, port: address.port, logLines, state };
}

function expectCommonHeaders(res: Response): void {
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
}

/** The `error` field of a JSON error response. */
async function errorOf(res: Response): Promise<string> {
  return ((await res.json()) as { error: string }).error;
}

/** A 200 from /healthz: ok, with the age of the main thread's heartbeat. */
async function expectLive(res: Response): Promise<void> {
  expect(res.status).toBe(200);
  expectCommonHeaders(res);
  const body = (await res.json()) as { status: string; heartbeat_age_ms: number };
  expect(body.status).toBe('ok');
  expect(body.heartbeat_age_ms).toBeGreaterThanOrEqual(0);
}

async function expectJson(res: Response, status: number, body: unknown): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
  expectCommonHeaders(res);
  expect(await res.json()).toEqual(body);
}

describe('admin server', () => {
  it('listens on an ephemeral loopback port when asked for port 0', async () => {
    const server = bareServer();
    servers.push(server);
    const address = await server.start();
    expect(address.host).toBe('127.0.0.1');
    expect(address.port).toBeGreaterThan(0);
  });

  it('serves the Prometheus exposition on /metrics', async () => {
    const { base } = await startAdmin();
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expectCommonHeaders(res);
    const text = await res.text();
    expect(text).toContain('# TYPE orchestry_degraded gauge');
    expect(text).toMatch(/^orchestry_degraded 1$/m);
  });

  it('answers /healthz with status ok', async () => {
    const { base } = await startAdmin();
    await expectLive(await fetch(`${base}/healthz`));
  });

  it('answers /readyz with 200 when ready and 503 with the reasons when not', async () => {
    const { base, state } = await startAdmin();
    await expectJson(await fetch(`${base}/readyz`), 200, { ready: true });

    state.ready = false;
    state.reasons = ['nginx upstreams not yet written'];
    await expectJson(await fetch(`${base}/readyz`), 503, { ready: false, reasons: ['nginx upstreams not yet written'] });
  });

  it('lists apps and shows one app as JSON', async () => {
    const { base, state } = await startAdmin();
    await expectJson(await fetch(`${base}/api/v1/apps`), 200, { apps: [state.apps.web] });
    await expectJson(await fetch(`${base}/api/v1/apps/web`), 200, state.apps.web);
  });

  it('answers /api/v1/apps for one app (?app=) or as counts (?summary=1), 404 for an unknown app', async () => {
    const { base, state } = await startAdmin();
    state.apps.api = { name: 'api', backends: [] };
    await expectJson(await fetch(`${base}/api/v1/apps?app=api`), 200, { apps: [state.apps.api] });
    await expectJson(await fetch(`${base}/api/v1/apps?summary=1`), 200, { apps: [{ name: 'web', summary: true }, { name: 'api', summary: true }] });
    await expectJson(await fetch(`${base}/api/v1/apps?app=web&summary=true`), 200, { apps: [{ name: 'web', summary: true }] });
    await expectJson(await fetch(`${base}/api/v1/apps?app=nope`), 404, { error: 'unknown app "nope"' });
    await expectJson(await fetch(`${base}/api/v1/apps?summary=yes`), 400, { error: 'query parameter summary: must be 1, true, 0 or false (got "yes")' });
    await expectJson(await fetch(`${base}/api/v1/apps?backend=x`), 400, { error: 'unknown query parameter "backend"' });
  });

  it('decodes percent-encoded app names', async () => {
    const { base, state } = await startAdmin();
    state.apps['my app'] = { name: 'my app' };
    await expectJson(await fetch(`${base}/api/v1/apps/my%20app`), 200, { name: 'my app' });
  });

  it('answers 404 naming an unknown app', async () => {
    const { base } = await startAdmin();
    await expectJson(await fetch(`${base}/api/v1/apps/nope`), 404, { error: 'unknown app "nope"' });
  });

  it('answers 400 for an app name that is not valid percent-encoding', async () => {
    const { base } = await startAdmin();
    const res = await fetch(`${base}/api/v1/apps/%E0%A4%A`);
    expect(res.status).toBe(400);
    expectCommonHeaders(res);
    expect(await errorOf(res)).toContain('%E0%A4%A');
  });

  it('answers 404 JSON for unknown paths', async () => {
    const { base } = await startAdmin();
    for (const path of ['/nope', '/metrics/', '/status/', '/index.html', '/api/v1/apps/web/extra', '/api/v1/apps/']) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type'), path).toBe('application/json; charset=utf-8');
      expect(await errorOf(res), path).toContain(path);
    }
  });

  it('ignores the query string when routing', async () => {
    const { base } = await startAdmin();
    await expectLive(await fetch(`${base}/healthz?verbose=1`));
  });

  it('answers 405 with an Allow header to methods other than GET and HEAD', async () => {
    const { base } = await startAdmin();
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await fetch(`${base}/api/v1/apps`, { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('allow'), method).toBe('GET, HEAD');
      expectCommonHeaders(res);
      expect(await errorOf(res), method).toBe(`method ${method} not allowed`);
    }
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const { base } = await startAdmin();
    const res = await fetch(`${base}/readyz`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength('{"ready":true}\n')));
    expect(await res.text()).toBe('');
    const live = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect(live.status).toBe(200);
    expect(Number(live.headers.get('content-length'))).toBeGreaterThan(0);
    expect(await live.text()).toBe('');
  });

  it('serves a large reply byte for byte, multi-byte characters and all, with its length in bytes', async () => {
    // Over the size posted to the admin thread as transferred bytes, with characters of 2-4 bytes.
    const backends = Array.from({ length: 4000 }, (_, i) => ({ address: `127.0.0.1:${10_000 + i}`, note: 'ünïcødé ✓ 🚀' }));
    const { base, state } = await startAdmin();
    state.apps.web = { name: 'web', backends };
    const expected = `${JSON.stringify(state.apps.web)}\n`;
    expect(expected.length).toBeGreaterThan(64 * 1024);
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${base}/api/v1/apps/web`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(expected)));
      expect(await res.text()).toBe(expected);
    }
    const head = await fetch(`${base}/api/v1/apps/web`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(Buffer.byteLength(expected)));
    expect(await head.text()).toBe('');
  });

  it('turns a throwing handler into a 500 logged as a JSON line and keeps serving', async () => {
    const { base, logLines } = await startAdmin({
      getApps: () => {
        throw new Error('registry exploded');
      },
    });
    await expectJson(await fetch(`${base}/api/v1/apps`), 500, { error: 'internal error: registry exploded' });
    expect(logLines).toContainEqual(
      expect.objectContaining({
        name: 'orchestry-sidecar',
        level: 'error',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        msg: 'admin request failed',
        url: '/api/v1/apps',
      }),
    );
    await expectLive(await fetch(`${base}/healthz`));
  });

  it('turns a failing metrics render into a 500', async () => {
    const { base } = await startAdmin({
      metrics: { contentType: 'text/plain', render: () => Promise.reject(new Error('collector failed')) },
    });
    await expectJson(await fetch(`${base}/metrics`), 500, { error: 'internal error: collector failed' });
  });

  it('turns an unserialisable app view into a 500', async () => {
    const { base } = await startAdmin({ getApp: () => ({ big: 1n }) });
    const res = await fetch(`${base}/api/v1/apps/web`);
    expect(res.status).toBe(500);
    expect(await errorOf(res)).toMatch(/^internal error: .*BigInt/);
  });

  it('fails to start with one line naming the address when it is already in use', async () => {
    const { port } = await startAdmin();
    const second = bareServer(`127.0.0.1:${port}`);
    servers.push(second);
    await expect(second.start()).rejects.toThrow(
      `admin.listen: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`,
    );
  });

  it('answers /healthz while the main thread is busy, and 503 once it has not run for the stall limit', async () => {
    const { base } = await startAdmin({ stallAfterMs: 2000 });
    // execFileSync holds this (the main) thread until the child is done: the child asks for
    // /healthz at once, for /readyz (a reply of the main thread), and for /healthz again after
    // the stall limit has passed.
    const script = `
      const get = (path, ms) => fetch(${JSON.stringify(base)} + path, { signal: AbortSignal.timeout(ms) })
        .then(async (r) => ({ status: r.status, body: await r.json() }), (e) => ({ error: e.name }));
      (async () => {
        const first = await get('/healthz', 10000);
        const ready = await get('/readyz', 300);
        await new Promise((r) => setTimeout(r, 2500));
        const later = await get('/healthz', 10000);
        console.log(JSON.stringify({ first, ready, later }));
      })();`;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as Record<string, { status?: number; body?: Record<string, unknown>; error?: string }>;
    expect(out.first).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(out.ready).toEqual({ error: 'TimeoutError' });
    expect(out.later?.status).toBe(503);
    expect(out.later?.body).toMatchObject({ status: 'stalled' });
    expect(out.later?.body?.error).toMatch(/^the main thread has not run for \d+ ms \(limit 2000 ms\)$/);
    // Running again, the main thread answers as before.
    await expectLive(await fetch(`${base}/healthz`));
  });

  it('drops connections with requests still in flight on close()', async () => {
    let rendering!: () => void;
    const started = new Promise<void>((resolve) => (rendering = resolve));
    const server = createAdminServer({
      listen: '127.0.0.1:0',
      logger: createLogger({ level: 'silent' }),
      metrics: {
        contentType: 'text/plain',
        render: () => {
          rendering();
          return new Promise<string>(() => {});
        },
      },
      getApps: () => [],
      getApp: () => undefined,
      readiness: () => ({ ready: true, reasons: [] }),
    });
    const { port } = await server.start();
    const request = fetch(`http://127.0.0.1:${port}/metrics`);
    // Watched before close(), which may drop it before close() itself resolves.
    const dropped = expect(request).rejects.toThrow();
    await started;
    await server.close();
    await dropped;
  });

  it('closes cleanly when it was never started', async () => {
    const server = bareServer();
    await expect(server.close()).resolves.toBeUndefined();
  });
});

describe('admin server status page', () => {
  const sha256 = (text: string) => createHash('sha256').update(text).digest('base64');
  /** The CSP as a map from directive to its sources. */
  const directives = (csp: string) =>
    Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...sources]) => [name, sources]));

  it.each(['/', '/status'])('serves %s as HTML with a strict Content-Security-Policy', async (path) => {
    const { base } = await startAdmin();
    const res = await fetch(`${base}${path}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expectCommonHeaders(res);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    const body = await res.text();
    expect(body).toMatch(/^<!doctype html>/);

    const csp = directives(res.headers.get('content-security-policy') ?? '');
    expect(csp['default-src']).toEqual(["'none'"]);
    expect(csp['connect-src']).toEqual(["'self'"]);
    expect(csp['img-src']).toEqual(["'self'", 'data:']);
    expect(csp['frame-ancestors']).toEqual(["'none'"]);
    // Exactly the page's one inline script and one style block are allowed, by hash.
    const scripts = [...body.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1] as string);
    const styles = [...body.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] as string);
    expect(scripts).toHaveLength(1);
    expect(styles).toHaveLength(1);
    expect(csp['script-src']).toEqual([`'sha256-${sha256(scripts[0]!)}'`]);
    expect(csp['style-src']).toEqual([`'sha256-${sha256(styles[0]!)}'`]);
  });

  it('loads nothing from another origin, so it works offline', async () => {
    const { base } = await startAdmin();
    const body = await (await fetch(`${base}/`)).text();
    expect(body).not.toMatch(/(?:src|href)\s*=\s*["']?(?:[a-z]+:)?\/\//i);
    expect(body).not.toMatch(/@import|url\(/i);
    expect(body).not.toContain('innerHTML');
  });

  it('answers HEAD for the page with the headers of GET and no body', async () => {
    const { base } = await startAdmin();
    const get = await fetch(`${base}/status`);
    const length = String(Buffer.byteLength(await get.text()));
    const res = await fetch(`${base}/status`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-length')).toBe(length);
    expect(res.headers.get('content-security-policy')).toBe(get.headers.get('content-security-policy'));
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(await res.text()).toBe('');
  });

  it('refuses POST to the page like any other route', async () => {
    const { base } = await startAdmin();
    const res = await fetch(`${base}/`, { method: 'POST' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
  });
});

describe('admin listen address', () => {
  it('parses IPv4, host names and bracketed IPv6', () => {
    expect(parseListenAddress('127.0.0.1:9180')).toEqual({ host: '127.0.0.1', port: 9180 });
    expect(parseListenAddress('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseListenAddress('[::1]:9180')).toEqual({ host: '::1', port: 9180 });
  });

  it.each(['9180', '127.0.0.1', ':9180', '127.0.0.1:http', '127.0.0.1:65536', '::1:9180', '[::1]', ' 127.0.0.1:9180'])(
    'rejects %j with an error naming admin.listen',
    (listen) => {
      let caught: unknown;
      try {
        bareServer(listen);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).issues).toEqual([
        { path: 'admin.listen', message: expect.stringContaining(JSON.stringify(listen)) },
      ]);
    },
  );
});

describe('admin server /api/v1/events', () => {
  async function withEvents() {
    const log = createEventLog(50);
    log.push('transition', Date.UTC(2026, 0, 1), 'health healthy -> unhealthy', { app: 'web', backend: 'web/127.0.0.1:8001', to: 'unhealthy' });
    log.push('nginx', Date.UTC(2026, 0, 1, 0, 0, 1), 'nginx upstreams updated', { result: 'applied' });
    log.push('transition', Date.UTC(2026, 0, 1, 0, 0, 2), 'health unknown -> healthy', { app: 'api', backend: 'api/127.0.0.1:9001' });
    return startAdmin({ getEvents: (q) => log.list(q) });
  }

  it('lists recent events oldest first, with their sequence numbers', async () => {
    const h = await withEvents();
    const res = await fetch(`${h.base}/api/v1/events`);
    const body = (await res.json()) as { events: Array<{ seq: number; kind: string; app: string | null; at: string; data: Record<string, unknown> }> };
    expect(res.status).toBe(200);
    expect(body.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(body.events[0]).toMatchObject({ kind: 'transition', app: 'web', at: '2026-01-01T00:00:00.000Z', data: { to: 'unhealthy' } });
    expect(body.events[1]).toMatchObject({ kind: 'nginx', app: null });
  });

  it('filters by after, kind, app and limit', async () => {
    const h = await withEvents();
    const seqs = async (q: string) =>
      ((await (await fetch(`${h.base}/api/v1/events?${q}`)).json()) as { events: Array<{ seq: number }> }).events.map((e) => e.seq);
    expect(await seqs('after=1')).toEqual([2, 3]);
    expect(await seqs('kind=transition')).toEqual([1, 3]);
    expect(await seqs('app=api')).toEqual([3]);
    expect(await seqs('limit=1')).toEqual([3]);
  });

  it('rejects a bad query parameter naming it and the value', async () => {
    const h = await withEvents();
    expect(await errorOf(await fetch(`${h.base}/api/v1/events?limit=0`))).toBe('query parameter limit: must be an integer from 1 to 1000 (got "0")');
    expect(await errorOf(await fetch(`${h.base}/api/v1/events?kind=bogus`))).toContain('query parameter kind: must be one of transition');
    expect(await errorOf(await fetch(`${h.base}/api/v1/events?after=-1`))).toBe('query parameter after: must be an integer >= 0 (got "-1")');
    const res = await fetch(`${h.base}/api/v1/events?x=1`);
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toBe('unknown query parameter "x"');
  });

  it('keeps only the newest events within its capacity', () => {
    const log = createEventLog(3);
    for (let i = 0; i < 5; i++) log.push('config', i, `event ${i}`);
    expect(log.list().map((e) => e.message)).toEqual(['event 2', 'event 3', 'event 4']);
    expect(log.list().map((e) => e.seq)).toEqual([3, 4, 5]);
  });
});

describe('admin server /api/v1/apps/{app}/report and /api/v1/alerts', () => {
  const asked: Array<[string, number]> = [];
  const withReports = (getReport: AdminServerOptions['getReport']) =>
    startAdmin({
      getReport: async (app, hours) => {
        asked.push([app, hours]);
        return getReport!(app, hours);
      },
      getAlerts: () => ({ alerts: [{ key: 'web/127.0.0.1:8001|health_check_failed' }] }),
    });

  it('answers the report of an app over hours (default 24)', async () => {
    asked.length = 0;
    const h = await withReports(async (app, hours) => (app === 'web' ? { app_name: app, report_period_hours: hours } : undefined));
    expect(await (await fetch(`${h.base}/api/v1/apps/web/report`)).json()).toEqual({ app_name: 'web', report_period_hours: 24 });
    expect(await (await fetch(`${h.base}/api/v1/apps/web/report?hours=1.5`)).json()).toEqual({ app_name: 'web', report_period_hours: 1.5 });
    const missing = await fetch(`${h.base}/api/v1/apps/nope/report`);
    expect(missing.status).toBe(404);
    expect(await errorOf(missing)).toBe('unknown app "nope"');
    expect(asked).toEqual([['web', 24], ['web', 1.5], ['nope', 24]]);
  });

  it('rejects a bad hours value naming it, without asking the store', async () => {
    asked.length = 0;
    const h = await withReports(async () => ({}));
    for (const bad of ['0', '-1', 'abc', '', '100000']) {
      const res = await fetch(`${h.base}/api/v1/apps/web/report?hours=${bad}`);
      expect(res.status).toBe(400);
      expect(await errorOf(res)).toBe(`query parameter hours: must be a number above 0 and at most 8784 (got ${JSON.stringify(bad)})`);
    }
    expect(await errorOf(await fetch(`${h.base}/api/v1/apps/web/report?days=1`))).toBe('unknown query parameter "days"');
    expect(asked).toEqual([]);
  });

  it('answers 503 with the reason when the store cannot report', async () => {
    const h = await withReports(async () => {
      throw new SidecarError('STORE_UNAVAILABLE', 'state store unavailable: /data/x.db: file is not a database');
    });
    const res = await fetch(`${h.base}/api/v1/apps/web/report`);
    expect(res.status).toBe(503);
    expect(await errorOf(res)).toBe('state store unavailable: /data/x.db: file is not a database');
  });

  it('lists firing alerts', async () => {
    const h = await withReports(async () => ({}));
    expect(await (await fetch(`${h.base}/api/v1/alerts`)).json()).toEqual({ alerts: [{ key: 'web/127.0.0.1:8001|health_check_failed' }] });
  });
});
