/**
 * nginx's access log, received as syslog over UDP, turned into Outcomes.
 *
 * Why syslog over UDP rather than following a file: nginx writes each line as one datagram
 * (`access_log syslog:server=127.0.0.1:5514,tag=orchestry,nohostname orchestry;`), so there is
 * no file to rotate, reopen, truncate or fill a disk, no shared volume when nginx runs in its own
 * container (host network, or a published port), and no way for a slow reader to hold nginx
 * back: a send to a full socket buffer is simply lost. Loss under overload is acceptable because
 * this is evidence, not accounting; the probes still run. A file would be lossless but brings
 * rotation, inode and permission handling, and a reader that must catch up after a pause.
 *
 * How it stays bounded (a flood of lines must never delay probes):
 * - libuv reads at most 32 datagrams per readiness per event-loop turn; the rest wait in the
 *   kernel's socket buffer, which drops beyond its size (counted by the kernel, not here);
 * - each datagram is only size-checked and queued by the 'message' handler; datagrams over
 *   max_line_bytes, or beyond queue_size waiting, are dropped and counted (`oversized`,
 *   `queue_full`);
 * - parsing happens in batches of at most batch_size per turn, scheduled with setImmediate
 *   (see batch-queue.ts), so timers run between two batches.
 * Measured (bench/passive-flood.mjs, 50,000 lines/s): libuv hands over at most 32 datagrams per
 * turn, so the queue never held more than 32, and at 4-10 us of parsing a line a turn's parse work
 * is a fraction of a millisecond. The kernel's buffer (receive_buffer_bytes) is what absorbs
 * bursts, and what drops when the process cannot keep up; batch_size and queue_size are the
 * guards should a turn ever bring more.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { Clock } from '../clock.js';
import { createBatchQueue, type BatchQueue } from './batch-queue.js';
import { DEFAULT_PASSIVE_CONFIG, parseListen } from './config.js';
import { parseAccessLogLine } from './parse.js';
import { DROP_REASONS, type DropReason, type Outcome, type SkipReason } from './types.js';

export interface AccessLogReceiverOptions {
  /** `host:port` or `[v6]:port`; port 0 picks a free one (tests). Loopback unless told otherwise. */
  listen: string;
  /** Called once per parsed batch with its outcomes (every app mixed), oldest first. */
  onOutcomes(outcomes: Outcome[]): void;
  /** Socket errors after start, and errors thrown by onOutcomes. */
  onError?(err: unknown): void;
  tag?: string;
  maxLineBytes?: number;
  queueSize?: number;
  batchSize?: number;
  /** Source addresses whose datagrams are accepted; empty or absent = any. */
  allowFrom?: readonly string[];
  /** SO_RCVBUF; the kernel caps it at net.core.rmem_max. */
  receiveBufferBytes?: number;
  clock?: Pick<Clock, 'now'>;
}

/** Counters since start; plain data for metrics and the admin API. */
export interface ReceiverStats {
  /** Datagrams that reached the handler. */
  received: number;
  /** Datagrams that gave at least one outcome. */
  parsed: number;
  outcomes: number;
  skipped: Record<SkipReason, number>;
  dropped: Record<DropReason | 'forbidden_source', number>;
  /** Waiting to be parsed now, and the most ever waiting. */
  queued: number;
  maxQueued: number;
  batches: number;
  /** Wall time spent parsing and in onOutcomes, ms. */
  busyMs: number;
  /** The longest one batch took, ms: how long the receiver held the event loop at once. */
  maxBatchMs: number;
}

export interface AccessLogReceiver {
  /**
   * Binds the socket; resolves with the bound address (the port when 0 was asked) and the
   * receive buffer the kernel granted (Linux reports twice what it was asked, capped by rmem_max).
   */
  start(): Promise<{ host: string; port: number; receiveBufferBytes: number }>;
  stop(): Promise<void>;
  stats(): ReceiverStats;
}

interface Datagram {
  text: string;
  at: number;
}

interface ReceiverState {
  opts: AccessLogReceiverOptions;
  tag: string;
  maxLineBytes: number;
  now: () => number;
  stats: ReceiverStats;
  queue: BatchQueue<Datagram>;
  socket: Socket | null;
}

