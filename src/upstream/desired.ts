/**
 * Pure decision of what nginx should route to: configured apps + the health stage's backend
 * views -> one upstream per app. Knows nothing about templates or how nginx is told.
 */
import type { AppConfig } from '../config/types.js';
import type { BackendView } from '../health/types.js';
import { formatAddress } from '../model.js';
import type { DesiredServer, DesiredSet, DesiredUpstream } from './types.js';

/**
 * One upstream per app, in config order. An app's servers are its backend views (discovery is
 * the truth about what exists), ordered as the app lists them in config, then any others
 * (e.g. discovered containers) by address, so an unchanged state always renders the same text.
 *
 * Ejected servers become `down` (eject mode `down`, which keeps hash placement stable) or are
 * left out (`omit`). When every non-backup server is ejected the app panics: every server is
 * routed to anyway and the app is listed in `panics`, because an upstream with only `down` or
 * backup servers would send everything to a 502 (or be rejected by nginx outright).
 */
export function buildDesiredSet(
  apps: AppConfig[],
  views: BackendView[],
): { set: DesiredSet; panics: string[] } {
  const panics: string[] = [];
  const upstreams = apps.map((app): DesiredUpstream => {
    const mine = sortViews(
      app,
      views.filter((v) => v.app === app.name),
    );
    const base = {
      name: app.name,
      keepalive: app.upstream.keepalive,
      balance: app.upstream.balance,
    };
    const primaries = mine.filter((v) => !v.backup);
    const panic = primaries.length > 0 && primaries.every((v) => v.ejected);
    if (panic) {
      panics.push(app.name);
      return { ...base, panic, servers: mine.map((v) => toServer(v, false)) };
    }
    const servers: DesiredServer[] = [];
    for (const v of mine) {
      if (v.ejected && app.upstream.ejected === 'omit') continue;
      servers.push(toServer(v, v.ejected));
    }
    return { ...base, panic, servers };
  });
  return { set: { upstreams }, panics };
}

function toServer(v: BackendView, down: boolean): DesiredServer {
  return { address: formatAddress(v.host, v.port), weight: v.weight, backup: v.backup, down };
}

function sortViews(app: AppConfig, views: BackendView[]): BackendView[] {
  const rank = new Map<string, number>();
  app.backends.forEach((b, i) => {
    const key = formatAddress(b.host, b.port);
    if (!rank.has(key)) rank.set(key, i);
  });
  const keyed = views.map((v) => {
    const address = formatAddress(v.host, v.port);
    return { v, address, rank: rank.get(address) ?? app.backends.length };
  });
  keyed.sort((a, b) => a.rank - b.rank || compareText(a.address, b.address));
  return keyed.map((k) => k.v);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
