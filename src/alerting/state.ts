/**
 * Alert state as a pure reducer: `step(state, input, cfg, now) -> { state, notifications }`.
 *
 * What an alert is:
 * - One alert per (backend, failure type) while the condition lasts; that pair is the dedup key,
 *   so ten failure events of an ejected backend make one alert and one notification per receiver.
 * - It FIRES when a FailureEvent arrives for a backend the registry has ejected, or when the
 *   event is critical (container_stopped, container_oom_killed, ...). A single failed probe of a
 *   backend that is still routed is not an alert.
 * - It RESOLVES when the backend is routed again (not ejected, health healthy, and proven so by a
 *   health change or a successful probe after the alert's last failure event, so a critical
 *   alert of a backend that never left the upstream is not resolved by the view that was already
 *   healthy when it fired), or when the backend disappears from discovery. The resolved
 *   notification goes to every receiver the firing one went to, escalation receivers included.
 * - Routing: an alert goes to every route it matches (severity at least min_severity, app and
 *   failure type in the route's lists when those are not empty), each receiver once.
 * - Escalation: an alert still firing escalation.after_seconds after it started is sent once to
 *   escalation.receivers, marked escalated.
 * - Alertmanager receivers are re-sent firing alerts every resend_interval_seconds: Alertmanager
 *   resolves an alert it stops hearing about, which is what should happen if the sidecar dies.
 * Severity is fixed when the alert fires: it is an Alertmanager label, and changing a label
 * would make Alertmanager see a different alert.
 */
import type { AlertingConfig, AlertSeverity } from '../config/types.js';
import type { BackendView, FailureEvent, FailureType, Severity } from '../health/types.js';

/** One alert, firing or (in a resolved notification) resolved. Times are epoch ms. */
export interface Alert {
  /** Unique per occurrence: `<backendId>/<failureType>@<startsAt>`. */
  id: string;
  backendId: string;
  app: string;
  failureType: FailureType;
  severity: Severity;
  /** The latest failure event's message. */
  message: string;
  status: 'firing' | 'resolved';
  startsAt: number;
  /** When it resolved; null while firing. */
  endsAt: number | null;
  /** Timestamp of the latest failure event for this backend and type. */
  lastEventAt: number;
  /** Last time it was sent to its Alertmanager receivers (for the resend interval). */
  lastSentAt: number;
  /** Sent to the escalation receivers. */
  escalated: boolean;
  /** Route receivers it was sent to when it fired. */
  receivers: string[];
  /** Escalation receivers it was sent to (empty until escalated). */
  escalationReceivers: string[];
}

/** One message for one receiver. */
export interface Notification {
  alert: Alert;
  receiver: string;
  /** This is the escalation notice (or the resolution an escalation receiver gets). */
  escalated: boolean;
}

/** Firing alerts by dedup key (`<backendId>/<failureType>`). */
export interface AlertState {
  alerts: ReadonlyMap<string, Alert>;
}

export type AlertInput =
  | { kind: 'failure'; event: FailureEvent; ejected: boolean }
  | { kind: 'backend'; view: BackendView }
  | { kind: 'removed'; backendIds: string[] }
  /** Every backend discovery knows now: alerts of any other backend resolve (e.g. restored ones). */
  | { kind: 'present'; backendIds: string[] }
  /** Time passed: escalations and Alertmanager resends that are due. */
  | { kind: 'tick' };

export interface StepResult {
  state: AlertState;
  notifications: Notification[];
}

const SEVERITY_RANK: Record<AlertSeverity, number> = { low: 0, medium: 1, high: 2, critical: 3 };

export function createAlertState(alerts: Iterable<Alert> = []): AlertState {
  return { alerts: new Map([...alerts].map((a) => [alertKey(a.backendId, a.failureType), a])) };
}

/** The dedup key: one alert per backend and failure type. */
export function alertKey(backendId: string, failureType: string): string {
  return `${backendId}/${failureType}`;
}

/** Receivers of every route the alert matches, each once, in route order. */
export function routeReceivers(
  alert: Pick<Alert, 'app' | 'failureType' | 'severity'>,
  cfg: Pick<AlertingConfig, 'routes'>,
): string[] {
  const out = new Set<string>();
  for (const route of cfg.routes) {
    if (SEVERITY_RANK[alert.severity] < SEVERITY_RANK[route.min_severity]) continue;
    if (route.apps.length > 0 && !route.apps.includes(alert.app)) continue;
    if (route.failure_types.length > 0 && !route.failure_types.includes(alert.failureType)) continue;
    for (const r of route.receivers) out.add(r);
  }
  return [...out];
}

