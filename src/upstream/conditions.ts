/**
 * Panic and failover are conditions of an app that begin and end. The router logs, counts and
 * alerts on the edges only, so it keeps which apps are in which condition and diffs each app it
 * recomputes against them. Pure.
 */

/** Which apps are in each condition now. */
export interface Conditions {
  panic: ReadonlySet<string>;
  failover: ReadonlySet<string>;
}

export interface ConditionEdge {
  kind: 'panic' | 'failover';
  app: string;
  /** true: the condition began; false: it ended. */
  active: boolean;
}

export const NO_CONDITIONS: Conditions = { panic: new Set(), failover: new Set() };

/**
 * The edges between `prev` and the recomputed apps' conditions (apps not in `next` keep theirs;
 * apps not in `known`, when given, are gone and leave without an edge), in `next`'s order,
 * failover before panic; and the conditions after them.
 */
export function diffConditions(
  prev: Conditions,
  next: ReadonlyArray<{ app: string; panic: boolean; failover: boolean }>,
  known?: ReadonlySet<string>,
): { edges: ConditionEdge[]; conditions: Conditions } {
  const edges: ConditionEdge[] = [];
  const panic = new Set(prev.panic);
  const failover = new Set(prev.failover);
  for (const u of next) {
    for (const [kind, set, active] of [
      ['failover', failover, u.failover],
      ['panic', panic, u.panic],
    ] as const) {
      if (active === set.has(u.app)) continue;
      if (active) set.add(u.app);
      else set.delete(u.app);
      edges.push({ kind, app: u.app, active });
    }
  }
  if (known) for (const set of [panic, failover]) for (const app of set) if (!known.has(app)) set.delete(app);
  return { edges, conditions: { panic, failover } };
}
