/**
 * Runs planned actions through DockerActions (clear_cache through an HTTP call, traffic
 * strategies through the daemon's nginx update) and records each as an ActionRecord: for the log,
 * the admin API (/api/v1/events), metrics and the store (through `onRecord`), and for the
 * planner, which is told the outcome with `resultInput(record)`.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import type { DockerActionResult, DockerActions } from './docker-actions.js';
import { callBackend as defaultCallBackend, type BackendCallResult } from './backend-call.js';
import { pickFreePort } from './ports.js';
import type { SwarmActions } from './swarm-actions.js';
import type { ActionRecord, BackendCall, HistoryFilter, PlannedAction, PlannerInput, TaskTarget } from './types.js';

export interface RecoveryExecutor {
  /** Runs one action to its end; never throws. */
  run(action: PlannedAction): Promise<ActionRecord>;
  /** Recent records, newest first. */
  history(filter?: HistoryFilter): ActionRecord[];
  /** Actions running now (dry-run and no-op ones finish at once). */
  inFlight(): number;
}

export interface RecoveryExecutorOptions {
  actions: DockerActions;
  /** Actions on Swarm tasks (PlannedAction.task), when Swarm discovery runs. */
  swarm?: SwarmActions;
  /**
   * Whether this sidecar may act on a Swarm task now (it holds its node's lease), asked
   * immediately before each action on a task; without it every task may be acted on.
   */
  mayActOn?: (task: TaskTarget) => boolean;
  clock: Clock;
  logger: Logger;
  onRecord?: (record: ActionRecord) => void;
  /**
   * Takes the backend out of nginx before a container that still serves is stopped
   * (PlannedAction.drainFirst); resolves once nginx no longer sends it traffic.
   */
  drain?: (action: PlannedAction) => Promise<void>;
  /**
   * Makes nginx route by the planner's current traffic holds (trafficHolds: lowered weights,
   * drained instances) after redirect_traffic, restore_traffic, drain_instance and
   * undrain_instance; resolves once nginx has them. A throw fails the action.
   */
  applyTraffic?: (action: PlannedAction) => Promise<void>;
  /** clear_cache's HTTP call; default callBackend (undici, 5 s). */
  callBackend?: (call: BackendCall) => Promise<BackendCallResult>;
  /** Records kept for history(); default 1000. */
  historySize?: number;
  /** Port for a new host-networked replica; default pickFreePort (lowest free in range). */
  pickPort?: (range: readonly [number, number], used: number[]) => Promise<number | null>;
}

/** The planner input that reports a record's outcome. */
export function resultInput(record: ActionRecord): PlannerInput {
  return {
    kind: 'action_result',
    actionId: record.id,
    app: record.app,
    ok: record.ok,
    error: record.error ?? null,
    newContainerId: record.newContainerId ?? null,
  };
}

/** The executor: runs each action once, keeps the latest records, never throws from `run`. */
export function createRecoveryExecutor(opts: RecoveryExecutorOptions): RecoveryExecutor {
  const ctx: EffectContext = {
    actions: opts.actions,
    swarm: opts.swarm,
    mayActOn: opts.mayActOn ?? (() => true),
    logger: opts.logger,
    drain: opts.drain,
    applyTraffic: opts.applyTraffic,
    callBackend: opts.callBackend ?? ((call) => defaultCallBackend(call)),
    pickPort: opts.pickPort ?? ((range, used) => pickFreePort(range, used)),
  };
  const ring = createHistoryRing(opts.historySize ?? 1000);
  let running = 0;

  return {
    async run(a) {
      const startedAt = opts.clock.now();
      running++;
      let result: EffectResult;
      try {
        result = a.dryRun ? { ok: true, containerId: a.containerId ?? '' } : await effect(ctx, a);
      } catch (err) {
        result = { ok: false, containerId: a.containerId ?? '', error: String(err) };
      } finally {
        running--;
      }
      const record = toRecord(a, result, startedAt, opts.clock.now());
      ring.push(record);
      logRecord(opts.logger, a, record);
      opts.onRecord?.(record);
      return record;
    },
    history: (filter = {}) => ring.list(filter),
    inFlight: () => running,
  };
}

/** What an action's effect needs, with the options' defaults filled in. */
interface EffectContext {
  actions: DockerActions;
  swarm: SwarmActions | undefined;
  mayActOn: (task: TaskTarget) => boolean;
  logger: Logger;
  drain: RecoveryExecutorOptions['drain'];
  applyTraffic: RecoveryExecutorOptions['applyTraffic'];
  callBackend: (call: BackendCall) => Promise<BackendCallResult>;
  pickPort: (range: readonly [number, number], used: number[]) => Promise<number | null>;
}

type EffectResult = Omit<DockerActionResult, 'durationMs'>;

/** Carries one action out; throws only on a bug or an unexpected error, which `run` records. */
async function effect(ctx: EffectContext, a: PlannedAction): Promise<EffectResult> {
  const none = a.containerId ?? '';
  switch (a.strategy) {
    case 'remove_from_lb':
      return { ok: true, containerId: none };
    case 'redirect_traffic':
    case 'restore_traffic':
    case 'drain_instance':
    case 'undrain_instance':
      // The planner's state already holds the change; nginx has to be told.
      await ctx.applyTraffic?.(a);
      return { ok: true, containerId: none };
    case 'clear_cache': {
      if (!a.call) return { ok: false, containerId: none, error: 'clear_cache needs a call' };
      const r = await ctx.callBackend(a.call);
      return { ok: r.ok, containerId: none, ...(r.error ? { error: r.error } : {}) };
    }
    case 'restart_dependencies':
      if (!a.dependencies?.length) return { ok: false, containerId: none, error: 'restart_dependencies needs dependencies' };
      return ctx.actions.restartNamed(a.dependencies);
    default:
      return containerEffect(ctx, a);
  }
}

