/**
 * The seed's RecoveryManager as a pure planner: which recovery action to take for a failure,
 * within safety limits the seed lacks. No I/O and no timers; time comes from `now` and the state
 * is plain JSON data so it can be persisted across restarts. Effects are docker-actions.ts's job,
 * run by executor.ts, whose results come back here as `action_result` inputs.
 *
 * How the seed's handle_failure loop maps onto a planner that cannot wait for an effect:
 * - remove_from_lb is what ejection already does (thresholds and breaker in the health stage),
 *   so it is recorded once per ejection as a no-op and never stops the loop.
 * - At most one disruptive action is planned per input, and at most one is in flight per app.
 *   The seed's loop moves on to the next strategy when one fails; here a failed action counts in
 *   the history like a successful one, so the next failure event (after the backoff) walks the
 *   same rules again and escalates (e.g. restart, restart, restart, then recreate). The seed's
 *   `_requires_multiple_strategies` is undefined; no failure type needs two disruptive actions
 *   at once, which would break the one-in-flight rule anyway.
 *
 * Instances are keyed by container name (restart and recreate keep it), so restart counts and
 * backoff survive a recreate; a backend without a container is keyed by its backend id.
 */
import type { RecoveryConfig, SidecarConfig } from '../config/types.js';
import type { BackendView, FailureEvent, FailureType } from '../health/types.js';

export type Strategy =
  | 'remove_from_lb'
  | 'restart_container'
  | 'recreate_container'
  | 'replace_instance'
  | 'scale_out'
  | 'scale_in';

/**
 * The seed's strategy map, in order of preference, plus port_not_listening: the seed folds a
 * refused connection into network_unreachable, but the prober tells them apart, and a closed
 * port is most often an app that died or never bound, which a restart addresses first.
 * Types without strategies, and why:
 * - health_check_error (TLS or unknown errors): a probe or certificate problem more often than a
 *   broken container; ejection is enough.
 * - high_error_rate: comes from nginx's traffic; the breaker ejects.
 * - container_restart_loop: Docker's restart policy is already restarting it; acting would race it.
 * - dns_resolution_failed: not the container's fault.
 * - application_startup_failed: a restart resets a slow start and makes it worse.
 * - application_deadlock, application_memory_leak: not detected here; the seed has no strategy.
 */
export const STRATEGY_MAP: Readonly<Record<FailureType, readonly Strategy[]>> = Object.freeze({
  health_check_failed: ['remove_from_lb', 'restart_container', 'recreate_container'],
  health_check_timeout: ['remove_from_lb', 'restart_container'],
  high_response_time: ['remove_from_lb', 'scale_out', 'restart_container'],
  high_resource_usage: ['scale_out', 'restart_container', 'replace_instance'],
  container_stopped: ['recreate_container', 'replace_instance'],
  container_oom_killed: ['replace_instance', 'scale_out'],
  network_unreachable: ['remove_from_lb', 'recreate_container'],
  port_not_listening: ['remove_from_lb', 'restart_container', 'recreate_container'],
  health_check_error: [],
  high_error_rate: [],
  container_restart_loop: [],
  dns_resolution_failed: [],
  application_startup_failed: [],
  application_deadlock: [],
  application_memory_leak: [],
});

const CONTAINER_LEVEL: ReadonlySet<Strategy> = new Set(['restart_container', 'recreate_container', 'replace_instance']);
/** Strategies that stop a container that may be serving (replace stops the old one). */
const STOPPING: ReadonlySet<Strategy> = new Set([...CONTAINER_LEVEL, 'scale_in']);
/**
 * Failure types a single probe produces. Container-level actions for these wait until the
 * health stage has ejected the backend: recovery reacts to transitions, never single probes.
 */
const PROBE_TYPES: ReadonlySet<FailureType> = new Set([
  'health_check_failed',
  'health_check_timeout',
  'health_check_error',
  'high_response_time',
  'high_error_rate',
  'network_unreachable',
  'port_not_listening',
  'dns_resolution_failed',
]);

/** RecoveryConfig plus the two settings the planner needs from elsewhere. */
export interface PlannerConfig extends RecoveryConfig {
  /** No restart, recreate or replace of a running container this soon after its start. */
  startup_grace_seconds: number;
  /** An action with no result after this long is taken as failed, so its app is not locked forever. */
  action_timeout_seconds: number;
}

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

