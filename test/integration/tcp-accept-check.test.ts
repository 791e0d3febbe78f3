/** The deadlock detector's TCP accept check against real loopback sockets. */
import { describe, expect, it } from 'vitest';
import { checkTcpAccept } from '../../src/discovery/docker-stats.js';
import { listenSilent } from '../helpers/probe-servers.js';

describe('TCP accept check', () => {
  it('tells a listening port (even one whose process never reads) from a closed one', async () => {
    // A server that accepts and never answers, like a hung process: the kernel still accepts.
    const server = await listenSilent();
    try {
      expect(await checkTcpAccept('127.0.0.1', server.port, 2000)).toBe('accepted');
    } finally {
      await server.close();
    }
    expect(await checkTcpAccept('127.0.0.1', server.port, 2000)).toBe('refused');
  });
});
