// The closed-loop client of bench/failover.mjs, in its own process so that the bench's own work
// (IPC, timers) never delays it: `node client.mjs` says {ready: true}, then takes one message
// {url, workers, startAt, durationMs, drainMs}. At wall-clock time `startAt`, `workers` loops
// each send GET url, read the whole body and send the next, over one undici Pool of as many
// keep-alive connections (HTTP/1.1, no pipelining, no retries: a reset connection is a failed
// request, as for most clients). Loops stop starting requests after durationMs; requests still
// running drainMs later are aborted and recorded as UNFINISHED.
//
// Replies with one message: {start, end: Float64Array (wall ms), status: Uint16Array (0 when the
// request failed without a response), error: Int16Array (index into errorNames, -1 for none),
// errorNames}. Sent with the 'advanced' serialization (typed arrays, no JSON).
import { Pool } from 'undici';

const wall = () => performance.timeOrigin + performance.now();

process.once('message', async (opts) => {
  const result = await runLoad(opts);
  process.send(result, () => process.exit(0));
});
process.send({ ready: true });

async function runLoad({ url, workers, startAt, durationMs, drainMs }) {
  const target = new URL(url);
  const pool = new Pool(target.origin, { connections: workers, pipelining: 1, keepAliveTimeout: 30_000 });
  const rec = createRecorder();
  const abort = new AbortController();
  await sleepUntil(startAt);
  const stopAt = startAt + durationMs;
  const drainTimer = setTimeout(() => abort.abort(), Math.max(0, stopAt + drainMs - wall()));
  const loop = async () => {
    while (wall() < stopAt) await once(pool, target.pathname, abort.signal, rec);
  };
  await Promise.all(Array.from({ length: workers }, loop));
  clearTimeout(drainTimer);
  await pool.destroy().catch(() => {});
  return rec.result();
}

async function once(pool, path, signal, rec) {
  const start = wall();
  try {
    const res = await pool.request({ path, method: 'GET', signal, headersTimeout: 60_000, bodyTimeout: 60_000 });
    await res.body.text();
    rec.add(start, wall(), res.statusCode, null);
  } catch (err) {
    const name = signal.aborted ? 'UNFINISHED' : (err?.code ?? err?.name ?? 'Error');
    rec.add(start, wall(), 0, name);
  }
}

function createRecorder() {
  let cap = 1 << 16;
  let n = 0;
  let start = new Float64Array(cap);
  let end = new Float64Array(cap);
  let status = new Uint16Array(cap);
  let error = new Int16Array(cap);
  const errorNames = [];
  const grow = () => {
    cap *= 2;
    const copy = (a, T) => {
      const b = new T(cap);
      b.set(a);
      return b;
    };
    start = copy(start, Float64Array);
    end = copy(end, Float64Array);
    status = copy(status, Uint16Array);
    error = copy(error, Int16Array);
  };
  return {
    add(s, e, code, errName) {
      if (n === cap) grow();
      start[n] = s;
      end[n] = e;
      status[n] = code;
      let idx = -1;
      if (errName !== null) {
        idx = errorNames.indexOf(errName);
        if (idx < 0) idx = errorNames.push(errName) - 1;
      }
      error[n] = idx;
      n++;
    },
    result: () => ({
      start: start.slice(0, n),
      end: end.slice(0, n),
      status: status.slice(0, n),
      error: error.slice(0, n),
      errorNames,
    }),
  };
}

function sleepUntil(t) {
  return new Promise((r) => setTimeout(r, Math.max(0, t - wall())));
}

process.on('disconnect', () => process.exit(0));
