/**
 * Whether a disruptive strategy applies to a failure now: the seed's `_should_apply_strategy`,
 * then the safety rules specific to each strategy. Refusals come back as data, with the reason
 * that goes into the decision record.
 */
import type { BackendView, FailureEvent } from '../health/types.js';
import { dependenciesKey, instanceKey, isHealthy, type PlannerState } from './planner-state.js';
import { capacityProblem } from './safety.js';
import { DEPENDENCY_TYPES, PROBE_TYPES } from './strategies.js';
import type { AppSnapshot, PlannerConfig, Strategy } from './types.js';

/**
 * Replicas count as failing "at the same time" when their latest such failure is this recent:
 * an ejected replica keeps failing once per probe period, so any period up to a minute shows.
 */
const DEPENDENCY_WINDOW_MS = 60_000;

/** One failure as the verdicts see it; `restarts`: restart_container on this instance within the restart window. */
export interface VerdictContext {
  s: PlannerState;
  event: FailureEvent;
  backend: BackendView;
  app: AppSnapshot;
  cfg: PlannerConfig;
  now: number;
  restarts: number;
}

/** `stop`: refuse this strategy and every later one for this input. */
export type Verdict = { ok: true; reason: string; template?: BackendView } | { ok: false; reason: string; stop?: boolean };

/** The seed's `_should_apply_strategy`, then the safety rules specific to the strategy. */
export function strategyVerdict(strategy: Strategy, c: VerdictContext): Verdict {
  const { event, backend, app, cfg, now } = c;
  const windowS = cfg.restart_window_seconds;
  let seedReason: string;
  switch (strategy) {
    case 'restart_dependencies':
      return dependenciesVerdict(c);
    case 'clear_cache':
      return clearCacheVerdict(c);
    case 'rolling_restart':
      return rollingVerdict(c);
    case 'restart_container':
      if (c.restarts >= cfg.max_restarts) {
        return { ok: false, reason: `restart limit reached: ${c.restarts} of ${cfg.max_restarts} in ${windowS}s` };
      }
      seedReason = `restart ${c.restarts + 1} of ${cfg.max_restarts} in ${windowS}s`;
      break;
    case 'recreate_container':
      if (c.restarts === 0 && event.failureType !== 'container_stopped') {
        return { ok: false, reason: `no restart tried in the last ${windowS}s: restart first` };
      }
      seedReason = c.restarts > 0 ? `${c.restarts} restart(s) in ${windowS}s did not help` : 'container stopped';
      break;
    case 'scale_out': {
      const done = c.s.apps[app.name]?.scaleOuts.length ?? 0;
      if (done > 0) return { ok: false, reason: `already scaled out in the last ${windowS}s` };
      if (event.consecutiveCount < 2) {
        return { ok: false, reason: `only ${event.consecutiveCount} consecutive failure(s); scale_out needs 2` };
      }
      if (app.replicas.length >= app.maxReplicas) {
        return { ok: false, reason: `at max replicas (${app.replicas.length} of ${app.maxReplicas})` };
      }
      const template = app.replicas.find((v) => isHealthy(v) && runningUnit(v) !== null);
      if (!template) return { ok: false, reason: 'no healthy running replica to clone' };
      // A Swarm service scales by its replica count: Swarm starts the task.
      const how = template.task ? `one more replica of service ${template.task.serviceName}` : `cloning ${template.container!.name}`;
      return {
        ok: true,
        template,
        reason: `${event.consecutiveCount} consecutive failures; ${how} (${app.replicas.length + 1} of at most ${app.maxReplicas} replicas)`,
      };
    }
    default:
      seedReason = 'replacing the instance with a new one';
  }

  // Container-level: restart, recreate, replace.
  const ctr = unitOf(backend);
  if (!ctr) return { ok: false, reason: 'no container: only backends discovered from Docker (containers or Swarm tasks) can be recovered' };
  if (PROBE_TYPES.has(event.failureType)) {
    if (!backend.ejected) {
      return { ok: false, reason: 'backend not ejected: probe failures act only once the health stage confirms them' };
    }
    // A container being stopped, or no longer running, is not failing its probes by itself: one
    // stopped on purpose is left alone, and a crash arrives as container_stopped from Docker.
    if (backend.draining) return { ok: false, reason: 'container is being stopped (draining): not recovered' };
    if (ctr.state !== 'running') {
      return { ok: false, reason: `container is ${ctr.state}: probe failures act only on running containers` };
    }
  }
  const graceMs = cfg.startup_grace_seconds * 1000;
  if (ctr.state === 'running' && now - ctr.startedAt < graceMs) {
    return { ok: false, reason: `inside startup grace: started ${Math.floor((now - ctr.startedAt) / 1000)}s ago (< ${cfg.startup_grace_seconds}s)` };
  }
  const problem = capacityProblem(c.s, app, backend, cfg);
  if (problem) return { ok: false, reason: problem };
  return { ok: true, reason: seedReason };
}

