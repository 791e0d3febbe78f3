// The demo app of docker-compose.yml, and the test app of the orchestry-test/node-app image
// (test/helpers/docker-images.ts packs this file). Plain Node, no dependencies. A well-behaved
// app whose misbehaviour you can switch on over HTTP:
//   GET  /health                 200 "ok"; 503 after /control/fail; no answer after /control/hang
//   GET  any other path          200, body and x-backend header = $NAME (default: hostname)
//   POST /control/fail | /heal | /hang | /slow?ms=N | /exit?code=N | /crash
//                                (each answers "<NAME>: ...", so you see which replica you broke)
//   POST /control/leak?mb_per_s=N   keeps N MB more memory (touched, off the JS heap) every second
//   POST /control/burn              spins the main thread forever: busy CPU, no more HTTP answers
//   POST /control/deadlock          blocks the main thread forever on a lock: idle CPU, the port
//                                   still accepts connections (the kernel's backlog), no answers
// Environment: HOST (0.0.0.0), PORT (8000), NAME, HEALTH=ok|fail at start, STARTUP_DELAY_MS
// (listen only after that long), GRACE_MS (2000): on SIGTERM it stops accepting connections,
// keeps answering requests on the connections it has (telling clients to close them) for
// GRACE_MS, then exits 0. PLAIN_REPLIES=1: bodies are the bare text, without the "<NAME>: "
// prefix and the newline a terminal wants (the tests compare them whole).
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { hostname } from 'node:os';

const host = process.env.HOST || '0.0.0.0';
const port = intEnv('PORT', 8000);
const name = process.env.NAME || hostname();
const graceMs = intEnv('GRACE_MS', 2000);
const startupDelayMs = intEnv('STARTUP_DELAY_MS', 0);
const plain = process.env.PLAIN_REPLIES === '1';

/** @type {'ok' | 'fail' | 'hang'} */
let health = process.env.HEALTH === 'fail' ? 'fail' : 'ok';
let delayMs = 0;
let draining = false;

const http = createHttpServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://app');
  if (draining) res.shouldKeepAlive = false;
  if (url.pathname.startsWith('/control/')) {
    if (req.method !== 'POST') return send(res, 405, 'POST only');
    return control(url, res);
  }
  setTimeout(() => {
    if (url.pathname === '/health') {
      if (health === 'hang') return; // the socket stays open until the prober gives up
      if (draining) return send(res, 503, 'draining');
      return send(res, health === 'ok' ? 200 : 503, health === 'ok' ? 'ok' : 'failing');
    }
    send(res, 200, name, { 'x-backend': name });
  }, delayMs);
});
http.keepAliveTimeout = 5000;

/** @param {URL} url @param {import('node:http').ServerResponse} res */
function control(url, res) {
  switch (url.pathname) {
    case '/control/fail':
      health = 'fail';
      return send(res, 200, said('health: fail'));
    case '/control/heal':
      health = 'ok';
      return send(res, 200, said('health: ok'));
    case '/control/hang':
      health = 'hang';
      return send(res, 200, said('health: hang'));
    case '/control/slow':
      delayMs = Math.max(0, Number(url.searchParams.get('ms')) || 0);
      return send(res, 200, said(`delay: ${delayMs} ms`));
    case '/control/exit': {
      const code = Number(url.searchParams.get('code') ?? 1);
      return res.end(line(said(`exiting with ${code}`)), () => process.exit(code));
    }
    case '/control/leak': {
      const mbPerSecond = Math.max(0, Number(url.searchParams.get('mb_per_s')) || 0);
      const leaked = [];
      // Ten steps a second keep the climb smooth; fill() touches the pages so the cgroup counts them.
      setInterval(() => leaked.push(Buffer.allocUnsafeSlow(Math.round((mbPerSecond * 1024 * 1024) / 10)).fill(1)), 100);
      return send(res, 200, said(`leaking ${mbPerSecond} MB/s`));
    }
    case '/control/burn':
      return res.end(line(said('burning')), () => setImmediate(() => {
        for (;;);
      }));
    case '/control/deadlock':
      // Waits on a value nobody will ever change: the thread sleeps in the kernel, using no CPU.
      return res.end(line(said('deadlocked')), () => setImmediate(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)));
    case '/control/crash':
      // A real crash, not an exit. As a container's pid 1 the SIGABRT is ignored and glibc's
      // abort() then faults: the container dies of SIGSEGV (exit 139; 134 under an init).
      return res.end(line(said('crashing')), () => process.abort());
    default:
      return send(res, 404, 'unknown control');
  }
}

/** @param {import('node:http').ServerResponse} res @param {number} status @param {string} body */
function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/plain', ...headers });
  res.end(line(body));
}

/** A control's answer, naming the replica that gives it. @param {string} text */
function said(text) {
  return plain ? text : `${name}: ${text}`;
}

/** @param {string} text */
function line(text) {
  return plain ? text : `${text}\n`;
}

// The listening socket is a separate net.Server that hands connections to the HTTP server:
// closing it stops new connections without http.Server#close(), which would also drop the
// idle keep-alive connections that a graceful stop should keep answering on.
const listener = createNetServer((socket) => http.emit('connection', socket));

process.on('SIGTERM', () => {
  if (draining) return;
  draining = true;
  listener.close();
  console.log(`${name}: SIGTERM, draining for ${graceMs} ms`);
  setTimeout(() => process.exit(0), graceMs);
});
process.on('SIGINT', () => process.exit(0));

setTimeout(() => {
  listener.listen(port, host, () => console.log(`${name}: listening on ${host}:${port}`));
}, startupDelayMs);

/** @param {string} key @param {number} fallback */
function intEnv(key, fallback) {
  const raw = process.env[key];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`${key} must be a non-negative integer (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return n;
}
