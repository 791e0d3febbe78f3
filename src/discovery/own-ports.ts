/**
 * The ports the sidecar itself listens on, each with what listens there. A container on host
 * networking routed to one of them would hand the app's public traffic to the sidecar (its
 * admin API and metrics, its DNS server, its syslog receiver), so discovery refuses them. Pure.
 */
import type { SidecarConfig } from '../config/types.js';

/** The port of `host:port` or `[v6]:port`; null when there is none or it is 0 (not bound yet). */
function portOf(listen: string | null): number | null {
  const port = listen === null ? NaN : Number(listen.slice(listen.lastIndexOf(':') + 1));
  return Number.isInteger(port) && port > 0 ? port : null;
}

/**
 * Port -> what listens there: the admin API (`adminPort` as bound, else admin.listen), the DNS
 * server unless nginx.update_via is reload, and the access-log receiver when passive is enabled
 * (`passiveAddress` as bound, else passive.listen).
 */
export function ownListeningPorts(config: SidecarConfig, adminPort: number | null, passiveAddress: string | null): Map<number, string> {
  const ports = new Map<number, string>();
  const add = (port: number | null, what: string) => {
    if (port !== null && !ports.has(port)) ports.set(port, what);
  };
  add(adminPort ?? portOf(config.admin.listen), "the sidecar's admin API (admin.listen)");
  if (config.nginx.update_via !== 'reload') add(portOf(config.nginx.dns_listen), "the sidecar's DNS server (nginx.dns_listen)");
  if (config.passive.enabled) {
    add(portOf(passiveAddress), "the sidecar's access-log receiver (passive.listen)");
    add(portOf(config.passive.listen), "the sidecar's access-log receiver (passive.listen)");
  }
  return ports;
}
