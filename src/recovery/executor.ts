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
import type { ActionRecord, BackendCall, HistoryFilter, PlannedAction, PlannerInput } from './types.js';

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

export function createRecoveryExecutor(opts: RecoveryExecutorOptions): RecoveryExecutor {
  const { actions, clock, logger } = opts;
  const size = opts.historySize ?? 1000;
  const pickPort = opts.pickPort ?? ((range, used) => pickFreePort(range, used));
  const callBackend = opts.callBackend ?? ((call) => defaultCallBackend(call));
  // Ring buffer: the oldest record is overwritten once `size` are kept.
  const ring: ActionRecord[] = [];
  let next = 0;
  let running = 0;

  const effect = async (a: PlannedAction): Promise<Omit<DockerActionResult, 'durationMs'>> => {
    const none = a.containerId ?? '';
    switch (a.strategy) {
      case 'remove_from_lb':
        return { ok: true, containerId: none };
      case 'redirect_traffic':
      case 'restore_traffic':
      case 'drain_instance':
      case 'undrain_instance':
        // The planner's state already holds the change; nginx has to be told.
        await opts.applyTraffic?.(a);
        return { ok: true, containerId: none };
      case 'clear_cache': {
        if (!a.call) return { ok: false, containerId: none, error: 'clear_cache needs a call' };
        const r = await callBackend(a.call);
        return { ok: r.ok, containerId: none, ...(r.error ? { error: r.error } : {}) };
      }
      case 'restart_dependencies':
        if (!a.dependencies?.length) return { ok: false, containerId: none, error: 'restart_dependencies needs dependencies' };
        return actions.restartNamed(a.dependencies);
      default:
        break;
    }
    const id = a.containerId;
    if (!id) return { ok: false, containerId: '', error: `${a.strategy} needs a container` };
    if (a.drainFirst && opts.drain) {
      await opts.drain(a).catch((err: unknown) =>
        logger.warn({ action: a.id, backend: a.backendId, err: String(err) }, 'drain before stop failed; stopping anyway'),
      );
    }
    switch (a.strategy) {
      case 'restart_container':
      case 'rolling_restart':
        return actions.restart(id);
      case 'recreate_container':
        return actions.recreate(id);
      case 'scale_in':
        return actions.scaleIn(id);
      case 'replace_instance':
      case 'scale_out': {
        const spawn = a.spawn;
        if (!spawn) return { ok: false, containerId: id, error: `${a.strategy} needs a spawn spec` };
        let port: number | undefined;
        if (spawn.portRange) {
          const free = await pickPort(spawn.portRange, spawn.usedPorts);
          if (free === null) {
            return { ok: false, containerId: id, error: `no free port in ${spawn.portRange[0]}-${spawn.portRange[1]}` };
          }
          port = free;
        }
        const replica = { name: spawn.name, portEnv: spawn.portEnv, ...(port !== undefined ? { port } : {}) };
        return a.strategy === 'scale_out'
          ? actions.scaleOut(id, { ...replica, ...(spawn.replica !== null ? { replica: spawn.replica } : {}) })
          : actions.replace(id, replica);
      }
    }
  };

  return {
    async run(a) {
      const startedAt = clock.now();
      running++;
      let result: Omit<DockerActionResult, 'durationMs'>;
      try {
        result = a.dryRun ? { ok: true, containerId: a.containerId ?? '' } : await effect(a);
      } catch (err) {
        result = { ok: false, containerId: a.containerId ?? '', error: String(err) };
      } finally {
        running--;
      }
      const record: ActionRecord = {
        id: a.id,
        strategy: a.strategy,
        failureType: a.failureType,
        app: a.app,
        backendId: a.backendId,
        containerId: a.containerId,
        ...(result.newContainerId ? { newContainerId: result.newContainerId } : {}),
        ok: result.ok,
        dryRun: a.dryRun,
        ...(result.error ? { error: result.error } : {}),
        reason: a.reason,
        startedAt,
        durationMs: clock.now() - startedAt,
      };
      if (ring.length < size) ring.push(record);
      else ring[next] = record;
      next = (next + 1) % size;
      const fields = { action: a.id, strategy: a.strategy, app: a.app, backend: a.backendId, dryRun: a.dryRun, durationMs: record.durationMs };
      if (record.ok) logger.info({ ...fields, newContainer: record.newContainerId }, `recovery ${a.strategy}${a.dryRun ? ' (dry-run)' : ''}: ${a.reason}`);
      else logger.warn({ ...fields, err: record.error }, `recovery ${a.strategy} failed`);
      opts.onRecord?.(record);
      return record;
    },

    history(filter = {}) {
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

    inFlight: () => running,
  };
}
