/**
 * The Docker source's event stream: newline-delimited JSON events from the Engine. Every event
 * schedules a resync (docker-resync.ts) that covers it; a `kill`/`stop`/`pause` of a backend's
 * container drains that backend at once, before the resync.
 */
import { isTerminatingSignal, parseDockerEvent } from './docker-events.js';
import { matchesConstraints } from './docker-labels.js';
import { emitSnapshot, scheduleResync } from './docker-resync.js';
import type { DockerSourceContext, EventStream } from './docker-source.js';

/** Feeds the lines of connection `gen`'s stream to the source; its end or error loses the connection. */
export function attachEventStream(ctx: DockerSourceContext, s: EventStream, gen: number): void {
  let buffered = '';
  s.on('data', (chunk: Buffer | string) => {
    if (gen !== ctx.generation) return;
    buffered += chunk.toString();
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) onLine(ctx, line, gen);
    }
  });
  s.on('error', (err: Error) => ctx.lost(gen, err));
  s.on('end', () => ctx.lost(gen, new Error('Docker event stream ended')));
  s.on('close', () => ctx.lost(gen, new Error('Docker event stream closed')));
}

function onLine(ctx: DockerSourceContext, line: string, gen: number): void {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    ctx.log?.warn({ line: line.slice(0, 200) }, 'unreadable Docker event ignored');
    return;
  }
  const event = parseDockerEvent(raw);
  // Containers outside docker.constraints belong to another sidecar sharing the Engine.
  const labels = (raw as { Actor?: { Attributes?: Record<string, string> } }).Actor?.Attributes ?? {};
  if (!event || !matchesConstraints(labels, ctx.opts.config().docker.constraints)) return;
  const stopping =
    event.action === 'stop' ||
    event.action === 'pause' ||
    (event.action === 'kill' && isTerminatingSignal(event.signal));
  if (stopping && !ctx.draining.has(event.containerId)) {
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
