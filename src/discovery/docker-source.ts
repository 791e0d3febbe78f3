/**
 * Discovery from the Docker Engine: containers labelled `orchestry.enable=true` become backends
 * (pure mapping in docker-labels.ts). Every container event triggers a resync (list + inspect,
 * a full snapshot), with bursts coalesced briefly; a `kill`/`stop`/`pause` of a backend's
 * container is emitted at once as a draining snapshot, before the resync, so nginx stops
 * routing to it before the process exits. The event stream reconnects with exponential backoff
 * and resyncs; while the Engine is unreachable the last snapshot stands and the status says so.
 *
 * This file holds the connection loop; the event stream is read in docker-event-stream.ts, and
 * the list/inspect/resync lives in docker-resync.ts.
 */
import type Dockerode from 'dockerode';
import type { Clock, TimerHandle } from '../clock.js';
import type { AppConfig, HealthCheckConfig, SidecarConfig } from '../config/types.js';
import { describeError } from '../errors.js';
import type { Snapshot } from '../model.js';
import type { Logger } from '../observability/logger.js';
import type { ContainerEvent, ContainerFailure, DetectorState } from './docker-events.js';
import { attachEventStream } from './docker-event-stream.js';
import { DOCKER_SOURCE_NAME, type LabelMapping, type RejectedContainer } from './docker-labels.js';
import { LABEL_FILTER, clearTimer, resync, scheduleResync } from './docker-resync.js';
import type { DiscoverySource } from './types.js';

export interface DockerStatus {
  connected: boolean;
  /** Why the Engine is unreachable, when it is. */
  error?: string;
}

export interface DockerSourceOptions {
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
   * container on host networking is routed to them. Read on every resync.
   */
  ownPorts?: () => ReadonlyMap<number, string>;
  /**
   * Apps only labels define that were seen before this start (from the store): they are
   * remembered as if seen in this run (see DockerSourceContext.remembered).
   */
  knownApps?: readonly string[];
  /**
   * Every container event after the resync that followed it, with the failures it reveals;
   * also resync observations that reveal a failure (a restart count that rose, a startup
   * grace that ran out).
   */
  onContainerEvent?(event: ContainerEvent, failures: ContainerFailure[]): void;
}

/** What the Docker source knows now, for the API and the upstream builder. */
export interface DockerSourceState extends DockerStatus {
  /** Apps only labels define (from the last resync); upstreams are needed for them too. */
  apps: AppConfig[];
  /** Containers left out for bad labels (from the last resync). */
  rejected: RejectedContainer[];
}

export interface DockerSource extends DiscoverySource {
  /** Looks at every container again soon (e.g. after the config file changed). */
  resync(): void;
  state(): DockerSourceState;
}

/** The Engine's event stream as dockerode returns it. */
export type EventStream = NodeJS.ReadableStream & { destroy?(): void };

/**
 * One Docker source's state, shared by its connection loop (below), its event stream
 * (docker-event-stream.ts) and its resync (docker-resync.ts).
 */
export interface DockerSourceContext {
  readonly opts: DockerSourceOptions;
  readonly log: Logger | undefined;
  emit: ((snapshot: Snapshot) => void) | null;
  running: boolean;
  /** Bumped on every (re)connect and loss: callbacks of an older connection do nothing. */
  generation: number;
  stream: EventStream | null;
  status: DockerStatus;
  backoffMs: number;
  reconnectTimer: TimerHandle | null;
  resyncTimer: TimerHandle | null;
  graceTimer: TimerHandle | null;
  mapping: LabelMapping;
  /** The apps of the last snapshot: the mapping's, then remembered ones without a container. */
  apps: AppConfig[];
  /** container id -> its startedAt when draining began (a later start ends the drain). */
  readonly draining: Map<string, number>;
  /** Events not yet covered by a resync, in arrival order. */
  pending: Omit<ContainerEvent, 'container'>[];
  detector: DetectorState;
  lastEmitted: string | null;
  rejectedLogged: Map<string, string>;
  /**
   * Every app only labels define that was seen, by name, least recently seen first (null: known
   * from an earlier run, not seen yet in this one). nginx may reference such an app whatever
   * its containers do (`proxy_pass http://shop;`), so it stays in every snapshot, with no
   * backends once its containers are gone: a placeholder that keeps nginx's config valid.
   */
  remembered: Map<string, AppConfig | null>;
  /** Resyncs run one at a time, in order. */
  chain: Promise<void>;
  /**
   * The connection loop's `lost`: the event stream and the resync report a lost connection
   * through it, so they need not import the loop that starts them.
   */
  readonly lost: (gen: number, err: unknown) => void;
}

