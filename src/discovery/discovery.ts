/**
 * The discovery stage: the YAML file and (when enabled) the Docker Engine as sources of full
 * snapshots, merged by one aggregator into the `discovery` event. A config edit enters here once
 * (the file source's new snapshot; Docker's labels are read again too, since they layer over the
 * YAML) and the aggregator passes it on only if the merged view changed.
 */
import type Dockerode from 'dockerode';
import type { Clock } from '../clock.js';
import type { SidecarConfig } from '../config/types.js';
import type { SidecarBus } from '../events/sidecar-events.js';
import type { Logger } from '../observability/logger.js';
import { createDiscoveryAggregator, type MergedSnapshot } from './aggregator.js';
import { CONFIG_SOURCE_NAME, createConfigSource } from './config-source.js';
import type { ContainerEvent, ContainerFailure } from './docker-events.js';
import type { Snapshot } from '../model.js';
import { DOCKER_SOURCE_NAME, type RejectedContainer } from './docker-labels.js';
import { createDockerSource, type DockerSource } from './docker-source.js';

export interface DiscoveryOptions {
  clock: Clock;
  bus: SidecarBus;
  logger: Logger;
  config: () => SidecarConfig;
  /** Docker discovery runs when given (docker.enabled). */
  docker: Dockerode | undefined;
  /** Docker's own failure signals, after the resync that followed them. */
  onContainerEvent(event: ContainerEvent, failures: ContainerFailure[]): void;
  /** The sidecar's own listening ports, each with what listens there (see DockerSourceOptions). */
  ownPorts?: () => ReadonlyMap<number, string>;
  /** Apps only labels define, seen before this start (see DockerSourceOptions). */
  knownApps?: readonly string[];
}

export interface Discovery {
  /** Starts every source; resolves once each has been asked for its first snapshot. */
  start(): Promise<void>;
  /** The config changed: the file's snapshot again, Docker's labels read again. */
  reload(): void;
  /** The merged view last published (null before the first). */
  current(): MergedSnapshot | null;
  /** Containers left out for bad labels, each with every reason. */
  rejected(): RejectedContainer[];
  /** The Docker connection, when Docker discovery runs. */
  dockerConnected(): boolean | null;
  stop(): Promise<void>;
}

export function createDiscovery(opts: DiscoveryOptions): Discovery {
  const { bus, config } = opts;
  const fileSource = createConfigSource({ config });
  const dockerSource: DockerSource | null = opts.docker
    ? createDockerSource({
        docker: opts.docker,
        config,
        defaultHealth: () => config().defaults.health,
        clock: opts.clock,
        logger: opts.logger,
        onStatus: (status) => bus.emit('docker', status),
        onContainerEvent: opts.onContainerEvent,
        ...(opts.ownPorts ? { ownPorts: opts.ownPorts } : {}),
        ...(opts.knownApps ? { knownApps: opts.knownApps } : {}),
      })
    : null;
  // The YAML wins a name or address both report. Docker is awaited: before its first list the
  // containers' servers are unknown.
  const aggregator = createDiscoveryAggregator({
    order: [CONFIG_SOURCE_NAME, DOCKER_SOURCE_NAME],
    required: dockerSource ? [DOCKER_SOURCE_NAME] : [],
    onSnapshot: (merged) => bus.emit('discovery', merged),
  });
  const push = aggregator.push.bind(aggregator);
  // A rejected container changes no backend, so the aggregator may drop its snapshot as a
  // repeat: the rejections are published on their own.
  const pushDocker = (snapshot: Snapshot) => {
    push(snapshot);
    if (dockerSource) bus.emit('rejected', dockerSource.state().rejected);
  };
  return {
    async start() {
      // Docker first: its first list (or its failure) is known before the file's apps are
      // routed, so a start does not write a file without the containers.
      await dockerSource?.start(pushDocker);
      await fileSource.start(push);
    },
    reload() {
      fileSource.refresh();
      dockerSource?.resync();
    },
    current: () => aggregator.current(),
    rejected: () => dockerSource?.state().rejected ?? [],
    dockerConnected: () => (dockerSource ? dockerSource.state().connected : null),
    async stop() {
      await dockerSource?.stop();
      await fileSource.stop();
    },
  };
}
