/**
 * The DNS server's sockets against well-behaved and hostile clients: UDP and TCP on one port,
 * IPv6, pipelined and trickled TCP queries, junk, idle and surplus connections.
 */
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createDnsServer, type DnsServer, type DnsServerOptions } from '../../src/nginx/dns/server.js';
import { buildQuery, decodeMessage, desiredUpstream, type DecodedMessage } from '../helpers/dns-messages.js';
import { waitFor } from '../helpers/wait.js';

const WEB = { upstreams: [desiredUpstream('web', [{ address: '127.0.0.1:8001' }])] };
const SRV = buildQuery({ name: '_http._tcp.web.orchestry.internal' });

const servers: DnsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function serve(opts: DnsServerOptions = {}): Promise<{ server: DnsServer; host: string; port: number }> {
  const server = createDnsServer({ host: '127.0.0.1', port: 0, ...opts });
  servers.push(server);
  server.publish(WEB);
  return { server, ...(await server.start()) };
}

/** One UDP query; the decoded answer, or null when none came within 500 ms. */
function udp(host: string, port: number, packet: Uint8Array): Promise<DecodedMessage | null> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, 500);
    socket.once('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(decodeMessage(msg));
    });
    socket.send(packet, port, host, (err) => err && reject(err));
  });
}

/** A TCP client that collects length-prefixed answers and notices when the server closes. */
async function tcp(host: string, port: number): Promise<{ socket: Socket; answers: DecodedMessage[]; closed: Promise<void> }> {
  const socket = connect(port, host);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const answers: DecodedMessage[] = [];
  let buf = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      answers.push(decodeMessage(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, answers, closed };
}

const framed = (packet: Uint8Array) => Buffer.concat([Buffer.from([packet.length >> 8, packet.length & 0xff]), packet]);

describe('DNS server sockets', () => {
  it('answers over UDP and TCP on the same port', async () => {
    const { host, port } = await serve();
    expect((await udp(host, port, SRV))?.answers).toHaveLength(1);
    const client = await tcp(host, port);
    client.socket.write(framed(SRV));
    await waitFor(() => client.answers.length === 1, { what: 'a TCP answer' });
    expect(client.answers[0]!.answers[0]).toMatchObject({ port: 8001, target: 'ip-127-0-0-1.orchestry.internal' });
    client.socket.destroy();
  });

  it('listens on IPv6 too', async () => {
    const { host, port } = await serve({ host: '::1' });
    expect((await udp(host, port, SRV))?.answers).toHaveLength(1);
    const client = await tcp(host, port);
    client.socket.write(framed(SRV));
    await waitFor(() => client.answers.length === 1, { what: 'a TCP answer over IPv6' });
    client.socket.destroy();
  });

  it('answers pipelined TCP queries and a query trickled in byte by byte', async () => {
    const { host, port } = await serve();
    const client = await tcp(host, port);
    client.socket.write(Buffer.concat([framed(SRV), framed(SRV), framed(SRV)]));
    await waitFor(() => client.answers.length === 3, { what: 'three answers' });
    for (const byte of framed(SRV)) {
      client.socket.write(Uint8Array.of(byte));
      await new Promise((r) => setTimeout(r, 2));
    }
    await waitFor(() => client.answers.length === 4, { what: 'the trickled query answered' });
    client.socket.destroy();
  });

  it('keeps answering after junk over UDP, and closes a TCP connection that sends junk', async () => {
    const { server, host, port } = await serve();
    for (const junk of [Uint8Array.of(1, 2, 3), new Uint8Array(600).fill(0xc0), Uint8Array.from(Buffer.from('GET / HTTP/1.1\r\n\r\n'))]) {
      const reply = await udp(host, port, junk);
      if (reply) expect([1, 4]).toContain(reply.rcode); // FORMERR or NOTIMP, or nothing at all
    }
    expect((await udp(host, port, SRV))?.answers).toHaveLength(1);
    // A message too short to be a query, and a response instead of a query.
    for (const junk of [Buffer.from([0, 5, 1, 2, 3, 4, 5]), framed(buildQuery({ name: 'x.orchestry.internal', flags: 0x8100 }))]) {
      const client = await tcp(host, port);
      client.socket.write(junk);
      await client.closed;
    }
    expect(server.stats().tcpConnectionsCut).toBe(2);
  });

  it('closes idle TCP connections and refuses connections beyond the cap', async () => {
    const { server, host, port } = await serve({ tcpIdleTimeoutMs: 300, maxTcpConnections: 2 });
    const first = await tcp(host, port);
    const second = await tcp(host, port);
    await waitFor(() => server.stats().tcpConnectionsOpen === 2, { what: 'two open connections' });
    const third = await tcp(host, port);
    await third.closed;
    expect(server.stats().tcpConnectionsRefused).toBe(1);
    await Promise.all([first.closed, second.closed]);
    await waitFor(() => server.stats().tcpConnectionsOpen === 0, { what: 'the server to close both' });
    expect(server.stats().tcpConnectionsCut).toBe(2);
  });
});
