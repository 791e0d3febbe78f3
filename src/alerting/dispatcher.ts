/**
 * Delivers notifications: one FIFO queue per receiver, each with its own rate limit and retry
 * timer, so a receiver that is down or slow only ever holds up its own queue, and nothing here is
 * awaited by the caller. A failed delivery stays at the head of its queue (order is kept) and is
 * retried from retry_min_seconds, doubling, at most retry_max_seconds apart. Time is read through
 * the injected Clock; the HTTP call is an injected fetch.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { AlertingConfig, AlertReceiverConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { formatRequest } from './payload.js';
import type { Notification } from './state.js';

/** A notification waiting for (or in) delivery. */
export interface Delivery extends Notification {
  /** Failed attempts so far. */
  attempts: number;
  /** Not sent before this epoch ms (retry backoff). */
  notBefore: number;
}

/** The part of `fetch` the dispatcher uses; global fetch fits. */
export type FetchLike = (
  url: string,
  init: { method: 'POST'; headers: Record<string, string>; body: string; redirect: 'manual'; signal: AbortSignal },
) => Promise<{ status: number; text(): Promise<string> }>;

/** One delivery attempt's outcome, for the store's delivery log. */
export interface DeliveryRecord {
  alertId: string;
  receiver: string;
  ok: boolean;
  error: string | null;
  /** Epoch ms. */
  at: number;
}

export interface ReceiverStatus {
  type: AlertReceiverConfig['type'];
  /** Waiting, including one in flight. */
  queued: number;
  /** Delivered since start. */
  sent: number;
  /** Failed attempts since start (each retry that fails counts). */
  failed: number;
  lastError: string | null;
}

export interface Dispatcher {
  /** Queues `n` behind its receiver's earlier notifications. `attempts` is kept from a restored record. */
  enqueue(n: Notification, attempts?: number): void;
  /** Queued deliveries of one alert, across receivers (what must survive a restart). */
  pending(alertId: string): Delivery[];
  /** New receivers/limits; queues of receivers that no longer exist are dropped (logged). */
  updateConfig(cfg: AlertingConfig): void;
  /** While disabled nothing is sent; queues are kept. */
  setEnabled(enabled: boolean): void;
  status(): Record<string, ReceiverStatus>;
  /** Cancels timers and in-flight requests; queued deliveries stay wherever they were persisted. */
  stop(): void;
}

export interface DispatcherOptions {
  config: AlertingConfig;
  clock: Clock;
  logger: Logger;
  fetchImpl: FetchLike;
  /** The queued deliveries of this alert changed: persist them. */
  onPendingChange(alertId: string): void;
  onDelivery(record: DeliveryRecord): void;
}

const MINUTE_MS = 60_000;

/** Delay before the next attempt after `attempts` failures: min, doubling, capped at max (ms). */
export function retryDelayMs(attempts: number, cfg: Pick<AlertingConfig, 'retry_min_seconds' | 'retry_max_seconds'>): number {
  const seconds = Math.min(cfg.retry_max_seconds, cfg.retry_min_seconds * 2 ** Math.max(0, attempts - 1));
  return seconds * 1000;
}

interface ReceiverQueue {
  name: string;
  queue: Delivery[];
  inFlight: boolean;
  timer: TimerHandle | null;
  /** Start times of attempts in the last minute (the rate limit's sliding window). */
  recent: number[];
  sent: number;
  failed: number;
  lastError: string | null;
}

/** The dispatcher's state; the functions below are its methods. */
interface DispatcherState {
  opts: DispatcherOptions;
  log: Logger;
  cfg: AlertingConfig;
  receivers: Map<string, AlertReceiverConfig>;
  enabled: boolean;
  stopped: boolean;
  /** Aborts in-flight requests on stop(). */
  stopSignal: AbortController;
  queues: Map<string, ReceiverQueue>;
}

export function createDispatcher(opts: DispatcherOptions): Dispatcher {
  const s: DispatcherState = {
    opts,
    log: opts.logger,
    cfg: opts.config,
    receivers: byName(opts.config),
    enabled: true,
    stopped: false,
    stopSignal: new AbortController(),
    queues: new Map(),
  };
  return {
    enqueue: (n, attempts = 0) => enqueue(s, n, attempts),
    pending(alertId) {
      const out: Delivery[] = [];
      for (const q of s.queues.values()) for (const d of q.queue) if (d.alert.id === alertId) out.push(d);
      return out;
    },
    updateConfig: (next) => updateConfig(s, next),
    setEnabled(on) {
      s.enabled = on;
      for (const q of s.queues.values()) repump(s, q);
    },
    status: () => status(s),
    stop() {
      s.stopped = true;
      s.stopSignal.abort();
      for (const q of s.queues.values()) clearTimer(s, q);
    },
  };
}

function enqueue(s: DispatcherState, n: Notification, attempts: number): void {
  if (s.stopped) return;
  const receiver = s.receivers.get(n.receiver);
  if (!receiver) {
    s.log.warn({ receiver: n.receiver, alertId: n.alert.id }, 'alert notification dropped: no such receiver');
    return;
  }
  const q = queueOf(s, n.receiver);
  // Alertmanager only needs an alert's latest state: a newer notice replaces a queued one
  // (not the one in flight) instead of piling up resends while it is down.
  const queued = receiver.type === 'alertmanager'
    ? q.queue.find((d, i) => d.alert.id === n.alert.id && !(i === 0 && q.inFlight))
    : undefined;
  if (queued) Object.assign(queued, { alert: n.alert, escalated: n.escalated || queued.escalated });
  else q.queue.push({ ...n, attempts, notBefore: 0 });
  s.opts.onPendingChange(n.alert.id);
  pump(s, q);
}

