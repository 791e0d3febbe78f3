/**
 * The alert record persisted through the store, `{ v: 1, id, alert, deliveries }` (see
 * alerting.ts for its life cycle): written from live state, and read back at start-up, where it is
 * untrusted and checked field by field.
 */
import { FAILURE_TYPES, type FailureType, type Severity } from '../health/types.js';
import type { Delivery } from './dispatcher.js';
import type { Alert } from './state.js';

const RECORD_VERSION = 1;

export interface ParsedRecord {
  id: string;
  alert: Alert | null;
  deliveries: { alert: Alert; receiver: string; escalated: boolean; attempts: number }[];
}

/**
 * The record of `alertId`: the alert while it fires, and its queued deliveries (what must survive
 * a restart); null when there is neither, and the record is to be deleted.
 */
export function serializeRecord(alertId: string, alert: Alert | null, pending: Delivery[]): string | null {
  const deliveries = pending.map((d) => ({
    alert: d.alert,
    receiver: d.receiver,
    escalated: d.escalated,
    attempts: d.attempts,
  }));
  if (!alert && deliveries.length === 0) return null;
  return JSON.stringify({ v: RECORD_VERSION, id: alertId, alert, deliveries });
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

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** At most 200 characters of a value, for a log line. */
export function preview(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}
