/**
 * What the HTTP and TCP probers share: the outcome of one attempt, the retry loop that turns
 * attempts into a ProbeResult, and the mapping from socket/TLS/undici error codes to
 * ProbeErrorClass.
 */
import { performance } from 'node:perf_hooks';
import type { Clock } from '../clock.js';
import type { Backend, ProbeErrorClass, ProbeResult } from '../model.js';

/** The outcome of one attempt; a probe is one or more attempts (max_retries). */
export interface AttemptOutcome {
  healthy: boolean;
  statusCode: number | null;
  body: string | null;
  errorClass: ProbeErrorClass | null;
  error: string | null;
  /** No verdict: the sidecar's event loop stalled through the deadline (src/probe/stalls.ts). */
  sidecarLate?: boolean;
}

export function success(statusCode: number | null = null, body: string | null = null): AttemptOutcome {
  return { healthy: true, statusCode, body, errorClass: null, error: null };
}

export function failure(
  errorClass: ProbeErrorClass,
  error: string,
  statusCode: number | null = null,
  body: string | null = null,
): AttemptOutcome {
  return { healthy: false, statusCode, body, errorClass, error };
}

/** A deadline's end as an outcome: the backend's timeout, or no verdict when the sidecar stalled. */
export function timeoutOutcome(verdict: 'timeout' | 'sidecar_late', error: string, errorClass: ProbeErrorClass = 'timeout'): AttemptOutcome {
  if (verdict === 'timeout') return failure(errorClass, error);
  return { ...failure(errorClass, `${error} not judged: the sidecar's event loop was stalled`), sidecarLate: true };
}

/** Attempts cut short by the sidecar's own stalls are retried this many times more, for free. */
const SIDECAR_LATE_RETRIES = 1;

/**
 * Runs `attempt` once, then again immediately after each failure up to health.max_retries more
 * times, and reports the last attempt. A thrown attempt is a bug, but it still becomes data
 * (errorClass 'error') so that one bad backend cannot break the scheduler.
 */
export async function runAttempts(
  backend: Backend,
  checkType: 'http' | 'tcp',
  clock: Clock,
  attempt: () => Promise<AttemptOutcome>,
): Promise<ProbeResult> {
  const startedAt = clock.now();
  // Date.now() has millisecond resolution; a loopback probe often takes less than that.
  const t0 = performance.now();
  const maxAttempts = 1 + Math.max(0, Math.floor(backend.health.max_retries));
  let attempts = 0;
  let lateRetries = 0;
  let outcome: AttemptOutcome;
  for (;;) {
    attempts++;
    try {
      outcome = await attempt();
    } catch (err) {
      outcome = failure('error', errorText(err));
    }
    if (outcome.sidecarLate && lateRetries < SIDECAR_LATE_RETRIES) {
      lateRetries++;
      attempts--;
      continue;
    }
    if (outcome.healthy || attempts >= maxAttempts) break;
  }
  return {
    backendId: backend.id,
    app: backend.app,
    checkType,
    healthy: outcome.healthy,
    responseTimeMs: performance.now() - t0,
    statusCode: outcome.statusCode,
    body: outcome.body,
    errorClass: outcome.errorClass,
    error: outcome.error,
    startedAt,
    finishedAt: clock.now(),
    attempts,
    ...(outcome.sidecarLate ? { sidecarLate: true as const } : {}),
  };
}

const CODE_CLASSES: ReadonlyMap<string, ProbeErrorClass> = new Map<string, ProbeErrorClass>([
  ['UND_ERR_CONNECT_TIMEOUT', 'timeout'],
  ['UND_ERR_HEADERS_TIMEOUT', 'timeout'],
  ['UND_ERR_BODY_TIMEOUT', 'timeout'],
  ['ETIMEDOUT', 'timeout'],
  ['ECONNREFUSED', 'connection_refused'],
  ['ECONNRESET', 'connection_reset'],
  ['UND_ERR_SOCKET', 'connection_reset'],
  ['EPIPE', 'connection_reset'],
  ['EHOSTUNREACH', 'network_unreachable'],
  ['ENETUNREACH', 'network_unreachable'],
  // Resources of this host, not of the backend: out of file descriptors (process or system),
  // socket buffers, memory, local ports (EADDRNOTAVAIL/EADDRINUSE on connect), or a resolver
  // failing on a system error.
  ['EMFILE', 'local_error'],
  ['ENFILE', 'local_error'],
  ['ENOBUFS', 'local_error'],
  ['ENOMEM', 'local_error'],
  ['EAGAIN', 'local_error'],
  ['EADDRNOTAVAIL', 'local_error'],
  ['EADDRINUSE', 'local_error'],
  ['EAI_SYSTEM', 'local_error'],
  ['EAI_MEMORY', 'local_error'],
  ['ENOTFOUND', 'dns'],
  ['EAI_AGAIN', 'dns'],
  ['EAI_FAIL', 'dns'],
  ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls'],
  ['SELF_SIGNED_CERT_IN_CHAIN', 'tls'],
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls'],
  ['UNABLE_TO_GET_ISSUER_CERT', 'tls'],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'tls'],
  ['EPROTO', 'tls'],
]);

function classifyCode(code: string): ProbeErrorClass | undefined {
  const known = CODE_CLASSES.get(code);
  if (known) return known;
  if (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || code.startsWith('CERT_')) return 'tls';
  return undefined;
}

/** Error codes of an error, its cause, and (for Happy Eyeballs) the first of its errors. */
function codesOf(err: unknown): string[] {
  const codes: string[] = [];
  const visit = (e: unknown, depth: number): void => {
    if (typeof e !== 'object' || e === null || depth > 3) return;
    const { code, cause, errors } = e as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === 'string') codes.push(code);
    visit(cause, depth + 1);
    if (Array.isArray(errors)) visit(errors[0], depth + 1);
  };
  visit(err, 0);
  return codes;
}

/** Maps a thrown socket, TLS or undici error to the class the health stage reasons about. */
export function classifyError(err: unknown): ProbeErrorClass {
  for (const code of codesOf(err)) {
    const cls = classifyCode(code);
    if (cls) return cls;
  }
  return 'error';
}

/** One line of text for a thrown value, e.g. `connect ECONNREFUSED 127.0.0.1:8002`. */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Node's multi-address connect failure is an AggregateError with an empty message.
  if (err instanceof AggregateError && err.errors.length > 0 && !err.message) {
    return err.errors.map(errorText).join('; ');
  }
  const message = err.message || (err as { code?: string }).code || err.name;
  const cause = err.cause;
  if (cause instanceof Error && cause.message && !message.includes(cause.message)) {
    return `${message}: ${errorText(cause)}`;
  }
  return message;
}
