/**
 * The one way tests pick a loopback port for something to listen on, or to find nothing on.
 *
 * Most ports go to another process (nginx, the sidecar, Alertmanager, a container), which must
 * bind them itself, so "ask the OS for port 0 on the socket you will use" is not possible and the
 * choice is check-then-use. It is made safe as far as it can be:
 * - below the kernel's ephemeral range: a port from that range (what listen(0) returns) can be
 *   taken by any outgoing connection, e.g. nginx's own to a backend, before its owner binds it,
 *   and a connection to a closed ephemeral port can even connect to itself;
 * - drawn at random from thousands, checked by binding it on 127.0.0.1, and never handed out
 *   twice by one test process (other test files run one at a time).
 * Servers the test process runs itself (test/helpers/probe-servers.ts) listen on port 0 instead.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';

const handedOut = new Set<number>();

/** A port that was free a moment ago on 127.0.0.1, below the ephemeral range, new to this process. */
export async function freePort(): Promise<number> {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '32768');
  const low = Number(range.trim().split(/\s+/)[0]) || 32768;
  const base = Math.min(20_000, low - 1000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = base + Math.floor(Math.random() * (low - base));
    if (!handedOut.has(port) && (await canListen(port))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port below the ephemeral range');
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export function canListen(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
