/**
 * Envoy's outlier detection as a pure per-app reducer:
 * `stepOutliers(state, input, cfg, now) -> { state, verdicts }`. The caller feeds it one app's
 * Outcomes (and the probe successes it saw), tells it which of the app's backends are routable
 * now, and turns the verdicts into breaker moves, metrics, events, store rows and alerts.
 *
 * Semantics, after envoy source/common/upstream/outlier_detection_impl.cc:
 * - every 5xx counts towards consecutive_5xx; 502/503/504 (which is how nginx reports connect
 *   errors and timeouts) also count towards consecutive_gateway_failure; another 5xx resets the
 *   gateway count, anything below 500 resets both. A rule fires when its count reaches the
 *   threshold, and its count restarts at 0 whether or not the ejection was allowed.
 * - an ejection lasts min(base x timesEjected, max); timesEjected (Envoy's ejectTimeBackoff)
 *   grows by one per ejection while base x timesEjected < max + base, and drops by one for each
 *   interval the backend then spends back in without being ejected.
 * - at most max_ejection_percent of the app's backends are passively ejected at once.
 * Beyond Envoy: the last routable backend of an app is never ejected; a latency rule; a
 * successful probe ends gateway ejections early (probe_success_releases); no jitter (pure).
 * Outcomes of a backend that is ejected, of no backend (`no_live`) or without status are ignored.
 */
import type { PassiveConfig } from './config.js';
import { addSample, latencyVerdict, sortedMeans, windowMean, type LatencySample } from './outlier-latency.js';
import type { Outcome } from './types.js';

export type OutlierRule = 'consecutive_5xx' | 'consecutive_gateway_failure' | 'latency';

/** One backend's detector state. Plain JSON data. */
export interface BackendOutlierState {
  /** As nginx writes it in $upstream_addr. */
  address: string;
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Ejections in a row (the duration multiplier), less one per interval spent back in. */
  timesEjected: number;
  ejection: { rule: OutlierRule; at: number; until: number } | null;
  /** When not ejected: the epoch ms the next decay of timesEjected counts from. */
  decayFrom: number;
  /** Recent successful response times, for the latency rule. */
  samples: LatencySample[];
}

/** One app's detector state, by backend id. Plain JSON data: the store keeps it across restarts. */
export interface AppOutlierState {
  backends: Record<string, BackendOutlierState>;
}

/** What the caller knows of one backend of the app now. */
export interface OutlierBackend {
  id: string;
  address: string;
  /** Would get traffic now (not ejected by probes, the breaker or this detector). */
  routable: boolean;
}

export interface OutlierInput {
  app: string;
  /** Every backend of the app now, by the address nginx writes for it. Others are forgotten. */
  backends: ReadonlyMap<string, OutlierBackend>;
  /** This app's outcomes since the last step, oldest first. */
  outcomes?: readonly Outcome[];
  /** Ids of this app's backends whose probe succeeded since the last step. */
  probeSuccesses?: readonly string[];
}

interface VerdictBase {
  app: string;
  backendId: string;
  address: string;
  rule: OutlierRule;
  /** Human text naming the rule and its numbers. */
  reason: string;
  at: number;
}

/** What the detector decided; `suppressed` is a rule that fired but whose ejection a limit refused. */
export type OutlierVerdict =
  | (VerdictBase & { kind: 'eject'; durationMs: number; timesEjected: number })
  | (VerdictBase & { kind: 'release' })
  | (VerdictBase & { kind: 'suppressed' });

export interface OutlierStep {
  state: AppOutlierState;
  verdicts: OutlierVerdict[];
  /** Outcomes whose address is none of the app's backends (counted, ignored). */
  unmatched: number;
}

/** A receiver batch's outcomes split by app (one stepOutliers call per app), order kept. */
export function groupOutcomesByApp(outcomes: readonly Outcome[]): Map<string, Outcome[]> {
  const byApp = new Map<string, Outcome[]>();
  for (const o of outcomes) {
    const list = byApp.get(o.app);
    if (list) list.push(o);
    else byApp.set(o.app, [o]);
  }
  return byApp;
}

/** A detector that has seen nothing. */
export function initialAppOutliers(): AppOutlierState {
  return { backends: {} };
}

/** The working copy of one step: the backends record is copied once, entries on write. */
interface Step {
  input: OutlierInput;
  cfg: PassiveConfig;
  now: number;
  backends: Record<string, BackendOutlierState>;
  verdicts: OutlierVerdict[];
  /** Backends that got a latency sample in this step. */
  sampled: Set<string>;
}

/** Advances one app's detector to `now` with the input's outcomes and probe successes. */
export function stepOutliers(state: AppOutlierState, input: OutlierInput, cfg: PassiveConfig, now: number): OutlierStep {
  const step: Step = { input, cfg, now, backends: { ...state.backends }, verdicts: [], sampled: new Set() };
  advanceTime(step);
  for (const id of input.probeSuccesses ?? []) releaseOnProbe(step, id);
  let unmatched = 0;
  for (const outcome of input.outcomes ?? []) {
    const backend = input.backends.get(outcome.address);
    if (backend) countOutcome(step, backend, outcome);
    else unmatched++;
  }
  if (cfg.latency.enabled && step.sampled.size > 0) checkLatency(step);
  return { state: { backends: step.backends }, verdicts: step.verdicts, unmatched };
}

