import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAlerting, type Alerting, type AlertPersistence } from '../../src/alerting/alerting.js';
import type { DeliveryRecord } from '../../src/alerting/dispatcher.js';
import { createSystemClock } from '../../src/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import { startAlertmanager, type AlertmanagerInstance } from '../helpers/alertmanager.js';
import { alertConfig, alertReceiver as receiver, alertRoute as route, backendView as view, failureEvent as failure } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait.js';

const silent = createLogger({ level: 'silent' });

function memoryPersistence() {
  const records = new Map<string, string>();
  const deliveries: DeliveryRecord[] = [];
  const persistence: AlertPersistence = {
    saveAlert: (id, json) => (json === null ? records.delete(id) : records.set(id, json)),
    alertDelivery: (d) => deliveries.push(d),
  };
  return { persistence, records, deliveries, restored: () => [...records.values()].map((j) => JSON.parse(j) as unknown) };
}

/** A loopback webhook receiver on `port` that keeps every request it gets. */
async function startWebhook(port: number, answer: (req: IncomingMessage) => { status: number; location?: string } = () => ({ status: 200 })) {
  const received: { path: string; body: unknown }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: body ? JSON.parse(body) : null });
      const a = answer(req);
      res.writeHead(a.status, a.location ? { location: a.location } : {}).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const backendId = 'web/127.0.0.1:18001';
const eject = () => failure({ backendId, timestamp: Date.now() });

describe('alerting against a real Alertmanager and webhook receivers on loopback', () => {
  let am: AlertmanagerInstance;
  const cleanup: (() => unknown)[] = [];

  beforeAll(async () => {
    am = await startAlertmanager();
  });
  afterAll(async () => {
    await am?.stop();
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0)) await fn();
  });

  function start(cfg: ReturnType<typeof alertConfig>, store = memoryPersistence()): Alerting {
    const alerting = createAlerting({ config: cfg, clock: createSystemClock(), logger: silent, persistence: store.persistence });
    cleanup.push(() => alerting.stop());
    return alerting;
  }

  it('makes an ejection an active alert in Alertmanager and resolves it on recovery', async () => {
    const alerting = start(alertConfig({ receivers: [receiver('am', { type: 'alertmanager', url: am.url })], routes: [route(['am'])] }));
    alerting.onFailure(eject(), true);
    const active = await waitFor(async () => (await am.activeAlerts()).find((a) => a.labels.backend === backendId), {
      what: 'the alert to be active in Alertmanager',
    });
    expect(active.labels).toEqual({
      alertname: 'OrchestryBackendFailure',
      app: 'web',
      backend: backendId,
      failure_type: 'health_check_failed',
      severity: 'high',
    });
    expect(active.status.state).toBe('active');
    expect(Date.parse(active.endsAt)).toBeGreaterThan(Date.now());

    alerting.onBackend(view({ backendId, since: Date.now() + 1 }));
    await waitFor(async () => !(await am.activeAlerts()).some((a) => a.labels.backend === backendId), {
      what: 'the alert to leave the active list',
    });
    expect(alerting.status()).toMatchObject({ firing: 0, queued: 0, sent: 2, failedDeliveries: 0 });
  });

  it('delivers the kept notification to a webhook receiver that was down and comes back', async () => {
    const port = await freePort();
    const store = memoryPersistence();
    const alerting = start(
      alertConfig({ receivers: [receiver('hook', { url: `http://127.0.0.1:${port}/hook` })], routes: [route(['hook'])], retry_min_seconds: 0.1, retry_max_seconds: 0.4 }),
      store,
    );
    alerting.onFailure(eject(), true);
    await waitFor(() => alerting.status().failedDeliveries >= 3, { what: 'failed deliveries while the receiver is down' });
    expect(store.records.size).toBe(1);

    const hook = await startWebhook(port);
    cleanup.push(hook.close);
    await waitFor(() => hook.received.length > 0, { what: 'the notification at the receiver' });
    expect(hook.received[0]).toMatchObject({ path: '/hook', body: { status: 'firing', alert: { backend: backendId } } });
    // The receiver has the request before the sender has its answer: the delivery is recorded then.
    await waitFor(() => store.deliveries.at(-1)?.ok === true, { what: 'the delivery recorded as sent' });
    const failed = store.deliveries.filter((d) => !d.ok);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0]!.error).toMatch(/ECONNREFUSED/);
    expect(store.deliveries.at(-1)).toMatchObject({ receiver: 'hook', ok: true });
    expect(alerting.status().byReceiver.hook).toMatchObject({ queued: 0, sent: 1 });
  });

  it('does not follow a redirect from a receiver', async () => {
    const port = await freePort();
    const hook = await startWebhook(port, (req) => (req.url === '/hook' ? { status: 307, location: '/elsewhere' } : { status: 200 }));
    cleanup.push(hook.close);
    const alerting = start(alertConfig({ receivers: [receiver('hook', { url: `http://127.0.0.1:${port}/hook` })], routes: [route(['hook'])], retry_min_seconds: 60, retry_max_seconds: 60 }));
    alerting.onFailure(eject(), true);
    await waitFor(() => alerting.status().failedDeliveries === 1, { what: 'the redirect to count as a failure' });
    expect(hook.received.map((r) => r.path)).toEqual(['/hook']);
    expect(alerting.status().byReceiver.hook!.lastError).toBe('HTTP 307');
  });

  it('delivers what a stopped instance left undelivered after a restart with the same persistence', async () => {
    const port = await freePort();
    const cfg = alertConfig({
      receivers: [receiver('hook', { url: `http://127.0.0.1:${port}/hook` }), receiver('am', { type: 'alertmanager', url: am.url })],
      routes: [route(['hook', 'am'])],
      retry_min_seconds: 0.1,
      retry_max_seconds: 0.4,
    });
    const store = memoryPersistence();
    const first = start(cfg, store);
    first.onFailure(failure({ backendId: 'web/127.0.0.1:18002', timestamp: Date.now() }), true);
    await waitFor(() => first.status().failedDeliveries >= 1 && first.status().sent === 1, { what: 'one delivery failed, one done' });
    first.stop();
    const id = first.list()[0]!.id;
    expect(JSON.parse(store.records.get(id)!)).toMatchObject({ alert: { id }, deliveries: [{ receiver: 'hook' }] });

    const hook = await startWebhook(port);
    cleanup.push(hook.close);
    const second = start(cfg, store);
    second.restore(store.restored());
    await waitFor(() => hook.received.length > 0, { what: 'the restored notification at the receiver' });
    expect(hook.received[0]!.body).toMatchObject({ status: 'firing', alert: { id, backend: 'web/127.0.0.1:18002' } });
    // The restored alert is still firing in the new instance, and resolves through both receivers.
    second.onRemoved(['web/127.0.0.1:18002']);
    await waitFor(() => hook.received.length === 2 && store.records.size === 0, { what: 'the resolution delivered and the record deleted' });
    expect(hook.received[1]!.body).toMatchObject({ status: 'resolved', alert: { id } });
    await waitFor(async () => !(await am.activeAlerts()).some((a) => a.labels.backend === 'web/127.0.0.1:18002'), {
      what: 'the alert to leave Alertmanager',
    });
  });
});
