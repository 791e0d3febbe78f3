/**
 * Whether the sidecar is ready (`/readyz`), and every reason it is not. Pure: the admin server
 * asks it with what the stages report now.
 */
import type { LocalErrorEpisode } from '../health/local-errors.js';
import type { ApplyOutcome } from '../nginx/applier.js';

export interface ReadinessInput {
  /** Required discovery sources not heard from yet (e.g. `docker` before its first list). */
  awaiting: readonly string[];
  /** nginx has been brought in line at least once. */
  firstApplyDone: boolean;
  /** The Docker source's connection, when Docker discovery is on; null otherwise. */
  docker: { connected: boolean; socketPath: string } | null;
  /** The Swarm source's connection to its manager, when Swarm discovery runs. */
  swarm?: { connected: boolean; error?: string } | null;
  lastOutcome: ApplyOutcome | null;
  /** Probes failing for a reason of the sidecar's own now (e.g. out of file descriptors). */
  localErrors?: LocalErrorEpisode | null;
}

export function readiness(input: ReadinessInput): { ready: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (input.awaiting.includes('docker')) reasons.push('waiting for the first list of containers from Docker');
  for (const source of input.awaiting) if (source !== 'docker') reasons.push(`waiting for the first snapshot of discovery source ${source}`);
  if (!input.firstApplyDone) reasons.push('nginx upstreams not yet written');
  if (input.docker && !input.docker.connected) {
    reasons.push(`Docker Engine unreachable (${input.docker.socketPath}): routing with the last known containers`);
  }
  if (input.swarm && !input.swarm.connected) {
    reasons.push(`Swarm manager unreachable (${input.swarm.error ?? 'not connected'}): routing with the last known tasks`);
  }
  const last = input.lastOutcome;
  if (last?.result === 'failed') reasons.push(`last nginx update failed at ${last.stage ?? 'unknown'}: ${last.error ?? ''}`);
  const local = input.localErrors;
  if (local) {
    reasons.push(
      `${local.count} probes since ${new Date(local.since).toISOString()} failed for a local reason and were not ` +
        `counted against backends (last: ${local.last})`,
    );
  }
  return { ready: reasons.length === 0, reasons };
}
