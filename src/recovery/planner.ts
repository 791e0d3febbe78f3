/**
 * The seed's RecoveryManager as a pure planner: which recovery action to take for a failure,
 * within safety limits the seed lacks. No I/O and no timers; time comes from `now` and the state
 * is plain JSON data so it can be persisted across restarts. Effects are docker-actions.ts's job
 * (and backend-call.ts's), run by executor.ts, whose results come back here as `action_result`
 * inputs.
 *
 * How the seed's handle_failure loop maps onto a planner that cannot wait for an effect:
 * - remove_from_lb is what ejection already does (thresholds and breaker in the health stage),
 *   so it is recorded once per ejection as a no-op and never stops the loop.
 * - Traffic strategies (remove_from_lb, redirect_traffic, drain_instance) stop nothing, so they
 *   never stop the loop either: lowering a slow backend's weight does not rule out scaling out.
 *   Their effect is held in the planner's state (`trafficHolds`), which the daemon hands to the
 *   upstream builder; their reverse (restore_traffic, undrain_instance) is planned on ticks, like
 *   scale_in.
 * - At most one disruptive action is planned per input, and at most one is in flight per app.
 *   The seed's loop moves on to the next strategy when one fails; here a failed action counts in
 *   the history like a successful one, so the next failure event (after the backoff) walks the
 *   same rules again and escalates (e.g. restart, restart, restart, then recreate). The seed's
 *   `_requires_multiple_strategies` is undefined; no failure type needs two disruptive actions
 *   at once, which would break the one-in-flight rule anyway.
 * - rolling_restart is one decision carried out over many inputs: its progress (which replica is
 *   being restarted, which wait) lives in the app's record, and each tick takes the next step.
 *
 * The seed's remaining strategies:
 * - failover_to_backup is not planned here: it is declarative (upstream.backup_app), and the
 *   upstream builder (upstream/desired.ts) renders the backup app's routable servers as nginx
 *   `backup` servers and routes to them instead of panicking when every server of the app is
 *   ejected. nginx itself then fails over at once, before any probe confirms anything.
 *
 * Instances are keyed by container name (restart and recreate keep it), so restart counts and
 * backoff survive a recreate; a backend without a container is keyed by its backend id.
 *
 * Here: `plan` (one input to the next state) and the failure loop. Beside it: types.ts (the
 * data), strategies.ts (which strategies for which failure), planner-state.ts (the state, its
 * restore and summary), verdicts.ts (whether a disruptive strategy applies), safety.ts (budget,
 * backoff, one in flight, capacity), traffic-holds.ts, rolling-restart.ts and scale-in.ts.
 */
import type { SidecarConfig } from '../config/types.js';
import type { BackendView, FailureEvent } from '../health/types.js';
import {
  action,
  dependenciesKey,
  instanceKey,
  instanceName,
  instanceOf,
  isHealthy,
  isSteady,
  normalize,
  prune,
  spawnSpec,
  targetOf,
  taskSpawnSpec,
  taskTarget,
  type PlannerState,
} from './planner-state.js';
import { abandonRolling, startRolling, stepRolling } from './rolling-restart.js';
import { appGate, book } from './safety.js';
import { planScaleIn } from './scale-in.js';
import { PROBE_TYPES, STOPPING, STRATEGY_MAP, TRAFFIC } from './strategies.js';
import { planTrafficRelease, planTrafficStrategy } from './traffic-holds.js';
import type { AppSnapshot, Decision, PlanResult, PlannedAction, PlannerConfig, PlannerInput, Strategy } from './types.js';
import { strategyVerdict, unitOf, type Verdict, type VerdictContext } from './verdicts.js';

/**
 * The planner's settings from the sidecar's: startup grace is docker.startup_grace_seconds; the
 * action timeout covers one stop (stop_timeout_seconds, twice for safety) plus a minute to
 * create, start and see the container running.
 */
export function plannerConfig(config: Pick<SidecarConfig, 'recovery' | 'docker'>): PlannerConfig {
  return {
    ...config.recovery,
    startup_grace_seconds: config.docker.startup_grace_seconds,
    action_timeout_seconds: 2 * config.recovery.stop_timeout_seconds + 60,
  };
}

