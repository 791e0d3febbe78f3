import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createAlerting, type AlertPersistence } from '../../src/alerting/alerting.js';
import { retryDelayMs, type DeliveryRecord, type FetchLike } from '../../src/alerting/dispatcher.js';
import { createManualClock, type ManualClock } from '../../src/clock.js';
import type { AlertingConfig } from '../../src/config/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { alertConfig, alertReceiver as receiver, alertRoute as route, backendView as view, failureEvent as failure } from '../helpers/fixtures.js';

interface Call {
  url: string;
  at: number;
  headers: Record<string, string>;
  redirect: string;
  body: unknown;
}

/** A fetch that records each call and answers with `answer(url)`: a status, or an Error to throw, or never. */
function fakeFetch(clock: ManualClock) {
  const calls: Call[] = [];
  let answer: (url: string) => number | Error | 'never' = () => 200;
  const fetchImpl: FetchLike = async (url, init) => {
    calls.push({ url, at: clock.now(), headers: init.headers, redirect: init.redirect, body: JSON.parse(init.body) });
    const a = answer(url);
    if (a === 'never') return new Promise(() => {});
    if (a instanceof Error) throw a;
    return { status: a, text: async () => (a >= 300 ? 'nope' : '') };
  };
  return { calls, fetchImpl, answer: (fn: typeof answer) => (answer = fn) };
}

function memoryPersistence() {
  const records = new Map<string, string>();
  const saves: [string, string | null][] = [];
  const deliveries: DeliveryRecord[] = [];
  const persistence: AlertPersistence = {
    saveAlert(id, json) {
      saves.push([id, json]);
      if (json === null) records.delete(id);
      else records.set(id, json);
    },
    alertDelivery: (d) => deliveries.push(d),
  };
  /** What the store would hand back at start: the parsed records. */
  const restored = () => [...records.values()].map((j) => JSON.parse(j) as unknown);
  return { persistence, records, saves, deliveries, restored };
}

/** Lets pending promise callbacks (fake fetch answers) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** Advances the clock in small steps, letting answers arrive between them. */
async function advance(clock: ManualClock, ms: number, stepMs = 250) {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(Math.min(stepMs, ms - t));
    await settle();
  }
}

function setup(cfg: AlertingConfig = alertConfig(), opts: { start?: number; logLines?: string[] } = {}) {
  const clock = createManualClock(opts.start ?? 1_000_000);
  const http = fakeFetch(clock);
  const store = memoryPersistence();
  const destination = new Writable({
    write(chunk, _enc, cb) {
      opts.logLines?.push(String(chunk));
      cb();
    },
  });
  const logger = createLogger({ level: 'warn', destination });
  const alerting = createAlerting({ config: cfg, clock, logger, persistence: store.persistence, fetchImpl: http.fetchImpl });
  return { clock, http, store, alerting, logger };
}

const eject = (over: Parameters<typeof failure>[0] = {}) => failure({ timestamp: 1_000_000, ...over });

