/** prom-client label children kept per owner, for the metrics' hot paths (see createChildCache). */
import type { LabelValues } from 'prom-client';

export interface ChildCache<C, L extends string> {
  get(owner: string, key: string): C | undefined;
  add(owner: string, key: string, labels: LabelValues<L>): C;
  /** Removes every series of owners not in `keep`. */
  retain(keep: { has(owner: string): boolean }): void;
}

/**
 * Label children of one metric, grouped by owner (a backend or an app). Hot paths reuse a child
 * instead of building a label object per event, and an owner that disappears takes all of its
 * series with it.
 */
export function createChildCache<C, L extends string>(metric: {
  labels(labels: LabelValues<L>): C;
  remove(labels: LabelValues<L>): void;
}): ChildCache<C, L> {
  const owners = new Map<string, Map<string, { child: C; labels: LabelValues<L> }>>();
  return {
    get: (owner, key) => owners.get(owner)?.get(key)?.child,
    add(owner, key, labels) {
      let children = owners.get(owner);
      if (!children) owners.set(owner, (children = new Map()));
      const child = metric.labels(labels);
      children.set(key, { child, labels });
      return child;
    },
    retain(keep) {
      for (const [owner, children] of owners) {
        if (keep.has(owner)) continue;
        for (const { labels } of children.values()) metric.remove(labels);
        owners.delete(owner);
      }
    },
  };
}
