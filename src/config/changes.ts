/**
 * What a configuration reload changes that the running daemon cannot take without a restart.
 * Pure: the stages take what they can on the `config` event; this lists the rest for the log.
 */
import type { SidecarConfig } from './types.js';

/** One line per setting that changed but takes effect only after a restart. */
export function restartOnlyChanges(prev: SidecarConfig, next: SidecarConfig): string[] {
  const out: string[] = [];
  if (next.instance !== prev.instance) out.push(`instance changes take effect after a restart (now ${next.instance ?? 'the host name'})`);
  if (next.admin.listen !== prev.admin.listen) out.push(`admin.listen changes take effect after a restart (now ${next.admin.listen})`);
  if (JSON.stringify(next.store) !== JSON.stringify(prev.store)) out.push('store changes take effect after a restart');
  if (next.alerting.enabled !== prev.alerting.enabled) {
    out.push('alerting.enabled changes its metrics only after a restart; alerts follow the new setting now');
  }
  if (next.docker.enabled !== prev.docker.enabled || next.docker.socket_path !== prev.docker.socket_path) {
    out.push('docker.enabled and docker.socket_path changes take effect after a restart');
  }
  if (next.logging.format !== prev.logging.format) out.push(`logging.format changes take effect after a restart (now ${next.logging.format})`);
  if ((next.docker.swarm === false) !== (prev.docker.swarm === false)) {
    out.push('docker.swarm changes between false and true or auto take effect after a restart');
  }
  if (next.probes.max_concurrency !== prev.probes.max_concurrency || next.probes.jitter_fraction !== prev.probes.jitter_fraction) {
    out.push('probes.max_concurrency and probes.jitter_fraction changes take effect after a restart');
  }
  return out;
}

/** The nginx settings naming files or the nginx to drive, with what changing each does. */
const NGINX_TARGETS = ['output_path', 'stream_output_path', 'config_path', 'prefix', 'pid_path', 'binary', 'mode', 'container', 'container_label'] as const;

/**
 * One line per nginx setting that names another file or nginx: these apply at once (the files
 * are written, tested and nginx reloaded without waiting for a routing change). A generated file
 * the sidecar no longer writes is left where it was, and the line says so: nginx may still
 * include it, and removing it would break that config.
 */
export function nginxTargetChanges(prev: SidecarConfig, next: SidecarConfig): string[] {
  const out: string[] = [];
  for (const key of NGINX_TARGETS) {
    const was = prev.nginx[key];
    const now = next.nginx[key];
    if (was === now) continue;
    let line = `nginx.${key} changed from ${String(was)} to ${String(now)}: applied now (written, tested with nginx -t, nginx reloaded)`;
    if ((key === 'output_path' || key === 'stream_output_path') && was !== null) {
      line += `; ${was} is left as it was and no longer updated: remove it (and any include of it) once nginx no longer reads it`;
    }
    out.push(line);
  }
  return out;
}
