/**
 * What a restart must not forget: backend states (health, breaker, failure window) and the
 * recovery planner's state, written to the store as they change (every flush interval, and once
 * more at stop), and read back before anything probes.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Logger } from '../observability/logger.js';
import { createPlannerState, restorePlannerState, type PlannerState } from '../recovery/planner-state.js';
import type { StateStore } from './types.js';

const BACKEND_PREFIX = 'backend:';
/**
 * Backend states written per turn at most. A start or a mass failure makes thousands of them
 * dirty at once; the rest follow in later turns of the event loop so /healthz and probe answers
 * are not held up behind one long loop.
 */
export const PERSIST_CHUNK = 500;
const PLANNER_KEY = 'planner';

export interface StatePersisterOptions {
  store: StateStore;
  registry: HealthRegistry;
  clock: Clock;
  logger: Logger;
  /** Seconds between writes (store.flush_interval_seconds), read each time. */
  intervalSeconds: () => number;
}

export interface RestoredSidecarState {
  /** The planner's saved state, or a fresh one. */
  planner: PlannerState;
  /** Alert records for alerting.restore(). */
  alerts: unknown[];
  /** Every saved state by key, for the stages that keep their own (e.g. the router's memory). */
  states: ReadonlyMap<string, unknown>;
}

export interface StatePersister {
  /** Reads the saved state: backend states go into the registry, the rest is returned. */
  restore(): Promise<RestoredSidecarState>;
  /** Starts writing changes every interval; `planner` gives the planner's current state. */
  start(planner: () => PlannerState): void;
  /** Writes what changed since the last write, then stops. */
  stop(): void;
}

export function createStatePersister(opts: StatePersisterOptions): StatePersister {
  const { store, registry, clock } = opts;
  let planner: (() => PlannerState) | null = null;
  let savedPlannerJson = '';
  let persistedPlanner: PlannerState | null = null;
  let timer: TimerHandle | null = null;
  /** Dirty backends taken from the registry and not written yet, from `backlogAt` on. */
  let backlog: string[] = [];
  let backlogAt = 0;

  /** Writes up to `limit` changed backend states (their state now); true when some are left. */
  const persistBackends = (limit: number): boolean => {
    if (backlogAt >= backlog.length) {
      backlog = registry.takeDirty();
      backlogAt = 0;
    }
    const end = Math.min(backlog.length, backlogAt + limit);
    for (; backlogAt < end; backlogAt++) {
      const id = backlog[backlogAt]!;
      const state = registry.exportState(id);
      store.saveState(`${BACKEND_PREFIX}${id}`, state ? JSON.stringify(state) : null);
    }
    return backlogAt < backlog.length;
  };
  /** Writes what changed since the last call: backend states, the planner's state. */
  const persist = () => {
    while (persistBackends(Infinity));
    persistPlanner();
  };
  const persistPlanner = () => {
    if (!planner) return;
    // plan() returns a new state object on every input; only a new object can hold a change.
    const current = planner();
    if (current === persistedPlanner) return;
    persistedPlanner = current;
    const json = JSON.stringify(current);
    if (json === savedPlannerJson) return;
    store.saveState(PLANNER_KEY, json);
    savedPlannerJson = json;
  };
  const loop = () => {
    // More than a chunk: the rest in the next turn (a 0 ms timer lets I/O in between).
    const more = persistBackends(PERSIST_CHUNK);
    if (!more) persistPlanner();
    timer = clock.setTimeout(loop, more ? 0 : opts.intervalSeconds() * 1000);
    timer.unref?.();
  };

  return {
    async restore() {
      const restored = await store.restore();
      const status = store.status();
      if (status.state === 'degraded') {
        opts.logger.error({ path: status.path, err: status.error }, 'state store unavailable: routing goes on with state in memory only');
      }
      const saved = restored.states.get(PLANNER_KEY);
      const result = { planner: restorePlanner(saved, opts.logger), alerts: restored.alerts, states: restored.states };
      const backends = new Map<string, unknown>();
      for (const [key, json] of restored.states) if (key.startsWith(BACKEND_PREFIX)) backends.set(key.slice(BACKEND_PREFIX.length), json);
      const r = registry.restore(backends);
      if (r.rejected.length > 0) opts.logger.warn({ backends: r.rejected }, 'saved backend states were malformed and are ignored');
      if (r.restored > 0 || saved !== undefined) {
        opts.logger.info({ backends: r.restored, recovery: saved !== undefined, alerts: restored.alerts.length }, 'state restored from the store');
      }
      savedPlannerJson = saved === undefined ? '' : JSON.stringify(saved);
      return result;
    },
    start(current) {
      planner = current;
      loop();
    },
    stop() {
      if (timer) clock.clearTimeout(timer);
      timer = null;
      persist();
    },
  };
}

function restorePlanner(saved: unknown, logger: Logger): PlannerState {
  if (saved === undefined) return createPlannerState();
  const planner = restorePlannerState(saved);
  if (planner) return planner;
  logger.warn('saved recovery state was malformed and is ignored: recovery budgets start over');
  return createPlannerState();
}
