/**
 * The alerting subsystem: the pure alert reducer (state.ts) plus the dispatcher (I/O), wired to
 * the clock and a persistence hook. Callers hand it events and never wait: every method returns
 * at once, and a receiver that is down never slows probing or routing.
 *
 * Persistence: one record per alert id, `{ v: 1, id, alert, deliveries }` (alert-records.ts), saved while the alert
 * is firing (`alert`) or has undelivered notifications (`deliveries`), deleted once it is resolved
 * and everything is delivered. At start the daemon passes those records back to `restore`: firing
 * alerts are firing again (no duplicate notice, and they resolve normally) and undelivered
 * notifications are queued again, so a restart loses nothing.
 *
 * See state.ts for what fires, resolves and escalates an alert.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { AlertingConfig } from '../config/types.js';
import type { BackendView, FailureEvent } from '../health/types.js';
import type { Logger } from '../observability/logger.js';
import { isObject, parseRecord, preview, serializeRecord, type ParsedRecord } from './alert-records.js';
import { createDispatcher, type DeliveryRecord, type Dispatcher, type FetchLike, type ReceiverStatus } from './dispatcher.js';
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

/** The subsystem's state; the functions below are its methods. */
interface AlertingState {
  clock: Clock;
  persistence: AlertPersistence;
  log: Logger;
  cfg: AlertingConfig;
  state: AlertState;
  tickTimer: TimerHandle | null;
  stopped: boolean;
  /** Ids with a record in the store, so deletes are written only for those. */
  saved: Set<string>;
  /** Alert ids to persist once the current batch ends; null outside a batch. */
  batch: Set<string> | null;
  dispatcher: Dispatcher;
}

export function createAlerting(opts: AlertingOptions): Alerting {
  const { clock, persistence } = opts;
  const log = opts.logger.child({ module: 'alerting' });
  const s: AlertingState = {
    clock,
    persistence,
    log,
    cfg: opts.config,
    state: createAlertState(),
    tickTimer: null,
    stopped: false,
    saved: new Set(),
    batch: null,
    dispatcher: createDispatcher({
      config: opts.config,
      clock,
      logger: log,
      fetchImpl: opts.fetchImpl ?? ((url, init) => fetch(url, init)),
      onPendingChange: (id) => (s.batch ? s.batch.add(id) : persist(s, id)),
      onDelivery: (d) => persistence.alertDelivery(d),
    }),
  };
  s.dispatcher.setEnabled(s.cfg.enabled);

  return {
    onFailure: (event, ejected) => apply(s, { kind: 'failure', event, ejected }),
    onBackend: (view) => apply(s, { kind: 'backend', view }),
    onRemoved: (backendIds) => apply(s, { kind: 'removed', backendIds }),
    reconcile: (backendIds) => apply(s, { kind: 'present', backendIds: [...backendIds] }),
    restore: (records) => restore(s, records),
    updateConfig(next) {
      s.cfg = next;
      s.dispatcher.updateConfig(next);
      s.dispatcher.setEnabled(next.enabled);
      scheduleTick(s);
    },
    status: () => status(s),
    list: () => [...s.state.alerts.values()].sort((a, b) => a.startsAt - b.startsAt),
    stop() {
      s.stopped = true;
      if (s.tickTimer) clock.clearTimeout(s.tickTimer);
      s.tickTimer = null;
      s.dispatcher.stop();
    },
  };
}

function persist(s: AlertingState, alertId: string): void {
  const alert = [...s.state.alerts.values()].find((a) => a.id === alertId) ?? null;
  const json = serializeRecord(alertId, alert, s.dispatcher.pending(alertId));
  if (json === null) {
    if (s.saved.delete(alertId)) s.persistence.saveAlert(alertId, null);
    return;
  }
  s.saved.add(alertId);
  s.persistence.saveAlert(alertId, json);
}

