// Passive-log flood benchmark: the real access-log receiver and outlier reducer (from ../dist)
// under a flood of nginx-style syslog datagrams sent by another process, while the event loop's
// lateness is measured (what a probe timer would suffer).
//
//   npm run build && node bench/passive-flood.mjs
//
// Env: BENCH_RATE (lines/s sent, default 50000), BENCH_SECONDS (default 20), BENCH_BATCH
// (batch_size), BENCH_QUEUE (queue_size), BENCH_RCVBUF (receive_buffer_bytes; each defaults to
// the shipped value), BENCH_IDLE_SECONDS (baseline without traffic first, default 3).
//
// Prints per phase: lines/s sent and accepted (gave outcomes), drops by reason (ours) and the
// kernel's (socket buffer full; /proc/net/udp), parse CPU per line (receiver's own busy time
// per datagram handled, outlier reducer included) and the whole process's CPU per line, and
// the event loop's lateness (monitorEventLoopDelay, 10 ms resolution) p50 / p99 / max. Last,
// the same flood into a bare counting socket (BENCH_BASELINE=0 skips it): the machine's share.
import { fork } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const RATE = Number(process.env.BENCH_RATE ?? 50_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 3);
const SELF = new URL(import.meta.url).pathname;

if (process.argv[2] === 'flood') await flood(Number(process.argv[3]), RATE, SECONDS);
else await main();

/**
 * The nginx side: RATE datagrams/s for SECONDS, paced in ~1 ms ticks (nginx sends one datagram
 * per request as it finishes, so traffic comes in small bursts); reports how many it sent.
 */
async function flood(port, rate, seconds) {
  const socket = createSocket('udp4');
  const lines = sampleLines().map((l) => Buffer.from(l));
  const start = performance.now();
  let sent = 0;
  let errors = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - start;
      if (elapsed >= seconds * 1000) return resolve();
      // Catch up to where the schedule says we should be, so timer slack does not lower the rate.
      const due = Math.floor((elapsed / 1000) * rate);
      for (; sent < due; sent++) socket.send(lines[sent % lines.length], port, '127.0.0.1', (e) => e && errors++);
      setTimeout(tick, 1);
    };
    tick();
  });
  await new Promise((r) => setTimeout(r, 200));
  socket.close();
  process.send({ sent, errors });
}

/** Realistic lines: 3 apps of 4 backends, mostly 200s, some 500s, some retries after a 502. */
function sampleLines() {
  const header = '<190>Jan  2 03:04:05 orchestry: ';
  const out = [];
  for (let i = 0; i < 240; i++) {
    const app = ['web', 'api', 'shop'][i % 3];
    const b = (i >> 2) % 4;
    const addr = `127.0.0.${1 + (i % 3)}:${8000 + b}`;
    const retry = i % 40 === 7;
    const status = retry ? '502, 200' : i % 25 === 3 ? '500' : '200';
    out.push(
      header +
        JSON.stringify({
          time: '2025-01-02T03:04:05+00:00',
          host: `${app}.example.com`,
          upstream: app,
          status: status.endsWith('500') ? 500 : 200,
          request_time: 0.012,
          upstream_addr: retry ? `${addr}, 127.0.0.${1 + (i % 3)}:${8000 + ((b + 1) % 4)}` : addr,
          upstream_status: status,
          upstream_response_time: retry ? '0.001, 0.011' : `0.0${10 + (i % 50)}`,
          upstream_connect_time: retry ? '-, 0.000' : '0.000',
        }),
    );
  }
  return out;
}

async function main() {
  const { createAccessLogReceiver } = await import('../dist/passive/receiver.js');
  const { DEFAULT_PASSIVE_CONFIG } = await import('../dist/passive/config.js');
  const { groupOutcomesByApp, initialAppOutliers, stepOutliers } = await import('../dist/passive/outlier.js');
  const cfg = DEFAULT_PASSIVE_CONFIG;
  // The reducer runs per batch as the daemon would run it, so its cost is in the figures.
  const states = new Map();
  const backendsOf = new Map();
  for (const [n, app] of ['web', 'api', 'shop'].entries()) {
    const map = new Map();
    for (let b = 0; b < 4; b++) {
      const address = `127.0.0.${1 + n}:${8000 + b}`;
      map.set(address, { id: `${app}/${address}`, address, routable: true });
    }
    backendsOf.set(app, map);
  }
  let verdicts = 0;
  const receiver = createAccessLogReceiver({
    listen: '127.0.0.1:0',
    batchSize: Number(process.env.BENCH_BATCH ?? cfg.batch_size),
    queueSize: Number(process.env.BENCH_QUEUE ?? cfg.queue_size),
    receiveBufferBytes: Number(process.env.BENCH_RCVBUF ?? cfg.receive_buffer_bytes),
    onOutcomes: (outcomes) => {
      const now = Date.now();
      for (const [app, list] of groupOutcomesByApp(outcomes)) {
        const backends = backendsOf.get(app);
        if (!backends) continue;
        const r = stepOutliers(states.get(app) ?? initialAppOutliers(), { app, backends, outcomes: list }, cfg, now);
        states.set(app, r.state);
        verdicts += r.verdicts.length;
      }
    },
  });
  const { port, receiveBufferBytes } = await receiver.start();
  console.log(
    `passive-flood: receiver on 127.0.0.1:${port}, batch_size ${process.env.BENCH_BATCH ?? cfg.batch_size}, ` +
      `queue_size ${process.env.BENCH_QUEUE ?? cfg.queue_size}, receive buffer ${receiveBufferBytes} bytes ` +
      `(asked ${process.env.BENCH_RCVBUF ?? cfg.receive_buffer_bytes}); ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  );

  const idle = await measure(receiver, port, IDLE_SECONDS, async () => new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000)));
  report('idle (no traffic)', idle, IDLE_SECONDS);
  const flooded = await measure(receiver, port, SECONDS, () => runFlood(port));
  report(`flood ${RATE.toLocaleString('en')} lines/s`, flooded, SECONDS);
  console.log(`  outlier verdicts during the flood: ${verdicts}; load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  await receiver.stop();
  if (process.env.BENCH_BASELINE !== '0') await baseline(Number(process.env.BENCH_RCVBUF ?? cfg.receive_buffer_bytes));
}

/** Starts the flood child against `port`; resolves with what it reports. */
function runFlood(port) {
  const child = fork(SELF, ['flood', String(port)], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => code !== 0 && reject(new Error(`flood child exited ${code}`)));
  });
}

