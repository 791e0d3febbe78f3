/**
 * This sidecar's identity among several (the Swarm lease's holder; later an `instance` label on
 * metrics): the host name and the process id, so that two sidecars on one host, or a sidecar
 * restarted, are told apart.
 */
import { hostname } from 'node:os';

let cached: string | null = null;

/** `<hostname>:<pid>`, the same for the whole process. */
export function instanceId(): string {
  cached ??= `${hostname()}:${process.pid}`;
  return cached;
}
