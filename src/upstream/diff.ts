/**
 * What changed between two routing decisions, app by app and server by server, for the log line
 * and the event that say nginx was updated. Pure: two DesiredSets in, data out.
 */
import type { DesiredServer, DesiredSet, DesiredUpstream } from './types.js';

/** One weight that changed. */
export interface WeightChange {
  server: string;
  from: number;
  to: number;
}

/** What changed in one app's upstream. Servers are `address` or `address (container)`. */
export interface UpstreamChange {
  app: string;
  /** The app's upstream appeared or went. */
  upstream?: 'added' | 'removed';
  /** Servers now listed that were not (a new backend, or one routed again in eject mode `omit`). */
  added: string[];
  /** Servers no longer listed (a backend gone, or ejected in eject mode `omit`). */
  removed: string[];
  /** Servers now marked `down`. */
  ejected: string[];
  /** Servers no longer marked `down`. */
  readmitted: string[];
  weights: WeightChange[];
  /** Panic (every server ejected, all routed anyway) began (true) or ended (false). */
  panic?: boolean;
  /** Failover to the backup app began (true) or ended (false). */
  failover?: boolean;
}

/**
 * The apps whose upstream differs between `prev` and `next`, in `next`'s order, then the apps
 * removed. `prev` null (nothing applied yet) lists every app as added. Changes of a server's
 * role (`backup`) or of upstream settings (balance, keepalive) are not listed.
 */
export function diffDesiredSets(prev: DesiredSet | null, next: DesiredSet): UpstreamChange[] {
  const before = new Map((prev?.upstreams ?? []).map((u) => [u.name, u]));
  const out: UpstreamChange[] = [];
  for (const u of next.upstreams) {
    const change = diffUpstream(before.get(u.name), u);
    before.delete(u.name);
    if (change) out.push(change);
  }
  for (const u of before.values()) {
    out.push({ ...empty(u.name), upstream: 'removed', removed: u.servers.map(label) });
  }
  return out;
}

function diffUpstream(prev: DesiredUpstream | undefined, next: DesiredUpstream): UpstreamChange | null {
  // The router keeps the upstream of an app it did not recompute: at thousands of backends,
  // comparing it server by server on every apply would cost as much as all the rest.
  if (prev === next) return null;
  const change = empty(next.name);
  if (!prev) {
    change.upstream = 'added';
    change.added = next.servers.map(label);
    return change;
  }
  const old = new Map(prev.servers.map((s) => [s.address, s]));
  for (const s of next.servers) {
    const was = old.get(s.address);
    old.delete(s.address);
    if (!was) change.added.push(label(s));
    else if (s.down && !was.down) change.ejected.push(label(s));
    else if (!s.down && was.down) change.readmitted.push(label(s));
    if (was && was.weight !== s.weight) change.weights.push({ server: label(s), from: was.weight, to: s.weight });
  }
  change.removed = [...old.values()].map(label);
  if (prev.panic !== next.panic) change.panic = next.panic;
  if ((prev.failover ?? false) !== (next.failover ?? false)) change.failover = next.failover ?? false;
  const listed = change.added.length + change.removed.length + change.ejected.length + change.readmitted.length + change.weights.length;
  return listed > 0 || change.panic !== undefined || change.failover !== undefined ? change : null;
}

function empty(app: string): UpstreamChange {
  return { app, added: [], removed: [], ejected: [], readmitted: [], weights: [] };
}

function label(s: DesiredServer): string {
  return s.container ? `${s.address} (${s.container})` : s.address;
}

/** Most lines describeChanges writes; the rest are counted in a last line. */
export const CHANGE_LINES = 20;

/**
 * One line per app for people: `web: ejected 10.0.0.1:80 (web-1); weight 10.0.0.2:80 1 -> 3`.
 * At most `limit` lines; a last one says how many apps more changed.
 */
export function describeChanges(changes: UpstreamChange[], limit = CHANGE_LINES): string[] {
  const lines = changes.slice(0, limit).map((c) => {
    const parts: string[] = [];
    if (c.upstream) parts.push(`upstream ${c.upstream}`);
    if (c.panic !== undefined) parts.push(c.panic ? 'panic: every server ejected, routing to all' : 'panic over');
    if (c.failover !== undefined) parts.push(c.failover ? 'failing over to the backup app' : 'failover over');
    const list = (what: string, servers: string[]) => {
      if (servers.length > 0) parts.push(`${what} ${servers.join(', ')}`);
    };
    if (c.upstream === 'added') list('servers', c.added);
    if (c.upstream === undefined) {
      list('added', c.added);
      list('removed', c.removed);
    }
    list('ejected', c.ejected);
    list('readmitted', c.readmitted);
    list('weight', c.weights.map((w) => `${w.server} ${w.from} -> ${w.to}`));
    return `${c.app}: ${parts.join('; ')}`;
  });
  if (changes.length > limit) lines.push(`... and ${changes.length - limit} more apps`);
  return lines;
}