/** The container or Swarm task behind a backend, as far as the verdicts look at it. */
export function unitOf(v: BackendView): { state: string; startedAt: number } | null {
  if (v.container) return v.container;
  return v.task ? { state: v.task.state, startedAt: v.task.since } : null;
}

function runningUnit(v: BackendView): { state: string; startedAt: number } | null {
  const u = unitOf(v);
  return u?.state === 'running' ? u : null;
}

/** restart_dependencies: many replicas failing together point at what they share. */
function dependenciesVerdict(c: VerdictContext): Verdict {
  const { s, event, backend, app, cfg, now } = c;
  const deps = app.recovery.dependencies;
  if (deps.length === 0) return { ok: false, reason: 'the app declares no dependencies (recovery.dependencies)' };
  if (!backend.ejected) {
    return { ok: false, reason: 'backend not ejected: probe failures act only once the health stage confirms them' };
  }
  const failing = app.replicas.filter((v) => {
    if (v.backendId === backend.backendId) return true;
    const f = v.lastFailure;
    return v.ejected && !v.draining && f !== null && DEPENDENCY_TYPES.has(f.failureType) && now - f.timestamp <= DEPENDENCY_WINDOW_MS;
  }).length;
  const total = Math.max(app.replicas.length, 1);
  const need = Math.max(2, Math.ceil(total / 2));
  if (failing < need) {
    return { ok: false, reason: `${failing} of ${total} replica(s) failing their checks: a shared dependency needs at least ${need}` };
  }
  const key = dependenciesKey(app.name);
  const rec = s.instances[key];
  if (rec && now < rec.notBefore) {
    // Restarting each replica while the dependencies come back would only add to the outage.
    return {
      ok: false,
      stop: true,
      reason: `dependencies restarted ${Math.floor((now - (rec.actions.at(-1)?.at ?? now)) / 1000)}s ago: waiting ${Math.ceil((rec.notBefore - now) / 1000)}s more (backoff) for the app to recover`,
    };
  }
  const done = rec?.actions.length ?? 0;
  if (done >= cfg.max_restarts) {
    return { ok: false, reason: `dependency restart limit reached: ${done} of ${cfg.max_restarts} in ${cfg.restart_window_seconds}s` };
  }
  return {
    ok: true,
    reason: `${failing} of ${total} replicas failing their checks at once (${event.failureType}): restarting dependencies ${deps.join(', ')} (${done + 1} of ${cfg.max_restarts} in ${cfg.restart_window_seconds}s)`,
  };
}

/** clear_cache: the app's own way to give memory back, once per restart window per instance. */
function clearCacheVerdict(c: VerdictContext): Verdict {
  const { s, event, backend, app, cfg, now } = c;
  if (!app.recovery.clear_cache) return { ok: false, reason: 'the app declares no clear_cache call' };
  // resource-detector.ts says which resource in details.metric: 'cpu' or 'memory'.
  if (event.failureType === 'high_resource_usage' && event.details.metric !== 'memory') {
    return { ok: false, reason: `high ${String(event.details.metric ?? 'resource')} usage: clearing a cache frees memory only` };
  }
  const last = s.instances[instanceKey(backend)]?.actions.filter((a) => a.strategy === 'clear_cache').at(-1);
  if (last && now - last.at < cfg.restart_window_seconds * 1000) {
    return { ok: false, reason: `cache already cleared ${Math.floor((now - last.at) / 1000)}s ago: it did not help` };
  }
  const { method, path } = app.recovery.clear_cache;
  return { ok: true, reason: `${method} ${path} on ${backend.backendId} before anything is restarted` };
}

/** rolling_restart: can the app be restarted one replica at a time at all? */
function rollingVerdict(c: VerdictContext): Verdict {
  const { s, app, cfg, now } = c;
  const rec = s.apps[app.name];
  if (rec?.rolling) {
    return { ok: false, reason: `a rolling restart is under way (${rec.rolling.done.length} done, ${rec.rolling.pending.length} to go)` };
  }
  if (rec?.lastRollingAt != null && now - rec.lastRollingAt < cfg.restart_window_seconds * 1000) {
    return { ok: false, reason: `a rolling restart began ${Math.floor((now - rec.lastRollingAt) / 1000)}s ago (at most one per ${cfg.restart_window_seconds}s)` };
  }
  const withContainer = app.replicas.filter((v) => v.container).length;
  if (withContainer === 0) return { ok: false, reason: 'no container-backed replicas to restart' };
  if (app.replicas.length - 1 < cfg.min_healthy_replicas) {
    return { ok: false, reason: `${app.replicas.length} replica(s): restarting one would go below min_healthy_replicas ${cfg.min_healthy_replicas}` };
  }
  return { ok: true, reason: `restarting ${withContainer} replica(s) one at a time, each drained first and healthy again before the next` };
}
