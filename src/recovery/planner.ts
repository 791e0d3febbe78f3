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
 *   Their effect is state kept here (`trafficHolds`), which the daemon hands to the upstream
 *   builder; their reverse (restore_traffic, undrain_instance) is planned on ticks, like scale_in.
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
 */
import type { AppRecoveryOptions, ClearCacheCall, RecoveryConfig, SidecarConfig } from '../config/types.js';
import type { BackendView, FailureEvent, FailureType } from '../health/types.js';

export type Strategy =
  | 'remove_from_lb'
  | 'restart_container'
  | 'recreate_container'
  | 'replace_instance'
  | 'scale_out'
  | 'scale_in'
  | 'drain_instance'
  | 'undrain_instance'
  | 'rolling_restart'
  | 'redirect_traffic'
  | 'restore_traffic'
  | 'clear_cache'
  | 'restart_dependencies';

/**
 * The seed's strategy map, in order of preference, with the seed's remaining strategies placed
 * and port_not_listening added (the seed folds a refused connection into network_unreachable,
 * but the prober tells them apart, and a closed port is most often an app that died or never
 * bound, which a restart addresses first).
 *
 * - restart_dependencies before any per-replica restart for probe failures: when at least half
 *   of an app's replicas (and at least 2) are ejected for failed, erroring or timing-out checks at
 *   the same time, the common cause is more likely what they share (database, cache) than each
 *   of them, and restarting every replica would not help. Only apps that declare
 *   recovery.dependencies; health_check_error gets only this (a TLS or unknown probe error of one
 *   backend is more often a probe or certificate problem than a broken container).
 * - redirect_traffic first for a slow (high_response_time), erroring (high_error_rate) or busy
 *   (high_resource_usage) backend that is still healthy: half its share of traffic, instead of
 *   ejecting capacity, until the signal has been gone for scale_in_after_seconds. It is the only
 *   strategy for high_error_rate: intermittent errors that never reach the failure threshold do
 *   not justify stopping a container, and a lower weight cuts the errors users see in proportion.
 * - clear_cache before scale_out/restart for high_resource_usage of memory (not CPU: freeing a
 *   cache costs CPU) and before rolling_restart for application_memory_leak, when the app declares
 *   the call: the cheapest thing that can give memory back, tried once per restart window.
 * - rolling_restart for application_memory_leak: every replica runs the same code under the same
 *   load, so one leaking means all will; restarting them one at a time, drained and waiting for
 *   each to be healthy again, resets them without losing capacity.
 * - drain_instance for container_restart_loop: Docker's restart policy is already restarting it
 *   (acting would race it), but between crashes it passes a probe or two and is readmitted, so
 *   nginx keeps sending it requests that die with it. Drained, it stays out of nginx (still
 *   probed) until it has run startup_grace_seconds healthy without a restart.
 * - application_deadlock: a deadlocked process does not recover by itself; out of nginx (drained
 *   first if not yet ejected), then restarted.
 * Types without strategies, and why:
 * - dns_resolution_failed: not the container's fault.
 * - application_startup_failed: a restart resets a slow start and makes it worse.
 */
export const STRATEGY_MAP: Readonly<Record<FailureType, readonly Strategy[]>> = Object.freeze({
  health_check_failed: ['remove_from_lb', 'restart_dependencies', 'restart_container', 'recreate_container'],
  health_check_timeout: ['remove_from_lb', 'restart_dependencies', 'restart_container'],
  health_check_error: ['restart_dependencies'],
  high_response_time: ['redirect_traffic', 'remove_from_lb', 'scale_out', 'restart_container'],
  high_error_rate: ['redirect_traffic'],
  high_resource_usage: ['redirect_traffic', 'clear_cache', 'scale_out', 'restart_container', 'replace_instance'],
  container_stopped: ['recreate_container', 'replace_instance'],
  container_oom_killed: ['replace_instance', 'scale_out'],
  container_restart_loop: ['drain_instance'],
  network_unreachable: ['remove_from_lb', 'recreate_container'],
  port_not_listening: ['remove_from_lb', 'restart_container', 'recreate_container'],
  dns_resolution_failed: [],
  application_startup_failed: [],
  application_deadlock: ['remove_from_lb', 'restart_container'],
  application_memory_leak: ['clear_cache', 'rolling_restart'],
});

