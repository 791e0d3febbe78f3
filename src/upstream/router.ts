/**
 * The routing stage: decides what nginx should route to (buildDesiredSet over discovery's apps,
 * the registry's backend views and recovery's traffic holds), keeps an app nginx would refuse
 * at its last good upstream so the others go on (settle.ts), publishes the decision and the
 * panic/failover edges it brings, and hands it to nginx. Recomputed after discovery changes, after
 * a burst of transitions, and when recovery changes its holds.
 */
import type { TimerHandle } from '../clock.js';
import type { AppConfig } from '../config/types.js';
import type { MergedSnapshot } from '../discovery/aggregator.js';
import type { HealthStageOptions } from '../events/sidecar-events.js';
import { diffConditions, NO_CONDITIONS, type Conditions } from './conditions.js';
import { buildDesiredUpstream, type DesiredSetOptions } from './desired.js';
import { createSettler, type HeldApp, type Settler } from './settle.js';
import type { DesiredSet, DesiredUpstream } from './types.js';

/** The store key of the last upstreams of the apps that accept containers (RouterOptions.onMemory). */
export const ROUTING_MEMORY_KEY = 'routing:container-apps';

/**
 * Transitions arriving within this long are one burst, recomputed once: results of one probe
 * round come back over a few ms, each in its own turn of the event loop. nginx is told at most
 * every nginx.coalesce_min_wait_seconds anyway.
 */
const BURST_MS = 10;

/**
 * A recompute that took T ms is followed by the next one no sooner than this many T later (up
 * to MAX_SPACING_MS): at thousands of backends a recompute of every app costs tens of ms, and a
 * mass failure brings a burst every few ms for a second; the router then leaves most of the
 * event loop to probes and the admin server (nginx waits for its coalescing window anyway).
 */
const COST_FACTOR = 3;
/**
 * The longest wait that spacing brings: below nginx's default coalescing quiet time (0.1 s), so
 * the router's updates during a stream never look like the end of it and a mass failure is still
 * applied once (a 120 ms spacing gave 3 reloads for one mass failure at 2,500 backends).
 */
const MAX_SPACING_MS = 50;

/** How often the weights of readmitted backends are looked at while they ramp up. */
const RAMP_STEP_MS = 1000;

export interface RouterOptions extends HealthStageOptions {
  /** Recovery's traffic holds now (weights lowered, containers drained). */
  holds(): DesiredSetOptions;
  /** Whether the app's weight changes are free (DNS answers) so its readmitted backends ramp up (slow start). */
  slowStart(app: string): boolean;
  /** Reload mode: leave refused/5xx backends to nginx's own retries instead of reloading (nginx.defer_to_nginx). */
  leaveToNginx(): ReadonlyArray<'refused' | '5xx'>;
  /**
   * Receives each decision once no required discovery source is awaited; `urgent` when a
   * backend is draining (its container is being stopped: no coalescing wait).
   */
  onDesired(set: DesiredSet, urgent: boolean): void;
  /**
   * The last upstreams of the apps that accept containers, as saved by `onMemory` before a
   * restart: while Docker has not answered, they stand in for those apps (and bring back the
   * apps only labels define), so the apps that need no container are written at once.
   */
  restored?: ReadonlyMap<string, DesiredUpstream>;
  /** Called with the last upstreams of the apps that accept containers whenever they change, and their JSON. */
  onMemory?(upstreams: Record<string, DesiredUpstream>, json: string): void;
}

export interface Router {
  /** Discovery's merged view: its apps, whether a backend drains, the sources still awaited. */
  setDiscovery(merged: MergedSnapshot): void;
  /** Recomputes now. */
  refresh(): void;
  /** Recomputes once after the current burst (the transitions of the next few ms). */
  schedule(): void;
  apps(): readonly AppConfig[];
  conditions(): Conditions;
  /** Apps held at their last good upstream now, each with its reason. */
  held(): readonly HeldApp[];
  stop(): void;
}

interface RouterState {
  opts: RouterOptions;
  apps: AppConfig[];
  byName: Map<string, AppConfig>;
  /** App name -> the apps that list it as their backup_app (their upstreams include its servers). */
  dependents: Map<string, string[]>;
  upstreams: Map<string, DesiredUpstream>;
  awaiting: readonly string[];
  draining: boolean;
  conditions: Conditions;
  settler: Settler;
  /** Apps whose backends moved since the last recompute; 'all' after a discovery or holds change. */
  dirty: Set<string> | 'all';
  scheduled: boolean;
  /** Apps with a readmitted backend still ramping up (slow start). */
  ramping: Set<string>;
  rampTimer: TimerHandle | null;
  /** How long the last recompute took, ms (by the injected clock). */
  lastCostMs: number;
}