/**
 * Applies one input. Never mutates `state`. Mode off plans nothing and explains nothing; dry-run
 * plans exactly what `on` would, marks the actions dryRun, and evolves the state as if they had
 * succeeded, so budgets and backoff show in the record as they would apply.
 */
export function plan(state: PlannerState, input: PlannerInput, cfg: PlannerConfig, now: number): PlanResult {
  const s = normalize(structuredClone(state));
  const out: PlanResult = { state: s, actions: [], decisions: [] };
  prune(s, cfg, now);
  expireInFlight(s, cfg, now, out);
  switch (input.kind) {
    case 'action_result':
      applyResult(s, input, now, out);
      break;
    case 'tick':
      for (const app of input.apps) observe(s, app, cfg, now);
      forgetVanished(s, input.apps, now);
      if (cfg.mode !== 'off') {
        for (const app of input.apps) {
          planTrafficRelease(s, app, cfg, now, out);
          stepRolling(s, app, cfg, now, out);
          planScaleIn(s, app, cfg, now, out);
        }
      }
      break;
    case 'failure':
      observe(s, input.app, cfg, now);
      if (cfg.mode !== 'off') planFailure(s, input.event, input.backend, input.app, cfg, now, out);
      break;
  }
  return out;
}

function expireInFlight(s: PlannerState, cfg: PlannerConfig, now: number, out: PlanResult): void {
  for (const [name, rec] of Object.entries(s.apps)) {
    const f = rec.inFlight;
    if (!f || now - f.at < cfg.action_timeout_seconds * 1000) continue;
    rec.inFlight = null;
    out.decisions.push({
      at: now,
      app: name,
      backendId: null,
      failureType: null,
      strategy: f.strategy,
      outcome: 'noted',
      reason: `no result for action ${f.actionId} after ${cfg.action_timeout_seconds}s: taken as failed`,
    });
    // A restart that never reported back (e.g. the sidecar restarted meanwhile) may or may not
    // have happened: going on could leave two replicas down.
    if (rec.rolling?.current?.actionId === f.actionId) abandonRolling(rec, name, now, out, `${rec.rolling.current.name}'s restart never reported back`);
  }
}

/** Folds what the app looks like now into the records of instances recovery has touched. */
function observe(s: PlannerState, app: AppSnapshot, cfg: PlannerConfig, now: number): void {
  const resetAfter = 2 * cfg.backoff_max_seconds * 1000;
  for (const v of app.replicas) {
    const redirect = s.redirects[v.backendId];
    if (redirect && v.ejected) redirect.wasEjected = true;
    const rec = s.instances[instanceKey(v)];
    if (!rec) continue;
    if (!v.ejected) rec.lbNoted = false;
    if (!isHealthy(v)) {
      rec.healthySince = null;
      continue;
    }
    rec.healthySince ??= now;
    rec.recoveringSince = null;
    // Kubernetes' CrashLoopBackOff rule: a container that ran fine for twice the longest backoff
    // starts over from the shortest.
    if (now - rec.healthySince >= resetAfter) {
      rec.backoffMs = 0;
      rec.notBefore = 0;
    }
  }
  const rec = s.apps[app.name];
  if (!rec) return;
  const present = new Set(app.replicas.flatMap((v) => instanceName(v) ?? []));
  // A replica just added may not be discovered yet; forget it only once it has had time to show.
  rec.added = rec.added.filter((a) => present.has(a.name) || now - a.at < cfg.action_timeout_seconds * 1000);
  const addedNames = new Set(rec.added.map((a) => a.name));
  const originals = app.replicas.filter((v) => !addedNames.has(instanceName(v) ?? ''));
  const allHealthy = originals.length > 0 && originals.every(isSteady);
  rec.healthySince = allHealthy ? (rec.healthySince ?? now) : null;
}

