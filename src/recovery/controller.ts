/**
 * The recovery stage: feeds failures and a periodic tick to the pure planner, runs what it plans
 * through the executor, and tells the planner each outcome. It owns the planner's state and the
 * traffic holds that follow from it (redirected weights, drained containers), which the router
 * reads; it never writes into discovery's backends. Only backends with a container or a Swarm
 * task behind them are recovered, and only with Docker in use.
 */
import type Dockerode from 'dockerode';
import type { TimerHandle } from '../clock.js';
import { DEFAULT_APP_RECOVERY } from '../config/schema.js';
import { containerStopReason } from '../discovery/docker-events.js';
import { describeError } from '../errors.js';
import type { AppConfig, SidecarConfig } from '../config/types.js';
import type { FailureNotice, HealthStageOptions } from '../events/sidecar-events.js';
import type { BackendView } from '../health/types.js';
import type { Logger } from '../observability/logger.js';
import { withDrains, type DesiredSetOptions } from '../upstream/desired.js';
import { createDockerActions } from './docker-actions.js';
import { instanceId } from '../config/instance.js';
import { createSwarmActions } from './swarm-actions.js';
import { createSwarmLease, type SwarmLease, type SwarmLeaseStatus } from './swarm-lease.js';
import { createRecoveryExecutor, resultInput, type RecoveryExecutor } from './executor.js';
import { plan, plannerConfig } from './planner.js';
import { summarize, type PlannerState, type RecoverySummary } from './planner-state.js';
import { PROBE_TYPES } from './strategies.js';
import { trafficHolds } from './traffic-holds.js';
import type { AppSnapshot, PlannedAction, PlannerInput, TaskTarget } from './types.js';

/** How long after a drain's reload signal nginx is given to stop routing to the drained backend. */
const RELOAD_SETTLE_MS = 1000;
/** How often scale-in and timeouts of actions that never reported back are looked at. */
const TICK_MS = 5000;
/**
 * A container's probe failure is planned this long after it is seen, on the backend as it stands
 * then, and only when the Engine says the container still runs and nobody asked it to stop
 * since its start (containerStopReason). A `docker kill` or `docker rm -f` makes probes fail at
 * once, and Docker's event that says the container is being stopped on purpose (its backend then
 * drains and recovery leaves it alone) can come after them, seconds later when the daemon is busy
 * (seen in CI: a killed container's failures planned before its events arrived, with a 1 s wait
 * alone). Recovery acts in seconds anyway.
 */
const DOCKER_SETTLE_MS = 1000;

export interface RecoveryControllerOptions extends HealthStageOptions {
  logger: Logger;
  config: () => SidecarConfig;
  /** Without Docker nothing is recovered. */
  docker: Dockerode | undefined;
  /** The apps routed now (discovery's). */
  apps: () => readonly AppConfig[];
  /** The planner's state from the store, when a previous process left one. */
  restored: PlannerState;
  /** Recomputes routing with the current holds and resolves once nginx has them. */
  applyHolds: () => Promise<void>;
  /**
   * Why a container's probe failure is left to Docker's own events (gone, not running, asked to
   * stop since `sinceMs`), or null; default asks the Engine (containerStopReason).
   */
  stopReason?: (containerId: string, sinceMs: number) => Promise<string | null>;
}

export interface RecoveryController {
  /** What recovery holds nginx to now, for the router. */
  holds(): DesiredSetOptions;
  /** The planner's state, for the store. */
  state(): PlannerState;
  summary(): RecoverySummary & { mode: SidecarConfig['recovery']['mode'] };
  /** The Swarm lease of this sidecar's node (null without one), for the status API. */
  lease(): SwarmLeaseStatus | null;
  start(): void;
  /** Stops the timers; frees the Swarm lease when this sidecar holds it. */
  stop(): Promise<void>;
}

interface ControllerState {
  opts: RecoveryControllerOptions;
  executor: RecoveryExecutor;
  planner: PlannerState;
  /** Containers about to be stopped by an action: out of nginx first, like a `docker stop`. */
  draining: Set<string>;
  tickTimer: TimerHandle | null;
  /** Backend id -> its latest probe failure and the timer that plans it (DOCKER_SETTLE_MS). */
  settling: Map<string, { event: FailureNotice['event']; timer: TimerHandle }>;
  /** Sidecars sharing a node's Engine: only the holder acts on the node's Swarm tasks. */
  lease: SwarmLease | null;
}

