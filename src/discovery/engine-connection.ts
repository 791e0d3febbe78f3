/**
 * One connection to a Docker Engine, shared by the container source (docker-source.ts) and the
 * Swarm source (swarm-source.ts), which differ only in what they subscribe to, how they read an
 * event and how they resync (the hooks):
 *
 * - Subscribe to the event stream first, then resync: an event during the list causes another
 *   resync rather than being missed.
 * - Events schedule a resync after a short coalescing wait; resyncs run one at a time, in order,
 *   and only for the connection that asked for them.
 * - A lost connection keeps the last snapshot, reports it, and reconnects with exponential
 *   backoff (docker.reconnect_min_seconds doubling up to reconnect_max_seconds); a reconnect is a
 *   full resync. Each connection has a generation: callbacks of an older one do nothing.
 */
import type Dockerode from 'dockerode';
import type { Clock, TimerHandle } from '../clock.js';
import type { HealthCheckConfig, SidecarConfig } from '../config/types.js';
import { describeError } from '../errors.js';
import type { Snapshot } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { DiscoverySource } from './types.js';

export interface DockerStatus {
  connected: boolean;
  /** Why the Engine is unreachable, when it is. */
  error?: string;
}

/** The Engine's event stream as dockerode returns it. */
export type EventStream = NodeJS.ReadableStream & { destroy?(): void };

/** What every source over an Engine connection is made with. */
export interface EngineSourceOptions {
  docker: Dockerode;
  /** Read on every resync: label health is layered over the YAML's. */
  config: () => SidecarConfig;
  /** The YAML's defaults.health (base of apps only labels define); seed defaults without it. */
  defaultHealth?: () => HealthCheckConfig;
  clock: Clock;
  logger?: Logger;
  /** Called when the connection state (or its error) changes. */
  onStatus?(status: DockerStatus): void;
  /**
   * Ports the sidecar listens on now (admin, DNS, passive), each with what listens there: no
   * container or task on host networking is routed to them. Read on every resync.
   */
  ownPorts?: () => ReadonlyMap<number, string>;
}

/** What makes a source of its own out of the shared connection. */
export interface EngineHooks {
  /** Opens the Engine's event stream, filtered for this source. */
  subscribe(): Promise<EventStream>;
  /** One event of connection `gen`'s stream, as parsed JSON. */
  onEvent(raw: unknown, gen: number): void;
  /** A full resync for connection `gen`; rejects when the Engine cannot be reached. */
  syncOnce(gen: number): Promise<void>;
  /** Log messages for a connection won and one lost. */
  words: { connected: string; lost: string };
  /** Cancels the source's own timers, at stop. */
  clearTimers?(): void;
}

/** The connection's state, held in each source's context. */
export interface EngineConnection {
  readonly opts: { clock: Clock; config(): SidecarConfig; onStatus?(status: DockerStatus): void };
  readonly log: Logger | undefined;
  readonly engine: EngineHooks;
  running: boolean;
  /** Bumped on every (re)connect and loss: callbacks of an older connection do nothing. */
  generation: number;
  stream: EventStream | null;
  status: DockerStatus;
  backoffMs: number;
  reconnectTimer: TimerHandle | null;
  resyncTimer: TimerHandle | null;
  /** Resyncs run one at a time, in order. */
  chain: Promise<void>;
}

/** A source over a connection: the discovery source it is, plus a resync on demand and its state. */
export interface EngineSource<S> extends DiscoverySource {
  /** Looks again soon (e.g. after the config file changed). */
  resync(): void;
  state(): S;
}

/** The DiscoverySource named `name` over the connection `ctx`, which emits through `ctx.emit`. */
export function engineSource<S>(
  name: string,
  ctx: EngineSourceBase,
  state: () => S,
): EngineSource<S> {
  return {
    name,
    async start(onSnapshot) {
      ctx.emit = onSnapshot;
      await startConnection(ctx);
    },
    async stop() {
      await stopConnection(ctx);
      ctx.emit = null;
    },
    resync() {
      if (ctx.status.connected) scheduleResync(ctx, ctx.generation);
    },
    state,
  };
}

/** How long a burst of events may keep arriving before one resync covers them all. */
const COALESCE_MS = 75;

/** The state of a connection not yet started. */
function initialConnection(): Omit<EngineConnection, 'opts' | 'log' | 'engine'> {
  return {
    running: false,
    generation: 0,
    stream: null,
    status: { connected: false },
    backoffMs: 0,
    reconnectTimer: null,
    resyncTimer: null,
    chain: Promise.resolve(),
  };
}

/** A source's context: its connection, plus what it emitted and the rejections it logged. */
export interface EngineSourceBase extends EngineConnection {
  emit: ((snapshot: Snapshot) => void) | null;
  lastEmitted: string | null;
  rejectedLogged: Map<string, string>;
}

/** EngineHooks as functions of the source's context `C`, with the stream's event filters. */
export interface SourceHooks<C> {
  /** Filters of the source's event stream (`docker.getEvents`). */
  filters: NonNullable<Exclude<Dockerode.GetEventsOptions['filters'], string>>;
  onEvent(ctx: C, raw: unknown, gen: number): void;
  syncOnce(ctx: C, gen: number): Promise<void>;
  words: EngineHooks['words'];
  clearTimers?(ctx: C): void;
}

/**
 * The context of the source named `name`: a connection not yet started whose hooks call
 * `hooks` with the context, nothing emitted yet, and the source's own state `own`.
 */