/** The earliest epoch ms at which stepping with no input would change something; null if never. */
export function nextOutlierDeadline(state: AppOutlierState, cfg: PassiveConfig): number | null {
  let next: number | null = null;
  for (const e of Object.values(state.backends)) {
    const at = e.ejection ? e.ejection.until : e.timesEjected > 0 ? e.decayFrom + cfg.interval_seconds * 1000 : null;
    if (at !== null && (next === null || at < next)) next = at;
  }
  return next;
}

/** Forgets removed backends, releases ejections whose time is up, decays the multipliers. */
function advanceTime(step: Step): void {
  const { backends, input, now } = step;
  const interval = step.cfg.interval_seconds * 1000;
  for (const [id, e] of Object.entries(backends)) {
    const current = input.backends.get(e.address);
    if (current?.id !== id) {
      delete backends[id];
    } else if (e.ejection) {
      if (now >= e.ejection.until) release(step, id, `passive ejection of ${seconds(e.ejection.until - e.ejection.at)} is over`);
    } else if (e.timesEjected > 0) {
      // Decay only while the backend is in: time spent out for other reasons proves nothing.
      if (!current.routable) backends[id] = { ...e, decayFrom: now };
      else if (now - e.decayFrom >= interval) {
        const n = Math.floor((now - e.decayFrom) / interval);
        backends[id] = { ...e, timesEjected: Math.max(0, e.timesEjected - n), decayFrom: e.decayFrom + n * interval };
      }
    }
  }
}

function releaseOnProbe(step: Step, id: string): void {
  const rule = step.backends[id]?.ejection?.rule;
  const mode = step.cfg.probe_success_releases;
  if (!rule || mode === 'none' || (mode === 'gateway' && rule !== 'consecutive_gateway_failure')) return;
  release(step, id, 'a probe succeeded, so the backend accepts connections again');
}

function release(step: Step, id: string, reason: string): void {
  const e = step.backends[id]!;
  step.backends[id] = { ...e, ejection: null, consecutive5xx: 0, consecutiveGateway: 0, samples: [], decayFrom: step.now };
  const rule = e.ejection!.rule;
  step.verdicts.push({ kind: 'release', app: step.input.app, backendId: id, address: e.address, rule, reason, at: step.now });
}

/** Counts one outcome of a known backend; may eject it. */
function countOutcome(step: Step, backend: OutlierBackend, o: Outcome): void {
  const prev = step.backends[backend.id] ?? fresh(backend.address, step.now);
  if (prev.ejection || o.kind === 'no_live' || o.kind === 'unknown') return;
  const { cfg } = step;
  const e: BackendOutlierState = { ...prev };
  if (o.kind === 'ok') {
    e.consecutive5xx = 0;
    e.consecutiveGateway = 0;
    if (cfg.latency.enabled && o.responseTimeMs !== null) {
      e.samples = addSample(e.samples, o.at, o.responseTimeMs, cfg.latency);
      step.sampled.add(backend.id);
    }
  } else {
    e.consecutive5xx++;
    e.consecutiveGateway = o.kind === 'gateway' ? e.consecutiveGateway + 1 : 0;
  }
  // A threshold of 0 turns its rule off; an answer below 500 never fires one.
  const gatewayFired = o.kind === 'gateway' && e.consecutiveGateway === cfg.consecutive_gateway_failure;
  const fiveFired = o.kind !== 'ok' && e.consecutive5xx === cfg.consecutive_5xx;
  // A rule's count restarts when it fires, ejected or not (Envoy). When both fire on the same
  // outcome, one attempt under the more specific rule stands for both.
  if (gatewayFired) e.consecutiveGateway = 0;
  if (fiveFired) e.consecutive5xx = 0;
  step.backends[backend.id] = e;
  if (gatewayFired) {
    const why = `${cfg.consecutive_gateway_failure} consecutive gateway failures (last: ${describe(o)})`;
    tryEject(step, backend, 'consecutive_gateway_failure', why);
  } else if (fiveFired) {
    tryEject(step, backend, 'consecutive_5xx', `${cfg.consecutive_5xx} consecutive 5xx (last: ${describe(o)})`);
  }
}

