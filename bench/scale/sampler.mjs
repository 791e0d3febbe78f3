// The /healthz and /readyz sampler of bench/scale.mjs, in a process of its own so that the bench's
// own work never delays a sample: `node sampler.mjs PORT`. Every 50 ms (BENCH_HEALTHZ_EVERY_MS;
// the message {every: ms} changes it) it sends GET /healthz on a new connection (as a kubelet
// does) whether or not the previous one has answered, and GET /readyz until the first 200. On
// the message 'dump' it sends back every sample:
// healthz: [sentAt (epoch ms), latency ms, outcome]; outcome 200.., 'refused' (nothing listens yet),
// 'error', or 'pending' (no answer yet: latency is the time waited so far); ready: epoch ms of the
// first /readyz 200 or null.
import { fork } from 'node:child_process';
import { request } from 'node:http';

const SELF = new URL(import.meta.url).pathname;
const EVERY_MS = Number(process.env.BENCH_HEALTHZ_EVERY_MS ?? 50);

if (process.argv[1] === SELF) run(Number(process.argv[2]));

function run(port) {
  const samples = [];
  const pending = new Set();
  let readyAt = null;
  let readyInFlight = false;
  const get = (path, done) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode));
    });
    req.on('error', (err) => done(err.code === 'ECONNREFUSED' ? 'refused' : 'error'));
    req.end();
  };
  const tick = () => {
    const sample = [Date.now(), 0, 'pending'];
    pending.add(sample);
    samples.push(sample);
    get('/healthz', (outcome) => {
      sample[1] = Date.now() - sample[0];
      sample[2] = outcome;
      pending.delete(sample);
    });
    if (readyAt === null && !readyInFlight) {
      readyInFlight = true;
      get('/readyz', (outcome) => {
        readyInFlight = false;
        if (outcome === 200 && readyAt === null) readyAt = Date.now();
      });
    }
  };
  let timer = setInterval(tick, EVERY_MS);
  process.on('message', (m) => {
    if (typeof m === 'object' && m.every > 0) {
      clearInterval(timer);
      timer = setInterval(tick, m.every);
      return;
    }
    if (m !== 'dump') return;
    const now = Date.now();
    for (const s of pending) s[1] = now - s[0];
    process.send({ healthz: samples, readyAt });
  });
  process.on('disconnect', () => process.exit(0));
}

/** Starts the sampler against the admin port; `dump()` resolves with its samples. */
export function startSampler(port) {
  const child = fork(SELF, [String(port)], { execArgv: [], env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    dump: () =>
      new Promise((resolve) => {
        child.once('message', resolve);
        child.send('dump');
      }),
    /** Polls every `ms` from now on. */
    every: (ms) => child.connected && child.send({ every: ms }),
    stop: () => child.connected && child.disconnect(),
  };
}

/**
 * /healthz figures of the samples sent in [from, to] (epoch ms) that got an answer or none:
 * {samples, p50, p99, max (ms), unanswered}; samples refused before the admin server listened
 * are left out (counted as `refused`).
 */
export function healthzWindow(samples, from, to) {
  const inWindow = samples.filter((s) => s[0] >= from && s[0] <= to);
  const answered = inWindow.filter((s) => s[2] !== 'refused' && s[2] !== 'error');
  const lat = answered.map((s) => s[1]).sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);
  return {
    samples: answered.length,
    p50: q(0.5),
    p99: q(0.99),
    max: lat.length ? lat.at(-1) : null,
    over100ms: lat.filter((x) => x > 100).length,
    unanswered: inWindow.filter((s) => s[2] === 'pending').length,
    refused: inWindow.filter((s) => s[2] === 'refused').length,
    errors: inWindow.filter((s) => s[2] === 'error').length,
  };
}