/** One app as the planner needs to see it; the caller resolves config and label overrides. */
export interface AppSnapshot {
  name: string;
  /** AppDockerOptions.max_replicas ?? recovery.max_replicas, after label overrides. */
  maxReplicas: number;
  /** Host networking: ports a new replica may take (AppDockerOptions.port_range). */
  portRange: [number, number] | null;
  /** Environment variable that tells a new replica its port (AppDockerOptions.port_env). */
  portEnv: string;
  /** Every backend of the app, with its container when Docker discovered it. */
  replicas: BackendView[];
}

export type PlannerInput =
  | { kind: 'failure'; event: FailureEvent; backend: BackendView; app: AppSnapshot }
  | {
      kind: 'action_result';
      actionId: string;
      app: string;
      ok: boolean;
      error?: string | null;
      newContainerId?: string | null;
    }
  /** Periodic: every app, for scale-in, in-flight timeouts and forgetting vanished containers. */
  | { kind: 'tick'; apps: AppSnapshot[] };

/** A new replica that replace_instance or scale_out creates. */
export interface SpawnSpec {
  /** Container name; unique because the planner's sequence number persists with its state. */
  name: string;
  /**
   * scale_out: `orchestry.replica` for the new container, one above the app's highest (null if
   * none has one). replace_instance: null, the new replica keeps the old one's labels.
   */
  replica: number | null;
  /** Host networking: pick the new replica's port from here (null: the app has no range). */
  portRange: [number, number] | null;
  portEnv: string;
  /** Ports the app's replicas use now; never given to the new one. */
  usedPorts: number[];
}

/** One action for the executor. */
export interface PlannedAction {
  /** Unique across restarts: `${at}-${sequence}`. */
  id: string;
  strategy: Strategy;
  /** null for scale_in, which no failure triggers. */
  failureType: FailureType | null;
  app: string;
  /** The backend whose failure triggered it (scale_in: the backend being removed). */
  backendId: string;
  /** The container acted on; for scale_out the healthy replica to clone. null: no container. */
  containerId: string | null;
  containerName: string | null;
  reason: string;
  /** Record only; act on nothing. */
  dryRun: boolean;
  disruptive: boolean;
  /** The container still receives traffic: take it out of nginx before stopping it. */
  drainFirst: boolean;
  spawn: SpawnSpec | null;
  at: number;
}

/** Why a strategy was taken or skipped: for logs (debug) and the dry-run record. */
export interface Decision {
  at: number;
  app: string;
  backendId: string | null;
  failureType: FailureType | null;
  strategy: Strategy | null;
  /** planned: an action was emitted; skipped: a rule refused it; noted: bookkeeping worth a log line. */
  outcome: 'planned' | 'skipped' | 'noted';
  reason: string;
}

interface InstanceRecord {
  app: string;
  /** Disruptive actions planned on this instance within restart_window_seconds, oldest first. */
  actions: { strategy: Strategy; at: number }[];
  /** Backoff applied after the latest disruptive action; 0 = none yet (the next one may go now). */
  backoffMs: number;
  /** No disruptive action on this instance before this epoch ms. */
  notBefore: number;
  /** Healthy without a break since (epoch ms); resets the backoff after 2 x backoff_max_seconds. */
  healthySince: number | null;
  /** A disruptive action succeeded and the instance has not been healthy since. */
  recoveringSince: number | null;
  /** The remove_from_lb no-op was recorded for the current ejection. */
  lbNoted: boolean;
}

interface InFlight {
  actionId: string;
  strategy: Strategy;
  instance: string;
  spawnName: string | null;
  dryRun: boolean;
  at: number;
}

interface AppRecord {
  inFlight: InFlight | null;
  /** Disruptive actions within budget_window_seconds (epoch ms). */
  disruptive: number[];
  /** scale_out actions within restart_window_seconds (epoch ms). */
  scaleOuts: number[];
  /** Replicas recovery added, oldest first; scaled in again once the app is healthy. */
  added: { name: string; at: number }[];
  /** Every original replica healthy, its latest probe without failure, since (epoch ms). */
  healthySince: number | null;
}

/** Plain JSON data: persist it as is. */
export interface PlannerState {
  seq: number;
  instances: Record<string, InstanceRecord>;
  apps: Record<string, AppRecord>;
}

