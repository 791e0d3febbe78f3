/**
 * Discovery from the Docker Engine: containers labelled `orchestry.enable=true` become backends
 * (pure mapping in docker-labels.ts). Every container event triggers a resync (list + inspect,
 * a full snapshot), with bursts coalesced briefly; a `kill`/`stop`/`pause` of a backend's
 * container is emitted at once as a draining snapshot, before the resync, so nginx stops
 * routing to it before the process exits. The event stream reconnects with exponential backoff
 * and resyncs; while the Engine is unreachable the last snapshot stands and the status says so.
 *
 * This file builds the source; the connection (subscribe, resync chain, reconnect) is
 * engine-connection.ts, shared with the Swarm source; events are read in docker-event-stream.ts,
 * and the list/inspect/resync lives in docker-resync.ts.
 */
import type Dockerode from 'dockerode';
import type { Clock, TimerHandle } from '../clock.js';
import type { AppConfig, HealthCheckConfig, SidecarConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import type { ContainerEvent, ContainerFailure, DetectorState } from './docker-events.js';
import { onContainerEvent } from './docker-event-stream.js';
import { DOCKER_SOURCE_NAME, type LabelMapping, type RejectedContainer } from './docker-labels.js';
import { LABEL_FILTER, syncOnce } from './docker-resync.js';
import {
  clearTimer,
  engineContext,
  engineSource,
  type DockerStatus,
  type EngineSource,
  type EngineSourceBase,
  type EngineSourceOptions,
  type EventStream,
} from './engine-connection.js';

export type { DockerStatus, EventStream };

export interface DockerSourceOptions extends EngineSourceOptions {
  /**
   * Apps only labels define that were seen before this start (from the store): they are
   * remembered as if seen in this run (see DockerSourceContext.remembered).
   */
  knownApps?: readonly string[];
  /**
   * Every container event after the resync that followed it, with the failures it reveals;
   * also resync observations that reveal a failure (a restart count that rose, a startup
   * grace that ran out).
   */
  onContainerEvent?(event: ContainerEvent, failures: ContainerFailure[]): void;
}

/** What the Docker source knows now, for the API and the upstream builder. */
export interface DockerSourceState extends DockerStatus {
  /** Apps only labels define (from the last resync); upstreams are needed for them too. */
  apps: AppConfig[];
  /** Containers left out for bad labels (from the last resync). */
  rejected: RejectedContainer[];
}

/** A DiscoverySource over the Engine's containers; resync() looks at every container again soon. */
export type DockerSource = EngineSource<DockerSourceState>;

/**
 * One Docker source's state, shared by its connection (engine-connection.ts), its events
 * (docker-event-stream.ts) and its resync (docker-resync.ts).
 */
export interface DockerSourceContext extends EngineSourceBase {
  readonly opts: DockerSourceOptions;
  graceTimer: TimerHandle | null;
  mapping: LabelMapping;
  /** The apps of the last snapshot: the mapping's, then remembered ones without a container. */
  apps: AppConfig[];
  /** container id -> its startedAt when draining began (a later start ends the drain). */
  readonly draining: Map<string, number>;
  /** Events not yet covered by a resync, in arrival order. */
  pending: Omit<ContainerEvent, 'container'>[];
  detector: DetectorState;
  /**
   * Every app only labels define that was seen, by name, least recently seen first (null: known
   * from an earlier run, not seen yet in this one). nginx may reference such an app whatever
   * its containers do (`proxy_pass http://shop;`), so it stays in every snapshot, with no
   * backends once its containers are gone: a placeholder that keeps nginx's config valid.
   */
  remembered: Map<string, AppConfig | null>;
}

/** A DiscoverySource (name `docker`) over the Docker Engine's API and event stream. */
export function createDockerSource(opts: DockerSourceOptions): DockerSource {
  const ctx = engineContext<DockerSourceContext>(
    DOCKER_SOURCE_NAME,
    opts,
    {
      filters: { type: ['container'], label: LABEL_FILTER },
      onEvent: onContainerEvent,
      syncOnce,
      words: { connected: 'connected to the Docker Engine', lost: 'Docker Engine unreachable; keeping the last known containers' },
      clearTimers: (c) => {
        c.graceTimer = clearTimer(opts.clock, c.graceTimer);
      },
    },
    {
      graceTimer: null,
      mapping: { backends: [], apps: [], rejected: [], containers: [] },
      apps: [],
      draining: new Map(),
      pending: [],
      detector: new Map(),
      remembered: new Map((opts.knownApps ?? []).map((name) => [name, null])),
    },
  );
  return engineSource(DOCKER_SOURCE_NAME, ctx, () => ({ ...ctx.status, apps: ctx.apps, rejected: ctx.mapping.rejected }));
}
