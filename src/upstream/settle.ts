/**
 * Pure: what of a decision can be written now. nginx checks the generated file as a whole, so
 * one app it would refuse (a name that differs from another only in case, an upstream of backup
 * servers only, a server address it would misread) would keep every other app from updating.
 * Each upstream is checked here, before anything is rendered, against the rules nginx applies
 * to it alone; one that breaks a rule is held at its last good upstream (or a placeholder when
 * it never had one) and reported, and every other app goes on.
 *
 * The same memory covers a start while a discovery source has not answered yet (Docker
 * unreachable): an app whose backends that source may add is written as it last was, and the
 * apps that depend on nothing unanswered are written at once. The render stage checks every
 * value again (nginx/view-model.ts): this is about keeping the others going, not about safety.
 */
import { APP_NAME, parseAddress, targetProblem } from '../config/allowlists.js';
import { BALANCE_METHODS } from '../config/defaults.js';
import type { AppConfig } from '../config/types.js';
import type { DesiredSet, DesiredUpstream } from './types.js';

/** An app held at its last good upstream, and why. */
export interface HeldApp {
  app: string;
  reason: string;
}

export interface SettleOptions {
  /** The last upstream of each app that passed, by app name (restored from the store at start). */
  lastGood: ReadonlyMap<string, DesiredUpstream>;
  /**
   * Apps whose backends a discovery source not heard from yet may add (YAML apps that accept
   * containers while Docker is awaited): written as they last were, never from what is known.
   */
  unsettled?: (app: string) => boolean;
  /**
   * Apps not in the decision that such a source reported before (apps only labels define,
   * remembered across a restart): written as they last were, after the others.
   */
  carried?: readonly string[];
  /** upstreamProblem, or a memo of it (the settler's: only new upstream objects are checked). */
  problemOf?: (u: DesiredUpstream) => string | null;
}

export interface SettleResult {
  /** What to write; null when an unsettled app has no last upstream to stand in for it. */
  set: DesiredSet | null;
  /** The last good upstream of every app written, for the next call. */
  lastGood: Map<string, DesiredUpstream>;
  /** Apps not written as decided, in decision order. */
  held: HeldApp[];
}

const BALANCES: ReadonlySet<string> = new Set(BALANCE_METHODS);
/** nginx rejects `backup` under these methods. */
const NO_BACKUP: ReadonlySet<string> = new Set(['ip_hash', 'random']);

/** The set to write, each app checked on its own; see the module comment. */
export function settleSet(set: DesiredSet, opts: SettleOptions): SettleResult {
  const lastGood = new Map<string, DesiredUpstream>();
  const held: HeldApp[] = [];
  const upstreams: DesiredUpstream[] = [];
  /** lower-cased name -> the name written under it: nginx ignores case in upstream names. */
  const written = new Map<string, string>();
  let complete = true;
  const problemOf = opts.problemOf ?? upstreamProblem;
  const decided = new Set(set.upstreams.map((u) => u.name));
  const carried = new Set((opts.carried ?? []).filter((name) => !decided.has(name)));
  for (const u of [...set.upstreams, ...[...carried].map(placeholder)]) {
    const previous = opts.lastGood.get(u.name);
    const taken = written.get(u.name.toLowerCase());
    if (!APP_NAME.test(u.name) || taken !== undefined) {
      held.push({ app: u.name, reason: taken !== undefined ? `nginx reads it as the same upstream as "${taken}"` : 'invalid upstream name' });
      continue;
    }
    let chosen: DesiredUpstream;
    if (opts.unsettled?.(u.name) || carried.has(u.name)) {
      if (!previous) complete = false;
      chosen = previous ?? placeholder(u.name);
    } else {
      const problem = problemOf(u);
      if (problem === null) {
        chosen = u;
      } else {
        held.push({ app: u.name, reason: problem });
        chosen = previous ?? placeholder(u.name);
      }
    }
    written.set(u.name.toLowerCase(), u.name);
    lastGood.set(u.name, chosen);
    upstreams.push(chosen);
  }
  return { set: complete ? { upstreams } : null, lastGood, held };
}

/**
 * Why nginx would refuse this upstream on its own (not its name: see settleSet), or null. The
 * same rules as the render stage's last check, so an app that passes here renders.
 */
export function upstreamProblem(u: DesiredUpstream): string | null {
  if (!BALANCES.has(u.balance)) return `invalid balance ${JSON.stringify(u.balance)}`;
  if (!isInt(u.keepalive, 0, 10_000)) return `invalid keepalive ${String(u.keepalive)}`;
  if (u.maxFails !== undefined && !isInt(u.maxFails, 0, 1000)) return `invalid max_fails ${String(u.maxFails)}`;
  if (u.failTimeoutSeconds !== undefined && u.failTimeoutSeconds !== 'auto' && !isInt(u.failTimeoutSeconds, 1, 3600)) return `invalid fail_timeout ${String(u.failTimeoutSeconds)}`;
  for (const s of u.servers) {
    const problem = addressProblem(s.address);
    if (problem) return `server ${JSON.stringify(s.address)}: ${problem}`;
    if (!isInt(s.weight, 1, 1000)) return `server ${s.address}: invalid weight ${String(s.weight)}`;
    if (s.backup && NO_BACKUP.has(u.balance)) return `server ${s.address}: backup is not supported with balance ${u.balance}`;
  }
  if (u.servers.length > 0 && u.servers.every((s) => s.backup)) {
    return 'every server is a backup; nginx needs at least one that is not';
  }
  return null;
}

