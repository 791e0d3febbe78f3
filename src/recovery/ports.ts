/**
 * A port for a new replica on host networking: the lowest port of the app's range that no known
 * replica uses and that nothing else on the host holds right now.
 */
import { createServer } from 'node:net';

/** Ports of `range` (inclusive) not in `used`, lowest first. Pure. */
export function* unusedPorts(range: readonly [number, number], used: Iterable<number>): Generator<number> {
  const taken = new Set(used);
  for (let port = range[0]; port <= range[1]; port++) if (!taken.has(port)) yield port;
}

/** True when 127.0.0.1:port can be bound now (the socket is closed again at once). */
export function canBindLoopback(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The lowest port of `range` unused by the app's replicas that can be bound; null when none.
 * A port bound by another process (not a replica) is skipped, so a port chosen here can still be
 * taken before the new container binds it: the container then fails to start and says so.
 */
export async function pickFreePort(
  range: readonly [number, number],
  used: Iterable<number>,
  canBind: (port: number) => Promise<boolean> = canBindLoopback,
): Promise<number | null> {
  for (const port of unusedPorts(range, used)) if (await canBind(port)) return port;
  return null;
}
