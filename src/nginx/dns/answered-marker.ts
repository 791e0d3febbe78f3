/**
 * Proof, kept beside nginx's upstream file, that nginx got SRV answers from a DNS server of this
 * sidecar: the file's modification time is the last such answer (renewed at most every
 * MARK_EVERY_MS). A restarted sidecar whose DNS server is new reads it: an nginx that loaded its
 * config before the new server began answering but was answered after it loaded holds resolved
 * servers (nginx keeps its last good answer while the server is away, and asks again within a few
 * seconds), so it need not be reloaded; a reload under keep-alive load resets client connections.
 * Without the file, or with nginx loaded after the last answer, the start-up reload stays.
 */
import { statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Renewing the mark more often would only write more: nginx asks every second per app. */
export const MARK_EVERY_MS = 5000;
const AFTER_RELOAD_MS = 200;

export function answeredMarkerPath(output: string): string {
  return join(dirname(output), `.${basename(output)}.dns-answered`);
}

export interface AnsweredMarker {
  /** Call for each SRV answer nginx gets. Synchronous and tiny; at most every MARK_EVERY_MS. */
  mark(): void;
  /** nginx was just reloaded: its next answer (from AFTER_RELOAD_MS on) is marked whatever the last one's age. */
  reloaded(): void;
}

/** A failed write (read-only directory) only means the next sidecar start reloads nginx. */
export function createAnsweredMarker(output: string, now: () => number = Date.now): AnsweredMarker {
  const path = answeredMarkerPath(output);
  let last = -Infinity;
  return {
    mark() {
      const t = now();
      if (t - last < MARK_EVERY_MS) return;
      last = t;
      try {
        writeFileSync(path, `nginx resolved its upstreams from orchestry-sidecar's DNS server at ${new Date(t).toISOString()}\n`);
      } catch {
        // Best effort: see above.
      }
    },
    reloaded() {
      // The next answer from AFTER_RELOAD_MS on: one in the same instant could be to an old
      // worker, and nginx's load time is read to 10 ms at best.
      last = now() - MARK_EVERY_MS + AFTER_RELOAD_MS;
    },
  };
}

/** When nginx was last answered (epoch ms), or null when no mark is there. */
export function lastAnsweredAt(output: string): number | null {
  try {
    return statSync(answeredMarkerPath(output)).mtimeMs;
  } catch {
    return null;
  }
}