/** Applies one input. Returns the same state object when nothing changed. */
export function step(state: AlertState, input: AlertInput, cfg: AlertingConfig, now: number): StepResult {
  switch (input.kind) {
    case 'failure':
      return onFailure(state, input.event, input.ejected, cfg, now);
    case 'backend': {
      const view = input.view;
      if (view.ejected || view.health !== 'healthy') return unchanged(state);
      return resolveWhere(state, now, (a) => a.backendId === view.backendId && provenHealthy(view, a.lastEventAt));
    }
    case 'removed': {
      const ids = new Set(input.backendIds);
      return resolveWhere(state, now, (a) => ids.has(a.backendId));
    }
    case 'present': {
      const ids = new Set(input.backendIds);
      return resolveWhere(state, now, (a) => !ids.has(a.backendId));
    }
    case 'tick':
      return onTick(state, cfg, now);
  }
}

/** When the next tick has work (escalation or resend), or null when none is pending. */
export function nextDue(state: AlertState, cfg: AlertingConfig): number | null {
  let due = Infinity;
  for (const a of state.alerts.values()) {
    if (!a.escalated) due = Math.min(due, a.startsAt + cfg.escalation.after_seconds * 1000);
    if (alertmanagerTargets(a, cfg).length > 0) due = Math.min(due, a.lastSentAt + cfg.resend_interval_seconds * 1000);
  }
  return due === Infinity ? null : due;
}

function onFailure(state: AlertState, event: FailureEvent, ejected: boolean, cfg: AlertingConfig, now: number): StepResult {
  const key = alertKey(event.backendId, event.failureType);
  const existing = state.alerts.get(key);
  if (existing) {
    // Still the same alert: keep the latest message for resends and the API, notify nobody.
    const updated: Alert = { ...existing, message: event.message, lastEventAt: Math.max(existing.lastEventAt, event.timestamp) };
    return { state: withAlert(state, key, updated), notifications: [] };
  }
  if (!ejected && !event.critical) return unchanged(state);
  const base = { app: event.app, failureType: event.failureType, severity: event.severity };
  const alert: Alert = {
    id: `${key}@${now}`,
    backendId: event.backendId,
    ...base,
    message: event.message,
    status: 'firing',
    startsAt: now,
    endsAt: null,
    lastEventAt: event.timestamp,
    lastSentAt: now,
    escalated: false,
    receivers: routeReceivers(base, cfg),
    escalationReceivers: [],
  };
  return {
    state: withAlert(state, key, alert),
    notifications: alert.receivers.map((receiver) => ({ alert, receiver, escalated: false })),
  };
}

function onTick(state: AlertState, cfg: AlertingConfig, now: number): StepResult {
  const notifications: Notification[] = [];
  let alerts: Map<string, Alert> | null = null;
  for (const [key, a] of state.alerts) {
    let next = a;
    let justNotified: string[] = [];
    if (!a.escalated && now >= a.startsAt + cfg.escalation.after_seconds * 1000) {
      next = { ...next, escalated: true, escalationReceivers: [...cfg.escalation.receivers] };
      justNotified = next.escalationReceivers;
      for (const receiver of justNotified) notifications.push({ alert: next, receiver, escalated: true });
    }
    const resend = alertmanagerTargets(next, cfg).filter((r) => !justNotified.includes(r));
    if (resend.length > 0 && now >= a.lastSentAt + cfg.resend_interval_seconds * 1000) {
      next = { ...next, lastSentAt: now };
      for (const receiver of resend) notifications.push({ alert: next, receiver, escalated: false });
    }
    if (next !== a) (alerts ??= new Map(state.alerts)).set(key, next);
  }
  return alerts ? { state: { alerts }, notifications } : unchanged(state);
}

function resolveWhere(state: AlertState, now: number, match: (a: Alert) => boolean): StepResult {
  const notifications: Notification[] = [];
  let alerts: Map<string, Alert> | null = null;
  for (const [key, a] of state.alerts) {
    if (!match(a)) continue;
    (alerts ??= new Map(state.alerts)).delete(key);
    const resolved: Alert = { ...a, status: 'resolved', endsAt: now };
    for (const receiver of a.receivers) notifications.push({ alert: resolved, receiver, escalated: false });
    for (const receiver of a.escalationReceivers) {
      if (!a.receivers.includes(receiver)) notifications.push({ alert: resolved, receiver, escalated: true });
    }
  }
  return alerts ? { state: { alerts }, notifications } : unchanged(state);
}

/** Healthy since after `t`: a health/breaker change or a successful probe that started after it. */
function provenHealthy(view: BackendView, t: number): boolean {
  return view.since > t || (view.lastProbe !== null && view.lastProbe.healthy && view.lastProbe.startedAt > t);
}

/** The alert's current receivers that are Alertmanagers (they need resends). */
function alertmanagerTargets(a: Alert, cfg: AlertingConfig): string[] {
  const targets = new Set([...a.receivers, ...a.escalationReceivers]);
  return cfg.receivers.filter((r) => r.type === 'alertmanager' && targets.has(r.name)).map((r) => r.name);
}

function withAlert(state: AlertState, key: string, alert: Alert): AlertState {
  const alerts = new Map(state.alerts);
  alerts.set(key, alert);
  return { alerts };
}

function unchanged(state: AlertState): StepResult {
  return { state, notifications: [] };
}
