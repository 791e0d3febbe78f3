/**
 * The admin port's front, run in a worker thread (see admin-protocol.ts). The main thread
 * probes every backend: at 10,000 backends its event loop is busy most of the time and a
 * request waits seconds for its turn (bench:scale, /healthz up to 7 s). Here /healthz is
 * answered at once, from the main thread's heartbeat: it says whether the daemon is making
 * progress, not only that some thread can still write a response. Everything else is computed by
 * the main thread, which owns the state.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { CONNECTIONS_CHECKING_INTERVAL_MS, guardConnections } from './admin-connections.js';
import { readHeartbeat, readLimits, readStats, writeStats, type FromFront, type FrontInit, type PostedReply, type Reply, type ToFront } from './admin-protocol.js';

const init = workerData as FrontInit;
const port = parentPort!;
const post = (msg: FromFront): void => port.postMessage(msg);
const waiting = new Map<number, ServerResponse>();
let nextId = 0;

const server = createServer({ connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS }, (req, res) => {
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  if ((method === 'GET' || method === 'HEAD') && url.split('?', 1)[0] === '/healthz') return send(res, liveness());
  const id = nextId++;
  waiting.set(id, res);
  res.once('close', () => waiting.delete(id));
  post({ type: 'request', id, method, url });
});
// The dropped-connection counters are totals over the process: a front started again after one
// that died goes on from where that one left them (the metric is a counter).
const before = readStats(init.shared);
guardConnections(server, () => readLimits(init.shared), (stats) =>
  writeStats(init.shared, { open: stats.open, evicted: before.evicted + stats.evicted, refused: before.refused + stats.refused }),
);

/** 200 while the main thread's event loop turns; 503 once it has not for stallAfterMs. */
function liveness(): Reply {
  const age = Math.max(0, Date.now() - readHeartbeat(init.shared));
  const stalled = age > init.stallAfterMs;
  const body = stalled
    ? { status: 'stalled', error: `the main thread has not run for ${age} ms (limit ${init.stallAfterMs} ms)`, heartbeat_age_ms: age }
    : { status: 'ok', heartbeat_age_ms: age };
  return { status: stalled ? 503 : 200, contentType: 'application/json; charset=utf-8', body: `${JSON.stringify(body)}\n` };
}

function send(res: ServerResponse, reply: PostedReply): void {
  if (res.destroyed) return;
  res.writeHead(reply.status, {
    'Content-Type': reply.contentType,
    'Content-Length': typeof reply.body === 'string' ? Buffer.byteLength(reply.body) : reply.body.byteLength,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...reply.headers,
  });
  // node:http drops the body of a HEAD response by itself, keeping Content-Length.
  res.end(reply.body);
}

port.on('message', (msg: ToFront) => {
  if (msg.type === 'reply') {
    const res = waiting.get(msg.id);
    waiting.delete(msg.id);
    if (res) send(res, msg.reply);
    return;
  }
  if (!server.listening) return post({ type: 'closed' });
  server.close(() => post({ type: 'closed' }));
  // close() alone waits for idle keep-alive connections to time out.
  server.closeAllConnections();
});

const onListenError = (err: NodeJS.ErrnoException): void => post({ type: 'listen-error', code: err.code, message: err.message });
server.once('error', onListenError);
server.listen(init.port, init.host, () => {
  server.off('error', onListenError);
  // Once listening, an error is an accept that failed (out of file descriptors): the server goes
  // on, and the main thread logs it, at most once a second.
  let toldAt = 0;
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (Date.now() - toldAt < 1000) return;
    toldAt = Date.now();
    post({ type: 'server-error', message: `${err.code ?? ''} ${err.message}`.trim() });
  });
  const bound = server.address() as AddressInfo;
  post({ type: 'listening', host: bound.address, port: bound.port });
});
