/**
 * The Docker source's events: every event schedules a resync (docker-resync.ts) that covers it;
 * a `kill`/`stop`/`pause` of a backend's container drains that backend at once, before the
 * resync.
 */
import { isStopRequest, parseDockerEvent } from './docker-events.js';
import { matchesConstraints } from './docker-labels.js';
import { emitSnapshot } from './docker-resync.js';
import type { DockerSourceContext } from './docker-source.js';
import { scheduleResync } from './engine-connection.js';

/** One event of connection `gen`'s stream (engine-connection.ts reads the lines). */
export function onContainerEvent(ctx: DockerSourceContext, raw: unknown, gen: number): void {
  const event = parseDockerEvent(raw);
  // Containers outside docker.constraints belong to another sidecar sharing the Engine.
  const labels = (raw as { Actor?: { Attributes?: Record<string, string> } }).Actor?.Attributes ?? {};
  if (!event || !matchesConstraints(labels, ctx.opts.config().docker.constraints)) return;
  if (isStopRequest(event) && !ctx.draining.has(event.containerId)) {
    const backend = ctx.mapping.backends.find((b) => b.container?.id === event.containerId);
    if (backend?.container) {
      // Eject now: the coalescing wait would let requests reach a process that is going.
      ctx.draining.set(event.containerId, backend.container.startedAt);
      ctx.log?.info({ container: event.name, backend: backend.id, action: event.action }, 'draining backend');
      emitSnapshot(ctx);
    }
  }
  ctx.pending.push(event);
  scheduleResync(ctx, gen);
}
