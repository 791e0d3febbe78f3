/**
 * Probes that failed for a reason of the sidecar's own (src/health/classify.ts isLocalError):
 * counted into episodes, for one log line every so often and for readiness. Pure, with the time
 * passed in.
 */
import type { ProbeResult } from '../model.js';

/** An episode ends this long after its last local error (readiness turns ready again). */
export const LOCAL_ERROR_QUIET_MS = 60_000;
/** At most one log line this often while local errors go on; the others are counted in it. */
export const LOCAL_ERROR_LOG_EVERY_MS = 10_000;

/** The current episode of local errors. */
export interface LocalErrorEpisode {
  /** Probes that failed locally in this episode. */
  count: number;
  /** Epoch ms of the first and the latest one. */
  since: number;
  lastAt: number;
  /** The latest one: `backend: error`. */
  last: string;
}

export interface LocalErrors {
  /**
   * Records one local error; returns what to log now (how many went unlogged before it), or
   * null while the last line is recent enough.
   */
  record(result: ProbeResult, now: number): { unlogged: number } | null;
  /** The episode going on at `now`, or null when there has been none for LOCAL_ERROR_QUIET_MS. */
  episode(now: number): LocalErrorEpisode | null;
}

export function createLocalErrors(): LocalErrors {
  let current: LocalErrorEpisode | null = null;
  let loggedAt = -Infinity;
  let unlogged = 0;
  return {
    record(result, now) {
      const last = `${result.backendId}: ${result.error ?? 'local error'}`;
      if (current === null || now - current.lastAt >= LOCAL_ERROR_QUIET_MS) {
        current = { count: 0, since: now, lastAt: now, last };
      }
      current.count += 1;
      current.lastAt = now;
      current.last = last;
      if (now - loggedAt < LOCAL_ERROR_LOG_EVERY_MS) {
        unlogged += 1;
        return null;
      }
      loggedAt = now;
      const note = { unlogged };
      unlogged = 0;
      return note;
    },
    episode(now) {
      return current !== null && now - current.lastAt < LOCAL_ERROR_QUIET_MS ? { ...current } : null;
    },
  };
}
