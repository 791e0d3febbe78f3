/**
 * The authoritative DNS server of DNS mode: UDP and TCP (RFC 1035 4.2.2, two-byte length prefix)
 * on one host:port, answering from the latest published ZoneTable (respond.ts does the DNS; this
 * file only moves bytes).
 *
 * Hostile clients: UDP packets are answered or dropped one by one (respond never throws). TCP
 * connections are capped (`maxTcpConnections`, extra ones are closed at once), closed after
 * `tcpIdleTimeoutMs` without data, buffer at most one message (64 KiB + 2) while it arrives,
 * with no quadratic copying of slowly trickled bytes, and are closed when a client stops reading
 * its answers (`maxTcpWriteBuffer`) or sends something that is no query.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { DesiredSet } from '../../upstream/types.js';
import { DEFAULT_SERVICE, DEFAULT_ZONE, buildZoneTable, unpublishedZone, type ZoneBuild, type ZoneTable } from './records.js';
import { respond, type Reply, type ReplyOutcome, type Transport } from './respond.js';
import { HEADER_SIZE } from './wire.js';

/** Loopback: nginx on this host (or in a container with host networking) reaches it. */
export const DEFAULT_DNS_HOST = '127.0.0.1';
/** The research note's port. It is also mDNS's: where avahi holds it, configure another. */
export const DEFAULT_DNS_PORT = 5353;

/** Where to listen, which zone, and the limits against misbehaving TCP clients. */
export interface DnsServerOptions {
  /** IPv4 or IPv6 address to listen on (UDP and TCP); default 127.0.0.1. */
  host?: string;
  /** Default 5353; 0 picks a free port, the same one for UDP and TCP. */
  port?: number;
  /** Default `orchestry.internal`. */
  zone?: string;
  /** Default `_http._tcp`. */
  service?: string;
  /** Default 64. */
  maxTcpConnections?: number;
  /** Default 10 s (RFC 7766 suggests seconds, not minutes). */
  tcpIdleTimeoutMs?: number;
  /** Answer bytes queued for a client that does not read them before it is cut off; default 256 KiB. */
  maxTcpWriteBuffer?: number;
  /** Called for every message received, after it was answered (for logs, metrics and tests). */
  onReply?: (event: DnsReplyEvent) => void;
}

/** One message received and what became of it. */
export interface DnsReplyEvent {
  transport: Transport;
  /** The question as asked (dotted, case kept), or null when there was none to read. */
  name: string | null;
  type: number | null;
  outcome: ReplyOutcome;
  truncated: boolean;
}

/** Counters since start(), for metrics and tests. */
export interface DnsServerStats {
  /** Messages received, by transport. */
  queries: Record<Transport, number>;
  /** Replies (and drops) by outcome. */
  outcomes: Partial<Record<ReplyOutcome, number>>;
  /** UDP answers cut to TC. */
  truncated: number;
  tcpConnectionsOpen: number;
  /** Connections closed at once because `maxTcpConnections` were open. */
  tcpConnectionsRefused: number;
  /** Connections closed for idling, not reading or sending junk. */
  tcpConnectionsCut: number;
  /** Socket errors (sends that failed, resets), counted and otherwise ignored. */
  socketErrors: number;
}

/** The running server: publish() swaps what it answers. */
export interface DnsServer {
  /** Binds UDP and TCP; resolves with the address they listen on. */
  start(): Promise<{ host: string; port: number }>;
  /** Answers from `set` from now on; the report names apps and servers that could not be published. */
  publish(set: DesiredSet): ZoneBuild;
  /** The table answered from now. */
  readonly table: ZoneTable;
  stats(): DnsServerStats;
  /** Closes both sockets and every open connection. */
  stop(): Promise<void>;
}

interface State {
  host: string;
  port: number;
  spec: { zone: string; service: string };
  limits: { connections: number; idleMs: number; writeBuffer: number };
  table: ZoneTable;
  udp: UdpSocket | null;
  tcp: Server | null;
  connections: Set<Socket>;
  stats: DnsServerStats;
  onReply: ((event: DnsReplyEvent) => void) | undefined;
}

/** A DNS server answering SERVFAIL in its zone until the first publish(). */
export function createDnsServer(opts: DnsServerOptions = {}): DnsServer {
  const spec = { zone: opts.zone ?? DEFAULT_ZONE, service: opts.service ?? DEFAULT_SERVICE };
  const state: State = {
    host: opts.host ?? DEFAULT_DNS_HOST,
    port: opts.port ?? DEFAULT_DNS_PORT,
    spec,
    limits: {
      connections: opts.maxTcpConnections ?? 64,
      idleMs: opts.tcpIdleTimeoutMs ?? 10_000,
      writeBuffer: opts.maxTcpWriteBuffer ?? 256 * 1024,
    },
    table: unpublishedZone(spec), // throws on an invalid zone or service name
    udp: null,
    tcp: null,
    connections: new Set(),
    stats: {
      queries: { udp: 0, tcp: 0 },
      outcomes: {},
      truncated: 0,
      tcpConnectionsOpen: 0,
      tcpConnectionsRefused: 0,
      tcpConnectionsCut: 0,
      socketErrors: 0,
    },
    onReply: opts.onReply,
  };
  return {
    start: () => start(state),
    publish: (set) => publish(state, set),
    get table() {
      return state.table;
    },
    stats: () => ({ ...state.stats, queries: { ...state.stats.queries }, outcomes: { ...state.stats.outcomes } }),
    stop: () => stop(state),
  };
}