/** Drops records of containers no app has any more, once nothing in them still matters. */
function forgetVanished(s: PlannerState, apps: AppSnapshot[], now: number): void {
  const present = new Set(apps.flatMap((a) => a.replicas.map(instanceKey)));
  for (const a of apps) present.add(dependenciesKey(a.name));
  const inFlight = new Set(Object.values(s.apps).flatMap((a) => (a.inFlight ? [a.inFlight.instance] : [])));
  for (const [key, rec] of Object.entries(s.instances)) {
    if (!present.has(key) && !inFlight.has(key) && rec.actions.length === 0 && rec.notBefore <= now) {
      delete s.instances[key];
    }
  }
  const names = new Set(apps.map((a) => a.name));
  for (const [name, rec] of Object.entries(s.apps)) {
    const idle = !rec.inFlight && !rec.rolling && rec.added.length === 0 && rec.disruptive.length === 0 && rec.scaleOuts.length === 0;
    if (!names.has(name) && idle) delete s.apps[name];
  }
  // Holds of apps that are gone hold nothing.
  for (const [id, r] of Object.entries(s.redirects)) if (!names.has(r.app)) delete s.redirects[id];
  for (const [key, d] of Object.entries(s.drains)) if (!names.has(d.app)) delete s.drains[key];
}

function applyResult(
  s: PlannerState,
  input: Extract<PlannerInput, { kind: 'action_result' }>,
  now: number,
  out: PlanResult,
): void {
  const rec = s.apps[input.app];
  const f = rec?.inFlight;
  const note = (strategy: Strategy | null, reason: string) =>
    out.decisions.push({ at: now, app: input.app, backendId: null, failureType: null, strategy, outcome: 'noted', reason });
  if (!rec || !f || f.actionId !== input.actionId) {
    // Results that arrive after their action timed out change nothing: the app has moved on.
    // Traffic actions are never in flight: their effect is already in the state.
    note(null, `result of action ${input.actionId} ignored: not in flight`);
    return;
  }
  rec.inFlight = null;
  const inst = s.instances[f.instance];
  // Backoff runs from when the action finished, not from when it was planned.
  if (inst) inst.notBefore = now + inst.backoffMs;
  if (!input.ok) {
    note(f.strategy, `action ${f.actionId} failed: ${input.error ?? 'unknown error'}`);
    if (f.strategy === 'rolling_restart' && rec.rolling?.current?.actionId === f.actionId) {
      abandonRolling(rec, input.app, now, out, `restarting ${rec.rolling.current.name} failed`);
    }
    return;
  }
  note(f.strategy, `action ${f.actionId} succeeded${f.dryRun ? ' (dry-run)' : ''}`);
  switch (f.strategy) {
    case 'restart_container':
    case 'recreate_container':
      if (inst) inst.recoveringSince = now;
      break;
    case 'rolling_restart':
      if (inst) inst.recoveringSince = now;
      if (rec.rolling?.current?.actionId === f.actionId) rec.rolling.current.restartedAt = now;
      break;
    case 'replace_instance':
      if (f.spawnName) instanceOf(s, f.spawnName, input.app).recoveringSince = now;
      break;
    case 'scale_out':
      // A dry-run created nothing, so there is nothing to scale in later.
      if (f.spawnName && !f.dryRun) rec.added.push({ name: f.spawnName, at: now });
      break;
    case 'scale_in':
      rec.added = rec.added.filter((a) => a.name !== f.instance);
      break;
    default:
      break;
  }
}

/**
 * The seed's handle_failure loop: every traffic strategy that applies, then at most one
 * disruptive one, the first whose rules and the app's safety limits allow.
 */
