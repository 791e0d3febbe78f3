/**
 * DNS mode (nginx >= 1.27.3): each app is rendered once as a `zone` upstream whose servers nginx
 * resolves, `server <zone> service=_http._tcp.<app> resolve`, and the sidecar's DNS server answers
 * those SRV queries with the app's routable servers (weights as SRV weights, backups at a higher
 * priority number). An ejection, a readmission or a weight change is a new answer, which nginx
 * picks up at its next re-query (TTL 0: within a second) without a reload. Only what changes the
 * rendered text reloads nginx: an app added or removed, its zone outgrown, its balance or keepalive.
 *
 * An app the DNS server cannot serve (a name that is no DNS label, a server given by host name)
 * is rendered with its servers listed, as in reload mode, so one such app never holds up the rest.
 */
import type { NginxConfig } from '../config/types.js';
import type { DesiredSet, DesiredUpstream } from '../upstream/types.js';
import { createRenderReloadApplier, type ApplyOutcome, type UpstreamApplier } from './applier.js';
import type { NginxControl } from './control.js';
import type { ZoneBuild } from './dns/records.js';
import type { Renderer } from './render.js';
import { toViewModel, type DnsRendering } from './view-model.js';

/** The DNS server as the applier uses it. */
export interface DnsPublisher {
  publish(set: DesiredSet): ZoneBuild;
}

export interface DnsApplierOptions {
  nginx: NginxConfig;
  renderer: Renderer;
  control: NginxControl;
  server: DnsPublisher;
  /** `ip:port` of the DNS server as nginx reaches it (the `resolver` line). */
  resolver: string;
  zone: string;
  service: string;
  previous?: Pick<UpstreamApplier, 'lastGood' | 'lastGoodStream'>;
  /** When the DNS server began answering (epoch ms): an nginx loaded before it is reloaded at start, */
  serverSince?: number;
  /** unless it was answered after it loaded (answered-marker.ts): when it last was, or null. */
  answeredAt?: () => number | null;
  /** Told after each reload (the answers nginx gets after it are what a restart may rely on). */
  onReloaded?: () => void;
}

/** Backends a zone of this many KiB holds (research note: 64k ≈ 55, 128k ≈ 127: ~15 KiB + 0.9 KiB each). */
const zoneCapacity = (kb: number) => Math.floor((kb - 15) / 0.889);

/**
 * Shared memory for an app of `servers` servers, with room to double (a zone size change is a
 * reload, so growth should rarely cross one): 64k, 128k, 256k, ...
 */
export function zoneSizeFor(servers: number): string {
  let kb = 64;
  while (zoneCapacity(kb) < Math.max(8, 2 * servers)) kb *= 2;
  return `${kb}k`;
}

export function createDnsApplier(opts: DnsApplierOptions): UpstreamApplier {
  let rendering: DnsRendering | null = null;
  let published = '';
  const structural = createRenderReloadApplier({
    nginx: opts.nginx,
    renderer: opts.renderer,
    control: opts.control,
    ...(opts.previous ? { previous: opts.previous } : {}),
    ...(opts.serverSince !== undefined ? { loadedSince: opts.serverSince } : {}),
    ...(opts.answeredAt ? { answeredAt: opts.answeredAt } : {}),
    viewModel: (set) => toViewModel(set, rendering ?? undefined),
  });
  let queue: Promise<unknown> = Promise.resolve();
  const applyOnce = async (set: DesiredSet): Promise<ApplyOutcome> => {
    // Answers first: an app the reload adds asks for its records at once.
    const build = opts.server.publish(set);
    rendering = renderingOf(set, build, opts);
    const outcome = await structural.apply(set);
    if (outcome.reloaded) opts.onReloaded?.();
    const changed = build.table.content !== published;
    published = build.table.content;
    if (outcome.result !== 'unchanged' || !changed) return outcome;
    return { ...outcome, result: 'applied', reloaded: false };
  };
  return {
    apply(set) {
      const run = queue.then(() => applyOnce(set));
      queue = run.catch(() => undefined);
      return run;
    },
    get lastGood() {
      return structural.lastGood;
    },
    get lastGoodStream() {
      return structural.lastGoodStream ?? null;
    },
    liveUpdates: true,
    // Before the first apply nothing is rendered yet: assume DNS, as every servable app will be.
    liveFor: (app) => rendering?.apps.has(app) ?? true,
  };
}

/** Which apps nginx resolves, and what their blocks need (also what `render` prints in DNS mode). */
export function renderingOf(set: DesiredSet, build: ZoneBuild, opts: Pick<DnsApplierOptions, 'zone' | 'service' | 'resolver'>): DnsRendering {
  const served = new Set(build.apps.filter((a) => a.skipped.length === 0).map((a) => a.app));
  const sizes = new Map(set.upstreams.map((u: DesiredUpstream) => [u.name, zoneSizeFor(u.servers.length)]));
  return {
    apps: served,
    zone: opts.zone,
    service: opts.service,
    resolver: opts.resolver,
    ipv6: (app) => set.upstreams.some((u) => u.name === app && u.servers.some((s) => s.address.startsWith('['))),
    zoneSize: (app) => sizes.get(app) ?? zoneSizeFor(0),
  };
}
