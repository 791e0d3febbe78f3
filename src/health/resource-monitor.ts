/**
 * The resource stage: Docker stats of the containers behind backends, turned into
 * high_resource_usage and application_memory_leak failures by the pure detector, and the
 * application_deadlock check of an HTTP backend that keeps timing out (its port still accepts
 * and its CPU is idle: the process is stuck, not overloaded or gone). Failures go on the bus.
 */
import type Dockerode from 'dockerode';
import type { SidecarConfig } from '../config/types.js';
import { checkTcpAccept, createDockerStatsSampler, type DockerStatsSampler, type StatsSample } from '../discovery/docker-stats.js';
import { describeError } from '../errors.js';
import type { FailureNotice, HealthStageOptions } from '../events/sidecar-events.js';
import type { Backend } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { detectDeadlock, initialResourceState, stepResources, type ResourceState } from './resource-detector.js';
import type { FailureEvent } from './types.js';

export interface ResourceMonitorOptions extends HealthStageOptions {
  logger: Logger;
  /** Absent when Docker is not in use: nothing is sampled then. */
  docker: Dockerode | undefined;
  config: () => SidecarConfig;
}

export interface ResourceMonitor {
  /** Samples the running containers among discovery's backends; forgets the others. */
  track(backends: readonly Backend[]): void;
  start(): void;
  /** Samples at the new interval when it changed. */
  reconfigure(prev: SidecarConfig, next: SidecarConfig): void;
  stop(): void;
}

interface MonitorState {
  opts: ResourceMonitorOptions;
  states: Map<string, ResourceState>;
  latest: Map<string, StatsSample>;
  /** The backend each tracked container serves. */
  backendOf: Map<string, string>;
  running: string[];
  sampler: DockerStatsSampler | null;
}

export function createResourceMonitor(opts: ResourceMonitorOptions): ResourceMonitor {
  const s: MonitorState = { opts, states: new Map(), latest: new Map(), backendOf: new Map(), running: [], sampler: null };
  opts.bus.on('failure', (notice) => onFailure(s, notice));
  return {
    track: (backends) => track(s, backends),
    start: () => startSampler(s),
    reconfigure(prev, next) {
      if (next.failure_detection.stats_interval_seconds !== prev.failure_detection.stats_interval_seconds) startSampler(s);
    },
    stop() {
      s.sampler?.stop();
      s.sampler = null;
    },
  };
}

function track(s: MonitorState, backends: readonly Backend[]): void {
  s.backendOf.clear();
  s.running = [];
  for (const b of backends) {
    if (b.container?.state !== 'running') continue;
    s.running.push(b.container.id);
    s.backendOf.set(b.container.id, b.id);
  }
  s.sampler?.setContainers(s.running);
  for (const id of [...s.states.keys(), ...s.latest.keys()]) {
    if (s.backendOf.has(id)) continue;
    s.states.delete(id);
    s.latest.delete(id);
  }
}

function publish(s: MonitorState, events: FailureEvent[], backendId: string): void {
  const view = s.opts.registry.view(backendId);
  for (const event of events) s.opts.bus.emit('failure', { event, view });
}

function startSampler(s: MonitorState): void {
  const { opts } = s;
  s.sampler?.stop();
  s.sampler = null;
  const interval = opts.config().failure_detection.stats_interval_seconds;
  if (!opts.docker || !opts.config().docker.enabled || interval <= 0) return;
  s.sampler = createDockerStatsSampler({
    docker: opts.docker,
    clock: opts.clock,
    intervalMs: interval * 1000,
    onError: (id, err) => opts.logger.debug({ container: id, err: describeError(err) }, 'docker stats failed'),
    onSample: (cid, sample) => onSample(s, cid, sample),
  });
  s.sampler.setContainers(s.running);
}

function onSample(s: MonitorState, cid: string, sample: StatsSample): void {
  s.latest.set(cid, sample);
  const backendId = s.backendOf.get(cid);
  const view = backendId === undefined ? undefined : s.opts.registry.view(backendId);
  if (!view) return;
  const r = stepResources(s.states.get(cid) ?? initialResourceState(), sample, { backendId: view.backendId, app: view.app }, s.opts.config().failure_detection);
  s.states.set(cid, r.state);
  if (r.events.length > 0) publish(s, r.events, view.backendId);
}

/** An HTTP backend in a container that keeps timing out is checked for a deadlock. */
function onFailure(s: MonitorState, { event }: FailureNotice): void {
  if (event.failureType !== 'health_check_timeout' || event.consecutiveCount < s.opts.config().failure_detection.deadlock_timeouts) return;
  const b = s.opts.registry.backend(event.backendId);
  if (b?.container && b.health.protocol === 'HTTP') void checkDeadlock(s, b, event.consecutiveCount);
}

async function checkDeadlock(s: MonitorState, b: Backend, consecutiveTimeouts: number): Promise<void> {
  const { clock, registry, config, logger } = s.opts;
  const tcp = await checkTcpAccept(b.host, b.port, b.health.timeout_seconds * 1000, clock);
  const view = registry.view(b.id);
  if (!view?.container) return;
  const cid = view.container.id;
  const r = detectDeadlock(
    s.states.get(cid) ?? initialResourceState(),
    { subject: { backendId: b.id, app: b.app }, consecutiveTimeouts, containerState: view.container.state, tcp, sample: s.latest.get(cid) ?? null },
    config().failure_detection,
    clock.now(),
  );
  s.states.set(cid, r.state);
  if (r.event) publish(s, [r.event], b.id);
  else logger.debug({ backend: b.id, verdict: r.verdict }, 'repeated timeouts, not a deadlock');
}