function planFailure(
  s: PlannerState,
  event: FailureEvent,
  backend: BackendView,
  app: AppSnapshot,
  cfg: PlannerConfig,
  now: number,
  out: PlanResult,
): void {
  const type = event.failureType;
  const decide = (strategy: Strategy | null, outcome: Decision['outcome'], reason: string) =>
    out.decisions.push({ at: now, app: app.name, backendId: backend.backendId, failureType: type, strategy, outcome, reason });
  const strategies = STRATEGY_MAP[type];
  if (strategies.length === 0) {
    decide(null, 'skipped', `no recovery strategy for ${type}`);
    return;
  }
  // A container (or task) inside its startup grace is starting, as Docker's HEALTHCHECK
  // start_period sees it: its probes fail until the app listens, and the health stage keeps it out
  // of nginx meanwhile (CI: a replica's first probe, before its app listened, recorded
  // remove_from_lb). One that never comes up is application_startup_failed, from Docker.
  const unit = unitOf(backend);
  if (PROBE_TYPES.has(type) && unit?.state === 'running' && now - unit.startedAt < cfg.startup_grace_seconds * 1000) {
    decide(null, 'skipped', `inside startup grace: started ${Math.floor((now - unit.startedAt) / 1000)}s ago (< ${cfg.startup_grace_seconds}s); probe failures of a starting container are not recovered`);
    return;
  }
  const key = instanceKey(backend);
  const inst = instanceOf(s, key, app.name);
  const windowCut = now - cfg.restart_window_seconds * 1000;
  const restarts = inst.actions.filter((a) => a.strategy === 'restart_container' && a.at > windowCut).length;
  // The signal that keeps a redirect in place is still there.
  const redirect = s.redirects[backend.backendId];
  if (redirect && strategies.includes('redirect_traffic')) redirect.lastSeenAt = now;
  const c: VerdictContext = { s, event, backend, app, cfg, now, restarts };

  for (const strategy of strategies) {
    if (TRAFFIC.has(strategy)) {
      planTrafficStrategy(strategy, c, out);
      continue;
    }
    const verdict = strategyVerdict(strategy, c);
    if (!verdict.ok) {
      decide(strategy, 'skipped', verdict.reason);
      if (verdict.stop) return;
      continue;
    }
    if (strategy === 'rolling_restart') {
      startRolling(s, event, backend, app, now, verdict.reason);
      decide(strategy, 'planned', `${event.message}; ${verdict.reason}`);
      stepRolling(s, app, cfg, now, out);
      return;
    }
    const gateKey = strategy === 'restart_dependencies' ? dependenciesKey(app.name) : key;
    const gate = appGate(s, app.name, gateKey, cfg, now);
    if (gate) {
      decide(strategy, 'skipped', gate);
      return;
    }
    const planned = disruptiveAction(strategy, c, verdict);
    out.actions.push(planned);
    decide(strategy, 'planned', planned.reason);
    book(s, planned, gateKey, cfg, now);
    return;
  }
  decide(null, 'skipped', `no applicable strategy among ${strategies.join(', ')}`);
}

/** The action of a disruptive strategy its verdict allowed (scale_out acts on the verdict's template). */
function disruptiveAction(strategy: Strategy, c: VerdictContext, verdict: Extract<Verdict, { ok: true }>): PlannedAction {
  const { s, event, backend, app, cfg, now } = c;
  const reason = `${event.message}; ${verdict.reason}`;
  const common = { strategy, failureType: event.failureType, app: app.name, backendId: backend.backendId, reason, disruptive: true };
  if (strategy === 'restart_dependencies') {
    return action(s, { ...common, dependencies: [...app.recovery.dependencies] }, cfg, now);
  }
  if (strategy === 'clear_cache') {
    const call = { ...app.recovery.clear_cache!, host: backend.host, port: backend.port };
    return action(s, { ...common, ...targetOf(backend), call }, cfg, now);
  }
  const target = verdict.template ?? backend;
  const task = taskTarget(target);
  // A Swarm task is replaced by Swarm itself (its container removed), not by a clone.
  const spawn = task
    ? (strategy === 'scale_out' ? taskSpawnSpec(app, task) : null)
    : strategy === 'replace_instance' || strategy === 'scale_out' ? spawnSpec(s, app, strategy) : null;
  return action(s, {
    ...common,
    ...targetOf(target),
    backendId: backend.backendId,
    drainFirst: STOPPING.has(strategy) && !backend.ejected,
    spawn,
  }, cfg, now);
}
