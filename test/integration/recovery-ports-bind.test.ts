/** The default port check for new replicas binds for real: a port another socket holds is taken. */
import { describe, expect, it } from 'vitest';
import { canBindLoopback, pickFreePort } from '../../src/recovery/ports.js';
import { listenSilent } from '../helpers/probe-servers.js';

describe('ports for new replicas, bound for real', () => {
  it('sees a port held by another process on loopback as taken', async () => {
    const server = await listenSilent();
    const port = server.port;
    try {
      expect(await canBindLoopback(port)).toBe(false);
      expect(await pickFreePort([port, port], [])).toBeNull();
    } finally {
      await server.close();
    }
    expect(await canBindLoopback(port)).toBe(true);
  });
});
