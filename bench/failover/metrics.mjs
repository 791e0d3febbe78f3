// The figures of bench/failover.mjs, from one run's observations (run.mjs), their medians over
// runs, the targets, and the printed table. Times are wall-clock ms on one machine: the
// client's, the backends' and nginx's $msec share the clock.
//
//   fail     requests the client saw fail: a transport error (ECONNRESET, ...) or a status other
//            than 200, over the whole run.
//   out      from the fault until nginx stopped sending backend 1 traffic: the start of the last
//            attempt on it in the run of traffic that began at the fault, where a run ends at
//            the first 2.5 s in which no attempt on it was made or in flight (its access log
//            lists every attempt, retries included, with its response time: a killed backend's
//            refused connects count, a hung one's attempts last until the read timeout).
//            "never" when that run lasted until the fault's end (a backend in rotation is tried
//            many times a second, a 2 s slow one at least every 2 s).
//            HAProxy: the last request that reached backend 1, or when it declared it DOWN.
//   late     attempts on backend 1 begun more than 2.5 s after the fault, while it lasted: what
//            comes after "out", e.g. nginx's re-try of a failed server after fail_timeout (10 s).
//            The target for a dead backend is none.
//   stall    how long the client was stuck: the total of the 100 ms intervals after the fault in
//            which no request completed (with 16 workers, one slow backend can hold all of them).
//   max      the longest request of the run.
//   back     kill-and-restart: from the new backend process listening to the first request that
//            reached it (its own record), or "never" before the run ended.
//   full     kill-and-restart: from the new process listening to the end of the first 1 s in
//            which it got at least 90 % of a fair share of the requests (30 % of three
//            backends'), or "never" before the run ended (the bench runs restart long enough to
//            see 12 s after the restart).
//   reloads  nginx reloads ("reconfiguring" in its error log) while the client ran.
//   ejected  sidecar rows: from the fault to the sidecar's breaker opening for backend 1 (its
//            /api/v1/events), or null when it did not; readmitted: restart only, from the new
//            process listening to the breaker leaving `open`. Not in the table: they say how
//            much of "out" and "back" is the sidecar's decision and how much nginx's follow-up.
//   req/s    requests completed per second of load.

const BIN_MS = 100;
const GAP_MS = 2500;
const LATE_AFTER_MS = 2500;
const SHARE_WINDOW_MS = 1000;
const FULL_SHARE = 0.9 / 3;

/** The figures of one run. */
export function runMetrics(obs, opts) {
  const loadEnd = obs.t0 + opts.durationMs;
  const periodEnd = obs.restartListeningAt ?? loadEnd;
  const client = clientFigures(obs.records, obs.faultAt, loadEnd, opts.durationMs);
  const tries = b1Attempts(obs).filter((a) => a.start >= obs.faultAt && a.start < periodEnd);
  let back = null;
  let full = null;
  if (obs.restartListeningAt !== undefined) {
    const first = obs.receivedNew.reduce((a, b) => Math.min(a, b), Infinity);
    back = first < loadEnd ? first - obs.restartListeningAt : Infinity;
    full = fullShare(obs, first, loadEnd);
  }
  return {
    ...client,
    // A restart of the sidecar leaves backend 1 as it was: nothing to be out of rotation for.
    out: obs.backendFault === false ? null : obs.stateEvents ? declaredDown(tries, obs.faultAt) : outOfRotation(tries, obs.faultAt, periodEnd),
    late: obs.backendFault === false ? null : tries.filter((a) => !a.down && a.start >= obs.faultAt + LATE_AFTER_MS).length,
    back,
    full,
    ...sidecarTimes(obs),
    reloads: obs.reloads,
    reloadsAtStart: obs.reloadsAtStart,
    b1ShareLast2s: shareLast(obs, loadEnd, 2000),
  };
}

function sidecarTimes(obs) {
  const moves = obs.breakerMoves ?? [];
  const opened = moves.find((m) => m.to === 'open' && m.at >= obs.faultAt - 100);
  const left = obs.restartListeningAt === undefined ? undefined : moves.find((m) => m.from === 'open' && m.at >= obs.restartListeningAt);
  return {
    ejected: opened ? opened.at - obs.faultAt : null,
    readmitted: left ? left.at - obs.restartListeningAt : null,
  };
}

