/**
 * Bounds what clients of the admin port can hold: connections and time. The port has no
 * authentication, and every connection is a file descriptor taken from the ones probes, nginx
 * updates and the store need: 1,500 idle connections under a limit of 1,024 made probes fail
 * with EMFILE (a healthy backend's breaker opened) and nginx updates fail too.
 *
 * - At most `maxConnections` open. A new connection past the cap closes the oldest one with no
 *   request in progress (a silent or kept-alive connection), as nginx reuses idle keep-alive
 *   connections when it runs out; only when every one is busy is the new one closed instead. A
 *   flood of idle connections thus cannot lock out /healthz or a Prometheus scrape.
 * - A request's headers and body must arrive within `requestTimeoutMs` (node:http's
 *   headersTimeout and requestTimeout, checked every second instead of every 30), which also
 *   closes a connection that never sends anything; a connection silent for `idleTimeoutMs`
 *   (between requests, or a client not reading its response) is closed.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { AdminConfig } from '../config/types.js';

export interface AdminLimits {
  maxConnections: number;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
}

export interface AdminConnectionStats {
  /** Connections open now. */
  open: number;
  /** Idle connections closed to make room for a new one. */
  evicted: number;
  /** New connections closed because every open one was busy. */
  refused: number;
}

/** The limits an `admin` section sets. */
export function adminLimits(cfg: AdminConfig): AdminLimits {
  return {
    maxConnections: cfg.max_connections,
    idleTimeoutMs: cfg.idle_timeout_seconds * 1000,
    requestTimeoutMs: cfg.request_timeout_seconds * 1000,
  };
}

/** How often node:http checks headersTimeout and requestTimeout (its default is 30 s). */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1000;

/**
 * Applies `limits()` to `server` (read again at each new connection, so a configuration reload
 * takes effect for the connections that follow) and returns its counters; `onChange` is told
 * each time they change.
 */
export function guardConnections(server: Server, limits: () => AdminLimits, onChange?: (stats: AdminConnectionStats) => void): () => AdminConnectionStats {
  // Insertion order is age: the first idle one found is the oldest.
  const open = new Set<Socket>();
  const busy = new Set<Socket>();
  let evicted = 0;
  let refused = 0;
  const stats = (): AdminConnectionStats => ({ open: open.size, evicted, refused });
  const changed = (): void => onChange?.(stats());

  const apply = (): AdminLimits => {
    const l = limits();
    server.headersTimeout = l.requestTimeoutMs;
    server.requestTimeout = l.requestTimeoutMs;
    server.keepAliveTimeout = l.idleTimeoutMs;
    // Inactivity of the socket itself; node:http destroys it when nobody handles 'timeout'.
    server.timeout = l.idleTimeoutMs;
    return l;
  };
  apply();

  // Runs after node:http's own listener has taken the socket, so closing it is a normal close.
  // Counted before the socket is closed: the client may see the close (and read the counters)
  // before this thread runs another statement (CI saw `refused` still 0 after the refusal).
  server.on('connection', (socket: Socket) => {
    const { maxConnections } = apply();
    while (open.size >= maxConnections) {
      const idle = oldestIdle(open, busy);
      if (!idle) {
        refused++;
        changed();
        socket.destroy();
        return;
      }
      open.delete(idle);
      evicted++;
      changed();
      idle.destroy();
    }
    open.add(socket);
    changed();
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
      changed();
    });
  });
  server.on('request', (req, res) => {
    const socket = req.socket;
    busy.add(socket);
    res.once('close', () => busy.delete(socket));
  });
  return stats;
}

function oldestIdle(open: Set<Socket>, busy: Set<Socket>): Socket | undefined {
  for (const s of open) if (!busy.has(s)) return s;
  return undefined;
}
