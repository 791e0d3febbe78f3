/**
 * The Docker source's resync: list and inspect every labelled container, map them to backends
 * (docker-labels.ts), emit the snapshot, and hand the events it covers, with the containers as
 * inspected after them, to the failure detector (docker-events.ts). The connection
 * (engine-connection.ts) runs resyncs one at a time, in order, for the connection that asked.
 */
import type Dockerode from 'dockerode';
import type { AppConfig, HealthCheckConfig, SidecarConfig } from '../config/types.js';
import type { ContainerRef, Snapshot } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { detectContainerFailures, detectorConfig, forgetGone, nextStartupDeadline, type ContainerEvent } from './docker-events.js';
import {
  DOCKER_SOURCE_NAME,
  ENABLE_LABEL,
  containersToBackends,
  labelOnlyApp,
  snapshotWithDraining,
  type InspectedContainer,
  type LabelContext,
  type RejectedContainer,
} from './docker-labels.js';
import type { DockerSourceContext } from './docker-source.js';
import { clearTimer, isCurrent, scheduleResync, type EngineSourceOptions } from './engine-connection.js';

/**
 * Apps remembered without a container, at most: each costs a placeholder upstream, and a label
 * can name any app, so the least recently seen are forgotten first beyond this.
 */
export const MAX_REMEMBERED_APPS = 1000;
/** Only containers that opt in; the event stream is filtered the same way. */
export const LABEL_FILTER = [`${ENABLE_LABEL}=true`];

/** Emits the current backends, draining ones marked, unless nothing changed since the last. */
export function emitSnapshot(ctx: DockerSourceContext): void {
  emitIfChanged(ctx, {
    source: DOCKER_SOURCE_NAME,
    backends: snapshotWithDraining(ctx.mapping.backends, new Set(ctx.draining.keys())),
    apps: ctx.apps,
  }, ctx.mapping.rejected);
}

/** What a source needs to emit only what changed. */
interface Emitter {
  running: boolean;
  emit: ((snapshot: Snapshot) => void) | null;
  lastEmitted: string | null;
}

/** Emits `snapshot` unless it and the rejections are what was emitted last (Docker and Swarm sources). */
export function emitIfChanged(ctx: Emitter, snapshot: Snapshot, rejected: readonly RejectedContainer[]): void {
  if (!ctx.running || !ctx.emit) return;
  // Rejections count as a change too: consumers read state() on each snapshot (the API, the
  // rejected-containers metric), and a rejected container changes no backend.
  const key = JSON.stringify({ snapshot, rejected });
  if (key === ctx.lastEmitted) return;
  ctx.lastEmitted = key;
  ctx.emit(snapshot);
}

/** One resync (the connection's syncOnce hook): list, inspect, map, emit, detect. */
export async function syncOnce(ctx: DockerSourceContext, gen: number): Promise<void> {
  const batch = ctx.pending;
  ctx.pending = [];
  let containers: InspectedContainer[];
  try {
    containers = await inspectAll(ctx.opts.docker, ctx.opts.config().docker.constraints);
  } catch (err) {
    ctx.pending = batch.concat(ctx.pending);
    throw err;
  }
  if (!isCurrent(ctx, gen)) return;
  const config = ctx.opts.config();
  ctx.mapping = mapRemembering(ctx, config, (labels) => containersToBackends(containers, labels));
  logRejections(ctx, ctx.mapping.rejected);
  const refs = new Map(ctx.mapping.containers.map(({ container }) => [container.id, container]));
  for (const [id, startedAt] of ctx.draining) {
    const ref = refs.get(id);
    if (!ref || ref.state !== 'running' || ref.startedAt !== startedAt) ctx.draining.delete(id);
  }
  emitSnapshot(ctx);
  detect(ctx, batch, refs, config);
}

/**
 * Maps with the labels' context (config, default health, apps remembered, own ports), then
 * remembers the apps the mapping defines and sets `ctx.apps` (Docker and Swarm sources).
 */
export function mapRemembering<M extends { apps: AppConfig[] }>(
  ctx: { opts: EngineSourceOptions; remembered: Map<string, AppConfig | null>; apps: AppConfig[] },
  config: SidecarConfig,
  map: (labels: LabelContext) => M,
): M {
  const defaultHealth = ctx.opts.defaultHealth?.() ?? config.defaults.health;
  const mapping = map({
    config,
    defaultHealth,
    knownApps: [...ctx.remembered.keys()].reverse(),
    ...(ctx.opts.ownPorts ? { ownPorts: ctx.opts.ownPorts() } : {}),
  });
  ctx.apps = rememberApps(ctx.remembered, mapping.apps, config, defaultHealth);
  return mapping;
}