/** A UDP syslog receiver for nginx's `orchestry` access-log format. */
export function createAccessLogReceiver(opts: AccessLogReceiverOptions): AccessLogReceiver {
  const clock = opts.clock ?? { now: () => Date.now() };
  const state: ReceiverState = {
    opts,
    tag: opts.tag ?? DEFAULT_PASSIVE_CONFIG.tag,
    maxLineBytes: opts.maxLineBytes ?? DEFAULT_PASSIVE_CONFIG.max_line_bytes,
    now: () => clock.now(),
    stats: emptyStats(),
    socket: null,
    queue: createBatchQueue<Datagram>({
      capacity: opts.queueSize ?? DEFAULT_PASSIVE_CONFIG.queue_size,
      batchSize: opts.batchSize ?? DEFAULT_PASSIVE_CONFIG.batch_size,
      schedule: (turn) => setImmediate(turn),
      process: (batch) => processBatch(state, batch),
    }),
  };
  return {
    start: () => start(state),
    stop: () => stop(state),
    stats: () => ({
      ...state.stats,
      skipped: { ...state.stats.skipped },
      dropped: { ...state.stats.dropped },
      queued: state.queue.size(),
    }),
  };
}

function emptyStats(): ReceiverStats {
  const dropped = Object.fromEntries([...DROP_REASONS, 'forbidden_source'].map((r) => [r, 0]));
  return {
    received: 0,
    parsed: 0,
    outcomes: 0,
    skipped: { not_proxied: 0, no_attempt: 0 },
    dropped: dropped as ReceiverStats['dropped'],
    queued: 0,
    maxQueued: 0,
    batches: 0,
    busyMs: 0,
    maxBatchMs: 0,
  };
}

async function start(state: ReceiverState): Promise<{ host: string; port: number; receiveBufferBytes: number }> {
  if (state.socket) throw new Error('access-log receiver already started');
  const listen = parseListen(state.opts.listen);
  if (!listen) throw new Error(`passive.listen: "${state.opts.listen}" is not host:port or [ipv6]:port`);
  const socket = createSocket({
    type: listen.host.includes(':') ? 'udp6' : 'udp4',
    recvBufferSize: state.opts.receiveBufferBytes ?? DEFAULT_PASSIVE_CONFIG.receive_buffer_bytes,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(listen.port, listen.host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', (err) => state.opts.onError?.(err));
  socket.on('message', (msg, rinfo) => receive(state, msg, rinfo));
  state.socket = socket;
  const bound = socket.address();
  return { host: bound.address, port: bound.port, receiveBufferBytes: socket.getRecvBufferSize() };
}

async function stop(state: ReceiverState): Promise<void> {
  const socket = state.socket;
  state.socket = null;
  state.queue.clear();
  if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
}

/** The 'message' handler: O(1) per datagram, no parsing here. */
function receive(state: ReceiverState, msg: Buffer, rinfo: RemoteInfo): void {
  const { stats } = state;
  stats.received++;
  const allow = state.opts.allowFrom;
  if (allow && allow.length > 0 && !allow.includes(rinfo.address)) {
    stats.dropped.forbidden_source++;
    return;
  }
  if (msg.length > state.maxLineBytes) {
    stats.dropped.oversized++;
    return;
  }
  if (!state.queue.push({ text: msg.toString('utf8'), at: state.now() })) {
    stats.dropped.queue_full++;
    return;
  }
  const queued = state.queue.size();
  if (queued > stats.maxQueued) stats.maxQueued = queued;
}

/** One batch: parse every datagram, hand the outcomes on in one call. */
function processBatch(state: ReceiverState, batch: Datagram[]): void {
  const started = performance.now();
  const { stats } = state;
  const outcomes: Outcome[] = [];
  const opts = { tag: state.tag, maxLineBytes: state.maxLineBytes };
  let lines = 0;
  for (const d of batch) {
    const result = parseAccessLogLine(d.text, opts, d.at);
    if (result.kind === 'dropped') stats.dropped[result.reason]++;
    else if (result.kind === 'skipped') stats.skipped[result.reason]++;
    else {
      lines++;
      for (const o of result.outcomes) outcomes.push(o);
    }
  }
  stats.batches++;
  if (outcomes.length > 0) {
    try {
      state.opts.onOutcomes(outcomes);
      stats.parsed += lines;
      stats.outcomes += outcomes.length;
    } catch (err) {
      stats.dropped.listener_error += lines;
      state.opts.onError?.(err);
    }
  }
  const took = performance.now() - started;
  stats.busyMs += took;
  if (took > stats.maxBatchMs) stats.maxBatchMs = took;
}
