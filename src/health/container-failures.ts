/**
 * Docker's own signals (exited, OOM-killed, restart loop, never healthy) as failure events of
 * the backends their containers served. Docker reports a failure after the resync that follows
 * it, when the container may already have left discovery: the last view of each container's
 * backend is remembered so its failure still names the backend and reaches recovery.
 */
import type { Clock } from '../clock.js';
import type { ContainerEvent, ContainerFailure } from '../discovery/docker-events.js';
import type { SidecarBus } from '../events/sidecar-events.js';
import type { Backend } from '../model.js';
import type { Logger } from '../observability/logger.js';
import { containerFailureEvent } from './classify.js';
import type { HealthRegistry } from './registry.js';
import type { BackendView } from './types.js';

/** Containers remembered after they left discovery; the oldest are forgotten first. */
const MAX_REMEMBERED = 10_000;

export interface ContainerFailures {
  /** Remembers the backends of discovery's containers (call after each registry sync). */
  remember(backends: readonly Backend[]): void;
  /** Publishes a container event and the failures it revealed. */
  onContainerEvent(event: ContainerEvent, failures: ContainerFailure[]): void;
}

export function createContainerFailures(opts: {
  clock: Clock;
  bus: SidecarBus;
  registry: HealthRegistry;
  logger: Logger;
}): ContainerFailures {
  const { bus, registry } = opts;
  const lastView = new Map<string, BackendView>();
  return {
    remember(backends) {
      for (const b of backends) {
        if (!b.container) continue;
        const view = registry.view(b.id);
        if (!view) continue;
        lastView.delete(b.container.id); // re-inserted last: the map's order is recency
        lastView.set(b.container.id, view);
      }
      for (const id of lastView.keys()) {
        if (lastView.size <= MAX_REMEMBERED) break;
        lastView.delete(id);
      }
    },
    onContainerEvent(event, failures) {
      if (event.action !== 'sync') bus.emit('container', event);
      for (const f of failures) {
        const last = lastView.get(f.containerId);
        if (!last || !f.app) {
          opts.logger.warn({ container: f.containerId, failure: f.failureType }, 'failure of a container that was never routed; not acted on');
          continue;
        }
        const failure = containerFailureEvent({ ...f, app: f.app }, last.backendId, event.name, opts.clock.now());
        // Gone from discovery: the backend as last seen, out of nginx by now.
        const view = registry.view(last.backendId) ?? { ...last, container: event.container ?? last.container, ejected: true };
        bus.emit('failure', { event: failure, view });
      }
    },
  };
}