/**
 * Records the label apps just seen in `remembered` (most recent last) and returns the apps of
 * the snapshot: those, then every remembered one without a container now, as a placeholder,
 * unless the YAML defines an app of that name in any case (the YAML's wins). Forgets the least
 * recently seen beyond MAX_REMEMBERED_APPS.
 */
export function rememberApps(
  remembered: Map<string, AppConfig | null>,
  seen: readonly AppConfig[],
  config: SidecarConfig,
  defaultHealth: HealthCheckConfig,
): AppConfig[] {
  for (const app of seen) {
    remembered.delete(app.name);
    remembered.set(app.name, app);
  }
  for (const name of remembered.keys()) {
    if (remembered.size <= MAX_REMEMBERED_APPS) break;
    remembered.delete(name);
  }
  const taken = new Set([...config.apps, ...seen].map((a) => a.name.toLowerCase()));
  const absent: AppConfig[] = [];
  for (const [name, app] of remembered) {
    if (taken.has(name.toLowerCase())) continue;
    taken.add(name.toLowerCase());
    // Its containers are gone: no backend, so its upstream renders the placeholder.
    absent.push(app ?? labelOnlyApp(name, config, defaultHealth));
  }
  absent.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [...seen, ...absent];
}

/** Lists every labelled container (any state) in scope and inspects each; gone ones are skipped. */
async function inspectAll(docker: Dockerode, constraints: readonly string[]): Promise<InspectedContainer[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [...LABEL_FILTER, ...constraints] } });
  const inspected = await Promise.all(
    list.map((c) =>
      docker
        .getContainer(c.Id)
        .inspect()
        .catch((err: { statusCode?: number }) => {
          if (err.statusCode === 404) return null; // removed between list and inspect
          throw err;
        }),
    ),
  );
  return inspected.filter((c): c is Dockerode.ContainerInspectInfo => c !== null);
}

function detect(
  ctx: DockerSourceContext,
  batch: Omit<ContainerEvent, 'container'>[],
  refs: Map<string, ContainerRef>,
  config: SidecarConfig,
): void {
  const { clock } = ctx.opts;
  const cfg = detectorConfig(config);
  const now = clock.now();
  const run = (event: ContainerEvent, always: boolean) => {
    const result = detectContainerFailures(ctx.detector, event, now, cfg);
    ctx.detector = result.state;
    if (always || result.failures.length > 0) {
      for (const f of result.failures) ctx.log?.warn({ ...f }, `container failure: ${f.failureType}`);
      ctx.opts.onContainerEvent?.(event, result.failures);
    }
  };
  for (const event of batch) {
    const container = refs.get(event.containerId);
    run(container ? { ...event, container } : event, true);
  }
  for (const { app, container } of ctx.mapping.containers) {
    const observation: ContainerEvent = {
      action: 'sync',
      containerId: container.id,
      name: container.name,
      app,
      at: now,
      exitCode: null,
      signal: null,
      health: null,
      container,
    };
    run(observation, false);
  }
  ctx.detector = forgetGone(ctx.detector, new Set(refs.keys()), now);
  ctx.graceTimer = clearTimer(clock, ctx.graceTimer);
  const deadline = nextStartupDeadline(ctx.detector, [...refs.values()], cfg);
  if (deadline !== null) {
    const gen = ctx.generation;
    ctx.graceTimer = clock.setTimeout(() => {
      ctx.graceTimer = null;
      scheduleResync(ctx, gen, 0);
    }, Math.max(0, deadline - now));
  }
}

/** Logs each rejection once, and again when its reasons change (Docker and Swarm sources). */
export function logRejections(
  ctx: { log: Logger | undefined; rejectedLogged: Map<string, string> },
  rejected: readonly RejectedContainer[],
): void {
  const now = new Map(rejected.map((r) => [r.containerId, r.errors.join('; ')]));
  for (const r of rejected) {
    if (ctx.rejectedLogged.get(r.containerId) !== now.get(r.containerId)) {
      const kind = r.kind ?? 'container';
      ctx.log?.error({ [kind]: r.containerName, errors: r.errors }, `${kind} left out: bad orchestry labels`);
    }
  }
  ctx.rejectedLogged = now;
}