function publish(state: State, set: DesiredSet): ZoneBuild {
  const current = state.table;
  const build = buildZoneTable(set, state.spec, current.serial + 1);
  // An unchanged zone keeps its serial (and its table object).
  if (current.published && build.table.content === current.content) return { ...build, table: current };
  state.table = build.table;
  return build;
}

async function start(state: State): Promise<{ host: string; port: number }> {
  if (state.udp) throw new Error('DNS server already started');
  // With port 0, UDP picks the port and TCP must get the same one; rarely it is taken for TCP.
  for (let attempt = 1; ; attempt++) {
    const udp = await bindUdp(state);
    const port = udp.address().port;
    try {
      state.tcp = await listenTcp(state, port);
      state.udp = udp;
      state.port = port;
      return { host: state.host, port };
    } catch (err) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (state.port !== 0 || attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}

function bindUdp(state: State): Promise<UdpSocket> {
  const udp = createSocket({ type: isIP(state.host) === 6 ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(state.port, state.host, () => {
      udp.off('error', reject);
      udp.on('error', () => state.stats.socketErrors++);
      udp.on('message', (msg, peer) => {
        const reply = answer(state, msg, 'udp');
        if (!reply.bytes) return;
        udp.send(reply.bytes, peer.port, peer.address, (err) => {
          if (err) state.stats.socketErrors++;
        });
      });
      resolve(udp);
    });
  });
}

function listenTcp(state: State, port: number): Promise<Server> {
  const server = createServer({ noDelay: true }, (socket) => accept(state, socket));
  server.maxConnections = state.limits.connections;
  server.on('drop', () => state.stats.tcpConnectionsRefused++);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, state.host, () => {
      server.off('error', reject);
      server.on('error', () => state.stats.socketErrors++);
      resolve(server);
    });
  });
}

function answer(state: State, msg: Uint8Array, transport: Transport): Reply {
  const { stats } = state;
  stats.queries[transport]++;
  const reply = respond(msg, state.table, transport);
  stats.outcomes[reply.outcome] = (stats.outcomes[reply.outcome] ?? 0) + 1;
  if (reply.truncated) stats.truncated++;
  state.onReply?.({
    transport,
    name: reply.question ? reply.question.labels.join('.') : null,
    type: reply.question?.type ?? null,
    outcome: reply.outcome,
    truncated: reply.truncated,
  });
  return reply;
}

/** One TCP connection: length-prefixed messages in, length-prefixed answers out. */
function accept(state: State, socket: Socket): void {
  state.connections.add(socket);
  state.stats.tcpConnectionsOpen++;
  const cut = () => {
    state.stats.tcpConnectionsCut++;
    socket.destroy();
  };
  socket.on('close', () => {
    state.connections.delete(socket);
    state.stats.tcpConnectionsOpen--;
  });
  socket.on('error', () => state.stats.socketErrors++);
  socket.setTimeout(state.limits.idleMs, cut);
  // Bytes received but not yet a whole message; joined only once a whole message is there, so a
  // client trickling bytes costs no repeated copying.
  let chunks: Buffer[] = [];
  let size = 0;
  let length: number | null = null; // of the message being received, once its prefix is in
  const take = (n: number): Buffer => {
    const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    const rest = buf.subarray(n);
    chunks = rest.length > 0 ? [rest] : [];
    size = rest.length;
    return buf.subarray(0, n);
  };
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    size += chunk.length;
    while (!socket.destroyed) {
      if (length === null) {
        if (size < 2) return;
        length = take(2).readUInt16BE(0);
        if (length < HEADER_SIZE) return cut(); // cannot be a query
      }
      if (size < length) return;
      const reply = answer(state, take(length), 'tcp');
      length = null;
      if (!reply.bytes) return cut(); // not a query: whatever follows cannot be trusted either
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(reply.bytes.length);
      socket.write(Buffer.concat([prefix, reply.bytes]));
      if (socket.writableLength > state.limits.writeBuffer) return cut();
    }
  });
}

async function stop(state: State): Promise<void> {
  const { udp, tcp } = state;
  state.udp = null;
  state.tcp = null;
  for (const socket of state.connections) socket.destroy();
  await Promise.all([
    udp && new Promise<void>((resolve) => udp.close(() => resolve())),
    tcp && new Promise<void>((resolve) => tcp.close(() => resolve())),
  ]);
}
