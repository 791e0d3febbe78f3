/**
 * The discovery stage: the YAML file and (when enabled) the Docker Engine's containers and Swarm
 * services as sources of full snapshots, merged by one aggregator into the `discovery` event. A config edit enters here once
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
import { SWARM_SOURCE_NAME } from './swarm-labels.js';
import { createSwarmSource, type SwarmSource, type SwarmSourceState } from './swarm-source.js';

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
  /** Containers (and Swarm services and tasks) left out for bad labels, each with every reason. */
  rejected(): RejectedContainer[];
  /** The Docker connection, when Docker discovery runs. */
  dockerConnected(): boolean | null;
  /** The Swarm source's state, when Swarm discovery runs (docker.swarm true or auto). */
  swarm(): SwarmSourceState | null;
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
  const swarmSource: SwarmSource | null =
    opts.docker && config().docker.swarm !== false
      ? createSwarmSource({
          docker: opts.docker,
          config,
          defaultHealth: () => config().defaults.health,
          clock: opts.clock,
          logger: opts.logger,
          ...(opts.ownPorts ? { ownPorts: opts.ownPorts } : {}),
        })
      : null;
  // The YAML wins a name or address both report, then containers, then Swarm tasks. Docker and
  // Swarm are awaited: before their first list the containers' and tasks' servers are unknown.
  const aggregator = createDiscoveryAggregator({
    order: [CONFIG_SOURCE_NAME, DOCKER_SOURCE_NAME, SWARM_SOURCE_NAME],
    required: [...(dockerSource ? [DOCKER_SOURCE_NAME] : []), ...(swarmSource ? [SWARM_SOURCE_NAME] : [])],
    onSnapshot: (merged) => bus.emit('discovery', merged),
  });
  const push = aggregator.push.bind(aggregator);
  const rejected = () => [...(dockerSource?.state().rejected ?? []), ...(swarmSource?.state().rejected ?? [])];
  // A rejected container changes no backend, so the aggregator may drop its snapshot as a
  // repeat: the rejections are published on their own.
  const pushLabelled = (snapshot: Snapshot) => {
    push(snapshot);
    bus.emit('rejected', rejected());
  };
  return {
    async start() {
      // Docker first: its first list (or its failure) is known before the file's apps are
      // routed, so a start does not write a file without the containers.
      await Promise.all([dockerSource?.start(pushLabelled), swarmSource?.start(pushLabelled)]);
      await fileSource.start(push);
    },
    reload() {
      fileSource.refresh();
      dockerSource?.resync();
      swarmSource?.resync();
    },
    current: () => aggregator.current(),
    rejected,
    dockerConnected: () => (dockerSource ? dockerSource.state().connected : null),
    swarm: () => swarmSource?.state() ?? null,
    async stop() {
      await Promise.all([dockerSource?.stop(), swarmSource?.stop()]);
      await fileSource.stop();
    },
  };
}