/** Latency rule over the backends sampled in this step, against every comparable backend. */
function checkLatency(step: Step): void {
  const { backends, now, cfg, input } = step;
  const candidates: [string, { mean: number; count: number }][] = [];
  for (const id of step.sampled) {
    const own = windowMean(backends[id]!.samples, now, cfg.latency);
    if (own && own.mean > cfg.latency.min_ms) candidates.push([id, own]);
  }
  // Most steps end here: while every sampled backend is under the floor, nobody needs comparing,
  // so the other backends are neither scanned nor sorted.
  if (candidates.length === 0) return;
  const means: number[] = [];
  for (const e of Object.values(backends)) {
    const m = e.ejection ? null : windowMean(e.samples, now, cfg.latency);
    if (m) means.push(m.mean);
  }
  const sorted = sortedMeans(means);
  for (const [id, own] of candidates) {
    const e = backends[id]!;
    const why = e.ejection ? null : latencyVerdict(own, sorted, cfg.latency);
    const backend = input.backends.get(e.address);
    if (why && backend) tryEject(step, backend, 'latency', why);
  }
}

/** Ejects unless the percent limit or last-backend protection refuses; both give `suppressed`. */
function tryEject(step: Step, backend: OutlierBackend, rule: OutlierRule, why: string): void {
  const refusal = ejectionRefusal(step, backend);
  const { app } = step.input;
  const base = { app, backendId: backend.id, address: backend.address, rule, at: step.now };
  if (refusal) {
    // Like a count restarting, the latency window starts over: min_samples more before it speaks again.
    if (rule === 'latency') step.backends[backend.id] = { ...step.backends[backend.id]!, samples: [] };
    step.verdicts.push({ ...base, kind: 'suppressed', reason: `${why}; not ejected: ${refusal}` });
    return;
  }
  const baseMs = step.cfg.base_ejection_time_seconds * 1000;
  const maxMs = step.cfg.max_ejection_time_seconds * 1000;
  const e = step.backends[backend.id]!;
  const timesEjected = baseMs * e.timesEjected < maxMs + baseMs ? e.timesEjected + 1 : e.timesEjected;
  const durationMs = Math.min(baseMs * timesEjected, maxMs);
  step.backends[backend.id] = {
    ...e,
    timesEjected,
    ejection: { rule, at: step.now, until: step.now + durationMs },
    consecutive5xx: 0,
    consecutiveGateway: 0,
    samples: [],
  };
  const reason = `${why}; ejected for ${seconds(durationMs)} (ejection ${timesEjected} in a row)`;
  step.verdicts.push({ ...base, kind: 'eject', reason, durationMs, timesEjected });
}

/** Why this backend may not be ejected now, or null when it may. */
function ejectionRefusal(step: Step, backend: OutlierBackend): string | null {
  const all = step.input.backends;
  let ejected = 0;
  for (const e of Object.values(step.backends)) if (e.ejection) ejected++;
  const percent = (100 * (ejected + 1)) / all.size;
  if (percent > step.cfg.max_ejection_percent) {
    return `max_ejection_percent is ${step.cfg.max_ejection_percent} % and ${ejected} of ${all.size} backends are ejected already`;
  }
  for (const other of all.values()) {
    if (other.id !== backend.id && other.routable && !step.backends[other.id]?.ejection) return null;
  }
  return `it is the last routable backend of ${step.input.app}`;
}

/**
 * A state read back from the store: entries that are not well-formed are left out (they start
 * afresh), so a damaged or older row never breaks the detector.
 */
export function restoreAppOutliers(data: unknown): AppOutlierState {
  const backends: Record<string, BackendOutlierState> = {};
  const raw = (data as { backends?: unknown } | null)?.backends;
  if (typeof raw !== 'object' || raw === null) return initialAppOutliers();
  for (const [id, e] of Object.entries(raw as Record<string, unknown>)) {
    if (isBackendState(e)) backends[id] = e;
  }
  return { backends };
}

function isBackendState(v: unknown): v is BackendOutlierState {
  const e = v as BackendOutlierState;
  const count = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
  const ejectionOk =
    e?.ejection === null ||
    (typeof e?.ejection === 'object' &&
      ['consecutive_5xx', 'consecutive_gateway_failure', 'latency'].includes(e.ejection.rule) &&
      Number.isFinite(e.ejection.at) &&
      Number.isFinite(e.ejection.until));
  return (
    typeof e?.address === 'string' &&
    count(e.consecutive5xx) &&
    count(e.consecutiveGateway) &&
    count(e.timesEjected) &&
    Number.isFinite(e.decayFrom) &&
    ejectionOk &&
    Array.isArray(e.samples) &&
    e.samples.every((s) => Array.isArray(s) && s.length === 2 && Number.isFinite(s[0]) && Number.isFinite(s[1]))
  );
}

function fresh(address: string, now: number): BackendOutlierState {
  return { address, consecutive5xx: 0, consecutiveGateway: 0, timesEjected: 0, ejection: null, decayFrom: now, samples: [] };
}

/** `502 after 3 ms, no connection` and the like, for reasons. */
function describe(o: Outcome): string {
  const status = o.status === null ? 'no status' : String(o.status);
  const noConnection = o.connectTimeMs === null && o.kind === 'gateway' ? ', no connection' : '';
  const time = o.responseTimeMs === null ? '' : ` after ${o.responseTimeMs} ms`;
  return `${status}${time}${noConnection} from ${o.address}`;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
