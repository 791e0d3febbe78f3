/**
 * One behaviour suite run against every Prober implementation, each against real loopback
 * servers. Implementations differ only where their protocols do (`expectations`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthCheckConfig } from '../../src/config/types.js';
import type { ProbeErrorClass } from '../../src/model.js';
import type { Prober } from '../../src/probe/types.js';
import { probeBackend } from './fixtures.js';
import { freePort } from './free-port.js';
import { listenBacklogFull, type LoopbackServer } from './probe-servers.js';

/** healthy: answers as expected; silent: accepts and never answers; reset: resets on request. */
export type SuiteCase = 'healthy' | 'silent' | 'reset';

export interface CaseServer extends LoopbackServer {
  /** Health settings the case needs on top of the implementation's base settings. */
  health?: Partial<HealthCheckConfig>;
}

export interface SuiteExpectations {
  checkType: 'http' | 'tcp';
  /** Settings for every case, e.g. the protocol. */
  health: Partial<HealthCheckConfig>;
  silent: ProbeErrorClass;
  reset: ProbeErrorClass;
}

export function proberSuite(
  name: string,
  makeProber: () => Prober & { close?(): Promise<void> },
  makeServerForCase: (c: SuiteCase) => Promise<CaseServer>,
  expectations: SuiteExpectations,
): void {
  describe(`${name} (shared prober suite)`, () => {
    let prober: Prober & { close?(): Promise<void> };
    beforeAll(() => {
      prober = makeProber();
    });
    afterAll(async () => {
      await prober.close?.();
    });

    const withCase = async <T>(c: SuiteCase, extra: Partial<HealthCheckConfig>, fn: (s: CaseServer) => Promise<T>) => {
      const server = await makeServerForCase(c);
      try {
        return await fn({ ...server, health: { ...expectations.health, ...server.health, ...extra } });
      } finally {
        await server.close();
      }
    };

    it('reports a healthy backend as healthy with its response time', async () => {
      await withCase('healthy', {}, async (s) => {
        const backend = probeBackend(s.port, s.health);
        const r = await prober.probe(backend);
        expect(r).toMatchObject({
          backendId: backend.id,
          app: 'web',
          checkType: expectations.checkType,
          healthy: true,
          errorClass: null,
          error: null,
          attempts: 1,
        });
        expect(r.responseTimeMs).toBeGreaterThan(0);
        expect(r.finishedAt).toBeGreaterThanOrEqual(r.startedAt);
      });
    });

    it('classifies a closed port as connection_refused', async () => {
      const port = await freePort();
      const r = await prober.probe(probeBackend(port, { ...expectations.health, timeout_seconds: 1 }));
      expect(r.healthy).toBe(false);
      expect(r.errorClass).toBe('connection_refused');
      expect(r.error).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
    });

    it('retries a failed attempt max_retries more times and counts the attempts', async () => {
      const port = await freePort();
      const r = await prober.probe(probeBackend(port, { ...expectations.health, timeout_seconds: 1, max_retries: 2 }));
      expect(r.healthy).toBe(false);
      expect(r.attempts).toBe(3);
    });

    it('classifies a connection that never completes as timeout', async () => {
      const server = await listenBacklogFull();
      try {
        const r = await prober.probe(probeBackend(server.port, { ...expectations.health, timeout_seconds: 1 }));
        expect(r.healthy).toBe(false);
        expect(r.errorClass).toBe('timeout');
      } finally {
        await server.close();
      }
    });

    it(`classifies a backend that accepts but never answers as ${expectations.silent}`, async () => {
      await withCase('silent', { timeout_seconds: 1 }, async (s) => {
        const r = await prober.probe(probeBackend(s.port, s.health));
        expect(r.healthy).toBe(false);
        expect(r.errorClass).toBe(expectations.silent);
      });
    });

    it('does not time out a backend whose answer waited while the sidecar held its own event loop', async () => {
      await withCase('healthy', { timeout_seconds: 0.3 }, async (s) => {
        const probe = prober.probe(probeBackend(s.port, s.health));
        // Held well past the deadline: the connection completes and the backend (in this process,
        // so it too answers only afterwards) is ready, but timers run before I/O.
        const until = performance.now() + 800;
        while (performance.now() < until) {
          // busy, as a GC pause or a burst of synchronous work would be
        }
        expect(await probe).toMatchObject({ healthy: true, errorClass: null });
      });
    });

    it(`classifies a backend that resets the connection as ${expectations.reset}`, async () => {
      await withCase('reset', { timeout_seconds: 1 }, async (s) => {
        const r = await prober.probe(probeBackend(s.port, s.health));
        expect(r.healthy).toBe(false);
        expect(r.errorClass).toBe(expectations.reset);
      });
    });
  });
}