export interface PlanResult {
  state: PlannerState;
  actions: PlannedAction[];
  decisions: Decision[];
}

export function createPlannerState(): PlannerState {
  return { seq: 0, instances: {}, apps: {} };
}

/**
 * Applies one input. Never mutates `state`. Mode off plans nothing and explains nothing; dry-run
 * plans exactly what `on` would, marks the actions dryRun, and evolves the state as if they had
 * succeeded, so budgets and backoff show in the record as they would apply.
 */
export function plan(state: PlannerState, input: PlannerInput, cfg: PlannerConfig, now: number): PlanResult {
  const s = structuredClone(state);
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
      if (cfg.mode !== 'off') for (const app of input.apps) planScaleIn(s, app, cfg, now, out);
      break;
    case 'failure':
      observe(s, input.app, cfg, now);
      if (cfg.mode !== 'off') planFailure(s, input.event, input.backend, input.app, cfg, now, out);
      break;
  }
  return out;
}

function isHealthy(v: BackendView): boolean {
  return v.health === 'healthy' && !v.ejected;
}

/**
 * Healthy, and its latest probe raised no failure. A replica that passes its checks too slowly
 * (high_response_time) stays healthy and routed, but the incident that scaled its app out is not
 * over: scale-in waits for this.
 */
function isSteady(v: BackendView): boolean {
  const failedLast = v.lastFailure !== null && v.lastProbe !== null && v.lastFailure.timestamp >= v.lastProbe.finishedAt;
  return isHealthy(v) && !failedLast;
}

function instanceKey(v: BackendView): string {
  return v.container ? v.container.name : v.backendId;
}

function instanceOf(s: PlannerState, key: string, app: string): InstanceRecord {
  return (s.instances[key] ??= {
    app,
    actions: [],
    backoffMs: 0,
    notBefore: 0,
    healthySince: null,
    recoveringSince: null,
    lbNoted: false,
  });
}

function appOf(s: PlannerState, name: string): AppRecord {
  return (s.apps[name] ??= { inFlight: null, disruptive: [], scaleOuts: [], added: [], healthySince: null });
}

function prune(s: PlannerState, cfg: PlannerConfig, now: number): void {
  const restartCut = now - cfg.restart_window_seconds * 1000;
  const budgetCut = now - cfg.budget_window_seconds * 1000;
  for (const rec of Object.values(s.instances)) {
    if (rec.actions.length && rec.actions[0]!.at <= restartCut) rec.actions = rec.actions.filter((a) => a.at > restartCut);
    // A recovery that never led to health stops counting against max_unavailable after a window.
    if (rec.recoveringSince !== null && rec.recoveringSince <= restartCut) rec.recoveringSince = null;
  }
  for (const rec of Object.values(s.apps)) {
    rec.disruptive = rec.disruptive.filter((t) => t > budgetCut);
    rec.scaleOuts = rec.scaleOuts.filter((t) => t > restartCut);
  }
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
  }
}

/** Folds what the app looks like now into the records of instances recovery has touched. */
function observe(s: PlannerState, app: AppSnapshot, cfg: PlannerConfig, now: number): void {
  const resetAfter = 2 * cfg.backoff_max_seconds * 1000;
  for (const v of app.replicas) {
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
  const present = new Set(app.replicas.flatMap((v) => (v.container ? [v.container.name] : [])));
  // A replica just added may not be discovered yet; forget it only once it has had time to show.
  rec.added = rec.added.filter((a) => present.has(a.name) || now - a.at < cfg.action_timeout_seconds * 1000);
  const addedNames = new Set(rec.added.map((a) => a.name));
  const originals = app.replicas.filter((v) => !v.container || !addedNames.has(v.container.name));
  const allHealthy = originals.length > 0 && originals.every(isSteady);
  rec.healthySince = allHealthy ? (rec.healthySince ?? now) : null;
}

/** Drops records of containers no app has any more, once nothing in them still matters. */
function forgetVanished(s: PlannerState, apps: AppSnapshot[], now: number): void {
  const present = new Set(apps.flatMap((a) => a.replicas.map(instanceKey)));
  const inFlight = new Set(Object.values(s.apps).flatMap((a) => (a.inFlight ? [a.inFlight.instance] : [])));
  for (const [key, rec] of Object.entries(s.instances)) {
    if (!present.has(key) && !inFlight.has(key) && rec.actions.length === 0 && rec.notBefore <= now) {
      delete s.instances[key];
    }
  }
  const names = new Set(apps.map((a) => a.name));
  for (const [name, rec] of Object.entries(s.apps)) {
    const idle = !rec.inFlight && rec.added.length === 0 && rec.disruptive.length === 0 && rec.scaleOuts.length === 0;
    if (!names.has(name) && idle) delete s.apps[name];
  }
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
    note(null, `result of action ${input.actionId} ignored: not in flight`);
    return;
  }
  rec.inFlight = null;
  const inst = s.instances[f.instance];
  // Backoff runs from when the action finished, not from when it was planned.
  if (inst) inst.notBefore = now + inst.backoffMs;
  if (!input.ok) {
    note(f.strategy, `action ${f.actionId} failed: ${input.error ?? 'unknown error'}`);
    return;
  }
  note(f.strategy, `action ${f.actionId} succeeded${f.dryRun ? ' (dry-run)' : ''}`);
  switch (f.strategy) {
    case 'restart_container':
    case 'recreate_container':
      if (inst) inst.recoveringSince = now;
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
    case 'remove_from_lb':
      break;
  }
}

