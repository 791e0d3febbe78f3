/**
 * The routing stage: decides what nginx should route to (buildDesiredSet over discovery's apps,
 * the registry's backend views and recovery's traffic holds), keeps an app nginx would refuse
 * at its last good upstream so the others go on (settle.ts), publishes the decision and the
 * panic/failover edges it brings, and hands it to nginx. Recomputed after discovery changes, after
 * a burst of transitions, and when recovery changes its holds.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { AppConfig } from '../config/types.js';
import type { MergedSnapshot } from '../discovery/aggregator.js';
import type { SidecarBus } from '../events/sidecar-events.js';
import type { HealthRegistry } from '../health/registry.js';
import { diffConditions, NO_CONDITIONS, type Conditions } from './conditions.js';
import { buildDesiredSet, type DesiredSetOptions } from './desired.js';
import { createSettler, type HeldApp } from './settle.js';
import type { DesiredSet, DesiredUpstream } from './types.js';

/** The store key of the last upstreams of the apps that accept containers (RouterOptions.onMemory). */
export const ROUTING_MEMORY_KEY = 'routing:container-apps';

/** How often the weights of readmitted backends are looked at while they ramp up. */
const RAMP_STEP_MS = 1000;

export interface RouterOptions {
  clock: Clock;
  bus: SidecarBus;
  registry: HealthRegistry;
  /** Recovery's traffic holds now (weights lowered, containers drained). */
  holds(): DesiredSetOptions;
  /** Whether weight changes are free (DNS answers) so readmitted backends ramp up (slow start). */
  slowStart(): boolean;
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
  /** Called with the last upstreams of the apps that accept containers whenever they change. */
  onMemory?(upstreams: Record<string, DesiredUpstream>): void;
}

export interface Router {
  /** Discovery's merged view: its apps, whether a backend drains, the sources still awaited. */
  setDiscovery(merged: MergedSnapshot): void;
  /** Recomputes now. */
  refresh(): void;
  /** Recomputes once after the current burst (every transition of one event-loop turn). */
  schedule(): void;
  apps(): readonly AppConfig[];
  conditions(): Conditions;
  /** Apps held at their last good upstream now, each with its reason. */
  held(): readonly HeldApp[];
  stop(): void;
}

export function createRouter(opts: RouterOptions): Router {
  const { bus, registry } = opts;
  let apps: AppConfig[] = [];
  let awaiting: readonly string[] = [];
  const settler = createSettler({
    restored: opts.restored ?? new Map(),
    onHeld: (held) => bus.emit('held', { apps: held, at: opts.clock.now() }),
    ...(opts.onMemory ? { onMemory: opts.onMemory } : {}),
  });
  let draining = false;
  let conditions: Conditions = NO_CONDITIONS;
  let scheduled = false;
  let rampTimer: TimerHandle | null = null;

  const refresh = () => {
    scheduled = false;
    const views = registry.views();
    // DNS mode: readmitted backends ramp up. Reload mode: what nginx handles itself stays routed.
    const slowStart = opts.slowStart();
    const leaveToNginx = new Set(slowStart ? [] : opts.leaveToNginx());
    const { set, panics, failovers } = buildDesiredSet(apps, views, { ...opts.holds(), slowStart, leaveToNginx });
    // A readmitted backend's weight ramps with time, not with events: look again in a second.
    if (slowStart && !rampTimer && views.some((v) => v.slowStart !== undefined && v.slowStart < 1)) {
      rampTimer = opts.clock.setTimeout(() => {
        rampTimer = null;
        refresh();
      }, RAMP_STEP_MS);
      rampTimer.unref?.();
    }
    // Until every required source has answered once, the backends it may add are unknown:
    // writing what is known would replace a good file with one that lacks them (502s).
    const settled = settler.settle(set, apps, awaiting.length > 0);
    const diff = diffConditions(conditions, { panics, failovers }, apps.map((a) => a.name));
    conditions = diff.conditions;
    const at = opts.clock.now();
    for (const edge of diff.edges) {
      const backupApp = edge.kind === 'failover' ? apps.find((a) => a.name === edge.app)?.upstream.backup_app ?? null : null;
      bus.emit('condition', { ...edge, at, backupApp });
    }
    bus.emit('routing', { set, views, panics });
    if (settled) opts.onDesired(settled, draining);
  };

  // A probe result can bring two transitions (health and breaker) and a tick many results: one
  // recompute after them all, not one each.
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      if (scheduled) refresh();
    });
  };
  bus.on('transition', schedule);

  return {
    setDiscovery(merged) {
      apps = merged.apps;
      awaiting = merged.awaiting;
      draining = merged.backends.some((b) => b.draining);
      refresh();
      draining = false;
    },
    refresh,
    schedule,
    apps: () => apps,
    conditions: () => conditions,
    held: () => settler.held(),
    stop() {
      if (rampTimer) opts.clock.clearTimeout(rampTimer);
      rampTimer = null;
    },
  };
}