/**
 * The same flood into a bare socket that only counts: what receiving alone costs on this machine
 * at this moment, so the receiver's own share of CPU and lateness can be told from the machine's.
 */
async function baseline(receiveBufferBytes) {
  let received = 0;
  const socket = createSocket({ type: 'udp4', recvBufferSize: receiveBufferBytes });
  socket.on('message', () => received++);
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  const port = socket.address().port;
  const fake = { stats: () => ({ received, parsed: 0, outcomes: 0, dropped: {}, busyMs: 0, maxQueued: 0, maxBatchMs: 0 }) };
  const m = await measure(fake, port, SECONDS, () => runFlood(port));
  report(`baseline: the same flood into a socket that only counts (no parsing)`, m, SECONDS);
  console.log(`  load average after: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  socket.close();
}

/** Runs `during` while sampling event-loop delay, receiver stats, CPU and kernel drops. */
async function measure(receiver, port, seconds, during) {
  const before = receiver.stats();
  const kernelBefore = kernelDrops(port);
  const cpuBefore = process.cpuUsage();
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const child = await during();
  // Let the queue drain before reading the counters.
  await new Promise((r) => setTimeout(r, 300));
  h.disable();
  const after = receiver.stats();
  const cpu = process.cpuUsage(cpuBefore);
  const dropped = {};
  for (const [k, v] of Object.entries(after.dropped)) if (v - (before.dropped[k] ?? 0) > 0) dropped[k] = v - before.dropped[k];
  return {
    sent: child?.sent ?? 0,
    received: after.received - before.received,
    parsed: after.parsed - before.parsed,
    outcomes: after.outcomes - before.outcomes,
    dropped,
    kernelDrops: kernelDrops(port) - kernelBefore,
    busyMs: after.busyMs - before.busyMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    maxQueued: after.maxQueued,
    maxBatchMs: after.maxBatchMs,
    delay: { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 },
  };
}

/** The kernel's drop count for our UDP socket (last column of /proc/net/udp), 0 where unknown. */
function kernelDrops(port) {
  try {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(`:${hexPort}`)) return Number(cols[cols.length - 1]);
    }
  } catch {
    // not Linux
  }
  return 0;
}

function report(label, m, seconds) {
  const perSec = (n) => Math.round(n / seconds).toLocaleString('en');
  const us = (ms, n) => (n > 0 ? `${((ms * 1000) / n).toFixed(1)} µs` : '-');
  console.log(`\n${label}, ${seconds} s:`);
  if (m.sent) console.log(`  sent           ${m.sent.toLocaleString('en')} lines (${perSec(m.sent)}/s)`);
  console.log(`  received       ${m.received.toLocaleString('en')} (${perSec(m.received)}/s); accepted ${m.parsed.toLocaleString('en')} lines (${perSec(m.parsed)}/s), ${m.outcomes.toLocaleString('en')} outcomes`);
  console.log(`  dropped        ours ${JSON.stringify(m.dropped)}; kernel (socket buffer full) ${m.kernelDrops.toLocaleString('en')}`);
  console.log(`  CPU            parse+reduce ${us(m.busyMs, m.received)} per line; whole process ${us(m.cpuMs, m.received)} per line, ${((m.cpuMs / (seconds * 1000)) * 100).toFixed(1)} % of a core`);
  console.log(`  queue          at most ${m.maxQueued} datagrams waiting; longest batch ${m.maxBatchMs.toFixed(1)} ms (wall)`);
  // The histogram holds the whole 10 ms timer interval; lateness is what exceeds it.
  const late = (ms) => `${Math.max(0, ms - 10).toFixed(1)} ms`;
  console.log(`  event loop     lateness of a 10 ms timer p50 ${late(m.delay.p50)}, p99 ${late(m.delay.p99)}, max ${late(m.delay.max)}`);
}
