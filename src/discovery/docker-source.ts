/**
 * Discovery from the Docker Engine: containers labelled `orchestry.enable=true` become backends
 * (pure mapping in docker-labels.ts). Every container event triggers a resync (list + inspect,
 * a full snapshot), with bursts coalesced briefly; a `kill`/`stop`/`pause` of a backend's
 * container is emitted at once as a draining snapshot, before the resync, so nginx stops
 * routing to it before the process exits. The event stream reconnects with exponential backoff
 * and resyncs; while the Engine is unreachable the last snapshot stands and the status says so.
 */
import type Dockerode from 'dockerode';
import type { Clock, TimerHandle } from '../clock.js';
import type { AppConfig, HealthCheckConfig, SidecarConfig } from '../config/types.js';
import { describeError } from '../errors.js';
import type { ContainerRef, Snapshot } from '../model.js';
import type { Logger } from '../observability/logger.js';
import {
  detectContainerFailures,
  detectorConfig,
  forgetGone,
  isTerminatingSignal,
  nextStartupDeadline,
  parseDockerEvent,
  type ContainerEvent,
  type ContainerFailure,
  type DetectorState,
} from './docker-events.js';
import {
  DOCKER_SOURCE_NAME,
  ENABLE_LABEL,
  containersToBackends,
  snapshotWithDraining,
  type InspectedContainer,
  type LabelMapping,
  type RejectedContainer,
} from './docker-labels.js';
import type { DiscoverySource } from './types.js';

/** How long a burst of events may keep arriving before one resync covers them all. */
const COALESCE_MS = 75;
const LABEL_FILTER = [`${ENABLE_LABEL}=true`];

export interface DockerStatus {
  connected: boolean;
  /** Why the Engine is unreachable, when it is. */
  error?: string;
}