function scheduleTick(s: AlertingState): void {
  const { clock } = s;
  if (s.tickTimer) clock.clearTimeout(s.tickTimer);
  s.tickTimer = null;
  const due = s.stopped || !s.cfg.enabled ? null : nextDue(s.state, s.cfg);
  if (due === null) return;
  s.tickTimer = clock.setTimeout(() => {
    s.tickTimer = null;
    apply(s, { kind: 'tick' });
  }, Math.max(0, due - clock.now()));
  s.tickTimer.unref?.();
}

/** Persists each changed alert once at the end, however many receivers it was queued for. */
function batched(s: AlertingState, ids: Iterable<string>, fn: () => void): void {
  s.batch = new Set(ids);
  try {
    fn();
  } finally {
    const done = s.batch;
    s.batch = null;
    for (const id of done) persist(s, id);
  }
}

function apply(s: AlertingState, input: AlertInput): void {
  if (s.stopped || !s.cfg.enabled) return;
  const before = s.state;
  const result = step(s.state, input, s.cfg, s.clock.now());
  s.state = result.state;
  if (s.state === before) return;
  const changed = changedAlerts(s.log, before, s.state);
  batched(s, changed, () => {
    for (const n of result.notifications) s.dispatcher.enqueue(n);
  });
  scheduleTick(s);
}

/** Ids of the alerts that fired, changed or resolved from `before` to `after`; logs fired and resolved. */
function changedAlerts(log: Logger, before: AlertState, after: AlertState): string[] {
  const changed: string[] = [];
  for (const [key, a] of after.alerts) {
    if (before.alerts.get(key) === a) continue;
    changed.push(a.id);
    if (!before.alerts.has(key)) log.info({ alertId: a.id, severity: a.severity, receivers: a.receivers }, 'alert firing');
  }
  for (const [key, a] of before.alerts) {
    if (!after.alerts.has(key)) {
      changed.push(a.id);
      log.info({ alertId: a.id }, 'alert resolved');
    }
  }
  return changed;
}

function restore(s: AlertingState, records: unknown[]): void {
  if (s.stopped || !s.cfg.enabled) return;
  const valid = validRecords(s, records);
  const alerts = new Map(s.state.alerts);
  for (const rec of valid) {
    s.saved.add(rec.id);
    const key = rec.alert && alertKey(rec.alert.backendId, rec.alert.failureType);
    // An alert that fired again before restore wins; the old record's notices still go out.
    if (rec.alert && key && !alerts.has(key)) alerts.set(key, rec.alert);
  }
  s.state = { alerts };
  batched(s, valid.map((r) => r.id), () => {
    for (const rec of valid) for (const d of rec.deliveries) s.dispatcher.enqueue(d, d.attempts);
  });
  if (valid.length > 0) s.log.info({ records: valid.length, firing: s.state.alerts.size }, 'alerts restored');
  scheduleTick(s);
}

/** The records that parse; each bad one is logged and deleted. */
function validRecords(s: AlertingState, records: unknown[]): ParsedRecord[] {
  const valid: ParsedRecord[] = [];
  for (const raw of records) {
    const rec = parseRecord(raw);
    if (typeof rec !== 'string') {
      valid.push(rec);
      continue;
    }
    s.log.warn({ record: preview(raw) }, `alert record dropped: ${rec}`);
    // Delete it when it names itself, or it would be dropped again at every start.
    if (isObject(raw) && typeof raw.id === 'string') s.persistence.saveAlert(raw.id, null);
  }
  return valid;
}

function status(s: AlertingState): AlertingStatus {
  const byReceiver = s.dispatcher.status();
  const all = Object.values(byReceiver);
  return {
    firing: s.state.alerts.size,
    queued: all.reduce((n, r) => n + r.queued, 0),
    sent: all.reduce((n, r) => n + r.sent, 0),
    failedDeliveries: all.reduce((n, r) => n + r.failed, 0),
    byReceiver,
  };
}