/** A DiscoverySource (name `docker`) over the Docker Engine's API and event stream. */
export function createDockerSource(opts: DockerSourceOptions): DockerSource {
  const ctx: DockerSourceContext = {
    opts,
    log: opts.logger?.child({ source: DOCKER_SOURCE_NAME }),
    emit: null,
    running: false,
    generation: 0,
    stream: null,
    status: { connected: false },
    backoffMs: 0,
    reconnectTimer: null,
    resyncTimer: null,
    graceTimer: null,
    mapping: { backends: [], apps: [], rejected: [], containers: [] },
    apps: [],
    draining: new Map(),
    pending: [],
    detector: new Map(),
    lastEmitted: null,
    rejectedLogged: new Map(),
    remembered: new Map((opts.knownApps ?? []).map((name) => [name, null])),
    chain: Promise.resolve(),
    lost: (gen, err) => lost(ctx, gen, err),
  };
  return {
    name: DOCKER_SOURCE_NAME,
    async start(onSnapshot) {
      ctx.emit = onSnapshot;
      ctx.running = true;
      await connect(ctx);
    },
    stop: () => stop(ctx),
    resync() {
      if (ctx.status.connected) scheduleResync(ctx, ctx.generation);
    },
    state() {
      return { ...ctx.status, apps: ctx.apps, rejected: ctx.mapping.rejected };
    },
  };
}

async function stop(ctx: DockerSourceContext): Promise<void> {
  const { clock } = ctx.opts;
  ctx.running = false;
  ctx.generation++;
  ctx.reconnectTimer = clearTimer(clock, ctx.reconnectTimer);
  ctx.resyncTimer = clearTimer(clock, ctx.resyncTimer);
  ctx.graceTimer = clearTimer(clock, ctx.graceTimer);
  closeStream(ctx);
  await ctx.chain;
  ctx.emit = null;
}

function setStatus(ctx: DockerSourceContext, next: DockerStatus): void {
  if (next.connected === ctx.status.connected && next.error === ctx.status.error) return;
  ctx.status = next;
  if (next.connected) ctx.log?.info('connected to the Docker Engine');
  else ctx.log?.warn({ err: next.error }, 'Docker Engine unreachable; keeping the last known containers');
  ctx.opts.onStatus?.(next);
}

function closeStream(ctx: DockerSourceContext): void {
  const s = ctx.stream;
  ctx.stream = null;
  s?.removeAllListeners();
  // An error after close must not become an unhandled 'error' event.
  s?.on('error', () => undefined);
  s?.destroy?.();
}

/** The connection `gen` is lost: keep what we know, report, retry with backoff. */
function lost(ctx: DockerSourceContext, gen: number, err: unknown): void {
  if (!ctx.running || gen !== ctx.generation) return;
  ctx.generation++;
  closeStream(ctx);
  ctx.resyncTimer = clearTimer(ctx.opts.clock, ctx.resyncTimer);
  setStatus(ctx, { connected: false, error: describeError(err) });
  scheduleReconnect(ctx);
}

function scheduleReconnect(ctx: DockerSourceContext): void {
  if (!ctx.running || ctx.reconnectTimer) return;
  const { reconnect_min_seconds: min, reconnect_max_seconds: max } = ctx.opts.config().docker;
  const delay = ctx.backoffMs === 0 ? min * 1000 : ctx.backoffMs;
  ctx.backoffMs = Math.min(delay * 2, max * 1000);
  ctx.reconnectTimer = ctx.opts.clock.setTimeout(() => {
    ctx.reconnectTimer = null;
    void connect(ctx);
  }, delay);
}

async function connect(ctx: DockerSourceContext): Promise<void> {
  const gen = ++ctx.generation;
  try {
    // Subscribe before listing: an event during the list then causes another resync
    // rather than being missed.
    const s = (await ctx.opts.docker.getEvents({
      filters: { type: ['container'], label: LABEL_FILTER },
    })) as EventStream;
    if (!ctx.running || gen !== ctx.generation) {
      s.destroy?.();
      return;
    }
    ctx.stream = s;
    attachEventStream(ctx, s, gen);
    await resync(ctx, gen);
    if (!ctx.running || gen !== ctx.generation) return;
    ctx.backoffMs = 0;
    setStatus(ctx, { connected: true });
  } catch (err) {
    lost(ctx, gen, err);
  }
}
