/**
 * Pure decision of what nginx should route to: configured apps + the health stage's backend
 * views (+ recovery's traffic holds) -> one upstream per app. Knows nothing about templates or
 * how nginx is told.
 */
import type { AppConfig } from '../config/types.js';
import type { BackendView } from '../health/types.js';
import { formatAddress } from '../model.js';
import type { DesiredServer, DesiredSet, DesiredUpstream } from './types.js';

/** nginx's largest `weight=`. */
const MAX_WEIGHT = 1000;

export interface DesiredSetOptions {
  /**
   * Recovery's redirect_traffic: backend id -> share of its configured weight (0 < factor <= 1).
   * nginx weights are relative, so the others of its group (primaries or backups) are scaled up
   * instead when that keeps every weight an integer: 1,1,1 with one at 0.5 becomes 2,2,1.
   */
  weightFactors?: ReadonlyMap<string, number>;
  /**
   * Recovery's drains (drain_instance, and a container about to be stopped): containers whose
   * backends are taken out of nginx whatever their health, like an ejection.
   */
  drainedContainerIds?: ReadonlySet<string>;
  /**
   * Readmitted (half-open) backends get the share of their weight their view's slowStart says
   * (default true). Off where a weight change costs a reload: they then come back at full weight.
   */
  slowStart?: boolean;
  /**
   * Reload mode: ejected backends whose failure nginx sees and retries by itself (refused or
   * reset connections, 5xx answers: proxy_next_upstream and max_fails) stay in the file, because a
   * reload to take them out resets client connections and buys nothing nginx does not already do.
   */
  leaveToNginx?: ReadonlySet<'refused' | '5xx'>;
}

export interface DesiredSetResult {
  set: DesiredSet;
  /** Apps routing to every server because all are ejected and no backup can take over. */
  panics: string[];
  /** Apps routing to their backup_app because all of their own servers are ejected. */
  failovers: string[];
}

/**
 * One upstream per app, in config order. An app's servers are its backend views (discovery is
 * the truth about what exists), ordered as the app lists them in config, then any others
 * (e.g. discovered containers) by address, so an unchanged state always renders the same text.
 *
 * Ejected servers become `down` (eject mode `down`, which keeps hash placement stable) or are
 * left out (`omit`). An app with upstream.backup_app also lists that app's routable servers as
 * `backup` (failover_to_backup): nginx sends to them only when its own are unavailable, so it
 * fails over by itself before any probe has confirmed anything. A server of both apps is listed
 * once, as the app's own.
 *
 * When every non-backup server is ejected:
 * - with backup_app servers to take over, the app fails over: its own servers are all `down`
 *   (whatever the eject mode: nginx rejects an upstream of backup servers only) and it is listed
 *   in `failovers`;
 * - otherwise it panics: every own server is routed to anyway and the app is listed in `panics`,
 *   because an upstream with only `down` servers would send everything to a 502.
 */
export function buildDesiredSet(apps: AppConfig[], views: BackendView[], opts: DesiredSetOptions = {}): DesiredSetResult {
  const byApp = new Map<string, BackendView[]>();
  for (const v of views) {
    const list = byApp.get(v.app);
    if (list) list.push(v);
    else byApp.set(v.app, [v]);
  }
  const byName = new Map(apps.map((a) => [a.name, a]));
  const viewsOf = (name: string) => byApp.get(name) ?? [];
  const panics: string[] = [];
  const failovers: string[] = [];
  const upstreams = apps.map((app) => {
    const upstream = buildDesiredUpstream(app, viewsOf, byName, opts);
    if (upstream.panic) panics.push(app.name);
    if (upstream.failover) failovers.push(app.name);
    return upstream;
  });
  return { set: { upstreams }, panics, failovers };
}

/**
 * One app's upstream (the rules above), from its own views and, for failover_to_backup, its
 * backup app's: work in proportion to those two apps, whatever the size of the rest.
 */
export function buildDesiredUpstream(
  app: AppConfig,
  viewsOf: (app: string) => readonly BackendView[],
  apps: ReadonlyMap<string, AppConfig>,
  opts: DesiredSetOptions = {},
): DesiredUpstream {
  const adjust = (views: readonly BackendView[]) => adjustViews(views, opts);
  const mine = sortViews(app.backends, adjust(viewsOf(app.name)));
  const primaries = mine.filter((v) => !v.backup);
  const backups = backupViews(app, primaries.length, mine, (name) => adjust(viewsOf(name)), apps);
  const allEjected = primaries.length > 0 && primaries.every((v) => v.ejected);
  const failover = allEjected && backups.length > 0;
  const panic = allEjected && !failover;
  let servers: Array<{ v: BackendView; server: DesiredServer }>;
  if (panic) {
    servers = mine.map((v) => ({ v, server: toServer(v, false, v.backup) }));
  } else {
    servers = [];
    for (const v of mine) {
      if (v.ejected && app.upstream.ejected === 'omit' && !failover) continue;
      servers.push({ v, server: toServer(v, v.ejected, v.backup) });
    }
    for (const v of backups) servers.push({ v, server: toServer(v, false, true) });
  }
  return {
    name: app.name,
    keepalive: app.upstream.keepalive,
    balance: app.upstream.balance,
    maxFails: app.upstream.max_fails,
    failTimeoutSeconds: app.upstream.fail_timeout_seconds ?? 'auto',
    ...(app.upstream.context === 'stream' ? { context: 'stream' as const } : {}),
    panic,
    failover,
    servers: applyFactors(servers, opts.weightFactors ?? NO_FACTORS, opts.slowStart ?? true),
  };
}

