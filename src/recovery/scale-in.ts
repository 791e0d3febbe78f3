/**
 * scale_in: once an app that recovery scaled out has been healthy for scale_in_after_seconds,
 * the replicas recovery added are removed again, newest first, one per tick.
 */
import { action, instanceName, isHealthy, targetOf, type PlannerState } from './planner-state.js';
import { appGate } from './safety.js';
import type { AppSnapshot, Decision, PlanResult, PlannerConfig } from './types.js';

/** Ticks: plans removing the newest replica recovery added, when the app has been healthy long enough. */
export function planScaleIn(s: PlannerState, app: AppSnapshot, cfg: PlannerConfig, now: number, out: PlanResult): void {
  const rec = s.apps[app.name];
  if (!rec || rec.added.length === 0 || rec.healthySince === null) return;
  if (now - rec.healthySince < cfg.scale_in_after_seconds * 1000) return;
  const byName = new Map(app.replicas.flatMap((v) => { const n = instanceName(v); return n ? [[n, v] as const] : []; }));
  const last = [...rec.added].reverse().find((a) => byName.has(a.name));
  if (!last) return;
  const target = byName.get(last.name)!;
  const decide = (outcome: Decision['outcome'], reason: string) =>
    out.decisions.push({ at: now, app: app.name, backendId: target.backendId, failureType: null, strategy: 'scale_in', outcome, reason });
  const gate = appGate(s, app.name, last.name, cfg, now);
  if (gate) {
    decide('skipped', gate);
    return;
  }
  const healthy = app.replicas.filter(isHealthy).length;
  if (isHealthy(target) && healthy - 1 < cfg.min_healthy_replicas) {
    decide('skipped', `would leave ${healthy - 1} healthy replica(s), below min_healthy_replicas ${cfg.min_healthy_replicas}`);
    return;
  }
  const healthyFor = `app healthy for ${Math.floor((now - rec.healthySince) / 1000)}s (>= ${cfg.scale_in_after_seconds}s)`;
  // Swarm picks the task a lower replica count stops, and stops routing to it as it decides.
  const reason = target.task
    ? `${healthyFor}: one replica fewer for service ${target.task.serviceName}, which recovery scaled out to ${last.name} (Swarm picks the task it stops)`
    : `${healthyFor}: removing ${last.name}, added by recovery`;
  const planned = action(s, {
    strategy: 'scale_in',
    failureType: null,
    app: app.name,
    ...targetOf(target),
    containerName: last.name,
    reason,
    disruptive: true,
    drainFirst: !target.task,
  }, cfg, now);
  out.actions.push(planned);
  decide('planned', reason);
  rec.disruptive.push(now);
  rec.inFlight = { actionId: planned.id, strategy: 'scale_in', instance: last.name, spawnName: null, dryRun: planned.dryRun, at: now };
}