export function createRouter(opts: RouterOptions): Router {
  const s: RouterState = {
    opts,
    apps: [],
    byName: new Map(),
    dependents: new Map(),
    upstreams: new Map(),
    awaiting: [],
    draining: false,
    conditions: NO_CONDITIONS,
    settler: createSettler({
      restored: opts.restored ?? new Map(),
      onHeld: (held) => opts.bus.emit('held', { apps: held, at: opts.clock.now() }),
      ...(opts.onMemory ? { onMemory: opts.onMemory } : {}),
    }),
    dirty: 'all',
    scheduled: false,
    ramping: new Set(),
    rampTimer: null,
    lastCostMs: 0,
  };
  // A probe result can bring two transitions (health and breaker), and a start or a mass failure
  // thousands in a second: one recompute per burst, of the apps they touched. A first verdict
  // (unknown -> healthy) changes no route at all.
  opts.bus.on('transition', (t) => {
    if (t.kind === 'health' && t.to !== 'unhealthy' && t.from !== 'unhealthy') return;
    markDirty(s, t.app);
    schedule(s);
  });
  // Reload mode leaves an ejected backend's 5xx to nginx only while nginx is seen retrying them.
  opts.bus.on('nginx-evidence', (e) => {
    markDirty(s, e.app);
    schedule(s);
  });
  return {
    setDiscovery(merged) {
      setApps(s, merged.apps);
      s.awaiting = merged.awaiting;
      s.draining = merged.backends.some((b) => b.draining);
      s.dirty = 'all';
      refresh(s);
      s.draining = false;
    },
    refresh() {
      s.dirty = 'all';
      refresh(s);
    },
    schedule: () => schedule(s),
    apps: () => s.apps,
    conditions: () => s.conditions,
    held: () => s.settler.held(),
    stop() {
      if (s.rampTimer) opts.clock.clearTimeout(s.rampTimer);
      s.rampTimer = null;
    },
  };
}

function setApps(s: RouterState, apps: AppConfig[]): void {
  s.apps = apps;
  s.byName = new Map(apps.map((a) => [a.name, a]));
  s.dependents = new Map();
  for (const a of apps) {
    const backup = a.upstream.backup_app;
    if (backup) s.dependents.set(backup, [...(s.dependents.get(backup) ?? []), a.name]);
  }
  for (const name of [...s.upstreams.keys()]) if (!s.byName.has(name)) s.upstreams.delete(name);
  s.conditions = diffConditions(s.conditions, [], new Set(s.byName.keys())).conditions;
}

function markDirty(s: RouterState, app: string): void {
  if (s.dirty === 'all') return;
  s.dirty.add(app);
  for (const d of s.dependents.get(app) ?? []) s.dirty.add(d);
}

function schedule(s: RouterState): void {
  if (s.scheduled) return;
  s.scheduled = true;
  s.opts.clock.setTimeout(() => {
    if (s.scheduled) refresh(s);
  }, Math.max(BURST_MS, Math.min(MAX_SPACING_MS, s.lastCostMs * COST_FACTOR))).unref?.();
}

const NO_LEAVE: ReadonlySet<'refused' | '5xx'> = new Set();

/** Recomputes the dirty apps' upstreams, publishes what changed, hands the set to nginx. */
function refresh(s: RouterState): void {
  s.scheduled = false;
  const names = s.dirty === 'all' ? s.apps.map((a) => a.name) : [...s.dirty].filter((n) => s.byName.has(n));
  s.dirty = new Set();
  const at = s.opts.clock.now();
  recompute(s, names, at);
  s.lastCostMs = s.opts.clock.now() - at;
}

function recompute(s: RouterState, names: readonly string[], at: number): void {
  const { opts } = s;
  // An app nginx resolves (DNS mode): readmitted backends ramp up. One it reloads for: what
  // nginx handles itself stays routed.
  const holds = opts.holds();
  const leave = new Set(opts.leaveToNginx());
  const viewsOf = (app: string) => opts.registry.viewsOf(app);
  for (const name of names) {
    const app = s.byName.get(name)!;
    const slowStart = opts.slowStart(name);
    const options = { ...holds, slowStart, leaveToNginx: slowStart ? NO_LEAVE : leave };
    const own = viewsOf(name);
    const upstream = buildDesiredUpstream(app, (n) => (n === name ? own : viewsOf(n)), s.byName, options);
    s.upstreams.set(name, upstream);
    if (slowStart && own.some((v) => v.slowStart !== undefined && v.slowStart < 1)) s.ramping.add(name);
    else s.ramping.delete(name);
  }
  armRamp(s);
  publishConditions(s, names, at);
  const set: DesiredSet = { upstreams: s.apps.map((a) => s.upstreams.get(a.name)!) };
  opts.bus.emit('routing', { set, changed: [...names], panics: [...s.conditions.panic] });
  // Until every required source has answered once, the backends it may add are unknown:
  // writing what is known would replace a good file with one that lacks them (502s).
  const settled = s.settler.settle(set, s.apps, s.awaiting.length > 0);
  if (settled) opts.onDesired(settled, s.draining);
}

/** Publishes each panic or failover that began or ended with the recomputed upstreams. */
function publishConditions(s: RouterState, names: readonly string[], at: number): void {
  const next = names.map((app) => {
    const u = s.upstreams.get(app)!;
    return { app, panic: u.panic, failover: u.failover === true };
  });
  const diff = diffConditions(s.conditions, next);
  s.conditions = diff.conditions;
  for (const edge of diff.edges) {
    const backupApp = edge.kind === 'failover' ? s.byName.get(edge.app)?.upstream.backup_app ?? null : null;
    s.opts.bus.emit('condition', { ...edge, at, backupApp });
  }
}

/** A readmitted backend's weight ramps with time, not with events: look again in a second. */
function armRamp(s: RouterState): void {
  if (s.ramping.size === 0 || s.rampTimer) return;
  s.rampTimer = s.opts.clock.setTimeout(() => {
    s.rampTimer = null;
    for (const app of s.ramping) markDirty(s, app);
    refresh(s);
  }, RAMP_STEP_MS);
  s.rampTimer.unref?.();
}
