/**
 * clear_cache's effect: the HTTP call an app declares (recovery.clear_cache), sent to one
 * backend's own address. Outcomes are data: a refused connection, a timeout or a non-2xx answer
 * is `{ ok: false, error }`, never a throw.
 */
import { describeError } from '../errors.js';
import { formatAddress } from '../model.js';
import type { BackendCall } from './types.js';

export interface BackendCallResult {
  ok: boolean;
  /** The HTTP status, when the backend answered. */
  status?: number;
  error?: string;
}

/** Default deadline for the whole call: the backend is under memory pressure, not asked to work. */
export const BACKEND_CALL_TIMEOUT_MS = 5000;

/** Makes the call over plain HTTP; 2xx is success. The body is read and dropped. */
export async function callBackend(call: BackendCall, timeoutMs = BACKEND_CALL_TIMEOUT_MS): Promise<BackendCallResult> {
  const url = `http://${formatAddress(call.host, call.port)}${call.path}`;
  const what = `${call.method} ${url}`;
  try {
    // Loaded on the first call only: the daemon has no other use for undici (+29 MB RSS, 109 files loaded, bench:scale).
    const { request } = await import('undici');
    const res = await request(url, {
      method: call.method,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body.dump();
    if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true, status: res.statusCode };
    return { ok: false, status: res.statusCode, error: `${what} answered HTTP ${res.statusCode} (expected 2xx)` };
  } catch (err) {
    const timedOut = (err as { name?: string }).name === 'TimeoutError';
    return { ok: false, error: `${what} failed: ${timedOut ? `no answer within ${timeoutMs} ms` : describeError(err)}` };
  }
}
