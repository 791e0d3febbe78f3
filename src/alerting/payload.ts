/**
 * What each receiver type is sent for one notification: the URL and the JSON body. Pure; the
 * send time is passed in because Alertmanager's endsAt for a firing alert is relative to it.
 */
import type { AlertReceiverConfig } from '../config/types.js';
import type { Alert, Notification } from './state.js';

/** Alertmanager's alertname label for every alert the sidecar sends. */
export const ALERT_NAME = 'OrchestryBackendFailure';

/**
 * A firing alert sent to Alertmanager ends this many resend intervals after it was sent, as
 * Prometheus does: Alertmanager keeps it active while resends arrive and expires it on its own
 * if the sidecar stops sending.
 */
export const ALERTMANAGER_ENDS_AFTER_RESENDS = 4;

export interface Request {
  url: string;
  body: string;
}

/** The request for `n` to `receiver`, sent at `now` (epoch ms). */
export function formatRequest(receiver: AlertReceiverConfig, n: Notification, now: number, resendIntervalSeconds: number): Request {
  switch (receiver.type) {
    case 'webhook':
      return { url: receiver.url, body: JSON.stringify(webhookBody(n, now)) };
    case 'slack':
      return { url: receiver.url, body: JSON.stringify(slackBody(n)) };
    case 'alertmanager':
      return {
        url: `${receiver.url.replace(/\/+$/, '')}/api/v2/alerts`,
        body: JSON.stringify([alertmanagerAlert(n.alert, now, resendIntervalSeconds)]),
      };
  }
}

/** The generic webhook's JSON: the alert in snake_case, with ISO times. */
export function webhookBody(n: Notification, now: number) {
  const a = n.alert;
  return {
    version: 1,
    status: a.status,
    escalated: n.escalated,
    alert: {
      id: a.id,
      name: ALERT_NAME,
      app: a.app,
      backend: a.backendId,
      failure_type: a.failureType,
      severity: a.severity,
      message: a.message,
      starts_at: iso(a.startsAt),
      ends_at: a.endsAt === null ? null : iso(a.endsAt),
    },
    sent_at: iso(now),
  };
}

/** What Slack's incoming webhooks accept: `text`, and one attachment whose colour is the state. */
export function slackBody(n: Notification) {
  const a = n.alert;
  const state = a.status === 'resolved' ? 'RESOLVED' : n.escalated ? 'ESCALATED' : 'FIRING';
  return {
    text: `[${state}] ${a.app}: ${a.failureType} on ${a.backendId} (${a.severity})`,
    attachments: [
      {
        color: a.status === 'resolved' ? 'good' : a.severity === 'low' || a.severity === 'medium' ? 'warning' : 'danger',
        text: a.message,
        fields: [
          { title: 'Backend', value: a.backendId, short: true },
          { title: 'Since', value: iso(a.startsAt), short: true },
          ...(a.endsAt === null ? [] : [{ title: 'Resolved', value: iso(a.endsAt), short: true }]),
        ],
      },
    ],
  };
}

/** One element of Alertmanager API v2's POST /api/v2/alerts body. */
export function alertmanagerAlert(a: Alert, now: number, resendIntervalSeconds: number) {
  return {
    labels: {
      alertname: ALERT_NAME,
      app: a.app,
      backend: a.backendId,
      failure_type: a.failureType,
      severity: a.severity,
    },
    annotations: {
      summary: `${a.failureType} on ${a.backendId}`,
      description: a.message,
      escalated: String(a.escalated),
    },
    startsAt: iso(a.startsAt),
    endsAt: iso(a.endsAt ?? now + ALERTMANAGER_ENDS_AFTER_RESENDS * resendIntervalSeconds * 1000),
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
