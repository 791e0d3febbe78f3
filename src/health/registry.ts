/**
 * Per-backend health, breaker and failure state, kept in step with discovery snapshots. Feeds
 * each probe result through the pure reducers and hands back only what changed. No timers and no
 * I/O; time comes from the injected clock.
 */
import type { Clock } from '../clock.js';
import type { BreakerConfig, FailureDetectionConfig } from '../config/types.js';
import type { Backend, ProbeResult } from '../model.js';
import * as breaker from './breaker.js';
import type { BreakerChange, BreakerState } from './breaker.js';
import { describeProbeFailure, stepFailures } from './classify.js';
import type { FailureHistory } from './classify.js';
import * as thresholds from './thresholds.js';
import type { HealthChange, HealthState } from './thresholds.js';
import type { BackendView, FailureEvent, Transition } from './types.js';

export interface HealthRegistryOptions {
  clock: Clock;
  breaker: BreakerConfig;
  detection: FailureDetectionConfig;
}

/** Health, breaker and failure tracking for every known backend. */
export interface HealthRegistry {
  /** Reconciles with the full set of backends: new ones start unknown/closed, missing ones go. */
  sync(backends: Backend[]): { added: string[]; removed: string[] };
  /** Asks the backend's breaker whether to probe now. Unknown ids are not admitted. */
  admit(backendId: string): { admit: boolean; ticket: number; transitions: Transition[] };
  /** Applies one probe result with the ticket `admit` gave; results for unknown ids are ignored. */
  record(result: ProbeResult, ticket: number): { transitions: Transition[]; failures: FailureEvent[] };
  /** New breaker and detection settings apply from the next admit/record; states are kept. */
  updateConfig(breaker: BreakerConfig, detection: FailureDetectionConfig): void;
  /** Every backend, by app name, then in the order the last sync gave them. */
  views(): BackendView[];
  /** The backends of one app, in the order the last sync gave them (no scan of the others). */
  viewsOf(app: string): BackendView[];
  view(backendId: string): BackendView | undefined;
}

interface Entry {
  backend: Backend;
  health: HealthState;
  breaker: BreakerState;
  failures: FailureHistory;
  lastProbe: ProbeResult | null;
  lastFailure: FailureEvent | null;
  since: number;
}

/** Creates an empty registry; call `sync` with the first snapshot. */
export function createHealthRegistry(opts: HealthRegistryOptions): HealthRegistry {
  const { clock } = opts;
  let breakerCfg = opts.breaker;
  let detectionCfg = opts.detection;
  let entries = new Map<string, Entry>();
  let order: string[] = [];
  /** Backend ids per app, in snapshot order: recovery asks for one app's replicas per failure. */
  let byApp = new Map<string, string[]>();

  const healthTransition = (b: Backend, c: HealthChange): Transition => ({
    kind: 'health',
    backendId: b.id,
    app: b.app,
    ...c,
  });
  const breakerTransition = (b: Backend, c: BreakerChange): Transition => ({
    kind: 'breaker',
    backendId: b.id,
    app: b.app,
    ...c,
  });

  return {
    sync(backends) {
      const now = clock.now();
      const next = new Map<string, Entry>();
      const added: string[] = [];
      for (const backend of backends) {
        const existing = entries.get(backend.id) ?? next.get(backend.id);
        if (existing) {
          // Weight, backup and health settings may have changed; the verdicts so far still hold.
          next.set(backend.id, { ...existing, backend });
          continue;
        }
        added.push(backend.id);
        next.set(backend.id, {
          backend,
          health: thresholds.initialHealth(),
          breaker: breaker.initialBreaker(),
          failures: {},
          lastProbe: null,
          lastFailure: null,
          since: now,
        });
      }
      const removed = [...entries.keys()].filter((id) => !next.has(id));
      entries = next;
      // Map keeps first-insertion order, so a stable sort groups by app and keeps the given order.
      order = [...next.values()]
        .sort((a, b) => (a.backend.app < b.backend.app ? -1 : a.backend.app > b.backend.app ? 1 : 0))
        .map((e) => e.backend.id);
      byApp = new Map();
      for (const id of order) {
        const app = entries.get(id)!.backend.app;
        const ids = byApp.get(app);
        if (ids) ids.push(id);
        else byApp.set(app, [id]);
      }
      return { added, removed };
    },

    admit(backendId) {
      const entry = entries.get(backendId);
      if (!entry) return { admit: false, ticket: breaker.NO_TICKET, transitions: [] };
      const now = clock.now();
      const r = breaker.admit(entry.breaker, breakerCfg, now);
      entry.breaker = r.state;
      if (!r.transition) return { admit: r.admit, ticket: r.ticket, transitions: [] };
      entry.since = now;
      return { admit: r.admit, ticket: r.ticket, transitions: [breakerTransition(entry.backend, r.transition)] };
    },

    record(result, ticket) {
      const entry = entries.get(result.backendId);
      if (!entry) return { transitions: [], failures: [] };
      const now = clock.now();
      const detail = result.healthy ? undefined : describeProbeFailure(result);
      const transitions: Transition[] = [];

      const h = thresholds.step(entry.health, { ok: result.healthy, detail }, entry.backend.health, now);
      entry.health = h.state;
      if (h.transition) transitions.push(healthTransition(entry.backend, h.transition));

      const b = breaker.record(entry.breaker, { ok: result.healthy, ticket, detail }, breakerCfg, now);
      entry.breaker = b.state;
      if (b.transition) transitions.push(breakerTransition(entry.backend, b.transition));

      const f = stepFailures(entry.failures, result, detectionCfg, now);
      entry.failures = f.history;
      entry.lastProbe = result;
      if (f.events.length > 0) entry.lastFailure = f.events[0]!;
      if (transitions.length > 0) entry.since = now;
      return { transitions, failures: f.events };
    },

    updateConfig(nextBreaker, nextDetection) {
      breakerCfg = nextBreaker;
      detectionCfg = nextDetection;
    },

    views() {
      return order.map((id) => toView(entries.get(id)!));
    },

    viewsOf(app) {
      return (byApp.get(app) ?? []).map((id) => toView(entries.get(id)!));
    },

    view(backendId) {
      const entry = entries.get(backendId);
      return entry ? toView(entry) : undefined;
    },
  };
}

function toView(e: Entry): BackendView {
  return {
    backendId: e.backend.id,
    app: e.backend.app,
    host: e.backend.host,
    port: e.backend.port,
    weight: e.backend.weight,
    backup: e.backend.backup,
    health: e.health.status,
    breaker: e.breaker.status,
    // 'unknown' is routed, like HAProxy's default initial state: before the first verdict we have
    // no evidence against a backend, and a sidecar restart must not eject every backend at once.
    // A draining backend (its container is being stopped) goes at once, whatever its probes say.
    ejected: e.health.status === 'unhealthy' || e.breaker.status !== 'closed' || e.backend.draining === true,
    draining: e.backend.draining === true,
    container: e.backend.container ?? null,
    consecutiveFailures: e.health.consecutiveFailures,
    consecutiveSuccesses: e.health.consecutiveSuccesses,
    lastProbe: e.lastProbe,
    lastFailure: e.lastFailure,
    since: e.since,
  };
}
