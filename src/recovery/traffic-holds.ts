/**
 * The traffic strategies (remove_from_lb, redirect_traffic, drain_instance) and their reverses
 * (restore_traffic, undrain_instance). They stop nothing, so they never end the strategy loop:
 * lowering a slow backend's weight does not rule out scaling out. Their effect is state kept in
 * the planner (redirects, drains), which `trafficHolds` hands to the upstream builder; the
 * reverses are planned on ticks, like scale_in.
 */
import type { BackendView } from '../health/types.js';
import { action, instanceKey, instanceOf, isHealthy, normalize, targetOf, type InstanceRecord, type PlannerState } from './planner-state.js';
import { capacityProblem } from './safety.js';
import type { AppSnapshot, Decision, PlanResult, PlannerConfig, Strategy } from './types.js';
import type { VerdictContext } from './verdicts.js';

/** The share of its configured weight a redirected backend keeps. */
const REDIRECT_FACTOR = 0.5;

/** What recovery currently holds nginx to, beyond health: for the upstream builder. */
export interface TrafficHolds {
  /** redirect_traffic: backend id -> share of its configured weight (0 < factor < 1). */
  weightFactors: Map<string, number>;
  /** drain_instance: containers to keep out of nginx (mark their backends draining). */
  drainedContainerIds: Set<string>;
}

/** The holds to apply; ones recorded in dry-run are left out (recorded, never applied). */
export function trafficHolds(state: PlannerState): TrafficHolds {
  const s = normalize(state);
  const weightFactors = new Map<string, number>();
  for (const [id, r] of Object.entries(s.redirects)) if (!r.dryRun) weightFactors.set(id, r.factor);
  const drainedContainerIds = new Set<string>();
  for (const d of Object.values(s.drains)) if (!d.dryRun) drainedContainerIds.add(d.containerId);
  return { weightFactors, drainedContainerIds };
}

/**
 * Plans one traffic strategy for a failure when its rules allow: the action (remove_from_lb's is
 * a no-op: ejection is the health stage's) and the hold it leaves in the state.
 */
export function planTrafficStrategy(strategy: Strategy, c: VerdictContext, out: PlanResult): void {
  const { s, event, backend, app, cfg, now } = c;
  const decide = (outcome: Decision['outcome'], reason: string) =>
    out.decisions.push({ at: now, app: app.name, backendId: backend.backendId, failureType: event.failureType, strategy, outcome, reason });
  const verdict = trafficVerdict(strategy, c);
  if (!verdict.ok) {
    decide('skipped', verdict.reason);
    return;
  }
  const reason = strategy === 'remove_from_lb' ? verdict.reason : `${event.message}; ${verdict.reason}`;
  out.actions.push(action(s, { strategy, failureType: event.failureType, app: app.name, ...targetOf(backend), reason, disruptive: false }, cfg, now));
  decide('planned', strategy === 'remove_from_lb' ? `no-op: ${reason}` : reason);
  holdTraffic(s, strategy, instanceOf(s, instanceKey(backend), app.name), backend, app, cfg, now);
}

type TrafficVerdict = { ok: true; reason: string } | { ok: false; reason: string };

/** Rules of the strategies that only change where nginx sends traffic. */
function trafficVerdict(strategy: Strategy, c: VerdictContext): TrafficVerdict {
  const { s, event, backend, app, cfg, now } = c;
  switch (strategy) {
    case 'remove_from_lb': {
      if (!backend.ejected) return { ok: false, reason: 'not ejected: ejection is the health stage\'s call (thresholds and breaker)' };
      // Out of nginx because it is being stopped, not because recovery had anything to do.
      if (backend.draining) return { ok: false, reason: 'container is being stopped (draining): not recovered' };
      if (s.instances[instanceKey(backend)]?.lbNoted) {
        return { ok: false, reason: 'already ejected by the health stage (recorded once per ejection)' };
      }
      return { ok: true, reason: 'already ejected by the health stage' };
    }
    case 'redirect_traffic': {
      const held = s.redirects[backend.backendId];
      if (held) {
        return { ok: false, reason: `already at ${held.factor * 100}% of its weight since ${Math.floor((now - held.at) / 1000)}s ago` };
      }
      if (backend.ejected) return { ok: false, reason: 'ejected: its weight does not matter' };
      if (event.failureType === 'high_response_time' && event.consecutiveCount < 2) {
        return { ok: false, reason: `only ${event.consecutiveCount} consecutive slow probe(s); redirect_traffic needs 2` };
      }
      const others = app.replicas.filter(
        (v) => v.backendId !== backend.backendId && !v.backup && isHealthy(v) && !s.redirects[v.backendId],
      );
      if (others.length === 0) return { ok: false, reason: 'no other healthy replica at full weight to take its traffic' };
      return {
        ok: true,
        reason: `weight ${backend.weight} lowered to ${REDIRECT_FACTOR * 100}% of its share (${others.length} other replica(s) take the rest) until no such failure for ${cfg.scale_in_after_seconds}s`,
      };
    }
    case 'drain_instance': {
      const ctr = backend.container;
      if (!ctr) return { ok: false, reason: 'no container: only containers are drained' };
      if (s.drains[ctr.name]) return { ok: false, reason: 'already drained' };
      if (backend.draining) return { ok: false, reason: 'container is being stopped (draining)' };
      const problem = capacityProblem(s, app, backend, cfg);
      if (problem) return { ok: false, reason: problem };
      return {
        ok: true,
        reason: `held out of nginx, still probed, until it has run ${cfg.startup_grace_seconds}s healthy without a restart (Docker's restart policy restarts it)`,
      };
    }
    default:
      throw new Error(`not a traffic strategy: ${strategy}`);
  }
}

