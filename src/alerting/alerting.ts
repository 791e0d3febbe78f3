/**
 * The alerting subsystem: the pure alert reducer (state.ts) plus the dispatcher (I/O), wired to
 * the clock and a persistence hook. Callers hand it events and never wait: every method returns
 * at once, and a receiver that is down never slows probing or routing.
 *
 * Persistence: one record per alert id, `{ v: 1, id, alert, deliveries }`, saved while the alert
 * is firing (`alert`) or has undelivered notifications (`deliveries`), deleted once it is resolved
 * and everything is delivered. At start the daemon passes those records back to `restore`: firing
 * alerts are firing again (no duplicate notice, and they resolve normally) and undelivered
 * notifications are queued again, so a restart loses nothing.
 *
 * See state.ts for what fires, resolves and escalates an alert.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { AlertingConfig } from '../config/types.js';
import { FAILURE_TYPES, type BackendView, type FailureEvent, type FailureType, type Severity } from '../health/types.js';
import type { Logger } from '../observability/logger.js';
import { createDispatcher, type DeliveryRecord, type FetchLike, type ReceiverStatus } from './dispatcher.js';
import { alertKey, createAlertState, nextDue, step, type Alert, type AlertInput, type AlertState } from './state.js';

/** What the daemon's store provides. */
export interface AlertPersistence {
  /** Upserts an opaque JSON record, or deletes it with null. */
  saveAlert(id: string, json: string | null): void;
  /** The log of delivery attempts. */
  alertDelivery(d: DeliveryRecord): void;
}

export interface AlertingStatus {
  /** Alerts firing now. */
  firing: number;
  /** Notifications waiting for delivery, across receivers. */
  queued: number;
  /** Notifications delivered since start. */
  sent: number;
  /** Failed delivery attempts since start. */
  failedDeliveries: number;
  /** The same, per receiver (for per-receiver metrics). */
  byReceiver: Record<string, ReceiverStatus>;
}

export interface Alerting {
  /** A failure event; `ejected` is the registry's view of the backend after it. */
  onFailure(event: FailureEvent, ejected: boolean): void;
  /** A backend's current view (after a transition): resolves its alerts once it is routed again. */
  onBackend(view: BackendView): void;
  /** Backends discovery no longer has: their alerts resolve. */
  onRemoved(backendIds: string[]): void;
  /**
   * Every backend discovery has now: alerts of any other backend resolve. Call after the first
   * full discovery following `restore`, for alerts whose backend vanished while the daemon was down.
   */
  reconcile(backendIds: Iterable<string>): void;
  /** Restores records saved through `saveAlert` (untrusted: bad ones are logged and deleted). */
  restore(records: unknown[]): void;
  /** A reloaded configuration; firing alerts and queued notifications are kept. */
  updateConfig(cfg: AlertingConfig): void;
  status(): AlertingStatus;
  /** Firing alerts, oldest first. */
  list(): Alert[];
  stop(): void;
}

export interface AlertingOptions {
  config: AlertingConfig;
  clock: Clock;
  logger: Logger;
  persistence: AlertPersistence;
  /** Defaults to global fetch. */
  fetchImpl?: FetchLike;
}

const RECORD_VERSION = 1;

