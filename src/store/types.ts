/**
 * The state store's API: history (probe results, per-minute rollups, failures, transitions,
 * recovery actions, alert deliveries) and the daemon's persisted state, in one SQLite file.
 * Every write is fire-and-forget and never throws; reads are async.
 */
import type { FailureEvent, Transition } from '../health/types.js';
import type { ProbeResult } from '../model.js';
import type { ActionRecord } from '../recovery/types.js';

export interface StateStore {
  /** Queues one probe result (raw row + per-minute rollup). Costs a few array stores. */
  probe(result: ProbeResult): void;
  failure(event: FailureEvent): void;
  transition(t: Transition): void;
  recoveryAction(record: ActionRecord): void;
  /** Opaque JSON for `key` (`backend:<id>`, `planner`); null deletes. Latest wins within a batch. */
  saveState(key: string, json: string | null): void;
  /** Alert outbox: upsert an open alert's JSON, or delete it with null. */
  saveAlert(id: string, json: string | null): void;
  alertDelivery(d: AlertDelivery): void;
  /** Everything persisted for start-up; empty when the database is unavailable. Never rejects. */
  restore(): Promise<RestoredState>;
  /**
   * Health report for an app over the last `hours` (by the store's clock), from the per-minute
   * rollups (or, with `source: 'raw'`, from raw probe rows, inside raw retention only).
   * Rejects with a clear message when the database is unavailable or the app is unknown.
   */
  report(app: string, hours: number, opts?: { source?: ReportSource }): Promise<HealthReport>;
  status(): StoreStatus;
  /** Resolves once everything queued so far is committed (or, when degraded, held/dropped). */
  flush(): Promise<void>;
  /** Flushes, writes the open minute rollups, closes the database and stops the worker. */
  close(): Promise<void>;
}

export interface AlertDelivery {
  alertId: string;
  receiver: string;
  ok: boolean;
  error: string | null;
  /** Epoch ms. */
  at: number;
}

export interface RestoredState {
  /** Key (`backend:<id>`, `planner`, ...) → parsed JSON. */
  states: Map<string, unknown>;
  /** Open alerts from the outbox, oldest first, parsed. */
  alerts: unknown[];
}

export type ReportSource = 'rollups' | 'raw';

export interface StoreStatus {
  /** ok: writing; degraded: the database cannot be used now (see error); disabled: store.enabled false. */
  state: 'ok' | 'degraded' | 'disabled';
  path: string;
  /** One line naming the file and what is wrong, e.g. `/var/lib/x.db: file is not a database`. */
  error: string | null;
  /** Writes accepted but not yet committed (main-thread queue, in flight, held while degraded). */
  queued: number;
  /** Probe results dropped because more than max_queue were waiting. */
  dropped: number;
  /** Probe results committed since start. */
  written: number;
  /** Database file + WAL, bytes. */
  sizeBytes: number;
  /** user_version of the open database; 0 when none is open. */
  schemaVersion: number;
}

/** Check statistics over a window. Times in milliseconds; null when there were no checks. */
export interface CheckStats {
  uptime_percent: number | null;
  total_checks: number;
  successful_checks: number;
  failed_checks: number;
  /** Over every check, failed ones included (as the seed's report does). */
  avg_response_time_ms: number | null;
  /** Nearest-rank 95th percentile; from rollups within SKETCH_RELATIVE_ACCURACY of the exact value. */
  p95_response_time_ms: number | null;
  max_response_time_ms: number | null;
  /** Failed checks by ProbeErrorClass. */
  error_breakdown: Record<string, number>;
}

export interface ReportTransition {
  backend_id: string;
  kind: 'health' | 'breaker';
  from: string;
  to: string;
  /** ISO 8601. */
  at: string;
  reason: string;
}

export interface ReportAction {
  id: string;
  strategy: string;
  failure_type: string | null;
  backend_id: string;
  container_id: string | null;
  new_container_id: string | null;
  ok: boolean;
  dry_run: boolean;
  error: string | null;
  reason: string;
  /** ISO 8601. */
  started_at: string;
  duration_ms: number;
}

/** Events over a window; `recent_*` lists are newest first, at most REPORT_RECENT_LIMIT. */
export interface EventStats {
  /** Failure events by FailureType. */
  failure_breakdown: Record<string, number>;
  transitions: number;
  recent_transitions: ReportTransition[];
  /** Outages: a backend went out of nginx (health unhealthy, breaker open, or both: counted once). */
  ejections: number;
  recovery_actions: number;
  recovery_by_strategy: Record<string, number>;
  recent_recovery_actions: ReportAction[];
}

export interface BackendReport extends CheckStats, EventStats {
  backend_id: string;
}

/** The seed's generate_health_report, per app and per backend, from the store. */
export interface HealthReport extends CheckStats, EventStats {
  app_name: string;
  report_period_hours: number;
  source: ReportSource;
  /** Window, ISO 8601: `from` is rounded up to a whole minute (rollups are per minute). */
  from: string;
  to: string;
  generated_at: string;
  backends: BackendReport[];
}
