/**
 * A bounded, in-memory log of what happened (transitions, failures, nginx updates, config
 * reloads, recovery actions), newest last, for `/api/v1/events` and the status page. It holds
 * the recent past only; durable history is the store's job.
 */
export type EventKind = 'transition' | 'failure' | 'nginx' | 'config' | 'recovery' | 'docker';

export interface LoggedEvent {
  /** Increasing sequence number: clients poll with `?after=<seq>`. */
  seq: number;
  /** ISO time. */
  at: string;
  kind: EventKind;
  app: string | null;
  backend: string | null;
  message: string;
  data: Record<string, unknown>;
}

export interface EventQuery {
  after?: number;
  kind?: EventKind;
  app?: string;
  limit?: number;
}

export interface EventLog {
  push(kind: EventKind, at: number, message: string, data?: Record<string, unknown> & { app?: string; backend?: string }): void;
  /** Matching events, oldest first, at most `limit` (the newest ones). */
  list(query?: EventQuery): LoggedEvent[];
}

export const EVENT_KINDS: readonly EventKind[] = ['transition', 'failure', 'nginx', 'config', 'recovery', 'docker'];

/** A ring of the last `capacity` events. */
export function createEventLog(capacity = 1000): EventLog {
  const ring: LoggedEvent[] = [];
  let seq = 0;
  return {
    push(kind, at, message, data = {}) {
      const { app, backend, ...rest } = data;
      ring.push({ seq: ++seq, at: new Date(at).toISOString(), kind, app: app ?? null, backend: backend ?? null, message, data: rest });
      if (ring.length > capacity) ring.splice(0, ring.length - capacity);
    },
    list(query = {}) {
      const out = ring.filter(
        (e) =>
          (query.after === undefined || e.seq > query.after) &&
          (query.kind === undefined || e.kind === query.kind) &&
          (query.app === undefined || e.app === query.app),
      );
      const limit = query.limit ?? 100;
      return out.length > limit ? out.slice(out.length - limit) : out;
    },
  };
}