function updateConfig(s: DispatcherState, next: AlertingConfig): void {
  s.cfg = next;
  s.receivers = byName(next);
  for (const q of s.queues.values()) {
    if (!s.receivers.has(q.name)) drop(s, q, 'receiver removed from the configuration');
    // A shorter retry or a higher rate limit may let it go sooner.
    else repump(s, q);
  }
}

function status(s: DispatcherState): Record<string, ReceiverStatus> {
  const out: Record<string, ReceiverStatus> = {};
  for (const r of s.receivers.values()) {
    const q = s.queues.get(r.name);
    out[r.name] = { type: r.type, queued: q?.queue.length ?? 0, sent: q?.sent ?? 0, failed: q?.failed ?? 0, lastError: q?.lastError ?? null };
  }
  return out;
}

function queueOf(s: DispatcherState, name: string): ReceiverQueue {
  let q = s.queues.get(name);
  if (!q) {
    q = { name, queue: [], inFlight: false, timer: null, recent: [], sent: 0, failed: 0, lastError: null };
    s.queues.set(name, q);
  }
  return q;
}

function clearTimer(s: DispatcherState, q: ReceiverQueue): void {
  if (q.timer) s.opts.clock.clearTimeout(q.timer);
  q.timer = null;
}

/** Drops a pending wait and tries again now (the limits or the enabled flag changed). */
function repump(s: DispatcherState, q: ReceiverQueue): void {
  clearTimer(s, q);
  pump(s, q);
}

/** Sends the head of `q` now, or sets a timer for when its retry backoff and rate limit allow it. */
function pump(s: DispatcherState, q: ReceiverQueue): void {
  if (s.stopped || !s.enabled || q.inFlight || q.timer) return;
  const head = q.queue[0];
  const receiver = s.receivers.get(q.name);
  if (!head || !receiver) return;
  const { clock } = s.opts;
  const now = clock.now();
  const wait = Math.max(head.notBefore - now, rateLimitWait(q, receiver.max_per_minute, now));
  if (wait > 0) {
    q.timer = clock.setTimeout(() => {
      q.timer = null;
      pump(s, q);
    }, wait);
    q.timer.unref?.();
    return;
  }
  q.recent.push(now);
  q.inFlight = true;
  void attempt(s, receiver, head, now).then((error) => settle(s, q, head, error));
}

/** How long until one more attempt fits in the sliding minute (0: now); forgets older attempts. */
function rateLimitWait(q: ReceiverQueue, maxPerMinute: number, now: number): number {
  while (q.recent.length > 0 && q.recent[0]! <= now - MINUTE_MS) q.recent.shift();
  return q.recent.length >= maxPerMinute ? q.recent[0]! + MINUTE_MS - now : 0;
}

/** An attempt's outcome: a delivered head leaves the queue; a failed one waits for its retry. */
function settle(s: DispatcherState, q: ReceiverQueue, head: Delivery, error: string | null): void {
  if (s.stopped) return;
  q.inFlight = false;
  const at = s.opts.clock.now();
  s.opts.onDelivery({ alertId: head.alert.id, receiver: q.name, ok: error === null, error, at });
  if (error === null) {
    q.sent++;
    const i = q.queue.indexOf(head);
    if (i >= 0) q.queue.splice(i, 1);
    s.opts.onPendingChange(head.alert.id);
  } else {
    q.failed++;
    q.lastError = error;
    head.attempts++;
    head.notBefore = at + retryDelayMs(head.attempts, s.cfg);
    s.log.warn({ receiver: q.name, alertId: head.alert.id, attempts: head.attempts, error }, 'alert delivery failed; will retry');
  }
  pump(s, q);
}

/** One HTTP attempt; resolves to null on a 2xx, else the error. Never rejects. */
async function attempt(s: DispatcherState, receiver: AlertReceiverConfig, d: Delivery, now: number): Promise<string | null> {
  const { fetchImpl } = s.opts;
  const req = formatRequest(receiver, d, now, s.cfg.resend_interval_seconds);
  try {
    const res = await fetchImpl(req.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...receiver.headers },
      body: req.body,
      redirect: 'manual',
      signal: AbortSignal.any([AbortSignal.timeout(receiver.timeout_seconds * 1000), s.stopSignal.signal]),
    });
    const text = await res.text();
    if (res.status >= 200 && res.status < 300) return null;
    return `HTTP ${res.status}${text ? `: ${text.slice(0, 200).trim()}` : ''}`;
  } catch (err) {
    return requestError(err, receiver.timeout_seconds);
  }
}

function drop(s: DispatcherState, q: ReceiverQueue, why: string): void {
  if (q.queue.length === 0) return;
  const ids = new Set(q.queue.map((d) => d.alert.id));
  s.log.warn({ receiver: q.name, dropped: q.queue.length }, `alert notifications dropped: ${why}`);
  q.queue = [];
  clearTimer(s, q);
  for (const id of ids) s.opts.onPendingChange(id);
}

function byName(cfg: AlertingConfig): Map<string, AlertReceiverConfig> {
  return new Map(cfg.receivers.map((r) => [r.name, r]));
}

/** fetch hides the reason (ECONNREFUSED, ...) in `cause`; a timeout is a TimeoutError. */
function requestError(err: unknown, timeoutSeconds: number): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return `timed out after ${timeoutSeconds}s`;
  const cause = err.cause instanceof Error ? err.cause.message : null;
  return cause ? `${err.message}: ${cause}` : err.message;
}