export interface DockerSourceOptions {
  docker: Dockerode;
  /** Read on every resync: label health is layered over the YAML's. */
  config: () => SidecarConfig;
  /** The YAML's defaults.health (base of apps only labels define); seed defaults without it. */
  defaultHealth?: () => HealthCheckConfig;
  clock: Clock;
  logger?: Logger;
  /** Called when the connection state (or its error) changes. */
  onStatus?(status: DockerStatus): void;
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

export interface DockerSource extends DiscoverySource {
  /** Looks at every container again soon (e.g. after the config file changed). */
  resync(): void;
  state(): DockerSourceState;
}

type EventStream = NodeJS.ReadableStream & { destroy?(): void };

/** A DiscoverySource (name `docker`) over the Docker Engine's API and event stream. */
export function createDockerSource(opts: DockerSourceOptions): DockerSource {
  const { docker, clock } = opts;
  const log = opts.logger?.child({ source: DOCKER_SOURCE_NAME });

  let emit: ((snapshot: Snapshot) => void) | null = null;
  let running = false;
  /** Bumped on every (re)connect and loss: callbacks of an older connection do nothing. */
  let generation = 0;
  let stream: EventStream | null = null;
  let status: DockerStatus = { connected: false };
  let backoffMs = 0;
  let reconnectTimer: TimerHandle | null = null;
  let resyncTimer: TimerHandle | null = null;
  let graceTimer: TimerHandle | null = null;
  let mapping: LabelMapping = { backends: [], apps: [], rejected: [], containers: [] };
  /** container id -> its startedAt when draining began (a later start ends the drain). */
  const draining = new Map<string, number>();
  /** Events not yet covered by a resync, in arrival order. */
  let pending: Omit<ContainerEvent, 'container'>[] = [];
  let detector: DetectorState = new Map();
  let lastEmitted: string | null = null;
  let rejectedLogged = new Map<string, string>();
  /** Resyncs run one at a time, in order. */
  let chain: Promise<void> = Promise.resolve();

  const setStatus = (next: DockerStatus) => {
    if (next.connected === status.connected && next.error === status.error) return;
    status = next;
    if (next.connected) log?.info('connected to the Docker Engine');
    else log?.warn({ err: next.error }, 'Docker Engine unreachable; keeping the last known containers');
    opts.onStatus?.(next);
  };

  const emitSnapshot = () => {
    if (!running || !emit) return;
    const snapshot: Snapshot = {
      source: DOCKER_SOURCE_NAME,
      backends: snapshotWithDraining(mapping.backends, new Set(draining.keys())),
    };
    // Rejections count as a change too: consumers read state() on each snapshot (the API, the
    // rejected-containers metric), and a rejected container changes no backend.
    const key = JSON.stringify({ snapshot, rejected: mapping.rejected });
    if (key === lastEmitted) return;
    lastEmitted = key;
    emit(snapshot);
  };

  const clearTimer = (timer: TimerHandle | null) => {
    if (timer) clock.clearTimeout(timer);
    return null;
  };

  const closeStream = () => {
    const s = stream;
    stream = null;
    s?.removeAllListeners();
    // An error after close must not become an unhandled 'error' event.
    s?.on('error', () => undefined);
    s?.destroy?.();
  };

  /** The connection `gen` is lost: keep what we know, report, retry with backoff. */
  const lost = (gen: number, err: unknown) => {
    if (!running || gen !== generation) return;
    generation++;
    closeStream();
    resyncTimer = clearTimer(resyncTimer);
    setStatus({ connected: false, error: describeError(err) });
    scheduleReconnect();
  };

  const scheduleReconnect = () => {
    if (!running || reconnectTimer) return;
    const { reconnect_min_seconds: min, reconnect_max_seconds: max } = opts.config().docker;
    const delay = backoffMs === 0 ? min * 1000 : backoffMs;
    backoffMs = Math.min(delay * 2, max * 1000);
    reconnectTimer = clock.setTimeout(() => {
      reconnectTimer = null;
      void connect();
    }, delay);
  };

  const connect = async () => {
    const gen = ++generation;
    try {
      // Subscribe before listing: an event during the list then causes another resync
      // rather than being missed.
      const s = (await docker.getEvents({
        filters: { type: ['container'], label: LABEL_FILTER },
      })) as EventStream;
      if (!running || gen !== generation) {
        s.destroy?.();
        return;
      }
      stream = s;
      attach(s, gen);
      await resync(gen);
      if (!running || gen !== generation) return;
      backoffMs = 0;
      setStatus({ connected: true });
    } catch (err) {
      lost(gen, err);
    }
  };

  const attach = (s: EventStream, gen: number) => {
    let buffered = '';
    s.on('data', (chunk: Buffer | string) => {
      if (gen !== generation) return;
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) onLine(line, gen);
      }
    });
    s.on('error', (err: Error) => lost(gen, err));
    s.on('end', () => lost(gen, new Error('Docker event stream ended')));
    s.on('close', () => lost(gen, new Error('Docker event stream closed')));
  };

  const onLine = (line: string, gen: number) => {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      log?.warn({ line: line.slice(0, 200) }, 'unreadable Docker event ignored');
      return;
    }
    const event = parseDockerEvent(raw);
    if (!event) return;
    const stopping =
      event.action === 'stop' ||
      event.action === 'pause' ||
      (event.action === 'kill' && isTerminatingSignal(event.signal));
    if (stopping && !draining.has(event.containerId)) {
      const backend = mapping.backends.find((b) => b.container?.id === event.containerId);
      if (backend?.container) {
        // Eject now: the coalescing wait would let requests reach a process that is going.
        draining.set(event.containerId, backend.container.startedAt);
        log?.info({ container: event.name, backend: backend.id, action: event.action }, 'draining backend');
        emitSnapshot();
      }
    }
    pending.push(event);
    scheduleResync(gen);
  };

  const scheduleResync = (gen: number, delay = COALESCE_MS) => {
    if (!running || resyncTimer || gen !== generation) return;
    resyncTimer = clock.setTimeout(() => {
      resyncTimer = null;
      resync(gen).catch((err: unknown) => lost(gen, err));
    }, delay);
  };

  const resync = (gen: number): Promise<void> => {
    const run = chain.then(() => (running && gen === generation ? syncOnce(gen) : undefined));
    chain = run.catch(() => undefined);
    return run;
  };

  const syncOnce = async (gen: number) => {
    const batch = pending;
    pending = [];
    let containers: InspectedContainer[];
    try {
      containers = await inspectAll();
    } catch (err) {
      pending = batch.concat(pending);
      throw err;
    }
    if (!running || gen !== generation) return;
    const config = opts.config();
    mapping = containersToBackends(containers, {
      config,
      ...(opts.defaultHealth ? { defaultHealth: opts.defaultHealth() } : {}),
    });
    logRejections(mapping.rejected);
    const refs = new Map(mapping.containers.map(({ container }) => [container.id, container]));
    for (const [id, startedAt] of draining) {
      const ref = refs.get(id);
      if (!ref || ref.state !== 'running' || ref.startedAt !== startedAt) draining.delete(id);
    }
    emitSnapshot();
    detect(batch, refs, config);
  };

  /** Lists every labelled container (any state) and inspects each; gone ones are skipped. */
  const inspectAll = async (): Promise<InspectedContainer[]> => {
    const list = await docker.listContainers({ all: true, filters: { label: LABEL_FILTER } });
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
  };

  const detect = (
    batch: Omit<ContainerEvent, 'container'>[],
    refs: Map<string, ContainerRef>,
    config: SidecarConfig,
  ) => {
    const cfg = detectorConfig(config);
    const now = clock.now();
    const run = (event: ContainerEvent, always: boolean) => {
      const result = detectContainerFailures(detector, event, now, cfg);
      detector = result.state;
      if (always || result.failures.length > 0) {
        for (const f of result.failures) log?.warn({ ...f }, `container failure: ${f.failureType}`);
        opts.onContainerEvent?.(event, result.failures);
      }
    };
    for (const event of batch) {
      const container = refs.get(event.containerId);
      run(container ? { ...event, container } : event, true);
    }
    for (const { app, container } of mapping.containers) {
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
    detector = forgetGone(detector, new Set(refs.keys()));
    graceTimer = clearTimer(graceTimer);
    const deadline = nextStartupDeadline(detector, [...refs.values()], cfg);
    if (deadline !== null) {
      const gen = generation;
      graceTimer = clock.setTimeout(() => {
        graceTimer = null;
        scheduleResync(gen, 0);
      }, Math.max(0, deadline - now));
    }
  };

  const logRejections = (rejected: RejectedContainer[]) => {
    const now = new Map(rejected.map((r) => [r.containerId, r.errors.join('; ')]));
    for (const r of rejected) {
      if (rejectedLogged.get(r.containerId) !== now.get(r.containerId)) {
        log?.error({ container: r.containerName, errors: r.errors }, 'container left out: bad orchestry labels');
      }
    }
    rejectedLogged = now;
  };

  return {
    name: DOCKER_SOURCE_NAME,
    async start(onSnapshot) {
      emit = onSnapshot;
      running = true;
      await connect();
    },
    async stop() {
      running = false;
      generation++;
      reconnectTimer = clearTimer(reconnectTimer);
      resyncTimer = clearTimer(resyncTimer);
      graceTimer = clearTimer(graceTimer);
      closeStream();
      await chain;
      emit = null;
    },
    resync() {
      if (status.connected) scheduleResync(generation);
    },
    state() {
      return { ...status, apps: mapping.apps, rejected: mapping.rejected };
    },
  };
}
