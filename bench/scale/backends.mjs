// The loopback backends of bench/scale.mjs: N HTTP servers on 127.0.0.1, one port each, served by
// one separate Node process (`node backends.mjs serve COUNT`): GET /health answers 200 "ok" at
// once, or, for the ports the bench made fail, 500 (or never, `hang`) until it says recover.
//
// The process keeps its own record of every request it answered (per port: a ring of the last
// 512 arrival times, each marked 200 or not), which is what "this backend answered every probe
// in time" is checked against, and the delay of its own event loop (a late answer that is the
// server's fault, not the sidecar's, would show there).
//
// One process holds a listening socket and, under keep-alive, one accepted connection per port:
// 2 file descriptors a backend. With this machine's hard limit of 20,000 (`ulimit -Hn`, not
// raisable without CAP_SYS_RESOURCE) one process serves at most ~9,900 backends, so above
// PORTS_PER_PROCESS the ports are split over as few processes as that allows (10,000 backends:
// two of 5,000). Each is driven the same way; the bench adds up their CPU.
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';

const SELF = new URL(import.meta.url).pathname;
const RING = 512;

/** Backends one process may serve: half its file-descriptor limit, less room for the rest. */
export function portsPerProcess() {
  if (process.env.BENCH_PORTS_PER_PROCESS) return Number(process.env.BENCH_PORTS_PER_PROCESS);
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const soft = Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? 1024);
  return Math.max(1, Math.floor((soft - 200) / 2));
}

if (process.argv[2] === 'serve' && process.argv[1] === SELF) await serve(Number(process.argv[3]));

/** The server process: listens on `count` ports, then answers the parent's commands. */
async function serve(count) {
  const t0 = Date.now();
  const rings = new Int32Array(count * RING); // (ms since t0) * 2 + (answered 200 ? 0 : 1)
  const heads = new Uint32Array(count); // requests seen per port (ring position = head % RING)
  const modes = new Uint8Array(count); // 0 ok, 1 answer 500, 2 hang
  const hung = new Set();
  let connections = 0;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();

  const handler = (i) => (req, res) => {
    const mode = modes[i];
    const slot = i * RING + (heads[i]++ % RING);
    rings[slot] = (Date.now() - t0) * 2 + (mode === 0 ? 0 : 1);
    req.resume();
    if (mode === 2) {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    res.statusCode = mode === 0 ? 200 : 500;
    res.end(mode === 0 ? 'ok' : 'failing');
  };
  const ports = [];
  for (let i = 0; i < count; i++) {
    const server = createServer(handler(i));
    server.keepAliveTimeout = 60_000; // longer than any probe period: the prober's connection stays
    server.headersTimeout = 61_000;
    server.requestTimeout = 0;
    server.on('connection', () => connections++);
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    ports.push(server.address().port);
  }
  process.send({ ports, t0 });

  process.on('message', (m) => {
    if (m.cmd === 'mode') {
      const code = { ok: 0, 500: 1, hang: 2 }[m.mode];
      for (const i of m.indexes) modes[i] = code;
      if (code === 0) for (const res of hung) res.end('ok');
      process.send({ id: m.id, at: Date.now() });
    } else if (m.cmd === 'reset') {
      connections = 0;
      loop.reset();
      process.send({ id: m.id, requests: heads.reduce((a, b) => a + b, 0) });
    } else if (m.cmd === 'stats') {
      process.send({
        id: m.id,
        requests: heads.reduce((a, b) => a + b, 0),
        connections,
        loopDelayMaxMs: loop.max / 1e6,
        loopDelayP99Ms: loop.percentile(99) / 1e6,
      });
    } else if (m.cmd === 'query') {
      process.send({ id: m.id, answers: m.items.map((q) => answersIn(q, rings, heads, t0)) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

/** What port `q.index` was asked in [q.from, q.to] (epoch ms): {count, failed, covered}. */
function answersIn(q, rings, heads, t0) {
  const n = heads[q.index];
  let count = 0;
  let failed = 0;
  let oldest = Infinity;
  for (let k = 0; k < Math.min(n, RING); k++) {
    const v = rings[q.index * RING + ((n - 1 - k) % RING)];
    const at = t0 + (v >> 1);
    oldest = Math.min(oldest, at);
    if (at > q.to) continue;
    if (at < q.from) break;
    count++;
    if (v & 1) failed++;
  }
  // covered: the ring still reaches back to the window's start (else older answers were overwritten).
  return { count, failed, covered: n <= RING || oldest <= q.from };
}

/**
 * Starts the backend processes for `count` ports (split as portsPerProcess() requires) and
 * returns a handle: `ports` (global order), `pids`, `setMode(indexes, mode)`, `reset()`,
 * `stats()`, `answers(items)` (items: {index, from, to} by global index), `stop()`.
 */
export async function startBackends(count) {
  const per = portsPerProcess();
  const shardCount = Math.ceil(count / per);
  const sizes = Array.from({ length: shardCount }, (_, s) => Math.floor(count / shardCount) + (s < count % shardCount ? 1 : 0));
  const shards = await Promise.all(sizes.map((size) => startShard(size)));
  const ports = shards.flatMap((s) => s.ports);
  const offsets = [];
  let at = 0;
  for (const s of shards) {
    offsets.push(at);
    at += s.ports.length;
  }
  const locate = (index) => {
    let s = shards.length - 1;
    while (offsets[s] > index) s--;
    return [s, index - offsets[s]];
  };
  const byShard = (items, key) => {
    const groups = shards.map(() => []);
    for (const item of items) {
      const [s, local] = locate(key(item));
      groups[s].push({ item, local });
    }
    return groups;
  };
  return {
    ports,
    pids: shards.map((s) => s.child.pid),
    processes: shards.length,
    async setMode(indexes, mode) {
      const groups = byShard(indexes, (i) => i);
      const acks = await Promise.all(groups.map((g, s) => shards[s].ask({ cmd: 'mode', mode, indexes: g.map((x) => x.local) })));
      return Math.max(...acks.map((a) => a.at));
    },
    reset: () => Promise.all(shards.map((s) => s.ask({ cmd: 'reset' }))),
    async stats() {
      const all = await Promise.all(shards.map((s) => s.ask({ cmd: 'stats' })));
      return {
        requests: all.reduce((a, s) => a + s.requests, 0),
        connections: all.reduce((a, s) => a + s.connections, 0),
        loopDelayMaxMs: Math.max(...all.map((s) => s.loopDelayMaxMs)),
        loopDelayP99Ms: Math.max(...all.map((s) => s.loopDelayP99Ms)),
      };
    },
    async answers(items) {
      const groups = byShard(items, (q) => q.index);
      const replies = await Promise.all(
        groups.map((g, s) => (g.length ? shards[s].ask({ cmd: 'query', items: g.map((x) => ({ ...x.item, index: x.local })) }) : { answers: [] })),
      );
      const out = new Map();
      groups.forEach((g, s) => g.forEach((x, k) => out.set(x.item, replies[s].answers[k])));
      return items.map((q) => out.get(q));
    },
    stop() {
      for (const s of shards) s.child.disconnect();
    },
  };
}

async function startShard(size) {
  const child = fork(SELF, ['serve', String(size)], { execArgv: [], env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { ports } = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`backend process exited with ${code} before listening`)));
    child.once('message', resolve);
  });
  child.removeAllListeners('exit');
  let nextId = 0;
  const waiting = new Map();
  child.on('message', (m) => {
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  const ask = (msg) =>
    new Promise((resolve) => {
      const id = ++nextId;
      waiting.set(id, resolve);
      child.send({ ...msg, id });
    });
  return { child, ports, ask };
}
