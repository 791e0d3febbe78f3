/**
 * The passive stage: nginx's own traffic as health evidence. The receiver turns nginx's access log
 * (syslog over UDP) into per-attempt outcomes; the pure outlier reducer (Envoy's rules) turns an
 * app's outcomes into ejections; ejections open the backend's breaker like a failed health check
 * (transitions on the bus reach nginx, metrics, the store and alerts). Every outcome also judges a
 * readmitted (half-open) backend: one failed request sends it back out, for longer.
 */
import type { TimerHandle } from '../clock.js';
import type { PassiveConfig } from '../config/types.js';
import { describeError } from '../errors.js';
import type { HealthStageOptions } from '../events/sidecar-events.js';
import type { EjectionCause } from '../health/breaker.js';
import { formatAddress } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { groupOutcomesByApp, initialAppOutliers, nextOutlierDeadline, stepOutliers, type AppOutlierState, type OutlierBackend } from './outlier.js';
import { createAccessLogReceiver, type AccessLogReceiver, type ReceiverStats } from './receiver.js';
import type { Outcome } from './types.js';

export interface PassiveMonitorOptions extends HealthStageOptions {
  logger: Logger;
  /** Read once at start (the receiver's socket), and at each step (the rules). */
  config: () => PassiveConfig;
}

export interface PassiveMonitor {
  /** Listens for nginx's log when passive.enabled; a socket that cannot bind is logged, not fatal. */
  start(): Promise<void>;
  /** The receiver's counters (lines received, parsed, dropped by reason), or null when off. */
  stats(): ReceiverStats | null;
  /** Where the receiver listens, or null when off. */
  address(): string | null;
  stop(): Promise<void>;
}

interface PassiveState {
  opts: PassiveMonitorOptions;
  receiver: AccessLogReceiver | null;
  address: string | null;
  /** Per app, plain data. */
  apps: Map<string, AppOutlierState>;
  /** Backends whose probe passed since the last step, by app: they end gateway ejections. */
  probeSuccesses: Map<string, Set<string>>;
  timer: TimerHandle | null;
}

export function createPassiveMonitor(opts: PassiveMonitorOptions): PassiveMonitor {
  const s: PassiveState = { opts, receiver: null, address: null, apps: new Map(), probeSuccesses: new Map(), timer: null };
  opts.bus.on('probe', (r) => {
    if (!r.healthy || !s.receiver) return;
    const ids = s.probeSuccesses.get(r.app);
    if (ids) ids.add(r.backendId);
    else s.probeSuccesses.set(r.app, new Set([r.backendId]));
  });
  return {
    start: () => start(s),
    stats: () => s.receiver?.stats() ?? null,
    address: () => s.address,
    async stop() {
      if (s.timer) opts.clock.clearTimeout(s.timer);
      await s.receiver?.stop();
      s.receiver = null;
    },
  };
}

async function start(s: PassiveState): Promise<void> {
  const cfg = s.opts.config();
  if (!cfg.enabled) return;
  const receiver = createAccessLogReceiver({
    listen: cfg.listen,
    tag: cfg.tag,
    maxLineBytes: cfg.max_line_bytes,
    queueSize: cfg.queue_size,
    batchSize: cfg.batch_size,
    allowFrom: cfg.allow_from,
    receiveBufferBytes: cfg.receive_buffer_bytes,
    clock: s.opts.clock,
    onOutcomes: (outcomes) => onOutcomes(s, outcomes),
    onError: (err) => s.opts.logger.warn({ err: describeError(err) }, 'passive: access log receiver error'),
  });
  try {
    const bound = await receiver.start();
    s.receiver = receiver;
    s.address = bound.host.includes(':') ? `[${bound.host}]:${bound.port}` : `${bound.host}:${bound.port}`;
    s.opts.logger.info({ listen: s.address, receiveBufferBytes: bound.receiveBufferBytes }, "passive: listening for nginx's access log");
  } catch (err) {
    s.opts.logger.error({ listen: cfg.listen, err: describeError(err) }, "passive: cannot listen for nginx's access log; going on without passive evidence");
  }
}

/** One receiver batch: each app's outcomes through its reducer, verdicts into the registry. */
function onOutcomes(s: PassiveState, outcomes: Outcome[]): void {
  const byApp = groupOutcomesByApp(outcomes);
  for (const [app, list] of byApp) step(s, app, list);
  // Apps with only probe news (a gateway ejection a passing probe ends) step too.
  for (const app of s.probeSuccesses.keys()) if (!byApp.has(app) && s.apps.has(app)) step(s, app, []);
  schedule(s);
}

