/**
 * Loopback servers for prober tests: each misbehaves in one precise way. They run in the test
 * process and listen on port 0, so the port is the OS's choice on the very socket that serves.
 * For a port with nothing on it, see free-port.ts.
 */
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface LoopbackServer {
  port: number;
  close(): Promise<void>;
}

async function listen(server: Server | HttpServer): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('server has no port');
  return address.port;
}

/** An HTTP server; `connections` counts the TCP connections it accepted. */
export async function listenHttp(handler: RequestListener): Promise<LoopbackServer & { server: HttpServer; connections(): number }> {
  const server = createHttpServer(handler);
  return withHttpClose(server, await listen(server));
}

/** An HTTPS server with the given key and certificate. */
export async function listenHttps(tls: { key: string; cert: string }, handler: RequestListener): Promise<LoopbackServer> {
  const server = createHttpsServer(tls, handler);
  return withHttpClose(server, await listen(server));
}

function withHttpClose(server: HttpServer, port: number): LoopbackServer & { server: HttpServer; connections(): number } {
  let connections = 0;
  server.on('connection', () => connections++);
  return {
    port,
    server,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A raw TCP server; every accepted socket goes to `onSocket` and is destroyed on close(). */
export async function listenTcp(onSocket: (socket: Socket) => void): Promise<LoopbackServer> {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  const port = await listen(server);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Accepts connections and never sends a byte. */
export const listenSilent = (): Promise<LoopbackServer> => listenTcp(() => {});

/** Accepts connections and answers the first bytes it receives with a TCP reset. */
export const listenResetting = (): Promise<LoopbackServer> =>
  listenTcp((socket) => socket.once('data', () => socket.resetAndDestroy()));

/**
 * A port where connecting never completes: a child process listens with a backlog of 1 and
 * then blocks its event loop, so it never accepts; once its accept queue is full the kernel
 * drops further SYNs. The queue is filled here before the port is handed out.
 */
export async function listenBacklogFull(): Promise<LoopbackServer> {
  const script = `
    const s = require('node:net').createServer();
    s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`backlog server exited with ${code}`)));
    child.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
  });
  const fillers: Socket[] = [];
  for (let i = 0; i < 16; i++) {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    fillers.push(socket);
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 500);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) break;
  }
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A self-signed certificate for 127.0.0.1, made with openssl in a temporary directory. */
export async function selfSignedCert(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'probe-tls-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1',
    ]);
    return { key: await readFile(keyPath, 'utf8'), cert: await readFile(certPath, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