function clientFigures(records, faultAt, loadEnd, durationMs) {
  const { start, end, status, error, errorNames } = records;
  const bins = new Uint32Array(Math.ceil((loadEnd - faultAt) / BIN_MS));
  const failures = {};
  let fail = 0;
  let failBeforeFault = 0;
  let max = 0;
  for (let i = 0; i < start.length; i++) {
    max = Math.max(max, end[i] - start[i]);
    if (end[i] >= faultAt && end[i] < loadEnd) bins[Math.floor((end[i] - faultAt) / BIN_MS)]++;
    if (status[i] === 200) continue;
    fail++;
    if (start[i] < faultAt) failBeforeFault++;
    const kind = status[i] ? `HTTP ${status[i]}` : errorNames[error[i]];
    failures[kind] = (failures[kind] ?? 0) + 1;
  }
  return {
    fail,
    failBeforeFault,
    failures,
    stall: bins.filter((n) => n === 0).length * BIN_MS,
    max,
    requests: start.length,
    rps: start.length / (durationMs / 1000),
  };
}

/**
 * When backend 1 was tried ({start, end}): nginx's attempts on it, or for HAProxy the requests
 * that reached it and the moment it was declared DOWN.
 */
function b1Attempts(obs) {
  const own = obs.attempts.filter((a) => a.addr === obs.b1Addr);
  if (!obs.stateEvents) return own;
  return [...obs.received[1].map((t) => ({ start: t, end: t })), ...own.filter((e) => e.status === 'DOWN').map((e) => ({ ...e, down: true }))];
}

/**
 * HAProxy's `out`: it sends a server nothing from the moment it declares it DOWN until it is UP
 * again (no re-tries in between as nginx's fail_timeout), so out is the later of that moment and
 * the last request that reached it; "never" when it was not declared DOWN while the fault lasted.
 */
function declaredDown(tries, faultAt) {
  if (!tries.some((a) => a.down)) return Infinity;
  return tries.reduce((last, a) => Math.max(last, a.start), faultAt) - faultAt;
}

/** `out` (see the top): Infinity when the run of traffic from the fault lasted to `periodEnd`. */
function outOfRotation(tries, faultAt, periodEnd) {
  const sorted = [...tries].sort((a, b) => a.start - b.start);
  if (!sorted.length) return 0;
  let lastStart = sorted[0].start;
  let busyUntil = sorted[0].end;
  for (const a of sorted.slice(1)) {
    if (a.start - busyUntil >= GAP_MS) return lastStart - faultAt;
    lastStart = a.start;
    busyUntil = Math.max(busyUntil, a.end);
  }
  return busyUntil >= periodEnd - GAP_MS ? Infinity : lastStart - faultAt;
}

/**
 * `full` (see the top): the end of the first SHARE_WINDOW_MS window, stepped by BIN_MS from the
 * restarted backend's first request, in which it got at least FULL_SHARE of the requests that
 * reached a backend, from its listening; Infinity when none before `loadEnd`.
 */
function fullShare(obs, firstArrival, loadEnd) {
  if (firstArrival === Infinity) return Infinity;
  const others = [...obs.received[0], ...obs.received[2]].sort((a, b) => a - b);
  const mine = [...obs.receivedNew].sort((a, b) => a - b);
  const countIn = (arr, from, to) => lowerBound(arr, to) - lowerBound(arr, from);
  for (let end = firstArrival + BIN_MS; end <= loadEnd; end += BIN_MS) {
    const b1 = countIn(mine, end - SHARE_WINDOW_MS, end);
    const all = b1 + countIn(others, end - SHARE_WINDOW_MS, end);
    if (all > 0 && b1 / all >= FULL_SHARE) return end - obs.restartListeningAt;
  }
  return Infinity;
}

function lowerBound(sorted, x) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Backend 1's share of the requests that reached a backend in the last `ms` of the load. */
function shareLast(obs, loadEnd, ms) {
  const inWindow = (arr) => arr.filter((t) => t >= loadEnd - ms && t < loadEnd).length;
  const b1 = inWindow(obs.received[1]) + inWindow(obs.receivedNew);
  const all = b1 + inWindow(obs.received[0]) + inWindow(obs.received[2]);
  return all ? b1 / all : 0;
}

/** The median of each figure over runs (Infinity is "never"; null where a figure does not apply). */
export function medians(runs) {
  const med = (key) => {
    const v = runs.map((r) => r[key]).filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
    if (!v.length) return null;
    const mid = Math.floor(v.length / 2);
    return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  };
  const keys = ['fail', 'out', 'late', 'stall', 'max', 'back', 'full', 'ejected', 'readmitted', 'reloads', 'rps', 'b1ShareLast2s'];
  return Object.fromEntries(keys.map((k) => [k, med(k)]));
}
