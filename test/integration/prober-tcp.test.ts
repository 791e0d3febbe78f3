import { afterAll, describe, expect, it } from 'vitest';
import { createTcpProber } from '../../src/probe/tcp.js';
import { proberSuite } from '../helpers/probe-suite.js';
import { probeBackend } from '../helpers/fixtures.js';
import { listenResetting, listenSilent, listenTcp } from '../helpers/probe-servers.js';

const PING = { probe_data: 'PING\n', expected_response: 'PONG' };

proberSuite(
  'tcp prober',
  () => createTcpProber(),
  async (c) => {
    if (c === 'healthy') {
      return { ...(await listenTcp((s) => s.on('data', () => s.write('+PONG\r\n')))), health: PING };
    }
    // Without expected_response a TCP probe only connects, which these servers allow.
    return { ...(await (c === 'silent' ? listenSilent() : listenResetting())), health: PING };
  },
  { checkType: 'tcp', health: { protocol: 'TCP' }, silent: 'unexpected_response', reset: 'unexpected_response' },
);

describe('tcp prober', () => {
  const prober = createTcpProber();
  const servers: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  const serve = async (onSocket: Parameters<typeof listenTcp>[0]) => {
    const s = await listenTcp(onSocket);
    servers.push(s);
    return s;
  };

  it('is healthy once connected when no response is expected, even if the backend stays silent', async () => {
    const s = await serve(() => {});
    const r = await prober.probe(probeBackend(s.port, { protocol: 'TCP' }));
    expect(r).toMatchObject({ healthy: true, checkType: 'tcp', statusCode: null, body: null });
  });

  it('sends probe_data to the backend', async () => {
    let received = '';
    const s = await serve((socket) =>
      socket.on('data', (d) => {
        received += d.toString();
        if (received.endsWith('\n')) socket.write('OK');
      }),
    );
    const r = await prober.probe(probeBackend(s.port, { protocol: 'TCP', probe_data: 'HELLO\n', expected_response: 'OK' }));
    expect(r.healthy).toBe(true);
    expect(received).toBe('HELLO\n');
  });

  it('is healthy when expected_response arrives split across several packets', async () => {
    const s = await serve((socket) =>
      socket.once('data', () => {
        socket.write('+PO');
        setTimeout(() => socket.write('NG\r\n'), 20);
      }),
    );
    const r = await prober.probe(probeBackend(s.port, { protocol: 'TCP', ...PING }));
    expect(r.healthy).toBe(true);
  });

  it('reports unexpected_response when the reply does not contain expected_response before the close', async () => {
    const s = await serve((socket) => socket.once('data', () => socket.end('-ERR unknown command\r\n')));
    const r = await prober.probe(probeBackend(s.port, { protocol: 'TCP', timeout_seconds: 2, ...PING }));
    expect(r.healthy).toBe(false);
    expect(r.errorClass).toBe('unexpected_response');
    expect(r.error).toContain('connection closed');
  });

  it('gives up reading after 4 KB without expected_response', async () => {
    const s = await serve((socket) => socket.once('data', () => socket.write('x'.repeat(64 * 1024))));
    const r = await prober.probe(probeBackend(s.port, { protocol: 'TCP', timeout_seconds: 5, ...PING }));
    expect(r.errorClass).toBe('unexpected_response');
    expect(r.error).toContain('first 4096 bytes');
  });
});