/** Refusals that hold for every disruptive strategy alike: they end the strategy loop. */
function appGate(s: PlannerState, app: string, key: string, cfg: PlannerConfig, now: number): string | null {
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

function spawnSpec(s: PlannerState, app: AppSnapshot, strategy: Strategy): SpawnSpec {
  const replicas = strategy === 'scale_out'
    ? app.replicas.flatMap((v) => (v.container?.replica != null ? [v.container.replica] : []))
    : [];
  // Docker names start with a letter or digit; app names may start with '_'.
  const base = /^[A-Za-z0-9]/.test(app.name) ? app.name : `app${app.name}`;
  return {
    name: `${base}-recovery-${s.seq}`,
    replica: replicas.length ? Math.max(...replicas) + 1 : null,
    portRange: app.portRange,
    portEnv: app.portEnv,
    usedPorts: app.replicas.map((v) => v.port),
  };
}

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
  const key = instanceKey(backend);
  const inst = instanceOf(s, key, app.name);
  const appRec = appOf(s, app.name);
  const windowCut = now - cfg.restart_window_seconds * 1000;
  const restarts = inst.actions.filter((a) => a.strategy === 'restart_container' && a.at > windowCut).length;
  const dryRun = cfg.mode === 'dry-run';
  const newId = () => `${now}-${++s.seq}`;

  for (const strategy of strategies) {
    if (strategy === 'remove_from_lb') {
      if (!backend.ejected) {
        decide(strategy, 'skipped', 'not ejected: ejection is the health stage\'s call (thresholds and breaker)');
      } else if (inst.lbNoted) {
        decide(strategy, 'skipped', 'already ejected by the health stage (recorded once per ejection)');
      } else {
        inst.lbNoted = true;
        const reason = 'already ejected by the health stage';
        out.actions.push({
          id: newId(),
          strategy,
          failureType: type,
          app: app.name,
          backendId: backend.backendId,
          containerId: backend.container?.id ?? null,
          containerName: backend.container?.name ?? null,
          reason,
          dryRun,
          disruptive: false,
          drainFirst: false,
          spawn: null,
          at: now,
        });
        decide(strategy, 'planned', `no-op: ${reason}`);
      }
      continue;
    }

    const verdict = strategyVerdict(strategy, { s, event, backend, app, cfg, now, restarts });
    if (!verdict.ok) {
      decide(strategy, 'skipped', verdict.reason);
      continue;
    }
    const gate = appGate(s, app.name, key, cfg, now);
    if (gate) {
      decide(strategy, 'skipped', gate);
      return;
    }

    const target = verdict.template ?? backend;
    const id = newId();
    const spawn = strategy === 'replace_instance' || strategy === 'scale_out' ? spawnSpec(s, app, strategy) : null;
    const reason = `${event.message}; ${verdict.reason}`;
    out.actions.push({
      id,
      strategy,
      failureType: type,
      app: app.name,
      backendId: backend.backendId,
      containerId: target.container!.id,
      containerName: target.container!.name,
      reason,
      dryRun,
      disruptive: true,
      drainFirst: STOPPING.has(strategy) && !backend.ejected,
      spawn,
      at: now,
    });
    decide(strategy, 'planned', reason);

    inst.actions.push({ strategy, at: now });
    inst.backoffMs = inst.backoffMs === 0
      ? cfg.backoff_min_seconds * 1000
      : Math.min(inst.backoffMs * 2, cfg.backoff_max_seconds * 1000);
    inst.notBefore = now + inst.backoffMs;
    appRec.disruptive.push(now);
    if (strategy === 'scale_out') appRec.scaleOuts.push(now);
    appRec.inFlight = { actionId: id, strategy, instance: key, spawnName: spawn?.name ?? null, dryRun, at: now };
    return;
  }
  decide(null, 'skipped', `no applicable strategy among ${strategies.join(', ')}`);
}

