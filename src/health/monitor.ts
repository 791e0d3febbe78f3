/**
 * The health stage: probes discovery's backends on their schedule and feeds each result through
 * the registry's pure reducers. It publishes every result, failure and transition on the bus and
 * decides nothing beyond that; routing, recovery, metrics and the store subscribe.
 */
import type { SidecarConfig } from '../config/types.js';
import type { HealthStageOptions, SidecarBus } from '../events/sidecar-events.js';
import type { Backend, ProbeResult } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { createHttpProber } from '../probe/http.js';
import { createProbeScheduler, type ProbeScheduler } from '../probe/scheduler.js';
import { createOverloadGauge, createStallLog } from '../probe/stalls.js';
import { createTcpProber } from '../probe/tcp.js';
import { isLocalError } from './classify.js';
import { createLocalErrors, type LocalErrorEpisode } from './local-errors.js';
import type { HealthRegistry } from './registry.js';
import type { FailureEvent, Transition } from './types.js';

export interface HealthMonitorOptions extends HealthStageOptions {
  /** The configuration at start (probe concurrency and jitter are read once). */
  config: SidecarConfig;
  /** Sent as the probes' User-Agent version. */
  version: string;
  /** Where probes that failed for a local reason are reported. */
  logger?: Logger;
}

export interface HealthMonitor {
  /** Reconciles probed backends with discovery's full set; publishes who came and went. */
  sync(backends: Backend[]): void;
  start(): void;
  /** Stops probing; no event is published after it resolves. */
  stop(): Promise<void>;
  /** Probes failing for a local reason now (not counted against backends), or null. */
  localErrors(): LocalErrorEpisode | null;
}

/** Creates the stage; nothing is probed before start(). */
export function createHealthMonitor(opts: HealthMonitorOptions): HealthMonitor {
  const { clock, bus, registry } = opts;
  // One log of event-loop stalls: a probe timeout the sidecar caused is not held against a backend.
  const stalls = createStallLog();
  const overloaded = createOverloadGauge(stalls, clock);
  const httpProber = createHttpProber({ version: opts.version, clock, stalls });
  const tcpProber = createTcpProber({ clock, stalls });
  const local = createLocalErrors();
  const scheduler: ProbeScheduler = createProbeScheduler({
    clock,
    maxConcurrency: opts.config.probes.max_concurrency,
    jitterFraction: opts.config.probes.jitter_fraction,
    stalls,
    proberFor: (b: Backend) => (b.health.protocol === 'TCP' ? tcpProber : httpProber),
    // Probes never stop while a breaker is open (they are how a backend earns its way back);
    // each one first lets time act on the breaker.
    admit: (b: Backend) => {
      publishTransitions(bus, registry.tick(b.id));
      return true;
    },
    // An ejected backend is probed at its ejected period, to notice a recovery soon; a routed one
    // on its way out at its fast period, to decide soon (HAProxy's downinter and fastinter).
    periodFor: (b: Backend) => fastPeriodMs(registry, b, overloaded),
    onResult: (result: ProbeResult, b: Backend) => {
      if (isLocalError(result)) {
        const note = local.record(result, clock.now());
        if (note) {
          opts.logger?.warn(
            { app: result.app, backend: result.backendId, error: result.error, unlogged_before: note.unlogged },
            'probe failed for a local reason (not counted against the backend)',
          );
        }
      }
      const { transitions, failures } = registry.record(result);
      bus.emit('probe', result);
      if (failures.length > 0) publishFailures(bus, registry, b.id, failures);
      publishTransitions(bus, transitions);
    },
  });

  // A container that starts or turns healthy for Docker is probed at once, not at its next period.
  let byContainer = new Map<string, string[]>();
  bus.on('container', (e) => {
    if (e.action === 'start' || (e.action === 'health_status' && e.health === 'healthy')) {
      for (const id of byContainer.get(e.containerId) ?? []) scheduler.probeNow(id);
    }
  });

  // nginx's log shows a routed backend failing real requests: probe it now, not at its period.
  bus.on('suspect', (e) => scheduler.probeNow(e.backendId));

  return {
    sync(backends) {
      const { added, removed } = registry.sync(backends);
      scheduler.setTargets(backends);
      byContainer = new Map();
      for (const b of backends) if (b.container) byContainer.set(b.container.id, [...(byContainer.get(b.container.id) ?? []), b.id]);
      if (added.length > 0 || removed.length > 0) bus.emit('backends', { added, removed });
    },
    start: () => scheduler.start(),
    localErrors: () => local.episode(clock.now()),
    async stop() {
      await scheduler.stop();
      await httpProber.close();
    },
  };
}

/**
 * The period that replaces the backend's own while its verdict is out or may change; else
 * undefined. Not while the event loop is `overloaded`: when half of 10,000 backends fail at
 * once, probing them 2-4 times as often held every probe up by 1-2 s (bench:scale), and their
 * ejections then trickled in over ~3 s instead of ~1 s; at their own period they come sooner.
 */
export function fastPeriodMs(registry: Pick<HealthRegistry, 'probePace'>, b: Backend, overloaded: () => boolean = () => false): number | undefined {
  const pace = registry.probePace(b.id);
  // Asked only for the few backends off their own pace: the probe loop asks after every result.
  if (pace === 'steady' || overloaded()) return undefined;
  if (pace === 'ejected') return b.health.ejected_period_seconds * 1000;
  return Math.min(b.health.fast_period_seconds, b.health.period_seconds) * 1000;
}

function publishTransitions(bus: SidecarBus, transitions: Transition[]): void {
  for (const t of transitions) bus.emit('transition', t);
}

function publishFailures(bus: SidecarBus, registry: HealthRegistry, backendId: string, failures: FailureEvent[]): void {
  const view = registry.view(backendId);
  for (const event of failures) bus.emit('failure', { event, view });
}