/** Records the effect of a traffic strategy just planned. */
function holdTraffic(
  s: PlannerState,
  strategy: Strategy,
  inst: InstanceRecord,
  backend: BackendView,
  app: AppSnapshot,
  cfg: PlannerConfig,
  now: number,
): void {
  const dryRun = cfg.mode === 'dry-run';
  if (strategy === 'remove_from_lb') inst.lbNoted = true;
  if (strategy === 'redirect_traffic') {
    s.redirects[backend.backendId] = { app: app.name, factor: REDIRECT_FACTOR, at: now, lastSeenAt: now, wasEjected: false, dryRun };
  }
  if (strategy === 'drain_instance') {
    const ctr = backend.container!;
    s.drains[ctr.name] = {
      app: app.name,
      backendId: backend.backendId,
      containerId: ctr.id,
      at: now,
      restartCount: ctr.restartCount,
      stableSince: null,
      dryRun,
    };
  }
}

/** Ticks: readmits drained instances that are stable, restores weights of backends that recovered. */
export function planTrafficRelease(s: PlannerState, app: AppSnapshot, cfg: PlannerConfig, now: number, out: PlanResult): void {
  const byId = new Map(app.replicas.map((v) => [v.backendId, v]));
  const byName = new Map(app.replicas.flatMap((v) => (v.container ? [[v.container.name, v] as const] : [])));
  const release = (strategy: Strategy, v: BackendView, reason: string) => {
    out.actions.push(action(s, { strategy, failureType: null, app: app.name, ...targetOf(v), reason, disruptive: false }, cfg, now));
    out.decisions.push({ at: now, app: app.name, backendId: v.backendId, failureType: null, strategy, outcome: 'planned', reason });
  };
  const note = (backendId: string, strategy: Strategy, reason: string) =>
    out.decisions.push({ at: now, app: app.name, backendId, failureType: null, strategy, outcome: 'noted', reason });

  for (const [id, r] of Object.entries(s.redirects)) {
    if (r.app !== app.name) continue;
    const v = byId.get(id);
    if (!v) {
      delete s.redirects[id];
      note(id, 'restore_traffic', 'backend gone: its lowered weight is dropped');
      continue;
    }
    if (v.ejected) continue;
    const quietMs = now - r.lastSeenAt;
    if (r.wasEjected || quietMs >= cfg.scale_in_after_seconds * 1000) {
      delete s.redirects[id];
      release('restore_traffic', v, r.wasEjected
        ? `readmitted after an ejection: back to its configured weight ${v.weight}`
        : `no slow, erroring or overloaded signal for ${Math.floor(quietMs / 1000)}s: back to its configured weight ${v.weight}`);
    }
  }

  for (const [name, d] of Object.entries(s.drains)) {
    if (d.app !== app.name) continue;
    const v = byName.get(name);
    if (!v || !v.container) {
      delete s.drains[name];
      note(d.backendId, 'undrain_instance', `container ${name} gone: nothing left to hold out of traffic`);
      continue;
    }
    const ctr = v.container;
    if (ctr.restartCount !== d.restartCount || ctr.id !== d.containerId) {
      d.restartCount = ctr.restartCount;
      d.containerId = ctr.id;
      d.stableSince = null;
    }
    // Ejected because it is drained: its health state is what tells.
    const stable = ctr.state === 'running' && v.health === 'healthy' && v.lastProbe?.healthy === true;
    if (!stable) {
      d.stableSince = null;
      continue;
    }
    d.stableSince ??= now;
    const stableMs = now - d.stableSince;
    if (stableMs >= cfg.startup_grace_seconds * 1000) {
      delete s.drains[name];
      release('undrain_instance', v, `healthy without a restart for ${Math.floor(stableMs / 1000)}s: back in nginx`);
    }
  }
}

