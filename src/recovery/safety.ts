/**
 * The safety limits the seed lacks, shared by every disruptive strategy: one action in flight
 * per app, a budget per app, backoff per instance, and capacity (min_healthy_replicas,
 * max_unavailable_fraction); and the booking of an action that makes them hold next time.
 */
import type { BackendView } from '../health/types.js';
import { appOf, instanceOf, isHealthy, type PlannerState } from './planner-state.js';
import type { AppSnapshot, PlannedAction, PlannerConfig } from './types.js';

/** Refusals that hold for every disruptive strategy alike: they end the strategy loop. */
export function appGate(s: PlannerState, app: string, key: string, cfg: PlannerConfig, now: number): string | null {
  const rec = appOf(s, app);
  if (rec.inFlight) {
    return `${rec.inFlight.strategy} (${rec.inFlight.actionId}) is in flight for app ${app}: one disruptive action at a time`;
  }
  if (rec.disruptive.length >= cfg.budget_per_app) {
    return `recovery budget exhausted: ${rec.disruptive.length} of ${cfg.budget_per_app} disruptive actions in ${cfg.budget_window_seconds}s`;
  }
  const inst = s.instances[key];
  if (inst && now < inst.notBefore) {
    return `backoff: no disruptive action on ${key} for ${Math.ceil((inst.notBefore - now) / 1000)}s more (${inst.backoffMs / 1000}s after the last one)`;
  }
  return null;
}

/** Books a disruptive action: instance history and backoff, app budget, the in-flight slot. */
export function book(s: PlannerState, action: PlannedAction, key: string, cfg: PlannerConfig, now: number): void {
  const inst = instanceOf(s, key, action.app);
  const appRec = appOf(s, action.app);
  inst.actions.push({ strategy: action.strategy, at: now });
  inst.backoffMs = inst.backoffMs === 0
    ? cfg.backoff_min_seconds * 1000
    : Math.min(inst.backoffMs * 2, cfg.backoff_max_seconds * 1000);
  inst.notBefore = now + inst.backoffMs;
  appRec.disruptive.push(now);
  if (action.strategy === 'scale_out') appRec.scaleOuts.push(now);
  appRec.inFlight = {
    actionId: action.id,
    strategy: action.strategy,
    instance: key,
    spawnName: action.spawn?.name ?? null,
    dryRun: action.dryRun,
    at: now,
  };
}

/** Container names of the app's replicas that recovery has out of service now. */
function unavailable(s: PlannerState, app: AppSnapshot): Set<string> {
  const names = new Set<string>();
  for (const v of app.replicas) {
    if (!v.container) continue;
    const rec = s.instances[v.container.name];
    if ((rec?.recoveringSince != null && !isHealthy(v)) || s.drains[v.container.name]) names.add(v.container.name);
  }
  return names;
}

function maxUnavailable(cfg: PlannerConfig, app: AppSnapshot): number {
  return Math.max(1, Math.ceil(cfg.max_unavailable_fraction * app.replicas.length));
}

/** Why taking `v` out of service now would break min_healthy_replicas or max_unavailable; null if not. */
export function capacityProblem(s: PlannerState, app: AppSnapshot, v: BackendView, cfg: PlannerConfig): string | null {
  if (isHealthy(v)) {
    const healthy = app.replicas.filter(isHealthy).length;
    if (healthy - 1 < cfg.min_healthy_replicas) {
      return `would leave ${healthy - 1} healthy replica(s), below min_healthy_replicas ${cfg.min_healthy_replicas}`;
    }
  }
  const acting = unavailable(s, app);
  if (v.container) acting.add(v.container.name);
  const most = maxUnavailable(cfg, app);
  if (acting.size > most) {
    return `would act on ${acting.size} of ${app.replicas.length} replicas at once (at most ${most})`;
  }
  return null;
}
