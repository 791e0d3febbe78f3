import { describe, expect, it } from 'vitest';
import { readiness } from '../../src/observability/readiness.js';

const ok = { awaiting: [], firstApplyDone: true, docker: null, lastOutcome: null };

describe('readiness', () => {
  it('is ready once nginx has been written and nothing is awaited or failing', () => {
    expect(readiness(ok)).toEqual({ ready: true, reasons: [] });
    expect(readiness({ ...ok, docker: { connected: true, socketPath: '/s' } }).ready).toBe(true);
  });

  it('gives every reason it is not ready at once', () => {
    const r = readiness({
      awaiting: ['docker'],
      firstApplyDone: false,
      docker: { connected: false, socketPath: '/var/run/docker.sock' },
      lastOutcome: { result: 'failed', stage: 'validate', error: 'nginx -t: bad', durationMs: 1, reloaded: false },
    });
    expect(r.ready).toBe(false);
    expect(r.reasons).toEqual([
      'waiting for the first list of containers from Docker',
      'nginx upstreams not yet written',
      'Docker Engine unreachable (/var/run/docker.sock): routing with the last known containers',
      'last nginx update failed at validate: nginx -t: bad',
    ]);
  });

  it('is not ready while probes fail for a local reason, saying they are not counted against backends', () => {
    const localErrors = { count: 3, since: Date.UTC(2026, 0, 1), lastAt: Date.UTC(2026, 0, 1, 0, 0, 5), last: 'web/127.0.0.1:8001: connect EMFILE' };
    expect(readiness({ ...ok, localErrors })).toEqual({
      ready: false,
      reasons: ['3 probes since 2026-01-01T00:00:00.000Z failed for a local reason and were not counted against backends (last: web/127.0.0.1:8001: connect EMFILE)'],
    });
    expect(readiness({ ...ok, localErrors: null }).ready).toBe(true);
  });

  it('is not ready while the last nginx update failed, even after an earlier success', () => {
    const r = readiness({ ...ok, lastOutcome: { result: 'failed', stage: 'reload', error: 'nginx is not running', durationMs: 1, reloaded: false } });
    expect(r).toEqual({ ready: false, reasons: ['last nginx update failed at reload: nginx is not running'] });
  });

  it('is not ready while the Swarm manager is unreachable, and says so', () => {
    expect(readiness({ ...ok, swarm: { connected: true } }).ready).toBe(true);
    expect(readiness({ ...ok, awaiting: ['swarm'], swarm: { connected: false, error: 'connect ENOENT /run/m.sock' } }).reasons).toEqual([
      'waiting for the first snapshot of discovery source swarm',
      'Swarm manager unreachable (connect ENOENT /run/m.sock): routing with the last known tasks',
    ]);
  });
});