export function createRecoveryController(opts: RecoveryControllerOptions): RecoveryController {
  const docker = opts.docker;
  const s: ControllerState | null = docker
    ? {
        opts,
        executor: null as unknown as RecoveryExecutor,
        planner: opts.restored,
        draining: new Set(),
        tickTimer: null,
        settling: new Map(),
        lease: null,
      }
    : null;
  const cfg = opts.config().docker;
  if (s && docker && cfg.swarm !== false && cfg.swarm_lease) {
    s.lease = createSwarmLease({
      // The pid too: two sidecars of one identity (one host) must not both hold the lease.
      docker, clock: opts.clock, logger: opts.logger, instance: `${instanceId(opts.config())}:${process.pid}`,
      ttlMs: () => opts.config().docker.swarm_lease_ttl_seconds * 1000,
      renewMs: () => opts.config().docker.swarm_lease_renew_seconds * 1000,
      campaign: () => opts.config().recovery.mode !== 'off',
    });
  }
  if (s && docker) {
    s.executor = createExecutor(s, docker);
    opts.bus.on('failure', (notice) => onFailure(s, notice));
  }
  return {
    holds: () => (s ? holds(s) : {}),
    state: () => s?.planner ?? opts.restored,
    summary() {
      const cfg = plannerConfig(opts.config());
      return { mode: cfg.mode, ...summarize(s?.planner ?? opts.restored, cfg, opts.clock.now()) };
    },
    lease: () => s?.lease?.status() ?? null,
    start() {
      s?.lease?.start();
      if (s) tick(s);
    },
    async stop() {
      if (s?.tickTimer) opts.clock.clearTimeout(s.tickTimer);
      for (const { timer } of s?.settling.values() ?? []) opts.clock.clearTimeout(timer);
      await s?.lease?.stop();
    },
  };
}

/** Holds recorded in dry-run are left out (recorded, never applied). */
function holds(s: ControllerState): DesiredSetOptions {
  const planned = s.opts.config().recovery.mode === 'on' ? trafficHolds(s.planner) : null;
  return {
    ...(planned ? { weightFactors: planned.weightFactors } : {}),
    drainedContainerIds: new Set([...(planned?.drainedContainerIds ?? []), ...s.draining]),
  };
}

function createExecutor(s: ControllerState, docker: Dockerode): RecoveryExecutor {
  const { clock, logger, bus } = s.opts;
  return createRecoveryExecutor({
    actions: createDockerActions({ docker, stopTimeoutSeconds: s.opts.config().recovery.stop_timeout_seconds, logger }),
    ...(s.opts.config().docker.swarm !== false ? { swarm: createSwarmActions({ docker, clock }) } : {}),
    // Checked again immediately before each action: the lease may have been lost since it was planned.
    ...(s.lease ? { mayActOn: (task: TaskTarget) => s.lease!.mayAct(task.nodeId) } : {}),
    clock,
    logger,
    drain: async (action: PlannedAction) => {
      if (!action.containerId) return;
      s.draining.add(action.containerId);
      await s.opts.applyHolds();
      // A reload only delivers a signal: until nginx has read the new config and replaced its
      // workers, the old ones still open new connections to this backend.
      await new Promise<void>((resolve) => clock.setTimeout(resolve, RELOAD_SETTLE_MS));
    },
    // redirect_traffic, drain_instance and their undoing change only what nginx is told: the
    // planner's state already holds the change, so apply it now.
    applyTraffic: () => s.opts.applyHolds(),
    onRecord: (record) => bus.emit('action', record),
  });
}

/** Only backends with a container or a Swarm task (recovered through Swarm) can be recovered. */
function onFailure(s: ControllerState, { event, view }: FailureNotice): void {
  if (!(view?.container || view?.task) || s.opts.config().recovery.mode === 'off') return;
  // Another sidecar holds this node's lease (or the task is another node's): it is theirs to plan.
  if (view.task && s.lease && !s.lease.mayAct(view.task.nodeId)) return;
  if (view.container && PROBE_TYPES.has(event.failureType)) return settle(s, event, view.backendId);
  recover(s, { kind: 'failure', event, backend: view, app: appSnapshot(s, view.app) });
}

