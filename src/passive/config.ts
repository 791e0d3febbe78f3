/**
 * The `passive:` config section (validated in src/config/spec-passive.ts): where the sidecar
 * listens for nginx's access log, and Envoy's outlier-detection settings.
 *
 * The nginx side, in the `http` block (the tag must equal `tag` below):
 *
 *     access_log syslog:server=127.0.0.1:5514,tag=orchestry,nohostname orchestry;
 */

export type { PassiveConfig, PassiveLatencyConfig, ProbeRelease } from '../config/types.js';
export { DEFAULT_PASSIVE as DEFAULT_PASSIVE_CONFIG } from '../config/defaults.js';

/** `host:port` or `[v6]:port` -> its parts (port 0 = any free one); null when it is neither. */
export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9A-Za-z.-]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}
