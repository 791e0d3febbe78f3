import { describe, expect, it } from 'vitest';
import { classifyError, errorText, failure, runAttempts, success } from '../../src/probe/outcome.js';
import { LATE_TOLERANCE_MS, MAX_EXTENSIONS, armDeadline, lateNote, type DeadlineVerdict } from '../../src/probe/stalls.js';
import type { Clock, TimerHandle } from '../../src/clock.js';
import { createManualClock } from '../../src/clock.js';
import { probeBackend } from '../helpers/fixtures.js';

const coded = (code: string, message = code, cause?: unknown) =>
  Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });

describe('probe error classification', () => {
  const classes = (codes: string[]) => codes.map((code) => classifyError(coded(code)));

  it("blames this host, not the backend, when a probe fails for the host's own resources", () => {
    const local = ['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EAGAIN', 'EADDRNOTAVAIL', 'EADDRINUSE', 'EAI_SYSTEM'];
    expect(new Set(classes(local))).toEqual(new Set(['local_error']));
  });

  it('calls a connect, headers or body timeout a timeout, whichever layer reports it', () => {
    const timeouts = ['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'];
    expect(new Set(classes(timeouts))).toEqual(new Set(['timeout']));
  });

  it('tells nothing listening (refused) from a connection that broke (reset)', () => {
    expect(classes(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'EPIPE'])).toEqual(
      ['connection_refused', 'connection_reset', 'connection_reset', 'connection_reset']);
  });

  it("calls any certificate or TLS handshake failure tls, also codes it has no entry for", () => {
    const tls = ['ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'EPROTO'];
    expect(new Set(classes(tls))).toEqual(new Set(['tls']));
  });

  it('separates a name that does not resolve from a network it cannot reach, and anything else is an error', () => {
    expect(classes(['ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_SOMETHING_ELSE'])).toEqual(
      ['dns', 'dns', 'network_unreachable', 'network_unreachable', 'error']);
  });

  it('looks at the cause when the error itself has no known code', () => {
    expect(classifyError(coded('UND_ERR', 'fetch failed', coded('ECONNREFUSED')))).toBe('connection_refused');
  });

  it('looks inside a multi-address connect failure (AggregateError)', () => {
    const err = new AggregateError([coded('ECONNREFUSED', 'connect ECONNREFUSED ::1:80')], '');
    expect(classifyError(err)).toBe('connection_refused');
    expect(errorText(err)).toBe('connect ECONNREFUSED ::1:80');
  });

  it('classifies a value that is not an error as error', () => {
    expect(classifyError('boom')).toBe('error');
    expect(errorText('boom')).toBe('boom');
  });

  it('adds the cause to the error text', () => {
    expect(errorText(coded('X', 'request failed', new Error('socket hang up')))).toBe('request failed: socket hang up');
  });
});

describe('runAttempts', () => {
  it('stops at the first healthy attempt', async () => {
    const outcomes = [failure('unexpected_status', 'unexpected status 500 (expected 200)', 500), success(200, 'ok')];
    const r = await runAttempts(probeBackend(1, { max_retries: 5 }), 'http', createManualClock(), async () => outcomes.shift()!);
    expect(r).toMatchObject({ healthy: true, attempts: 2, statusCode: 200, body: 'ok', errorClass: null });
  });

  it('turns an attempt that throws into an error result instead of a rejection', async () => {
    const r = await runAttempts(probeBackend(1), 'tcp', createManualClock(), async () => {
      throw new Error('bug');
    });
    expect(r).toMatchObject({ healthy: false, checkType: 'tcp', errorClass: 'error', error: 'bug', attempts: 1 });
  });
});

/** A clock whose timers run only when told to, at a time given: an event loop held until then. */
function heldClock(): Clock & { runAt(ms: number): void } {
  let now = 0;
  let nextId = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.set(++nextId, { at: now + ms, fn });
      return nextId as unknown as TimerHandle;
    },
    clearTimeout: (handle) => void timers.delete(handle as unknown as number),
    runAt(ms) {
      now = ms;
      for (const [id, t] of [...timers]) {
        if (t.at > now) continue;
        timers.delete(id);
        t.fn();
      }
    },
  };
}

// The deadline itself (src/probe/stalls.ts) with the clock above: only the deadline's own
// lateness is seen here (no other timer shares its stall log).
describe('probe deadline', () => {
  const arm = (clock: Clock) => {
    const expired: Array<[DeadlineVerdict, number]> = [];
    const deadline = armDeadline({ clock, timeoutMs: 1000, onExpire: (verdict, given) => expired.push([verdict, given]) });
    return { expired, deadline };
  };

  it('expires on time, and within the tolerance for a late timer', () => {
    const clock = heldClock();
    const { expired } = arm(clock);
    clock.runAt(1000 + LATE_TOLERANCE_MS);
    expect(expired).toEqual([['timeout', 0]]);
  });

  it('gives a backend back the time the sidecar was held when the deadline fired late', () => {
    const clock = heldClock();
    const { expired } = arm(clock);
    clock.runAt(1600);
    expect(expired).toEqual([]);
    clock.runAt(2199);
    expect(expired).toEqual([]);
    clock.runAt(2200);
    expect(expired).toEqual([['timeout', 600]]);
  });

  it('still times out a backend that never answers once the sidecar gave it its whole timeout, however late the first deadline fired', () => {
    const clock = heldClock();
    const { expired } = arm(clock);
    clock.runAt(5000);
    clock.runAt(6000);
    expect(expired).toEqual([['timeout', 1000]]);
  });

  it('ends without a verdict when every deadline fires late: the sidecar never gave the backend its timeout', () => {
    const clock = heldClock();
    const { expired } = arm(clock);
    for (let i = 0; i <= MAX_EXTENSIONS; i++) clock.runAt(5000 + i * 15_000);
    expect(expired).toEqual([['sidecar_late', MAX_EXTENSIONS * 1000]]);
  });

  it('runs nothing once cancelled, an extended deadline included', () => {
    const clock = heldClock();
    const { expired, deadline } = arm(clock);
    clock.runAt(1500);
    deadline.cancel();
    clock.runAt(10_000);
    expect(expired).toEqual([]);
  });

  it('says in the timeout text when the deadline was extended', () => {
    expect(lateNote(0)).toBe('');
    expect(lateNote(612.4)).toBe(" (given 612 ms more: the sidecar's event loop was held within the probe's window)");
  });
});