function step(s: PassiveState, app: string, outcomes: readonly Outcome[]): void {
  const { registry, bus, clock } = s.opts;
  const views = registry.viewsOf(app);
  if (views.length === 0) return;
  const backends = new Map<string, OutlierBackend>();
  const halfOpen = new Set<string>();
  for (const v of views) {
    const address = formatAddress(v.host, v.port);
    backends.set(address, { id: v.backendId, address, routable: !v.ejected });
    if (v.breaker === 'half_open') halfOpen.add(v.backendId);
  }
  publishSuspects(s, app, backends, outcomes);
  for (const [address, what] of fiveXxHandling(outcomes)) {
    const b = backends.get(address);
    if (b && registry.note5xx(b.id, what)) bus.emit('nginx-evidence', { app, backendId: b.id });
  }
  const probeSuccesses = [...(s.probeSuccesses.get(app) ?? [])];
  s.probeSuccesses.delete(app);
  const now = clock.now();
  const r = stepOutliers(s.apps.get(app) ?? initialAppOutliers(), { app, backends, outcomes, probeSuccesses }, s.opts.config(), now);
  s.apps.set(app, r.state);
  // A readmitted backend is judged by every request it serves.
  for (const o of halfOpen.size > 0 ? outcomes : []) {
    const b = backends.get(o.address);
    if (b && halfOpen.has(b.id) && o.kind !== 'unknown' && o.kind !== 'no_live') {
      for (const t of registry.outcome(b.id, o.kind === 'ok', o.status === null ? undefined : `HTTP ${o.status}`)) bus.emit('transition', t);
    }
  }
  for (const v of r.verdicts) {
    if (v.kind === 'eject') {
      // A gateway ejection ends when probes pass again (they prove connections work); a 5xx or
      // latency ejection holds its time, since a passing health check says nothing about them.
      const hold = v.rule === 'consecutive_gateway_failure' ? undefined : v.durationMs;
      const last = lastOutcomeOf(outcomes, v.address);
      for (const t of registry.eject(v.backendId, `passive: ${v.reason}`, hold, causeOf(v.rule, last))) bus.emit('transition', t);
    } else if (v.kind === 'suppressed') {
      s.opts.logger.info({ app, backend: v.backendId, rule: v.rule }, `passive: not ejected (${v.reason})`);
    }
  }
}

/**
 * A routed backend that failed a real request is probed at once: its health check may be failing
 * too (a 500 everywhere, a dead process), and nginx's own max_fails keeps it from getting the
 * requests that would let passive evidence alone reach consecutive_5xx soon. Once per backend
 * per batch.
 */
function publishSuspects(s: PassiveState, app: string, backends: ReadonlyMap<string, OutlierBackend>, outcomes: readonly Outcome[]): void {
  for (const x of suspectsOf(backends, outcomes)) s.opts.bus.emit('suspect', { ...x, app });
}

/** Pure: the routed backends that failed a request in `outcomes`, each once, with its first failure. */
export function suspectsOf(
  backends: ReadonlyMap<string, OutlierBackend>,
  outcomes: readonly Outcome[],
): Array<{ backendId: string; reason: string; at: number }> {
  const out = new Map<string, { backendId: string; reason: string; at: number }>();
  for (const o of outcomes) {
    if (o.kind !== '5xx' && o.kind !== 'gateway') continue;
    const b = backends.get(o.address);
    if (!b || !b.routable || out.has(b.id)) continue;
    out.set(b.id, { backendId: b.id, reason: o.status === null ? 'nginx: connection failed' : `nginx: HTTP ${o.status}`, at: o.at });
  }
  return [...out.values()];
}

/**
 * Pure: per backend address, what nginx did with its latest 5xx answer in `outcomes`: passed it on
 * to another server (`retried`) or sent it to the client (`served`). A 5xx answer is one the
 * backend wrote: not nginx's own 502 (no connection or no response header) nor a 504 (nginx's
 * read timeout), which are not what proxy_next_upstream http_500 ... is about.
 */
export function fiveXxHandling(outcomes: readonly Outcome[]): Map<string, 'retried' | 'served'> {
  const out = new Map<string, 'retried' | 'served'>();
  for (const o of outcomes) {
    if (o.status === null || o.status < 500 || o.status === 504 || o.kind === 'no_live') continue;
    if (o.kind === 'gateway' && (o.connectTimeMs === null || o.headerTimeMs === null)) continue;
    out.set(o.address, o.retried ? 'retried' : 'served');
  }
  return out;
}

/** Releases and the decay of ejection counts happen on time, even without traffic. */
function schedule(s: PassiveState): void {
  if (s.timer) s.opts.clock.clearTimeout(s.timer);
  s.timer = null;
  let next: number | null = null;
  for (const state of s.apps.values()) {
    const at = nextOutlierDeadline(state, s.opts.config());
    if (at !== null && (next === null || at < next)) next = at;
  }
  if (next === null || !s.receiver) return;
  s.timer = s.opts.clock.setTimeout(() => {
    s.timer = null;
    for (const app of s.apps.keys()) step(s, app, []);
    schedule(s);
  }, Math.max(0, next - s.opts.clock.now()));
  s.timer.unref?.();
}

/** The backend's last outcome in this batch. */
function lastOutcomeOf(outcomes: readonly Outcome[], address: string): Outcome | undefined {
  for (let i = outcomes.length - 1; i >= 0; i--) if (outcomes[i]!.address === address) return outcomes[i];
  return undefined;
}

/**
 * What the ejecting rule saw: nginx retries refused connections and 5xx by itself, not timeouts.
 * A 502 nginx wrote itself (no connection, or no response header: a backend killed with
 * kept-alive connections resets them) is `refused`: proxy_next_upstream `error` retries it.
 */
export function causeOf(rule: string, last: Outcome | undefined): EjectionCause {
  if (rule === 'latency') return 'slow';
  if (last?.status === 504) return 'timeout';
  if (last?.kind === 'gateway' && (last.connectTimeMs === null || last.headerTimeMs === null)) return 'refused';
  return 'status';
}