export function engineContext<C extends EngineSourceBase & { readonly opts: EngineSourceOptions }>(
  name: string,
  opts: C['opts'],
  hooks: SourceHooks<C>,
  own: Omit<C, keyof EngineSourceBase>,
): C {
  const ctx = {
    ...initialConnection(),
    opts,
    log: opts.logger?.child({ source: name }),
    engine: {
      subscribe: async () => (await opts.docker.getEvents({ filters: hooks.filters })) as EventStream,
      onEvent: (raw: unknown, gen: number) => hooks.onEvent(ctx, raw, gen),
      syncOnce: (gen: number) => hooks.syncOnce(ctx, gen),
      words: hooks.words,
      clearTimers: () => hooks.clearTimers?.(ctx),
    },
    emit: null,
    lastEmitted: null,
    rejectedLogged: new Map<string, string>(),
    ...own,
  } as C;
  return ctx;
}

/** Whether `gen` is the running connection. */
export function isCurrent(ctx: EngineConnection, gen: number): boolean {
  return ctx.running && gen === ctx.generation;
}

/** Cancels a timer if there is one; returns the null to store in its place. */
export function clearTimer(clock: Clock, timer: TimerHandle | null): null {
  if (timer) clock.clearTimeout(timer);
  return null;
}

/** Connects; resolves after the first resync, or after the first failure (then retried). */
export function startConnection(ctx: EngineConnection): Promise<void> {
  ctx.running = true;
  return connect(ctx);
}

/** Stops: no callback of any connection acts after it resolves. */
export async function stopConnection(ctx: EngineConnection): Promise<void> {
  const { clock } = ctx.opts;
  ctx.running = false;
  ctx.generation++;
  ctx.reconnectTimer = clearTimer(clock, ctx.reconnectTimer);
  ctx.resyncTimer = clearTimer(clock, ctx.resyncTimer);
  ctx.engine.clearTimers?.();
  closeStream(ctx);
  await ctx.chain;
}

/** A resync for connection `gen` after `delay`, unless one is already waiting. */
export function scheduleResync(ctx: EngineConnection, gen: number, delay = COALESCE_MS): void {
  if (!isCurrent(ctx, gen) || ctx.resyncTimer) return;
  ctx.resyncTimer = ctx.opts.clock.setTimeout(() => {
    ctx.resyncTimer = null;
    resync(ctx, gen).catch((err: unknown) => lost(ctx, gen, err));
  }, delay);
}

/** Queues a resync behind those already running; it does nothing once `gen` is outdated. */
export function resync(ctx: EngineConnection, gen: number): Promise<void> {
  const run = ctx.chain.then(() => (isCurrent(ctx, gen) ? ctx.engine.syncOnce(gen) : undefined));
  ctx.chain = run.catch(() => undefined);
  return run;
}

/** The connection `gen` is lost: keep what we know, report, retry with backoff. */
export function lost(ctx: EngineConnection, gen: number, err: unknown): void {
  if (!isCurrent(ctx, gen)) return;
  ctx.generation++;
  closeStream(ctx);
  ctx.resyncTimer = clearTimer(ctx.opts.clock, ctx.resyncTimer);
  setStatus(ctx, { connected: false, error: describeError(err) });
  scheduleReconnect(ctx);
}

function setStatus(ctx: EngineConnection, next: DockerStatus): void {
  if (next.connected === ctx.status.connected && next.error === ctx.status.error) return;
  ctx.status = next;
  if (next.connected) ctx.log?.info(ctx.engine.words.connected);
  else ctx.log?.warn({ err: next.error }, ctx.engine.words.lost);
  ctx.opts.onStatus?.(next);
}

function closeStream(ctx: EngineConnection): void {
  const s = ctx.stream;
  ctx.stream = null;
  s?.removeAllListeners();
  // An error after close must not become an unhandled 'error' event.
  s?.on('error', () => undefined);
  s?.destroy?.();
}

function scheduleReconnect(ctx: EngineConnection): void {
  if (!ctx.running || ctx.reconnectTimer) return;
  const { reconnect_min_seconds: min, reconnect_max_seconds: max } = ctx.opts.config().docker;
  const delay = ctx.backoffMs === 0 ? min * 1000 : ctx.backoffMs;
  ctx.backoffMs = Math.min(delay * 2, max * 1000);
  ctx.reconnectTimer = ctx.opts.clock.setTimeout(() => {
    ctx.reconnectTimer = null;
    void connect(ctx);
  }, delay);
}

async function connect(ctx: EngineConnection): Promise<void> {
  const gen = ++ctx.generation;
  try {
    const s = await ctx.engine.subscribe();
    if (!isCurrent(ctx, gen)) {
      s.destroy?.();
      return;
    }
    ctx.stream = s;
    attachEventStream(ctx, s, gen);
    await resync(ctx, gen);
    if (!isCurrent(ctx, gen)) return;
    ctx.backoffMs = 0;
    setStatus(ctx, { connected: true });
  } catch (err) {
    lost(ctx, gen, err);
  }
}

/** Feeds the lines of connection `gen`'s stream to the source; its end or error loses the connection. */
function attachEventStream(ctx: EngineConnection, s: EventStream, gen: number): void {
  let buffered = '';
  s.on('data', (chunk: Buffer | string) => {
    if (gen !== ctx.generation) return;
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) onLine(ctx, line, gen);
    }
  });
  s.on('error', (err: Error) => lost(ctx, gen, err));
  s.on('end', () => lost(ctx, gen, new Error('Docker event stream ended')));
  s.on('close', () => lost(ctx, gen, new Error('Docker event stream closed')));
}

function onLine(ctx: EngineConnection, line: string, gen: number): void {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    ctx.log?.warn({ line: line.slice(0, 200) }, 'unreadable Docker event ignored');
    return;
  }
  ctx.engine.onEvent(raw, gen);
}
