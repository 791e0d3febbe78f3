/**
 * The admin front (the worker thread that owns the admin port) exiting on its own: the server
 * logs it and starts a new front on the same host:port a second later, each time it happens, and
 * not once the server is closed. The front is made to crash for real (an uncaught exception in
 * the thread); the test finds its Worker by wrapping node:worker_threads' Worker class.
 */
import { connect, createServer, type Socket } from 'node:net';
import type { Worker as RealWorker } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AdminLimits } from '../../src/observability/admin-connections.js';
import { createAdminServer, type AdminServer } from '../../src/observability/admin-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { waitFor } from '../helpers/wait.js';

/** Every admin front thread started, oldest first (see the mock below). */
const fronts = vi.hoisted(() => [] as RealWorker[]);

vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>();
  class Worker extends real.Worker {
    constructor(filename: string | URL, options?: import('node:worker_threads').WorkerOptions) {
      super(filename, options);
      // worker-module.ts starts the front from an eval'd bootstrap that imports admin-front.ts.
      if (String(filename).includes('admin-front')) fronts.push(this);
    }
  }
  return { ...real, Worker, default: { ...real, Worker } };
});

const RESTART_MESSAGE = 'admin server thread exited; starting it again';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  fronts.length = 0;
});

interface Harness {
  server: AdminServer;
  port: number;
  logLines: Record<string, unknown>[];
}

async function start(limits?: AdminLimits): Promise<Harness> {
  const logLines: Record<string, unknown>[] = [];
  const server = createAdminServer({
    listen: '127.0.0.1:0',
    ...(limits ? { limits: () => limits } : {}),
    logger: createLogger({ level: 'info', destination: { write: (line: string) => void logLines.push(JSON.parse(line)) } }),
    metrics: createMetrics({ collectDefault: false }),
    getApps: () => ({ apps: [{ name: 'web' }] }),
    getApp: (name) => (name === 'web' ? { name } : undefined),
    readiness: () => ({ ready: true, reasons: [] }),
  });
  const { port } = await server.start();
  cleanups.push(() => server.close());
  return { server, port, logLines };
}

const get = (port: number, path = '/healthz') =>
  fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(2000) });

/** Crashes a front with an uncaught exception in its thread (its message handler reads `null.type`); resolves with its exit code. */
async function crash(front: RealWorker): Promise<number> {
  // Not events.once(): it rejects on the 'error' the crash emits before 'exit'.
  const exited = new Promise<number>((resolve) => front.once('exit', resolve));
  front.postMessage(null);
  return exited;
}

/** Polls /healthz on `port` until it answers 200 (a connection refused counts as not yet). */
const healthzBack = (port: number) =>
  waitFor(async () => (await get(port)).status === 200, { timeoutMs: 10_000, intervalMs: 50, what: `/healthz on port ${port} answering again` });

/** Whether a TCP connection to `port` is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

const restartLines = (h: Harness) => h.logLines.filter((l) => l.msg === RESTART_MESSAGE);

/** Longer than the server's 1 s wait before a restart. */
const pastRestartDelay = () => new Promise((r) => setTimeout(r, 1500));

describe('admin front restart', () => {
  it('starts a crashed front again on the same port, logging it, and does so again after a second crash', async () => {
    const h = await start();
    expect((await get(h.port)).status).toBe(200);
    expect(fronts).toHaveLength(1);

    // First crash.
    const code = await crash(fronts[0]!);
    expect(code).not.toBe(0);
    await healthzBack(h.port);
    expect(fronts).toHaveLength(2);
    // The other endpoints are proxied to the main thread by the new front.
    const apps = await get(h.port, '/api/v1/apps');
    expect(apps.status).toBe(200);
    expect(await apps.json()).toEqual({ apps: [{ name: 'web' }] });
    expect((await get(h.port, '/readyz')).status).toBe(200);
    expect(restartLines(h)).toEqual([
      expect.objectContaining({ level: 'error', msg: RESTART_MESSAGE, admin: `127.0.0.1:${h.port}`, code }),
    ]);

    // Second crash: the restarted front is watched like the first.
    expect(await crash(fronts[1]!)).not.toBe(0);
    await healthzBack(h.port);
    expect(fronts).toHaveLength(3);
    expect((await get(h.port, '/api/v1/apps/web')).status).toBe(200);
    expect(restartLines(h)).toHaveLength(2);
    expect(restartLines(h)[1]).toMatchObject({ level: 'error', admin: `127.0.0.1:${h.port}` });
  });

  it('close() stops the restarted front, and no front is started after it', async () => {
    const h = await start();
    await crash(fronts[0]!);
    await healthzBack(h.port);
    expect(fronts).toHaveLength(2);

    await h.server.close();
    expect(await refused(h.port)).toBe(true);
    await pastRestartDelay();
    expect(fronts).toHaveLength(2);
    expect(await refused(h.port)).toBe(true);
    // Only the crash was logged as a lost thread, not the close.
    expect(restartLines(h)).toHaveLength(1);
  });

  it('close() while a restart is pending cancels it', async () => {
    const h = await start();
    await crash(fronts[0]!);
    expect(restartLines(h)).toHaveLength(1);

    await h.server.close();
    await pastRestartDelay();
    expect(fronts).toHaveLength(1);
    expect(await refused(h.port)).toBe(true);
  });

  it('keeps trying while another process holds the port, and serves it again once it is free', async () => {
    const h = await start();
    await crash(fronts[0]!);
    // The dead front let go of the port; someone else takes it before the restart.
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(h.port, '127.0.0.1', resolve));
    await waitFor(() => h.logLines.some((l) => l.msg === 'admin server thread could not listen again' && l.code === 'EADDRINUSE'), {
      timeoutMs: 10_000, intervalMs: 50, what: 'the failed re-listen logged',
    });
    await new Promise((resolve) => squatter.close(resolve));
    await healthzBack(h.port);
    expect(fronts.length).toBeGreaterThanOrEqual(3);
  });

  it("goes on counting dropped connections across a restart, and forgets the dead front's open ones", async () => {
    const h = await start({ maxConnections: 1, idleTimeoutMs: 60_000, requestTimeoutMs: 10_000 });
    /** An idle connection; with room for one, each new one evicts the one before. */
    const open = () => new Promise<Socket>((resolve, reject) => {
      const socket = connect(h.port, '127.0.0.1', () => resolve(socket));
      socket.once('error', reject);
      cleanups.push(() => socket.destroy());
    });
    await open();
    await open();
    await waitFor(() => h.server.connections().evicted === 1, { timeoutMs: 5000, intervalMs: 20, what: 'one eviction counted' });
    expect(h.server.connections().open).toBe(1);

    await crash(fronts[0]!);
    await waitFor(() => fronts.length === 2, { timeoutMs: 10_000, intervalMs: 20, what: 'a new front' });
    expect(h.server.connections()).toMatchObject({ open: 0, evicted: 1 });
    await healthzBack(h.port);
    await open();
    await open();
    await waitFor(() => h.server.connections().evicted >= 2, { timeoutMs: 5000, intervalMs: 20, what: 'evictions after the restart counted on top' });
  });
});