const CONTAINER_LEVEL: ReadonlySet<Strategy> = new Set(['restart_container', 'recreate_container', 'replace_instance']);
/** Strategies that stop a container that may be serving (replace stops the old one). */
const STOPPING: ReadonlySet<Strategy> = new Set([...CONTAINER_LEVEL, 'scale_in', 'rolling_restart']);
/** Strategies that only change where nginx sends traffic: they never end the strategy loop. */
const TRAFFIC: ReadonlySet<Strategy> = new Set(['remove_from_lb', 'redirect_traffic', 'drain_instance']);
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
/** Probe failures that, on many replicas at once, point at a dependency they share. */
const DEPENDENCY_TYPES: ReadonlySet<FailureType> = new Set(['health_check_failed', 'health_check_error', 'health_check_timeout']);
/**
 * Replicas count as failing "at the same time" when their latest such failure is this recent:
 * an ejected replica keeps failing once per probe period, so any period up to a minute shows.
 */
const DEPENDENCY_WINDOW_MS = 60_000;
/** The share of its configured weight a redirected backend keeps. */
const REDIRECT_FACTOR = 0.5;

/** RecoveryConfig plus the two settings the planner needs from elsewhere. */
export interface PlannerConfig extends RecoveryConfig {
  /**
   * No restart, recreate or replace of a running container this soon after its start; also how
   * long a drained instance must run healthy without a restart before it is readmitted.
   */
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
  /** AppConfig.recovery: dependencies for restart_dependencies, the call for clear_cache. */
  recovery: AppRecoveryOptions;
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
  /**
   * Periodic, with every app: scale-in, the next step of rolling restarts, readmitting drained
   * instances and restoring weights, in-flight timeouts and forgetting vanished containers.
   */
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

/** clear_cache: the app's declared call, sent to the backend's own address. */
export interface BackendCall extends ClearCacheCall {
  host: string;
  port: number;
}

/** One action for the executor. */
export interface PlannedAction {
  /** Unique across restarts: `${at}-${sequence}`. */
  id: string;
  strategy: Strategy;
  /** null for the actions no failure triggers (scale_in, undrain_instance, restore_traffic). */
  failureType: FailureType | null;
  app: string;
  /** The backend whose failure triggered it (scale_in: the backend being removed). */
  backendId: string;
  /**
   * The container acted on; for scale_out the healthy replica to clone. null: no container, or
   * restart_dependencies (which acts on `dependencies`).
   */
  containerId: string | null;
  containerName: string | null;
  reason: string;
  /** Record only; act on nothing. */
  dryRun: boolean;
  disruptive: boolean;
  /** The container still receives traffic: take it out of nginx before stopping it. */
  drainFirst: boolean;
  spawn: SpawnSpec | null;
  /** restart_dependencies: the containers to restart, by name. */
  dependencies: string[] | null;
  /** clear_cache: the HTTP call to make. */
  call: BackendCall | null;
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

/** A rolling restart under way: one replica at a time, each healthy again before the next. */
interface RollingRecord {
  failureType: FailureType;
  /** The failure that started it, for every step's reason. */
  cause: string;
  startedAt: number;
  /** Container names still to restart, in order. */
  pending: string[];
  /** The replica being restarted; restartedAt null while its restart is in flight. */
  current: { name: string; actionId: string; restartedAt: number | null } | null;
  /** Container names restarted and healthy again (or gone). */
  done: string[];
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
  rolling: RollingRecord | null;
  /** When the latest rolling restart began: at most one per restart_window_seconds. */
  lastRollingAt: number | null;
}

/** redirect_traffic: a backend running at a share of its configured weight. */
interface RedirectRecord {
  app: string;
  factor: number;
  at: number;
  /** The latest failure of a redirecting type; restored scale_in_after_seconds after it. */
  lastSeenAt: number;
  /** Ejected since: once readmitted it starts over from its configured weight. */
  wasEjected: boolean;
  /** Recorded in dry-run: never applied to nginx. */
  dryRun: boolean;
}

/** drain_instance: a container held out of nginx while it is not stable. */
interface DrainRecord {
  app: string;
  backendId: string;
  containerId: string;
  at: number;
  /** Docker's restart count when last seen; a change restarts the stability clock. */
  restartCount: number;
  /** Running and healthy without a restart since (epoch ms). */
  stableSince: number | null;
  dryRun: boolean;
}

/** Plain JSON data: persist it as is. */
export interface PlannerState {
  seq: number;
  instances: Record<string, InstanceRecord>;
  apps: Record<string, AppRecord>;
  /** By backend id. */
  redirects: Record<string, RedirectRecord>;
  /** By container name. */
  drains: Record<string, DrainRecord>;
}

export interface PlanResult {
  state: PlannerState;
  actions: PlannedAction[];
  decisions: Decision[];
}

export function createPlannerState(): PlannerState {
  return { seq: 0, instances: {}, apps: {}, redirects: {}, drains: {} };
}

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

/** What recovery is holding to now, for `GET /api/v1/recovery` (JSON-ready, ISO times). */
export interface RecoverySummary {
  apps: Array<{
    app: string;
    budget_used: number;
    budget: number;
    in_flight: { strategy: Strategy; since: string } | null;
    added_replicas: string[];
    rolling_restart: { pending: string[]; current: string | null; done: string[] } | null;
  }>;
  instances: Array<{
    instance: string;
    app: string;
    actions_in_window: number;
    backoff_seconds: number;
    not_before: string | null;
  }>;
  redirects: Array<{ backend: string; app: string; weight_factor: number; since: string; dry_run: boolean }>;
  drains: Array<{ container: string; backend: string; app: string; since: string; dry_run: boolean }>;
}

/** The planner's state as an operator reads it: budgets used, backoffs, holds, work under way. */
export function summarize(state: PlannerState, cfg: PlannerConfig, now: number): RecoverySummary {
  const s = normalize(structuredClone(state));
  prune(s, cfg, now);
  const iso = (t: number) => new Date(t).toISOString();
  return {
    apps: Object.entries(s.apps).map(([app, r]) => ({
      app,
      budget_used: r.disruptive.length,
      budget: cfg.budget_per_app,
      in_flight: r.inFlight && { strategy: r.inFlight.strategy, since: iso(r.inFlight.at) },
      added_replicas: r.added.map((a) => a.name),
      rolling_restart: r.rolling && { pending: r.rolling.pending, current: r.rolling.current?.name ?? null, done: r.rolling.done },
    })),
    instances: Object.entries(s.instances).map(([instance, r]) => ({
      instance,
      app: r.app,
      actions_in_window: r.actions.length,
      backoff_seconds: r.backoffMs / 1000,
      not_before: r.notBefore > now ? iso(r.notBefore) : null,
    })),
    redirects: Object.entries(s.redirects).map(([backend, r]) => ({ backend, app: r.app, weight_factor: r.factor, since: iso(r.at), dry_run: r.dryRun })),
    drains: Object.values(s.drains).map((d) => ({ container: d.containerId.slice(0, 12), backend: d.backendId, app: d.app, since: iso(d.at), dry_run: d.dryRun })),
  };
}

/**
 * A planner state saved by a previous process (untrusted JSON from the store): the budgets,
 * backoffs, replicas recovery added, holds and a rolling restart under way carry over, so a
 * sidecar restart resets none of them. Returns null when the shape is wrong; the caller then
 * starts from createPlannerState() and says so. An action in flight when the old process
 * stopped never reports back: the in-flight timeout releases its app as for any lost result.
 */
export function restorePlannerState(json: unknown): PlannerState | null {
  if (!isObj(json) || !isNum(json.seq) || !isObj(json.instances) || !isObj(json.apps)) return null;
  if (json.redirects !== undefined && !isObj(json.redirects)) return null;
  if (json.drains !== undefined && !isObj(json.drains)) return null;
  for (const r of Object.values(json.instances)) {
    if (!isObj(r) || typeof r.app !== 'string' || !Array.isArray(r.actions) || !isNum(r.backoffMs) || !isNum(r.notBefore)) return null;
    if (!r.actions.every((a) => isObj(a) && typeof a.strategy === 'string' && isNum(a.at))) return null;
  }
  for (const r of Object.values(json.apps)) {
    if (!isObj(r) || !isNumList(r.disruptive) || !isNumList(r.scaleOuts) || !Array.isArray(r.added)) return null;
    if (!r.added.every((a) => isObj(a) && typeof a.name === 'string' && isNum(a.at))) return null;
    if (r.inFlight !== null && !(isObj(r.inFlight) && typeof r.inFlight.actionId === 'string' && isNum(r.inFlight.at))) return null;
    if (r.rolling != null && !(isObj(r.rolling) && Array.isArray(r.rolling.pending) && Array.isArray(r.rolling.done))) return null;
  }
  for (const r of Object.values((json.redirects ?? {}) as Record<string, unknown>)) {
    if (!isObj(r) || !isNum(r.factor) || !(r.factor > 0 && r.factor <= 1) || typeof r.app !== 'string') return null;
  }
  for (const r of Object.values((json.drains ?? {}) as Record<string, unknown>)) {
    if (!isObj(r) || typeof r.containerId !== 'string' || typeof r.backendId !== 'string') return null;
  }
  return normalize(structuredClone(json) as unknown as PlannerState);
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isNum(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

function isNumList(x: unknown): x is number[] {
  return Array.isArray(x) && x.every(isNum);
}

/** A state persisted by an older version lacks the newer fields. */
function normalize(s: PlannerState): PlannerState {
  s.redirects ??= {};
  s.drains ??= {};
  for (const rec of Object.values(s.apps)) {
    rec.rolling ??= null;
    rec.lastRollingAt ??= null;
  }
  return s;
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

/** The dependencies of an app are one instance for backoff and restart counts. */
function dependenciesKey(app: string): string {
  return `${app} dependencies`;
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
  return (s.apps[name] ??= {
    inFlight: null,
    disruptive: [],
    scaleOuts: [],
    added: [],
    healthySince: null,
    rolling: null,
    lastRollingAt: null,
  });
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

/** Books a disruptive action: instance history and backoff, app budget, the in-flight slot. */
function book(s: PlannerState, action: PlannedAction, key: string, cfg: PlannerConfig, now: number): void {
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

function spawnSpec(s: PlannerState, app: AppSnapshot, strategy: Strategy): SpawnSpec {
  const replicas = strategy === 'scale_out'
    ? app.replicas.flatMap((v) => (v.container?.replica != null ? [v.container.replica] : []))
    : [];
  // Docker names start with a letter or digit; app names may start with '_'.
  const base = /^[A-Za-z0-9]/.test(app.name) ? app.name : `app${app.name}`;
  return {
    // The sequence number of the action about to be planned, which names it too.
    name: `${base}-recovery-${s.seq + 1}`,
    replica: replicas.length ? Math.max(...replicas) + 1 : null,
    portRange: app.portRange,
    portEnv: app.portEnv,
    usedPorts: app.replicas.map((v) => v.port),
  };
}

/** A PlannedAction with the fields most strategies leave empty. */
function action(
  s: PlannerState,
  fields: Pick<PlannedAction, 'strategy' | 'failureType' | 'app' | 'backendId' | 'reason' | 'disruptive'> &
    Partial<Pick<PlannedAction, 'containerId' | 'containerName' | 'drainFirst' | 'spawn' | 'dependencies' | 'call'>>,
  cfg: PlannerConfig,
  now: number,
): PlannedAction {
  return {
    id: `${now}-${++s.seq}`,
    containerId: null,
    containerName: null,
    dryRun: cfg.mode === 'dry-run',
    drainFirst: false,
    spawn: null,
    dependencies: null,
    call: null,
    at: now,
    ...fields,
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
function capacityProblem(s: PlannerState, app: AppSnapshot, v: BackendView, cfg: PlannerConfig): string | null {
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
  const windowCut = now - cfg.restart_window_seconds * 1000;
  const restarts = inst.actions.filter((a) => a.strategy === 'restart_container' && a.at > windowCut).length;
  // The signal that keeps a redirect in place is still there.
  const redirect = s.redirects[backend.backendId];
  if (redirect && strategies.includes('redirect_traffic')) redirect.lastSeenAt = now;

  for (const strategy of strategies) {
    if (TRAFFIC.has(strategy)) {
      const verdict = trafficVerdict(strategy, s, event, backend, app, cfg, now);
      if (!verdict.ok) {
        decide(strategy, 'skipped', verdict.reason);
        continue;
      }
      const reason = strategy === 'remove_from_lb' ? verdict.reason : `${event.message}; ${verdict.reason}`;
      out.actions.push(
        action(s, {
          strategy,
          failureType: type,
          app: app.name,
          backendId: backend.backendId,
          containerId: backend.container?.id ?? null,
          containerName: backend.container?.name ?? null,
          reason,
          disruptive: false,
        }, cfg, now),
      );
      decide(strategy, 'planned', strategy === 'remove_from_lb' ? `no-op: ${reason}` : reason);
      holdTraffic(s, strategy, inst, backend, app, cfg, now);
      continue;
    }

    const verdict = strategyVerdict(strategy, { s, event, backend, app, cfg, now, restarts });
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

    const reason = `${event.message}; ${verdict.reason}`;
    const common = { strategy, failureType: type, app: app.name, backendId: backend.backendId, reason, disruptive: true };
    let planned: PlannedAction;
    if (strategy === 'restart_dependencies') {
      planned = action(s, { ...common, dependencies: [...app.recovery.dependencies] }, cfg, now);
    } else if (strategy === 'clear_cache') {
      const call = { ...app.recovery.clear_cache!, host: backend.host, port: backend.port };
      planned = action(s, { ...common, containerId: backend.container?.id ?? null, containerName: backend.container?.name ?? null, call }, cfg, now);
    } else {
      const target = verdict.template ?? backend;
      const spawn = strategy === 'replace_instance' || strategy === 'scale_out' ? spawnSpec(s, app, strategy) : null;
      planned = action(s, {
        ...common,
        containerId: target.container!.id,
        containerName: target.container!.name,
        drainFirst: STOPPING.has(strategy) && !backend.ejected,
        spawn,
      }, cfg, now);
    }
    out.actions.push(planned);
    decide(strategy, 'planned', reason);
    book(s, planned, gateKey, cfg, now);
    return;
  }
  decide(null, 'skipped', `no applicable strategy among ${strategies.join(', ')}`);
}

type TrafficVerdict = { ok: true; reason: string } | { ok: false; reason: string };

/** Rules of the strategies that only change where nginx sends traffic. */
function trafficVerdict(
  strategy: Strategy,
  s: PlannerState,
  event: FailureEvent,
  backend: BackendView,
  app: AppSnapshot,
  cfg: PlannerConfig,
  now: number,
): TrafficVerdict {
  switch (strategy) {
    case 'remove_from_lb': {
      if (!backend.ejected) return { ok: false, reason: 'not ejected: ejection is the health stage\'s call (thresholds and breaker)' };
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
function planTrafficRelease(s: PlannerState, app: AppSnapshot, cfg: PlannerConfig, now: number, out: PlanResult): void {
  const byId = new Map(app.replicas.map((v) => [v.backendId, v]));
  const byName = new Map(app.replicas.flatMap((v) => (v.container ? [[v.container.name, v] as const] : [])));
  const release = (strategy: Strategy, v: BackendView, reason: string) => {
    out.actions.push(
      action(s, {
        strategy,
        failureType: null,
        app: app.name,
        backendId: v.backendId,
        containerId: v.container?.id ?? null,
        containerName: v.container?.name ?? null,
        reason,
        disruptive: false,
      }, cfg, now),
    );
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

interface VerdictContext {
  s: PlannerState;
  event: FailureEvent;
  backend: BackendView;
  app: AppSnapshot;
  cfg: PlannerConfig;
  now: number;
  restarts: number;
}

/** `stop`: refuse this strategy and every later one for this input. */
type Verdict = { ok: true; reason: string; template?: BackendView } | { ok: false; reason: string; stop?: boolean };

/** The seed's `_should_apply_strategy`, then the safety rules specific to the strategy. */
function strategyVerdict(strategy: Strategy, c: VerdictContext): Verdict {
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
  const problem = capacityProblem(c.s, app, backend, cfg);
  if (problem) return { ok: false, reason: problem };
  return { ok: true, reason: seedReason };
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

function startRolling(s: PlannerState, event: FailureEvent, backend: BackendView, app: AppSnapshot, now: number, reason: string): void {
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

function abandonRolling(rec: AppRecord, app: string, now: number, out: PlanResult, why: string): void {
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
function stepRolling(s: PlannerState, app: AppSnapshot, cfg: PlannerConfig, now: number, out: PlanResult): void {
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
  const reason = `app healthy for ${Math.floor((now - rec.healthySince) / 1000)}s (>= ${cfg.scale_in_after_seconds}s): removing ${last.name}, added by recovery`;
  const planned = action(s, {
    strategy: 'scale_in',
    failureType: null,
    app: app.name,
    backendId: target.backendId,
    containerId: target.container!.id,
    containerName: last.name,
    reason,
    disruptive: true,
    drainFirst: true,
  }, cfg, now);
  out.actions.push(planned);
  decide('planned', reason);
  rec.disruptive.push(now);
  rec.inFlight = { actionId: planned.id, strategy: 'scale_in', instance: last.name, spawnName: null, dryRun: planned.dryRun, at: now };
}