interface VerdictContext {
  s: PlannerState;
  event: FailureEvent;
  backend: BackendView;
  app: AppSnapshot;
  cfg: PlannerConfig;
  now: number;
  restarts: number;
}

type Verdict = { ok: true; reason: string; template?: BackendView } | { ok: false; reason: string };

/** The seed's `_should_apply_strategy`, then the safety rules specific to the strategy. */
function strategyVerdict(strategy: Strategy, c: VerdictContext): Verdict {
  const { event, backend, app, cfg, now } = c;
  const windowS = cfg.restart_window_seconds;
  let seedReason: string;
  switch (strategy) {
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
      const template = app.replicas.find((v) => isHealthy(v) && v.container?.state === 'running');
      if (!template) return { ok: false, reason: 'no healthy running replica to clone' };
      return {
        ok: true,
        template,
        reason: `${event.consecutiveCount} consecutive failures; cloning ${template.container!.name} (${app.replicas.length + 1} of at most ${app.maxReplicas} replicas)`,
      };
    }
    default:
      seedReason = 'replacing the instance with a new one';
  }

  // Container-level: restart, recreate, replace.
  const ctr = backend.container;
  if (!ctr) return { ok: false, reason: 'no container: only backends discovered from Docker can be recovered' };
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
  if (isHealthy(backend)) {
    const healthy = app.replicas.filter(isHealthy).length;
    if (healthy - 1 < cfg.min_healthy_replicas) {
      return { ok: false, reason: `would leave ${healthy - 1} healthy replica(s), below min_healthy_replicas ${cfg.min_healthy_replicas}` };
    }
  }
  const maxUnavailable = Math.max(1, Math.ceil(cfg.max_unavailable_fraction * app.replicas.length));
  const acting = new Set([ctr.name]);
  for (const v of app.replicas) {
    const rec = v.container ? c.s.instances[v.container.name] : undefined;
    if (rec?.recoveringSince != null && !isHealthy(v)) acting.add(v.container!.name);
  }
  if (acting.size > maxUnavailable) {
    return { ok: false, reason: `would act on ${acting.size} of ${app.replicas.length} replicas at once (at most ${maxUnavailable})` };
  }
  return { ok: true, reason: seedReason };
}

function planScaleIn(s: PlannerState, app: AppSnapshot, cfg: PlannerConfig, now: number, out: PlanResult): void {
  const rec = s.apps[app.name];
  if (!rec || rec.added.length === 0 || rec.healthySince === null) return;
  if (now - rec.healthySince < cfg.scale_in_after_seconds * 1000) return;
  const byName = new Map(app.replicas.flatMap((v) => (v.container ? [[v.container.name, v] as const] : [])));
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
  const id = `${now}-${++s.seq}`;
  const reason = `app healthy for ${Math.floor((now - rec.healthySince) / 1000)}s (>= ${cfg.scale_in_after_seconds}s): removing ${last.name}, added by recovery`;
  out.actions.push({
    id,
    strategy: 'scale_in',
    failureType: null,
    app: app.name,
    backendId: target.backendId,
    containerId: target.container!.id,
    containerName: last.name,
    reason,
    dryRun: cfg.mode === 'dry-run',
    disruptive: true,
    drainFirst: true,
    spawn: null,
    at: now,
  });
  decide('planned', reason);
  rec.disruptive.push(now);
  rec.inFlight = { actionId: id, strategy: 'scale_in', instance: last.name, spawnName: null, dryRun: cfg.mode === 'dry-run', at: now };
}