function addressProblem(address: string): string | null {
  const parsed = typeof address === 'string' ? parseAddress(address) : 'is not a string';
  if (typeof parsed === 'string') return parsed;
  if (parsed.port === null || parsed.port === 0) return 'has no port';
  const target = targetProblem(parsed.host);
  return target ? `host ${target}` : null;
}

/** An upstream with no server: the template renders it as a `down` placeholder (502s). */
function placeholder(name: string): DesiredUpstream {
  return { name, servers: [], panic: false, failover: false, keepalive: 0, balance: 'round_robin' };
}

function isInt(value: unknown, min: number, max: number): boolean {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
}

/**
 * Upstreams read back from the store: each kept only if it still passes upstreamProblem with a
 * valid name (the file may be old or damaged), so nothing unchecked reaches the file.
 */
export function restoreUpstreams(saved: unknown): Map<string, DesiredUpstream> {
  const out = new Map<string, DesiredUpstream>();
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) return out;
  for (const [name, u] of Object.entries(saved as Record<string, unknown>)) {
    const candidate = u as DesiredUpstream;
    const shaped =
      typeof u === 'object' && u !== null && candidate.name === name && Array.isArray(candidate.servers) &&
      candidate.servers.every((s) => typeof s === 'object' && s !== null && typeof s.backup === 'boolean' && typeof s.down === 'boolean');
    if (shaped && APP_NAME.test(name) && upstreamProblem(candidate) === null) {
      out.set(name, { ...candidate, panic: candidate.panic === true, failover: candidate.failover === true });
    }
  }
  return out;
}

/** settleSet with its memory kept between decisions; see createSettler. */
export interface Settler {
  /**
   * The decision as it can be written (null: not yet). While `waiting` (a required source has
   * not answered), the apps that accept containers are written as they last were, and so are
   * remembered apps not among `apps`.
   */
  settle(set: DesiredSet, apps: readonly AppConfig[], waiting: boolean): DesiredSet | null;
  /** The apps held now. */
  held(): readonly HeldApp[];
}

/**
 * Keeps each app's last good upstream between decisions (starting from `restored`), reports the
 * held apps when they change, and the last upstreams of the apps that accept containers (what
 * a restart needs back) when those change, with their JSON.
 *
 * A recompute hands over the same upstream objects for the apps it did not touch, so what is
 * worked out from an upstream (its problem, its JSON) is kept per object: a transition costs
 * checking and serializing its own app's upstream, not every app's (issue 12: at 10,000
 * backends the whole memory's JSON.stringify ran on every transition).
 */
export function createSettler(opts: {
  restored: ReadonlyMap<string, DesiredUpstream>;
  onHeld(held: HeldApp[]): void;
  /** `json` is JSON.stringify(upstreams), built from each app's kept JSON. */
  onMemory?(upstreams: Record<string, DesiredUpstream>, json: string): void;
}): Settler {
  let lastGood = new Map(opts.restored);
  let held: HeldApp[] = [];
  const problems = new WeakMap<DesiredUpstream, string | null>();
  const problemOf = (u: DesiredUpstream): string | null => {
    let problem = problems.get(u);
    if (problem === undefined) problems.set(u, (problem = upstreamProblem(u)));
    return problem;
  };
  const memory = createMemoryJson();
  memory.changed(memoryOf(lastGood, () => true));
  return {
    settle(set, apps, waiting) {
      const accepting = new Set(apps.filter((a) => a.docker.accept_containers).map((a) => a.name));
      const known = new Set(apps.map((a) => a.name));
      const result = settleSet(set, {
        lastGood,
        unsettled: (name) => waiting && accepting.has(name),
        carried: waiting ? [...lastGood.keys()].filter((name) => !known.has(name)) : [],
        problemOf,
      });
      lastGood = result.lastGood;
      if (!sameHeld(result.held, held)) {
        held = result.held;
        opts.onHeld(held);
      }
      const remembered = memoryOf(lastGood, (name) => accepting.has(name) || !known.has(name));
      if (memory.changed(remembered)) opts.onMemory?.(Object.fromEntries(remembered), memory.json());
      return result.set;
    },
    held: () => held,
  };
}

function memoryOf(lastGood: ReadonlyMap<string, DesiredUpstream>, keep: (name: string) => boolean): [string, DesiredUpstream][] {
  return [...lastGood].filter(([name]) => keep(name));
}

function sameHeld(a: readonly HeldApp[], b: readonly HeldApp[]): boolean {
  return a.length === b.length && a.every((h, i) => h.app === b[i]!.app && h.reason === b[i]!.reason);
}

/**
 * The memory's JSON, one app at a time: each upstream object is serialized once, and whether the
 * memory changed is told by comparing each app's JSON with the last one's (the same string when
 * the upstream object is the same).
 */
function createMemoryJson() {
  const jsonOf = new WeakMap<DesiredUpstream, string>();
  let last: [string, string][] = [];
  const entryJson = (u: DesiredUpstream): string => {
    let json = jsonOf.get(u);
    if (json === undefined) jsonOf.set(u, (json = JSON.stringify(u)));
    return json;
  };
  return {
    /** Takes the memory now; true when its JSON differs from the last one taken. */
    changed(entries: readonly [string, DesiredUpstream][]): boolean {
      const next = entries.map(([name, u]): [string, string] => [name, entryJson(u)]);
      const same = next.length === last.length && next.every(([name, json], i) => name === last[i]![0] && json === last[i]![1]);
      last = next;
      return !same;
    },
    /** JSON.stringify of the memory last taken, as an object by app name. */
    json: (): string => `{${last.map(([name, json]) => `${JSON.stringify(name)}:${json}`).join(',')}}`,
  };
}
