/**
 * A real HTTP backend on loopback whose health endpoint can be switched between healthy,
 * failing (503) and hanging, whose other paths can answer 500 while its health check passes
 * (`errors`: only real traffic shows the fault), and which can stop and resume listening.
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll } from 'vitest';

export type BackendMode = 'ok' | 'fail' | 'hang' | 'errors';

export interface TestBackend {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  /** Requests to paths other than /health, counted. */
  hits: number;
  setMode(mode: BackendMode): void;
  /** Stops listening and drops open connections (the port refuses connections). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  resume(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Backends named `names` for the enclosing describe block: started in its beforeAll, closed in
 * its afterAll. Read them from inside hooks and tests.
 */
export function backendsForSuite<N extends string>(...names: N[]): Record<N, TestBackend> {
  const backends = {} as Record<N, TestBackend>;
  beforeAll(async () => {
    for (const name of names) backends[name] = await startBackend(name);
  });
  afterAll(async () => {
    for (const name of names) await backends[name]?.close();
  });
  return backends;
}

export async function startBackend(name: string, port = 0): Promise<TestBackend> {
  let mode: BackendMode = 'ok';
  let server: Server | null = null;
  const sockets = new Set<Socket>();
  const backend: TestBackend = {
    name,
    port,
    address: '',
    hits: 0,
    setMode(m) {
      mode = m;
    },
    async stop() {
      if (!server) return;
      const s = server;
      server = null;
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((r) => s.close(() => r()));
    },
    async resume() {
      if (server) return;
      await listen(backend.port);
    },
    async close() {
      await backend.stop();
    },
  };
  const listen = (p: number) =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((req, res) => {
        if (req.url?.startsWith('/health')) {
          if (mode === 'hang') return; // never answers; the probe times out
          const healthy = mode === 'ok' || mode === 'errors';
          res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain' });
          res.end(healthy ? 'ok' : 'failing');
          return;
        }
        backend.hits++;
        res.writeHead(mode === 'errors' ? 500 : 200, { 'content-type': 'text/plain', 'x-backend': name });
        res.end(name);
      });
      s.keepAliveTimeout = 5000;
      s.on('connection', (sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
      });
      s.once('error', reject);
      s.listen(p, '127.0.0.1', () => {
        const a = s.address();
        if (a && typeof a === 'object') {
          (backend as { port: number }).port = a.port;
          (backend as { address: string }).address = `127.0.0.1:${a.port}`;
        }
        server = s;
        resolve();
      });
    });
  await listen(port);
  return backend;
}