describe('alert delivery', () => {
  it('POSTs the alert as JSON to a webhook with its headers and no redirects followed', async () => {
    const cfg = alertConfig({ receivers: [receiver('ops', { url: 'http://127.0.0.1:9/hook', headers: { authorization: 'Bearer t' } })] });
    const { http, alerting } = setup(cfg);
    alerting.onFailure(eject(), true);
    await settle();
    expect(http.calls).toHaveLength(1);
    const call = http.calls[0]!;
    expect(call.url).toBe('http://127.0.0.1:9/hook');
    expect(call.redirect).toBe('manual');
    expect(call.headers).toEqual({ 'content-type': 'application/json', authorization: 'Bearer t' });
    expect(call.body).toMatchObject({
      status: 'firing',
      escalated: false,
      alert: { app: 'web', backend: 'web/127.0.0.1:8001', failure_type: 'health_check_failed', severity: 'high', ends_at: null },
    });
    expect(alerting.status()).toMatchObject({ firing: 1, queued: 0, sent: 1, failedDeliveries: 0, byReceiver: { ops: { sent: 1, failed: 0 } } });
  });

  it('sends one notification for ten failures of the same backend and type', async () => {
    const { http, alerting } = setup();
    for (let i = 0; i < 10; i++) alerting.onFailure(eject(), true);
    await settle();
    expect(http.calls).toHaveLength(1);
    expect(alerting.list()).toHaveLength(1);
  });

  it('sends Slack a text and a coloured attachment', async () => {
    const { http, alerting } = setup(alertConfig({ receivers: [receiver('ops', { type: 'slack' })] }));
    alerting.onFailure(eject(), true);
    alerting.onRemoved(['web/127.0.0.1:8001']);
    await settle();
    expect(http.calls.map((c) => c.body)).toMatchObject([
      { text: '[FIRING] web: health_check_failed on web/127.0.0.1:8001 (high)', attachments: [{ color: 'danger', text: 'HTTP 500 from /health' }] },
      { text: '[RESOLVED] web: health_check_failed on web/127.0.0.1:8001 (high)', attachments: [{ color: 'good' }] },
    ]);
  });

  it('posts to Alertmanager with endsAt four resend intervals ahead, re-sends while firing and ends it on resolve', async () => {
    const cfg = alertConfig({ receivers: [receiver('am', { type: 'alertmanager', url: 'http://127.0.0.1:9093/' })], routes: [route(['am'])] });
    const { clock, http, alerting } = setup(cfg);
    alerting.onFailure(eject(), true);
    await settle();
    expect(http.calls[0]!.url).toBe('http://127.0.0.1:9093/api/v2/alerts');
    expect(http.calls[0]!.body).toEqual([
      {
        labels: { alertname: 'OrchestryBackendFailure', app: 'web', backend: 'web/127.0.0.1:8001', failure_type: 'health_check_failed', severity: 'high' },
        annotations: { summary: 'health_check_failed on web/127.0.0.1:8001', description: 'HTTP 500 from /health', escalated: 'false' },
        startsAt: new Date(1_000_000).toISOString(),
        endsAt: new Date(1_000_000 + 240_000).toISOString(),
      },
    ]);
    await advance(clock, 120_000);
    expect(http.calls.map((c) => c.at - 1_000_000)).toEqual([0, 60_000, 120_000]);
    expect((http.calls[2]!.body as { endsAt: string }[])[0]!.endsAt).toBe(new Date(1_120_000 + 240_000).toISOString());
    alerting.onRemoved(['web/127.0.0.1:8001']);
    await settle();
    expect((http.calls[3]!.body as { endsAt: string }[])[0]!.endsAt).toBe(new Date(1_120_000).toISOString());
    await advance(clock, 120_000);
    expect(http.calls).toHaveLength(4);
  });

  it('routes each alert to the receivers of every matching route, once each', async () => {
    const cfg = alertConfig({
      receivers: [receiver('ops'), receiver('pager'), receiver('api')],
      routes: [route(['ops']), route(['pager', 'ops'], { min_severity: 'critical' }), route(['api'], { apps: ['api'] })],
    });
    const { http, alerting } = setup(cfg);
    alerting.onFailure(eject({ severity: 'critical', critical: true, failureType: 'container_stopped' }), false);
    await settle();
    expect(http.calls.map((c) => c.url.split('/').pop())).toEqual(['ops', 'pager']);
  });

  it('sends the escalation once, after escalation.after_seconds, and the resolution to the escalation receiver too', async () => {
    const cfg = alertConfig({ receivers: [receiver('ops'), receiver('pager')], escalation: { after_seconds: 300, receivers: ['pager'] } });
    const { clock, http, alerting } = setup(cfg);
    alerting.onFailure(eject(), true);
    await advance(clock, 299_000, 1000);
    expect(http.calls.map((c) => c.url.split('/').pop())).toEqual(['ops']);
    await advance(clock, 1000);
    await advance(clock, 600_000, 10_000);
    expect(http.calls.map((c) => c.url.split('/').pop())).toEqual(['ops', 'pager']);
    expect(http.calls[1]!.body).toMatchObject({ status: 'firing', escalated: true });
    expect(http.calls[1]!.at - 1_000_000).toBe(300_000);
    alerting.onBackend(view({ since: clock.now() }));
    await settle();
    expect(http.calls.slice(2).map((c) => [c.url.split('/').pop(), (c.body as { status: string }).status])).toEqual([
      ['ops', 'resolved'],
      ['pager', 'resolved'],
    ]);
  });

  it('holds notifications over max_per_minute in the receiver queue and sends them in order when allowed', async () => {
    const { clock, http, alerting } = setup(alertConfig({ receivers: [receiver('ops', { max_per_minute: 2 })] }));
    for (let i = 1; i <= 5; i++) alerting.onFailure(eject({ backendId: `web/127.0.0.1:800${i}` }), true);
    await settle();
    expect(http.calls).toHaveLength(2);
    expect(alerting.status().queued).toBe(3);
    await advance(clock, 120_000, 1000);
    expect(http.calls.map((c) => [c.at - 1_000_000, (c.body as { alert: { backend: string } }).alert.backend])).toEqual([
      [0, 'web/127.0.0.1:8001'],
      [0, 'web/127.0.0.1:8002'],
      [60_000, 'web/127.0.0.1:8003'],
      [60_000, 'web/127.0.0.1:8004'],
      [120_000, 'web/127.0.0.1:8005'],
    ]);
    expect(alerting.status().queued).toBe(0);
  });

  it('retries a failed delivery after 1, 2, 4 ... seconds, capped at retry_max_seconds', async () => {
    const { clock, http, alerting, store } = setup(alertConfig({ retry_min_seconds: 1, retry_max_seconds: 8 }));
    http.answer(() => new Error('connect ECONNREFUSED'));
    alerting.onFailure(eject(), true);
    await settle();
    await advance(clock, 40_000, 500);
    const gaps = http.calls.slice(1).map((c, i) => c.at - http.calls[i]!.at);
    expect(gaps.slice(0, 6)).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(store.deliveries[0]).toMatchObject({ receiver: 'ops', ok: false, error: 'connect ECONNREFUSED' });
    expect(alerting.status().byReceiver.ops).toMatchObject({ queued: 1, sent: 0, failed: http.calls.length, lastError: 'connect ECONNREFUSED' });
    expect(retryDelayMs(1, { retry_min_seconds: 2, retry_max_seconds: 30 })).toBe(2000);
    expect(retryDelayMs(5, { retry_min_seconds: 2, retry_max_seconds: 30 })).toBe(30_000);
  });

  it('counts a non-2xx answer, a redirect included, as a failed delivery', async () => {
    const { clock, http, alerting, store } = setup();
    http.answer(() => 302);
    alerting.onFailure(eject(), true);
    await settle();
    expect(store.deliveries).toEqual([{ alertId: alerting.list()[0]!.id, receiver: 'ops', ok: false, error: 'HTTP 302: nope', at: 1_000_000 }]);
    http.answer(() => 204);
    await advance(clock, 1000);
    expect(store.deliveries.map((d) => d.ok)).toEqual([false, true]);
  });

  it('does not let a receiver that never answers delay another', async () => {
    const cfg = alertConfig({ receivers: [receiver('slow'), receiver('fast')], routes: [route(['slow', 'fast'])] });
    const { http, alerting } = setup(cfg);
    http.answer((url) => (url.endsWith('/slow') ? 'never' : 200));
    alerting.onFailure(eject(), true);
    alerting.onFailure(eject({ backendId: 'web/127.0.0.1:8002' }), true);
    await settle();
    expect(alerting.status().byReceiver).toMatchObject({ slow: { sent: 0, queued: 2 }, fast: { sent: 2, queued: 0 } });
  });

  it('keeps a record while notifications are undelivered and deletes it once resolved and delivered', async () => {
    const { clock, http, alerting, store } = setup();
    http.answer(() => new Error('down'));
    alerting.onFailure(eject(), true);
    await settle();
    const id = alerting.list()[0]!.id;
    const record = JSON.parse(store.records.get(id)!);
    expect(record).toMatchObject({ v: 1, id, alert: { id, status: 'firing' }, deliveries: [{ receiver: 'ops', escalated: false, attempts: 0 }] });
    alerting.onRemoved(['web/127.0.0.1:8001']);
    expect(JSON.parse(store.records.get(id)!)).toMatchObject({
      alert: null,
      deliveries: [{ alert: { status: 'firing' } }, { alert: { status: 'resolved' } }],
    });
    http.answer(() => 200);
    await advance(clock, 2000);
    expect(http.calls.slice(-2).map((c) => (c.body as { status: string }).status)).toEqual(['firing', 'resolved']);
    expect(store.records.has(id)).toBe(false);
    expect(store.saves.at(-1)).toEqual([id, null]);
  });

  it('restores undelivered notifications and firing alerts in a new instance', async () => {
    const first = setup();
    first.http.answer(() => new Error('down'));
    first.alerting.onFailure(eject(), true);
    first.alerting.onFailure(eject({ backendId: 'web/127.0.0.1:8002' }), true);
    first.alerting.onRemoved(['web/127.0.0.1:8002']);
    await settle();
    first.alerting.stop();

    const second = setup();
    second.store.records.clear();
    for (const [id, json] of first.store.records) second.store.records.set(id, json);
    second.alerting.restore(first.store.restored());
    await settle();
    expect(second.http.calls.map((c) => [(c.body as { alert: { backend: string } }).alert.backend, (c.body as { status: string }).status])).toEqual([
      ['web/127.0.0.1:8001', 'firing'],
      ['web/127.0.0.1:8002', 'firing'],
      ['web/127.0.0.1:8002', 'resolved'],
    ]);
    // The firing alert is back: no second notice for it, and it resolves as usual.
    expect(second.alerting.list().map((a) => a.backendId)).toEqual(['web/127.0.0.1:8001']);
    second.alerting.onFailure(eject(), true);
    await settle();
    expect(second.http.calls).toHaveLength(3);
    second.clock.advance(1000);
    second.alerting.onBackend(view({ since: second.clock.now() }));
    await settle();
    expect((second.http.calls[3]!.body as { status: string }).status).toBe('resolved');
    expect(second.store.records.size).toBe(0);
  });

  it('drops restored records that are not valid, with a log line, and deletes those that name an id', async () => {
    const logLines: string[] = [];
    const first = setup();
    first.http.answer(() => new Error('down'));
    first.alerting.onFailure(eject(), true);
    await settle();
    const good = first.store.restored()[0] as { id: string };
    const { alerting, http, store } = setup(alertConfig(), { logLines });
    alerting.restore([
      null,
      'text',
      { v: 2, id: 'future' },
      { ...good, id: 'bad-1', alert: { ...(good as unknown as { alert: object }).alert, severity: 'urgent' } },
      { v: 1, id: 'bad-2', alert: null, deliveries: [{ receiver: 'ops', escalated: false, attempts: -1, alert: {} }] },
      good,
    ]);
    await settle();
    expect(http.calls).toHaveLength(1);
    expect(alerting.list().map((a) => a.id)).toEqual([good.id]);
    const dropped = logLines.map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg.startsWith('alert record dropped'));
    expect(dropped.map((l) => l.msg)).toEqual([
      'alert record dropped: not an object',
      'alert record dropped: not an object',
      'alert record dropped: unknown version 2',
      'alert record dropped: alert.severity is not a severity (got "urgent")',
      'alert record dropped: deliveries[0].alert.id must be a string',
    ]);
    expect(store.saves.filter(([, json]) => json === null).map(([id]) => id)).toEqual(['future', 'bad-1', 'bad-2']);
  });

  it('keeps firing alerts and queued notifications across a config reload', async () => {
    const { clock, http, alerting } = setup();
    http.answer(() => new Error('down'));
    alerting.onFailure(eject(), true);
    await settle();
    alerting.updateConfig(alertConfig({ receivers: [receiver('ops', { url: 'http://127.0.0.1:9/new' })], retry_min_seconds: 5 }));
    http.answer(() => 200);
    await advance(clock, 5000);
    expect(http.calls.at(-1)!.url).toBe('http://127.0.0.1:9/new');
    expect(alerting.status()).toMatchObject({ firing: 1, queued: 0, sent: 1 });
    alerting.onFailure(eject(), true);
    await settle();
    expect(alerting.status().sent).toBe(1);
  });

  it('drops the queue of a receiver removed from the configuration', async () => {
    const cfg = alertConfig({ receivers: [receiver('ops'), receiver('old')], routes: [route(['ops', 'old'])] });
    const { http, alerting, store } = setup(cfg);
    http.answer((url) => (url.endsWith('/old') ? new Error('down') : 200));
    alerting.onFailure(eject(), true);
    await settle();
    expect(alerting.status().byReceiver.old!.queued).toBe(1);
    alerting.updateConfig(alertConfig());
    expect(Object.keys(alerting.status().byReceiver)).toEqual(['ops']);
    expect(JSON.parse(store.records.get(alerting.list()[0]!.id)!).deliveries).toEqual([]);
  });

  it('does nothing when alerting is disabled', async () => {
    const { clock, http, alerting, store } = setup(alertConfig({ enabled: false }));
    alerting.onFailure(eject({ critical: true }), true);
    alerting.restore([{ v: 1 }]);
    await advance(clock, 1_000_000, 100_000);
    expect(http.calls).toEqual([]);
    expect(store.saves).toEqual([]);
    expect(alerting.status()).toMatchObject({ firing: 0, queued: 0 });
  });
});
