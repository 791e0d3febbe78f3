/**
 * How routing changes reach nginx: `dns` (the DNS applier and the sidecar's DNS server; no
 * reload for ejections, readmissions and weights) or `reload` (render and reload). `auto` picks
 * DNS when nginx is new enough to re-resolve SRV records in `zone` upstreams (1.27.3).
 */
import type Dockerode from 'dockerode';
import type { NginxConfig } from '../config/types.js';
import { describeError } from '../errors.js';
import { createRenderReloadApplier, type UpstreamApplier } from './applier.js';
import { createNginxControl, type NginxControl } from './control.js';
import { createDnsApplier } from './dns-applier.js';
import { createAnsweredMarker, lastAnsweredAt } from './dns/answered-marker.js';
import { DEFAULT_SERVICE } from './dns/records.js';
import { createDnsServer, type DnsServer } from './dns/server.js';
import { RR_TYPE } from './dns/wire.js';
import type { Renderer } from './render.js';
import { versionAtLeast } from './run.js';

/** The first nginx whose `server ... service=... resolve` re-resolves at run time (open source). */
export const DNS_MIN_VERSION = '1.27.3';

export type UpdateVia = 'dns' | 'reload';

/** update_via and nginx's version (null: unknown) -> the mode, and why, for the log. */
export function chooseUpdateMode(updateVia: NginxConfig['update_via'], version: string | null): { mode: UpdateVia; why: string } {
  if (updateVia !== 'auto') return { mode: updateVia, why: `nginx.update_via is ${updateVia}` };
  if (version === null) return { mode: 'reload', why: "nginx's version is unknown (nginx -v failed)" };
  return versionAtLeast(version, DNS_MIN_VERSION)
    ? { mode: 'dns', why: `nginx ${version} re-resolves SRV records (>= ${DNS_MIN_VERSION})` }
    : { mode: 'reload', why: `nginx ${version} cannot re-resolve SRV records (< ${DNS_MIN_VERSION})` };
}

export interface UpdateMode {
  readonly mode: UpdateVia;
  /** Why this mode: for the log and the API. */
  readonly why: string;
  /** An applier for this mode over `renderer`, keeping `previous`'s last good texts. */
  applier(renderer: Renderer, previous: Pick<UpstreamApplier, 'lastGood' | 'lastGoodStream'> | null): UpstreamApplier;
  /** The DNS server's counters in DNS mode. */
  dns(): DnsServer | null;
  close(): Promise<void>;
}

/**
 * Settles the mode for `nginx` (asking nginx its version when auto) and, in DNS mode, starts the
 * DNS server. A DNS server that cannot start (address in use) falls back to reload mode: routing
 * goes on, and `why` says so.
 */
export async function resolveUpdateMode(nginx: NginxConfig, docker: Dockerode | undefined): Promise<UpdateMode> {
  const control = createNginxControl(nginx, docker);
  const version = nginx.update_via === 'auto' ? await control.version().catch(() => null) : null;
  const chosen = chooseUpdateMode(nginx.update_via, version);
  if (chosen.mode === 'reload') return reloadMode(nginx, control, chosen.why);
  const [host, port] = splitListen(nginx.dns_listen);
  const marker = createAnsweredMarker(nginx.output_path);
  const server = createDnsServer({
    host, port, zone: nginx.dns_zone, service: DEFAULT_SERVICE,
    onReply: (e) => {
      if (e.type === RR_TYPE.SRV && e.outcome === 'answer') marker.mark();
    },
  });
  let bound: { host: string; port: number };
  try {
    bound = await server.start();
  } catch (err) {
    return reloadMode(nginx, control, `${chosen.why}, but the DNS server could not listen on ${nginx.dns_listen} (${describeError(err)}): reload mode`);
  }
  // nginx resolves its upstreams' servers from the server: one that loaded its config before now
  // and was never answered has no servers until its resolver tries again (seconds of "no live
  // upstreams" seen); a reload at start makes it ask at once. One answered after it loaded (by
  // this sidecar before a restart) keeps those servers: see answered-marker.ts.
  const serverSince = Date.now();
  const resolver = nginx.dns_resolver ?? (bound.host.includes(':') ? `[${bound.host}]:${bound.port}` : `${bound.host}:${bound.port}`);
  return {
    mode: 'dns',
    why: `${chosen.why}; DNS server on ${resolver}`,
    applier: (renderer, previous) =>
      createDnsApplier({
        nginx, renderer, control, server, resolver, zone: nginx.dns_zone, service: DEFAULT_SERVICE, serverSince,
        answeredAt: () => lastAnsweredAt(nginx.output_path),
        onReloaded: () => marker.reloaded(),
        ...(previous ? { previous } : {}),
      }),
    dns: () => server,
    close: () => server.stop(),
  };
}

function reloadMode(nginx: NginxConfig, control: NginxControl, why: string): UpdateMode {
  return {
    mode: 'reload',
    why,
    applier: (renderer, previous) => createRenderReloadApplier({ nginx, renderer, control, ...(previous ? { previous } : {}) }),
    dns: () => null,
    close: async () => undefined,
  };
}

/** `ip:port` / `[v6]:port` (validated by the config) -> host and port. */
function splitListen(listen: string): [string, number] {
  const i = listen.lastIndexOf(':');
  return [listen.slice(0, i).replace(/^\[|\]$/g, ''), Number(listen.slice(i + 1))];
}
