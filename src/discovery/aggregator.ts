/**
 * One merged view of every discovery source (traefik's configurationwatcher is the model). Each
 * source sends full snapshots; the aggregator keeps the latest one per source, merges them by the
 * rule below, drops a merge equal to the previous one, and hands on one snapshot: a change enters
 * the pipeline once, however many sources repeat it.
 *
 * Merge rule: sources are ranked by `order` (the YAML file first). An app name or a backend id
 * that two sources report is taken from the higher-ranked source only; the YAML wins over labels.
 * Apps come in rank order, each source's apps in its own order; backends likewise.
 *
 * Required sources (Docker, when enabled) may not have answered yet: the merged snapshot says
 * which in `awaiting`, so a consumer can hold back what it would otherwise get wrong (writing
 * nginx's file before Docker has listed its containers would drop them all).
 */
import { createHash } from 'node:crypto';
import type { AppConfig } from '../config/types.js';
import type { Backend, Snapshot } from '../model.js';

/** Every source's latest snapshot, merged. */
export interface MergedSnapshot {
  apps: AppConfig[];
  backends: Backend[];
  /** Required sources that have not sent their first snapshot yet, in rank order. */
  awaiting: string[];
}

export interface DiscoveryAggregatorOptions {
  /** Source names by rank: an earlier source wins a duplicate app name or backend id. */
  order: readonly string[];
  /** Sources whose first snapshot is needed before the merged view is complete. */
  required: readonly string[];
  /** Called with each merged snapshot that differs from the previous one. */
  onSnapshot(merged: MergedSnapshot): void;
}

export interface DiscoveryAggregator {
  /** Takes one source's full snapshot (a source named in `order`). */
  push(snapshot: Snapshot): void;
  /** The last merged snapshot handed on, or null before the first. */
  current(): MergedSnapshot | null;
}

/** Creates an aggregator; nothing is emitted before the first push. */
export function createDiscoveryAggregator(opts: DiscoveryAggregatorOptions): DiscoveryAggregator {
  const latest = new Map<string, Snapshot>();
  let current: MergedSnapshot | null = null;
  let lastKey = '';
  return {
    push(snapshot) {
      if (!opts.order.includes(snapshot.source)) throw new Error(`unknown discovery source ${snapshot.source}`);
      latest.set(snapshot.source, snapshot);
      const merged = {
        ...mergeSnapshots(latest, opts.order),
        awaiting: opts.required.filter((name) => !latest.has(name)),
      };
      // Sources re-send what they saw (a resync after a reconnect, a config edit that changed no
      // backend): only a merge that differs goes on.
      // A digest, not the text: the text is the whole configuration (6 MB kept for good at
      // 10,000 backends, bench:scale's heap snapshot).
      const key = createHash('sha256').update(JSON.stringify(merged)).digest('base64');
      if (key === lastKey) return;
      lastKey = key;
      current = merged;
      opts.onSnapshot(merged);
    },
    current: () => current,
  };
}

/** The merge rule (see the module comment): pure, for tests and for the aggregator. */
export function mergeSnapshots(
  latest: ReadonlyMap<string, Snapshot>,
  order: readonly string[],
): { apps: AppConfig[]; backends: Backend[] } {
  const apps: AppConfig[] = [];
  const backends: Backend[] = [];
  const appNames = new Set<string>();
  const backendIds = new Set<string>();
  for (const source of order) {
    const snapshot = latest.get(source);
    if (!snapshot) continue;
    for (const app of snapshot.apps ?? []) {
      if (appNames.has(app.name)) continue;
      appNames.add(app.name);
      apps.push(app);
    }
    for (const backend of snapshot.backends) {
      if (backendIds.has(backend.id)) continue;
      backendIds.add(backend.id);
      backends.push(backend);
    }
  }
  return { apps, backends };
}
