/**
 * rolling_restart: one decision carried out over many inputs. Its progress (which replica is
 * being restarted, which wait) lives in the app's record, and each tick takes the next step: one
 * replica at a time, drained first, each healthy again before the next.
 */
import type { BackendView, FailureEvent } from '../health/types.js';
import { action, appOf, isHealthy, type AppRecord, type PlannerState } from './planner-state.js';
import { appGate, book, capacityProblem } from './safety.js';
import type { AppSnapshot, Decision, PlanResult, PlannerConfig } from './types.js';

/** Starts a rolling restart of every container-backed replica, the one that reported first leading. */
export function startRolling(s: PlannerState, event: FailureEvent, backend: BackendView, app: AppSnapshot, now: number, reason: string): void {
  const names = app.replicas.flatMap((v) => (v.container ? [v.container.name] : []));
  const first = backend.container?.name;
  // The replica that reported the failure first; the rest in a stable order.
  const rest = names.filter((n) => n !== first).sort();
  const rec = appOf(s, app.name);
  rec.rolling = {
    failureType: event.failureType,
    cause: `${event.message}; ${reason}`,
    startedAt: now,
    pending: first ? [first, ...rest] : rest,
    current: null,
    done: [],
  };
  rec.lastRollingAt = now;
}

/** Gives a rolling restart up, saying why and how far it got. */
export function abandonRolling(rec: AppRecord, app: string, now: number, out: PlanResult, why: string): void {
  out.decisions.push({
    at: now,
    app,
    backendId: null,
    failureType: rec.rolling?.failureType ?? null,
    strategy: 'rolling_restart',
    outcome: 'noted',
    reason: `${why}: rolling restart abandoned (${rec.rolling?.done.length ?? 0} restarted, ${rec.rolling?.pending.length ?? 0} left)`,
  });
  rec.rolling = null;
}

/** The next step of a rolling restart: wait for the replica being restarted, or restart the next. */
export function stepRolling(s: PlannerState, app: AppSnapshot, cfg: PlannerConfig, now: number, out: PlanResult): void {
  const rec = s.apps[app.name];
  const r = rec?.rolling;
  if (!rec || !r) return;
  const byName = new Map(app.replicas.flatMap((v) => (v.container ? [[v.container.name, v] as const] : [])));
  const note = (outcome: Decision['outcome'], reason: string, v?: BackendView) =>
    out.decisions.push({
      at: now,
      app: app.name,
      backendId: v?.backendId ?? null,
      failureType: r.failureType,
      strategy: 'rolling_restart',
      outcome,
      reason,
    });

  if (r.current) {
    const { name, restartedAt } = r.current;
    if (restartedAt === null) return; // its restart is in flight
    const v = byName.get(name);
    // Healthy by a probe that started after the restart, not by the state from before it.
    const back = v && isHealthy(v) && v.lastProbe?.healthy === true && v.lastProbe.startedAt >= restartedAt;
    if (!v || back) {
      r.done.push(name);
      r.current = null;
      note('noted', v ? `${name} healthy again after its restart` : `${name} gone after its restart`, v);
    } else {
      const limitMs = (cfg.action_timeout_seconds + cfg.startup_grace_seconds) * 1000;
      if (now - restartedAt > limitMs) {
        abandonRolling(rec, app.name, now, out, `${name} not healthy ${Math.floor((now - restartedAt) / 1000)}s after its restart`);
      }
      return;
    }
  }

  for (;;) {
    const name = r.pending[0];
    if (name === undefined) {
      note('noted', `rolling restart complete: ${r.done.length} replica(s) restarted`);
      rec.rolling = null;
      return;
    }
    const v = byName.get(name);
    if (v?.container && v.container.startedAt < r.startedAt) break;
    r.pending.shift();
    note('noted', v ? `${name} skipped: started since the rolling restart began` : `${name} skipped: gone`, v);
  }
  const name = r.pending[0]!;
  const v = byName.get(name)!;
  const ctr = v.container!;
  const gate = appGate(s, app.name, name, cfg, now) ?? capacityProblem(s, app, v, cfg);
  if (gate) {
    note('skipped', `next: ${name}; waiting: ${gate}`, v);
    return;
  }
  const step = r.done.length + 1;
  const total = r.done.length + r.pending.length;
  const planned = action(s, {
    strategy: 'rolling_restart',
    failureType: r.failureType,
    app: app.name,
    backendId: v.backendId,
    containerId: ctr.id,
    containerName: name,
    reason: `${r.cause}: ${name} (${step} of ${total})`,
    disruptive: true,
    drainFirst: !v.ejected,
  }, cfg, now);
  out.actions.push(planned);
  note('planned', planned.reason, v);
  r.pending.shift();
  r.current = { name, actionId: planned.id, restartedAt: null };
  book(s, planned, name, cfg, now);
}