/** Plans a container's probe failure DOCKER_SETTLE_MS from now, the latest one if more come meanwhile. */
function settle(s: ControllerState, event: FailureNotice['event'], backendId: string): void {
  const waiting = s.settling.get(backendId);
  if (waiting) {
    waiting.event = event;
    return;
  }
  const timer = s.opts.clock.setTimeout(() => {
    const latest = s.settling.get(backendId)!.event;
    s.settling.delete(backendId);
    void planSettled(s, backendId, latest);
  }, DOCKER_SETTLE_MS);
  timer.unref?.();
  s.settling.set(backendId, { event, timer });
}

async function planSettled(s: ControllerState, backendId: string, event: FailureNotice['event']): Promise<void> {
  const live = () => {
    const view = s.opts.registry.view(backendId);
    // Gone meanwhile (removed with its container): nothing left to recover.
    return view?.container && s.opts.config().recovery.mode !== 'off' ? view : null;
  };
  const input = (view: BackendView): PlannerInput => ({ kind: 'failure', event, backend: view, app: appSnapshot(s, view.app) });
  const view = live();
  if (!view?.container) return;
  // The Engine is asked only when the plan would do something: an ejected container fails a probe
  // every ejected_period, and most of those plans are skips (backoff, budget, noted already).
  const trial = plan(s.planner, input(view), plannerConfig(s.opts.config()), s.opts.clock.now());
  // Nothing to do, and nothing awaited since: the plan stands as made.
  if (trial.actions.length === 0) return apply(s, trial);
  const { id, startedAt, name } = view.container;
  const ask = s.opts.stopReason ?? ((cid: string, since: number) => containerStopReason(s.opts.docker!, cid, since, s.opts.clock.now()));
  try {
    const reason = await ask(id, startedAt);
    if (reason !== null) {
      s.opts.logger.info({ backend: backendId, container: name, reason }, "recovery: a container's probe failure left to Docker's events");
      return;
    }
  } catch (err) {
    // Cannot tell (the Engine is away): plan as without the check; acting needs the Engine anyway.
    s.opts.logger.debug({ backend: backendId, err: describeError(err) }, 'recovery: could not ask the Engine about the container');
  }
  // Planned again on the state as it is now: other plans may have run while the Engine answered.
  const now = live();
  if (now) recover(s, input(now));
}

/** Scale-in of replicas recovery added, and timeouts of actions that never reported back. */
function tick(s: ControllerState): void {
  recover(s, { kind: 'tick', apps: s.opts.apps().map((a) => appSnapshot(s, a.name)) });
  s.tickTimer = s.opts.clock.setTimeout(() => tick(s), TICK_MS);
  s.tickTimer.unref?.();
}

/** Feeds the planner and runs what it plans; each outcome is fed back. */
function recover(s: ControllerState, input: PlannerInput): void {
  const { config, clock } = s.opts;
  if (config().recovery.mode === 'off') return;
  apply(s, plan(s.planner, input, plannerConfig(config()), clock.now()));
}

/** Takes a plan made on the current state: its state, its decisions logged, its actions run. */
function apply(s: ControllerState, result: ReturnType<typeof plan>): void {
  const { logger, bus } = s.opts;
  s.planner = result.state;
  for (const d of result.decisions) logger.debug({ ...d }, 'recovery decision');
  for (const action of result.actions) {
    bus.emit('action-started', action);
    void s.executor.run(action).then((record) => {
      if (action.containerId && s.draining.delete(action.containerId)) void s.opts.applyHolds();
      recover(s, resultInput(record));
    });
  }
}

/** What the planner needs to know of one app: its settings and replicas as they stand. */
function appSnapshot(s: ControllerState, name: string): AppSnapshot {
  const { config, registry } = s.opts;
  const app = s.opts.apps().find((a) => a.name === name);
  const cfg = config();
  return {
    name,
    maxReplicas: app?.docker.max_replicas ?? cfg.recovery.max_replicas,
    portRange: app?.docker.port_range ?? null,
    portEnv: app?.docker.port_env ?? 'PORT',
    recovery: app?.recovery ?? DEFAULT_APP_RECOVERY,
    // A drained container is out of service, whatever its probes say.
    replicas: withDrains(registry.viewsOf(name), holds(s).drainedContainerIds),
  };
}
