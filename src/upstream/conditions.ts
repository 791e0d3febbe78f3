/**
 * Panic and failover are conditions of an app that begin and end. The router logs, counts and
 * alerts on the edges only, so it keeps which apps are in which condition and diffs each new
 * decision against them. Pure.
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
 * The edges between `prev` and `next` over `apps` (every app there is now), in app order,
 * failover before panic; and the conditions after them.
 */
export function diffConditions(
  prev: Conditions,
  next: { panics: readonly string[]; failovers: readonly string[] },
  apps: readonly string[],
): { edges: ConditionEdge[]; conditions: Conditions } {
  const edges: ConditionEdge[] = [];
  const panic = new Set(prev.panic);
  const failover = new Set(prev.failover);
  const nowPanic = new Set(next.panics);
  const nowFailover = new Set(next.failovers);
  for (const app of apps) {
    for (const [kind, was, now] of [
      ['failover', failover, nowFailover],
      ['panic', panic, nowPanic],
    ] as const) {
      const active = now.has(app);
      if (active === was.has(app)) continue;
      if (active) was.add(app);
      else was.delete(app);
      edges.push({ kind, app, active });
    }
  }
  // Apps that are gone are in no condition any more (without an edge: nothing routes to them).
  const known = new Set(apps);
  for (const set of [panic, failover]) for (const app of set) if (!known.has(app)) set.delete(app);
  return { edges, conditions: { panic, failover } };
}
