/**
 * Discovery from a Docker Swarm manager: services labelled `orchestry.enable=true` (service
 * labels: `deploy.labels` in a stack file) and their running tasks as backends (pure mapping in
 * swarm-labels.ts, over the container mapping's rules).
 *
 * Each resync is a full snapshot from the manager's API: the enabled services, their tasks that
 * Swarm wants running, and the nodes. The connection (engine-connection.ts, shared with the
 * container source) subscribes to the manager's events first, resyncs on every reconnect, and
 * keeps the last snapshot while the manager is unreachable.
 *
 * What triggers a resync, and why polling is part of it: a manager reports service and node
 * events, and container events of its own node only; no Engine reports task changes. So:
 * - a service or node event (create, update, remove: a scale, a rolling update, a node going
 *   down) resyncs after the short coalescing wait;
 * - a container event of a task on this node resyncs too, and a task container that is killed,
 *   stopped or dies is ejected at once, before the resync (as the container source does);
 * - every `docker.swarm_refresh_seconds` the tasks are listed again: a task that failed or was
 *   replaced on another node is seen within that time (the probes may see it first).
 *
 * `docker.swarm: auto` asks `docker info` on each resync whether this Engine is an active
 * manager; while it is not, the source reports no backends (and is not awaited). With
 * `swarm: true`, a node that is not a manager is an error, reported and retried like a lost
 * connection.
 */