const NO_FACTORS: ReadonlyMap<string, number> = new Map();

/** Recovery's drains, and in reload mode the failures left to nginx, applied to views. */
function adjustViews(views: readonly BackendView[], opts: DesiredSetOptions): BackendView[] {
  let out = withDrains(views as BackendView[], opts.drainedContainerIds);
  const leave = opts.leaveToNginx;
  if (leave && leave.size > 0) out = out.map((v) => (v.ejected && leave.has(nginxRetries(v) as 'refused') ? { ...v, ejected: false } : v));
  return out;
}

/**
 * Which failure of a backend nginx notices on the first request and retries elsewhere by itself:
 * `refused` (connections refused or reset: proxy_next_upstream error) or `5xx` (answers 5xx:
 * proxy_next_upstream http_500 ..., as the shipped nginx.conf has, and as nginx's log shows it
 * doing for this backend); null for anything else.
 * Timeouts and slowness are not: nginx would make every request wait for them.
 */
export function nginxRetries(v: BackendView): 'refused' | '5xx' | null {
  if (v.draining) return null;
  const cause = failureCause(v);
  // 5xx only while nginx's log shows it passing this backend's 5xx on (the nginx.conf may not
  // retry them; and once every other server fails too, nginx's last try reaches the client).
  return cause === '5xx' && v.nginx5xx !== 'retried' ? null : cause;
}

function failureCause(v: BackendView): 'refused' | '5xx' | null {
  if (v.passiveCause) return v.passiveCause === 'refused' ? 'refused' : v.passiveCause === 'status' ? '5xx' : null;
  const p = v.lastProbe;
  if (!p || p.healthy) return null;
  if (p.errorClass === 'connection_refused' || p.errorClass === 'connection_reset') return 'refused';
  return p.errorClass === 'unexpected_status' && (p.statusCode ?? 0) >= 500 ? '5xx' : null;
}

/** Views of drained containers' backends as ejected and draining (recovery's drains). */
export function withDrains(views: BackendView[], drained: ReadonlySet<string> | undefined): BackendView[] {
  if (!drained || drained.size === 0) return views;
  return views.map((v) => (v.container && drained.has(v.container.id) ? { ...v, ejected: true, draining: true } : v));
}

/** The backup app's routable servers, minus addresses the app has itself. */
function backupViews(
  app: AppConfig,
  ownPrimaries: number,
  mine: BackendView[],
  viewsOf: (app: string) => readonly BackendView[],
  apps: ReadonlyMap<string, AppConfig>,
): BackendView[] {
  const other = app.upstream.backup_app;
  // nginx rejects `backup` with ip_hash and random, and an upstream with backup servers only.
  if (other === null || other === app.name || ownPrimaries === 0) return [];
  if (app.upstream.balance === 'ip_hash' || app.upstream.balance === 'random') return [];
  const own = new Set(mine.map((v) => formatAddress(v.host, v.port)));
  const routable = viewsOf(other).filter((v) => !v.ejected && !own.has(formatAddress(v.host, v.port)));
  return sortViews(apps.get(other)?.backends ?? [], routable);
}

function toServer(v: BackendView, down: boolean, backup: boolean): DesiredServer {
  const server: DesiredServer = { address: formatAddress(v.host, v.port), weight: v.weight, backup, down };
  if (v.container) server.container = v.container.name;
  return server;
}

/**
 * Scales weights by the redirect factors and slow start, separately for primaries and backups
 * (nginx weighs them apart). Slow start is counted in tenths, so a ramp changes weights at most
 * ten times.
 */
function applyFactors(
  servers: Array<{ v: BackendView; server: DesiredServer }>,
  factors: ReadonlyMap<string, number>,
  slowStart: boolean,
): DesiredServer[] {
  const ramp = (v: BackendView) => (slowStart && v.slowStart !== undefined && v.slowStart < 1 ? Math.max(0.1, Math.floor(v.slowStart * 10) / 10) : 1);
  if (factors.size === 0 && !servers.some((s) => ramp(s.v) < 1)) return servers.map((s) => s.server);
  const factorOf = (v: BackendView) => (factors.get(v.backendId) ?? 1) * ramp(v);
  const lowest = (backup: boolean) =>
    Math.min(1, ...servers.filter((s) => s.server.backup === backup && !s.server.down).map((s) => factorOf(s.v)));
  const scale = { primary: 1 / lowest(false), backup: 1 / lowest(true) };
  return servers.map(({ v, server }) => {
    const weight = Math.round(server.weight * factorOf(v) * (server.backup ? scale.backup : scale.primary));
    return { ...server, weight: Math.min(MAX_WEIGHT, Math.max(1, weight)) };
  });
}

function sortViews(configured: AppConfig['backends'], views: BackendView[]): BackendView[] {
  const rank = new Map<string, number>();
  configured.forEach((b, i) => {
    const key = formatAddress(b.host, b.port);
    if (!rank.has(key)) rank.set(key, i);
  });
  const keyed = views.map((v) => {
    const address = formatAddress(v.host, v.port);
    return { v, address, rank: rank.get(address) ?? configured.length };
  });
  keyed.sort((a, b) => a.rank - b.rank || compareText(a.address, b.address));
  return keyed.map((k) => k.v);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