export function createAlerting(opts: AlertingOptions): Alerting {
  const { clock, persistence } = opts;
  const log = opts.logger.child({ module: 'alerting' });
  let cfg = opts.config;
  let state: AlertState = createAlertState();
  let tickTimer: TimerHandle | null = null;
  let stopped = false;
  /** Ids with a record in the store, so deletes are written only for those. */
  const saved = new Set<string>();
  /** Alert ids to persist once the current batch ends; null outside a batch. */
  let batch: Set<string> | null = null;

  const persist = (alertId: string) => {
    const alert = [...state.alerts.values()].find((a) => a.id === alertId) ?? null;
    const deliveries = dispatcher.pending(alertId).map((d) => ({
      alert: d.alert,
      receiver: d.receiver,
      escalated: d.escalated,
      attempts: d.attempts,
    }));
    if (!alert && deliveries.length === 0) {
      if (saved.delete(alertId)) persistence.saveAlert(alertId, null);
      return;
    }
    saved.add(alertId);
    persistence.saveAlert(alertId, JSON.stringify({ v: RECORD_VERSION, id: alertId, alert, deliveries }));
  };

  const dispatcher = createDispatcher({
    config: cfg,
    clock,
    logger: log,
    fetchImpl: opts.fetchImpl ?? ((url, init) => fetch(url, init)),
    onPendingChange: (id) => (batch ? batch.add(id) : persist(id)),
    onDelivery: (d) => persistence.alertDelivery(d),
  });
  dispatcher.setEnabled(cfg.enabled);

  const scheduleTick = () => {
    if (tickTimer) clock.clearTimeout(tickTimer);
    tickTimer = null;
    const due = stopped || !cfg.enabled ? null : nextDue(state, cfg);
    if (due === null) return;
    tickTimer = clock.setTimeout(() => {
      tickTimer = null;
      apply({ kind: 'tick' });
    }, Math.max(0, due - clock.now()));
    tickTimer.unref?.();
  };

  /** Persists each changed alert once at the end, however many receivers it was queued for. */
  const batched = (ids: Iterable<string>, fn: () => void) => {
    batch = new Set(ids);
    try {
      fn();
    } finally {
      const done = batch;
      batch = null;
      for (const id of done) persist(id);
    }
  };

  const apply = (input: AlertInput) => {
    if (stopped || !cfg.enabled) return;
    const before = state;
    const result = step(state, input, cfg, clock.now());
    state = result.state;
    if (state === before) return;
    const changed: string[] = [];
    for (const [key, a] of state.alerts) {
      if (before.alerts.get(key) === a) continue;
      changed.push(a.id);
      if (!before.alerts.has(key)) log.info({ alertId: a.id, severity: a.severity, receivers: a.receivers }, 'alert firing');
    }
    for (const [key, a] of before.alerts) {
      if (!state.alerts.has(key)) {
        changed.push(a.id);
        log.info({ alertId: a.id }, 'alert resolved');
      }
    }
    batched(changed, () => {
      for (const n of result.notifications) dispatcher.enqueue(n);
    });
    scheduleTick();
  };

  return {
    onFailure: (event, ejected) => apply({ kind: 'failure', event, ejected }),
    onBackend: (view) => apply({ kind: 'backend', view }),
    onRemoved: (backendIds) => apply({ kind: 'removed', backendIds }),
    reconcile: (backendIds) => apply({ kind: 'present', backendIds: [...backendIds] }),
    restore(records) {
      if (stopped || !cfg.enabled) return;
      const valid: ParsedRecord[] = [];
      for (const raw of records) {
        const rec = parseRecord(raw);
        if (typeof rec !== 'string') {
          valid.push(rec);
          continue;
        }
        log.warn({ record: preview(raw) }, `alert record dropped: ${rec}`);
        // Delete it when it names itself, or it would be dropped again at every start.
        if (isObject(raw) && typeof raw.id === 'string') persistence.saveAlert(raw.id, null);
      }
      const alerts = new Map(state.alerts);
      for (const rec of valid) {
        saved.add(rec.id);
        const key = rec.alert && alertKey(rec.alert.backendId, rec.alert.failureType);
        // An alert that fired again before restore wins; the old record's notices still go out.
        if (rec.alert && key && !alerts.has(key)) alerts.set(key, rec.alert);
      }
      state = { alerts };
      batched(valid.map((r) => r.id), () => {
        for (const rec of valid) for (const d of rec.deliveries) dispatcher.enqueue(d, d.attempts);
      });
      if (valid.length > 0) log.info({ records: valid.length, firing: state.alerts.size }, 'alerts restored');
      scheduleTick();
    },
    updateConfig(next) {
      cfg = next;
      dispatcher.updateConfig(next);
      dispatcher.setEnabled(next.enabled);
      scheduleTick();
    },
    status() {
      const byReceiver = dispatcher.status();
      const all = Object.values(byReceiver);
      return {
        firing: state.alerts.size,
        queued: all.reduce((n, r) => n + r.queued, 0),
        sent: all.reduce((n, r) => n + r.sent, 0),
        failedDeliveries: all.reduce((n, r) => n + r.failed, 0),
        byReceiver,
      };
    },
    list: () => [...state.alerts.values()].sort((a, b) => a.startsAt - b.startsAt),
    stop() {
      stopped = true;
      if (tickTimer) clock.clearTimeout(tickTimer);
      tickTimer = null;
      dispatcher.stop();
    },
  };
}