/** The strategies that act on one container (or Swarm task): drained first when it still serves. */
async function containerEffect(ctx: EffectContext, a: PlannedAction): Promise<EffectResult> {
  const id = a.containerId;
  if (!id && !a.task) return { ok: false, containerId: '', error: `${a.strategy} needs a container` };
  if (a.task && !ctx.mayActOn(a.task)) {
    return { ok: false, containerId: a.task.containerId ?? '', error: `not done: this sidecar no longer holds the Swarm lease of node ${a.task.nodeId}` };
  }
  if (a.drainFirst && ctx.drain) {
    await ctx.drain(a).catch((err: unknown) =>
      ctx.logger.warn({ action: a.id, backend: a.backendId, err: String(err) }, 'drain before stop failed; stopping anyway'),
    );
  }
  if (a.task) return taskEffect(ctx, a, a.task);
  if (!id) return { ok: false, containerId: '', error: `${a.strategy} needs a container` };
  switch (a.strategy) {
    case 'restart_container':
    case 'rolling_restart':
      return ctx.actions.restart(id);
    case 'recreate_container':
      return ctx.actions.recreate(id);
    case 'scale_in':
      return ctx.actions.scaleIn(id);
    case 'replace_instance':
    case 'scale_out':
      return spawnEffect(ctx, a, id);
    default:
      return { ok: false, containerId: id, error: `${a.strategy} is not a container action` };
  }
}

/** The same strategies on a Swarm task, through Swarm (swarm-actions.ts): it starts and stops tasks. */
async function taskEffect(ctx: EffectContext, a: PlannedAction, task: TaskTarget): Promise<EffectResult> {
  if (!ctx.swarm) return { ok: false, containerId: task.containerId ?? '', error: `${a.strategy} of task ${task.name} needs Swarm discovery (docker.swarm)` };
  switch (a.strategy) {
    case 'scale_out':
      return ctx.swarm.scale(task, 1);
    case 'scale_in':
      return ctx.swarm.scale(task, -1);
    default:
      // restart, recreate, replace, a rolling restart's step: Swarm replaces the task in its slot.
      return ctx.swarm.replaceTask(task);
  }
}

/** replace_instance and scale_out: a new replica, on a free port when the app is host-networked. */
async function spawnEffect(ctx: EffectContext, a: PlannedAction, id: string): Promise<EffectResult> {
  const spawn = a.spawn;
  if (!spawn) return { ok: false, containerId: id, error: `${a.strategy} needs a spawn spec` };
  let port: number | undefined;
  if (spawn.portRange) {
    const free = await ctx.pickPort(spawn.portRange, spawn.usedPorts);
    if (free === null) {
      return { ok: false, containerId: id, error: `no free port in ${spawn.portRange[0]}-${spawn.portRange[1]}` };
    }
    port = free;
  }
  const replica = { name: spawn.name, portEnv: spawn.portEnv, ...(port !== undefined ? { port } : {}) };
  return a.strategy === 'scale_out'
    ? ctx.actions.scaleOut(id, { ...replica, ...(spawn.replica !== null ? { replica: spawn.replica } : {}) })
    : ctx.actions.replace(id, replica);
}

function toRecord(a: PlannedAction, result: EffectResult, startedAt: number, now: number): ActionRecord {
  return {
    id: a.id,
    strategy: a.strategy,
    failureType: a.failureType,
    app: a.app,
    backendId: a.backendId,
    containerId: a.containerId,
    ...(result.newContainerId ? { newContainerId: result.newContainerId } : {}),
    ...(a.task ? { service: a.task.serviceName, task: a.task.name } : {}),
    ok: result.ok,
    dryRun: a.dryRun,
    ...(result.error ? { error: result.error } : {}),
    reason: a.reason,
    startedAt,
    durationMs: now - startedAt,
  };
}

function logRecord(logger: Logger, a: PlannedAction, record: ActionRecord): void {
  const fields = {
    action: a.id,
    strategy: a.strategy,
    app: a.app,
    backend: a.backendId,
    ...(a.task ? { service: a.task.serviceName, task: a.task.name, taskId: a.task.id } : {}),
    dryRun: a.dryRun,
    durationMs: record.durationMs,
  };
  if (record.ok) logger.info({ ...fields, newContainer: record.newContainerId }, `recovery ${a.strategy}${a.dryRun ? ' (dry-run)' : ''}: ${a.reason}`);
  else logger.warn({ ...fields, err: record.error }, `recovery ${a.strategy} failed`);
}

/** The latest `size` records: once full, the oldest is overwritten. */
function createHistoryRing(size: number) {
  const ring: ActionRecord[] = [];
  let next = 0;
  return {
    push(record: ActionRecord): void {
      if (ring.length < size) ring.push(record);
      else ring[next] = record;
      next = (next + 1) % size;
    },
    /** Newest first. */
    list(filter: HistoryFilter): ActionRecord[] {
      const out: ActionRecord[] = [];
      const n = ring.length;
      for (let i = 1; i <= n; i++) {
        const r = ring[(next - i + n) % n]!;
        if (filter.app !== undefined && r.app !== filter.app) continue;
        if (filter.backendId !== undefined && r.backendId !== filter.backendId) continue;
        if (filter.strategy !== undefined && r.strategy !== filter.strategy) continue;
        if (filter.since !== undefined && r.startedAt < filter.since) continue;
        out.push(r);
        if (filter.limit !== undefined && out.length >= filter.limit) break;
      }
      return out;
    },
  };
}
