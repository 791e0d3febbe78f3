/**
 * The admin server's bounds on what a client can hold, over real sockets: the connection cap
 * (closing the oldest idle connection, or the new one when all are busy) and the timeouts for
 * silent, slow and idle connections.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AdminLimits } from '../../src/observability/admin-connections.js';
import { createAdminServer, type AdminServer } from '../../src/observability/admin-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(limits: AdminLimits, getReport?: () => Promise<unknown>): Promise<{ server: AdminServer; port: number }> {
  const server = createAdminServer({
    listen: '127.0.0.1:0',
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics({ collectDefault: false }),
    getApps: () => [],
    getApp: (name) => (name === 'web' ? { name } : undefined),
    readiness: () => ({ ready: true, reasons: [] }),
    ...(getReport ? { getReport } : {}),
    limits: () => limits,
  });
  const { port } = await server.start();
  cleanups.push(() => server.close());
  return { server, port };
}

/** A connected socket that records when it was closed and what it received. */
async function open(port: number): Promise<Socket & { closedAt: () => number | null; received: () => string }> {
  const socket = connect(port, '127.0.0.1');
  let closedAt: number | null = null;
  let received = '';
  socket.on('data', (d) => (received += d.toString()));
  socket.on('close', () => (closedAt = performance.now()));
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  cleanups.push(() => socket.destroy());
  return Object.assign(socket, { closedAt: () => closedAt, received: () => received });
}

const get = (port: number, path = '/healthz') =>
  fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5000) });

const wide = { idleTimeoutMs: 60_000, requestTimeoutMs: 60_000 };

describe('admin connections', () => {
  it('at the cap, closes the oldest idle connection to let a new one in, and keeps the count at the cap', async () => {
    const { server, port } = await start({ maxConnections: 3, ...wide });
    const idle = [await open(port), await open(port), await open(port)];
    await waitFor(() => server.connections().open === 3, { what: 'three open' });
    expect((await get(port)).status).toBe(200);
    await waitFor(() => idle[0]!.closedAt() !== null, { what: 'the oldest idle connection closed' });
    expect(idle.slice(1).map((s) => s.closedAt())).toEqual([null, null]);
    expect(server.connections()).toMatchObject({ evicted: 1, refused: 0 });
    expect(server.connections().open).toBeLessThanOrEqual(3);
  });

  it('closes the new connection instead when every open one has a request in progress', async () => {
    let release!: () => void;
    const held = new Promise<unknown>((resolve) => (release = () => resolve({ app: 'web' })));
    const { server, port } = await start({ maxConnections: 1, ...wide }, () => held);
    const slow = get(port, '/api/v1/apps/web/report');
    await waitFor(() => server.connections().open === 1, { what: 'the report request open' });
    await expect(get(port)).rejects.toThrow();
    expect(server.connections()).toMatchObject({ evicted: 0, refused: 1 });
    release();
    expect((await slow).status).toBe(200);
  });

  it('closes a connection that sends nothing, or its headers too slowly, after the request timeout', async () => {
    const { port } = await start({ maxConnections: 10, idleTimeoutMs: 60_000, requestTimeoutMs: 500 });
    const started = performance.now();
    const silent = await open(port);
    const trickle = await open(port);
    const timer = setInterval(() => trickle.write('X'), 100);
    cleanups.push(() => clearInterval(timer));
    trickle.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    await waitFor(() => silent.closedAt() !== null && trickle.closedAt() !== null, { what: 'both closed', timeoutMs: 5000 });
    for (const s of [silent, trickle]) expect(s.closedAt()! - started).toBeLessThan(2500);
    expect(trickle.received()).toContain('408');
  });

  it('closes a kept-alive connection idle for the idle timeout', async () => {
    const { port } = await start({ maxConnections: 10, idleTimeoutMs: 400, requestTimeoutMs: 60_000 });
    const client = await open(port);
    client.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => client.received().includes('"ok"'), { what: 'the response' });
    const answeredAt = performance.now();
    await waitFor(() => client.closedAt() !== null, { what: 'idle connection closed', timeoutMs: 5000 });
    expect(client.closedAt()! - answeredAt).toBeLessThan(2500);
  });
});