import type Dockerode from 'dockerode';
import type { Clock, TimerHandle } from '../clock.js';
import type { AppConfig, HealthCheckConfig, SidecarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { isTerminatingSignal, parseDockerEvent } from './docker-events.js';
import { ENABLE_LABEL, type RejectedContainer } from './docker-labels.js';
import { emitIfChanged, logRejections, mapRemembering } from './docker-resync.js';
import {
  clearTimer,
  engineContext,
  engineSource,
  isCurrent,
  scheduleResync,
  type DockerStatus,
  type EngineSource,
  type EngineSourceBase,
  type EngineSourceOptions,
} from './engine-connection.js';
import { SWARM_SOURCE_NAME, servicesToBackends, type SwarmMapping, type SwarmNode, type SwarmService, type SwarmTask } from './swarm-labels.js';

/** A manager's Engine (`docker`), and what every Engine source is made with. */
export type SwarmSourceOptions = EngineSourceOptions;

/** What the Swarm source knows now, for the API and readiness. */
export interface SwarmSourceState extends DockerStatus {
  /** Whether Swarm discovery acts: always with `swarm: true`; with `auto`, while this Engine is an active manager. */
  active: boolean;
  /** Why it does not, with `auto`. */
  inactiveReason?: string;
  /** Apps only service labels define (from the last resync). */
  apps: AppConfig[];
  /** Services and tasks left out for bad labels (from the last resync). */
  rejected: RejectedContainer[];
}

/** A DiscoverySource over a manager's services; resync() looks at them again soon. */
export type SwarmSource = EngineSource<SwarmSourceState>;

interface SwarmSourceContext extends EngineSourceBase {
  readonly opts: SwarmSourceOptions;
  refreshTimer: TimerHandle | null;
  mapping: SwarmMapping;
  /** The apps of the last snapshot: the mapping's, then remembered ones without a service now. */
  apps: AppConfig[];
  /** Apps only service labels define, seen in this run (see DockerSourceContext.remembered). */
  readonly remembered: Map<string, AppConfig | null>;
  active: { active: boolean; reason?: string };
  /** Containers of tasks on this node seen stopping: their backends are ejected until they are gone. */
  readonly draining: Set<string>;
}

/** Service, node and (this node's) container events that can change what runs. */
const EVENT_FILTER = {
  type: ['service', 'node', 'container'] as ('service' | 'node' | 'container')[],
  event: ['create', 'update', 'remove', 'start', 'die', 'kill', 'stop', 'pause', 'destroy', 'health_status'],
};
/** The label Docker puts on a task's container. */
const TASK_SERVICE_LABEL = 'com.docker.swarm.service.id';

/** A DiscoverySource (name `swarm`) over a Swarm manager's API and event stream. */
export function createSwarmSource(opts: SwarmSourceOptions): SwarmSource {
  const ctx = engineContext<SwarmSourceContext>(
    SWARM_SOURCE_NAME,
    opts,
    {
      filters: EVENT_FILTER,
      onEvent,
      syncOnce,
      words: { connected: 'connected to the Swarm manager', lost: 'Swarm manager unreachable; keeping the last known tasks' },
      clearTimers: (c) => {
        c.refreshTimer = clearTimer(opts.clock, c.refreshTimer);
      },
    },
    {
      refreshTimer: null,
      mapping: { backends: [], apps: [], rejected: [] },
      apps: [],
      remembered: new Map(),
      active: { active: false },
      draining: new Set(),
    },
  );
  return engineSource(SWARM_SOURCE_NAME, ctx, () => {
    const { active, reason } = ctx.active;
    return { ...ctx.status, active, ...(reason ? { inactiveReason: reason } : {}), apps: ctx.apps, rejected: ctx.mapping.rejected };
  });
}

function onEvent(ctx: SwarmSourceContext, raw: unknown, gen: number): void {
  const type = (raw as { Type?: unknown } | null)?.Type;
  if (type === 'container') {
    const event = parseDockerEvent(raw);
    const attributes = (raw as { Actor?: { Attributes?: Record<string, unknown> } }).Actor?.Attributes;
    // Other containers of this Engine are the container source's business.
    if (!event || typeof attributes?.[TASK_SERVICE_LABEL] !== 'string') return;
    const stopping =
      event.action === 'stop' || event.action === 'pause' || event.action === 'die' ||
      (event.action === 'kill' && isTerminatingSignal(event.signal));
    const backend = ctx.mapping.backends.find((b) => b.task?.containerId === event.containerId);
    if (stopping && backend && !ctx.draining.has(event.containerId)) {
      // Eject now: the manager learns of it from the node's agent a moment later, and this
      // source from the manager only at its next resync.
      ctx.draining.add(event.containerId);
      ctx.log?.info({ task: backend.task?.name, backend: backend.id, action: event.action }, 'draining backend');
      emit(ctx);
    }
  }
  scheduleResync(ctx, gen);
}

async function syncOnce(ctx: SwarmSourceContext, gen: number): Promise<void> {
  const config = ctx.opts.config();
  const state = await readSwarm(ctx.opts.docker, config);
  if (!isCurrent(ctx, gen)) return;
  if (state.active.active !== ctx.active.active || state.active.reason !== ctx.active.reason) {
    if (state.active.active) ctx.log?.info('Swarm discovery active: this Engine is a Swarm manager');
    else ctx.log?.info({ reason: state.active.reason }, 'Swarm discovery inactive');
  }
  ctx.active = state.active;
  // A removed service's app stays as a placeholder upstream: nginx may name it.
  ctx.mapping = mapRemembering(ctx, config, (labels) => servicesToBackends(state, labels));
  logRejections(ctx, ctx.mapping.rejected);
  const running = new Set(ctx.mapping.backends.map((b) => b.task?.containerId));
  for (const id of ctx.draining) if (!running.has(id)) ctx.draining.delete(id);
  emit(ctx);
  ctx.refreshTimer = clearTimer(ctx.opts.clock, ctx.refreshTimer);
  ctx.refreshTimer = ctx.opts.clock.setTimeout(() => {
    ctx.refreshTimer = null;
    scheduleResync(ctx, gen, 0);
  }, config.docker.swarm_refresh_seconds * 1000);
}

function emit(ctx: SwarmSourceContext): void {
  const backends = ctx.mapping.backends.map((b) =>
    b.task?.containerId && ctx.draining.has(b.task.containerId) ? { ...b, draining: true } : b,
  );
  emitIfChanged(ctx, { source: SWARM_SOURCE_NAME, backends, apps: ctx.apps }, ctx.mapping.rejected);
}

interface SwarmRead {
  services: SwarmService[];
  tasks: SwarmTask[];
  nodes: SwarmNode[];
  active: { active: boolean; reason?: string };
}

/** One consistent-enough read of the manager: services, their tasks that should run, the nodes. */
async function readSwarm(docker: Dockerode, config: SidecarConfig): Promise<SwarmRead> {
  if (config.docker.swarm === 'auto') {
    const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    const state = info.Swarm?.LocalNodeState ?? 'inactive';
    if (state !== 'active' || info.Swarm?.ControlAvailable !== true) {
      const reason = state === 'active' ? 'this Engine is a Swarm worker, not a manager' : `this Engine is not in a Swarm (state ${state})`;
      return { services: [], tasks: [], nodes: [], active: { active: false, reason } };
    }
  }
  // docker.constraints scope services as they scope containers: several sidecars, several stacks.
  const label = [`${ENABLE_LABEL}=true`, ...config.docker.constraints];
  const services = (await docker.listServices({ filters: { label } })) as unknown as SwarmService[];
  if (services.length === 0) return { services, tasks: [], nodes: [], active: { active: true } };
  const [tasks, nodes] = await Promise.all([
    docker.listTasks({ filters: { service: services.map((s) => s.ID), 'desired-state': ['running'] } }) as Promise<SwarmTask[]>,
    docker.listNodes() as Promise<SwarmNode[]>,
  ]);
  return { services, tasks, nodes, active: { active: true } };
}
