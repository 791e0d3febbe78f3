import { describe, expect, it } from 'vitest';
import { classifyError, errorText, failure, runAttempts, success } from '../../src/probe/outcome.js';
import { createManualClock } from '../../src/clock.js';
import { probeBackend } from '../helpers/fixtures.js';

const coded = (code: string, message = code, cause?: unknown) =>
  Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });

describe('probe error classification', () => {
  it.each([
    ['UND_ERR_CONNECT_TIMEOUT', 'timeout'],
    ['UND_ERR_HEADERS_TIMEOUT', 'timeout'],
    ['UND_ERR_BODY_TIMEOUT', 'timeout'],
    ['ECONNREFUSED', 'connection_refused'],
    ['ECONNRESET', 'connection_reset'],
    ['UND_ERR_SOCKET', 'connection_reset'],
    ['EPIPE', 'connection_reset'],
    ['EHOSTUNREACH', 'network_unreachable'],
    ['ENETUNREACH', 'network_unreachable'],
    ['EMFILE', 'local_error'],
    ['ENFILE', 'local_error'],
    ['ENOBUFS', 'local_error'],
    ['ENOMEM', 'local_error'],
    ['EAGAIN', 'local_error'],
    ['EADDRNOTAVAIL', 'local_error'],
    ['EADDRINUSE', 'local_error'],
    ['EAI_SYSTEM', 'local_error'],
    ['ENOTFOUND', 'dns'],
    ['EAI_AGAIN', 'dns'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'tls'],
    ['CERT_HAS_EXPIRED', 'tls'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'tls'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls'],
    ['EPROTO', 'tls'],
    ['ERR_SOMETHING_ELSE', 'error'],
  ])('classifies %s as %s', (code, cls) => {
    expect(classifyError(coded(code))).toBe(cls);
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