interface ParsedRecord {
  id: string;
  alert: Alert | null;
  deliveries: { alert: Alert; receiver: string; escalated: boolean; attempts: number }[];
}

/** Validates one restored record (untrusted JSON); a string names what is wrong. */
export function parseRecord(raw: unknown): ParsedRecord | string {
  if (!isObject(raw)) return 'not an object';
  if (raw.v !== RECORD_VERSION) return `unknown version ${JSON.stringify(raw.v)}`;
  if (typeof raw.id !== 'string' || raw.id === '') return 'id must be a non-empty string';
  let alert: Alert | null = null;
  if (raw.alert !== null) {
    const a = parseAlert(raw.alert, 'alert');
    if (typeof a === 'string') return a;
    if (a.status !== 'firing' || a.id !== raw.id) return 'alert must be the firing alert of this record';
    alert = a;
  }
  if (!Array.isArray(raw.deliveries)) return 'deliveries must be a list';
  const deliveries: ParsedRecord['deliveries'] = [];
  for (const [i, d] of raw.deliveries.entries()) {
    const path = `deliveries[${i}]`;
    if (!isObject(d)) return `${path} must be an object`;
    const a = parseAlert(d.alert, `${path}.alert`);
    if (typeof a === 'string') return a;
    if (a.id !== raw.id) return `${path}.alert.id must be ${raw.id}`;
    if (typeof d.receiver !== 'string' || d.receiver === '') return `${path}.receiver must be a non-empty string`;
    if (typeof d.escalated !== 'boolean') return `${path}.escalated must be a boolean`;
    if (!Number.isSafeInteger(d.attempts) || (d.attempts as number) < 0) return `${path}.attempts must be a count`;
    deliveries.push({ alert: a, receiver: d.receiver, escalated: d.escalated, attempts: d.attempts as number });
  }
  if (!alert && deliveries.length === 0) return 'neither a firing alert nor deliveries';
  return { id: raw.id, alert, deliveries };
}

const SEVERITIES: ReadonlySet<string> = new Set<Severity>(['low', 'medium', 'high', 'critical']);

function parseAlert(raw: unknown, path: string): Alert | string {
  if (!isObject(raw)) return `${path} must be an object`;
  for (const f of ['id', 'backendId', 'app', 'message'] as const) {
    if (typeof raw[f] !== 'string') return `${path}.${f} must be a string`;
  }
  if (!FAILURE_TYPES.has(raw.failureType as FailureType)) return `${path}.failureType is not a failure type (got ${JSON.stringify(raw.failureType)})`;
  if (!SEVERITIES.has(raw.severity as string)) return `${path}.severity is not a severity (got ${JSON.stringify(raw.severity)})`;
  if (raw.status !== 'firing' && raw.status !== 'resolved') return `${path}.status must be firing or resolved`;
  for (const f of ['startsAt', 'lastEventAt', 'lastSentAt'] as const) {
    if (!Number.isFinite(raw[f])) return `${path}.${f} must be a number`;
  }
  if (raw.status === 'resolved' ? !Number.isFinite(raw.endsAt) : raw.endsAt !== null) {
    return `${path}.endsAt must be a number when resolved, null when firing`;
  }
  if (typeof raw.escalated !== 'boolean') return `${path}.escalated must be a boolean`;
  for (const f of ['receivers', 'escalationReceivers'] as const) {
    const list = raw[f];
    if (!Array.isArray(list) || !list.every((r) => typeof r === 'string')) return `${path}.${f} must be a list of names`;
  }
  return {
    id: raw.id as string,
    backendId: raw.backendId as string,
    app: raw.app as string,
    failureType: raw.failureType as FailureType,
    severity: raw.severity as Severity,
    message: raw.message as string,
    status: raw.status,
    startsAt: raw.startsAt as number,
    endsAt: raw.endsAt as number | null,
    lastEventAt: raw.lastEventAt as number,
    lastSentAt: raw.lastSentAt as number,
    escalated: raw.escalated,
    receivers: [...(raw.receivers as string[])],
    escalationReceivers: [...(raw.escalationReceivers as string[])],
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function preview(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}
