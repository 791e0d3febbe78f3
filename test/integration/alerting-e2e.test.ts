/**
 * Alerting end to end: the built CLI as a child process probing real loopback backends, a real
 * Alertmanager (Debian's prometheus-alertmanager) and a loopback webhook as the escalation
 * receiver. A backend that starts failing its health check is ejected: Alertmanager shows the
 * alert as active; it is escalated to the webhook after escalation.after_seconds; once the
 * backend heals and is routed again, the alert is resolved in both.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAlertmanager, type AlertmanagerInstance } from '../helpers/alertmanager.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { freePort } from '../helpers/free-port.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

interface WebhookBody {
  status: 'firing' | 'resolved';
  escalated: boolean;
  alert: { backend: string; failure_type: string };
}

let dir: string;
let am: AlertmanagerInstance;
let sidecar: SidecarProcess;
let backends: TestBackend[];
let webhook: Server;
const escalations: WebhookBody[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-alerting-e2e-'));
  am = await startAlertmanager();
  backends = [await startBackend('a'), await startBackend('b')];
  webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      escalations.push(JSON.parse(body) as WebhookBody);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
  const hookPort = (webhook.address() as { port: number }).port;
  const adminPort = await freePort();
  const config = join(dir, 'sidecar.yaml');
  await writeFile(
    config,
    `apps:
  web:
    backends: [${backends.map((b) => `"127.0.0.1:${b.port}"`).join(', ')}]
    health: { path: /health, period_seconds: 1.5, timeout_seconds: 1, failure_threshold: 2, initial_delay_seconds: 0 }
breaker: { failure_threshold: 2, recovery_timeout_seconds: 2 }
alerting:
  enabled: true
  receivers:
    am: { type: alertmanager, url: "${am.url}" }
    pager: { type: webhook, url: "http://127.0.0.1:${hookPort}/page" }
  routes:
    - receivers: [am]
  escalation: { after_seconds: 2, receivers: [pager] }
  resend_interval_seconds: 5
nginx:
  output_path: ${join(dir, 'upstreams.conf')}
  validate: false
  pid_path: ${join(dir, 'no-nginx.pid')}
admin:
  listen: 127.0.0.1:${adminPort}
`,
  );
  sidecar = await startSidecarProcess(config, `http://127.0.0.1:${adminPort}`);
}, 60_000);

afterAll(async () => {
  await sidecar?.stop();
  await am?.stop();
  await Promise.all((backends ?? []).map((b) => b.close()));
  await new Promise((r) => (webhook ? webhook.close(r) : r(undefined)));
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe('alerts from a running sidecar to a real Alertmanager', () => {
  it('an ejection is an active alert, escalated after its time, and resolved once the backend is routed again', async () => {
    const b = backends[1]!;
    const id = `web/127.0.0.1:${b.port}`;
    b.setMode('fail');
    const active = await waitFor(async () => (await am.activeAlerts()).find((a) => a.labels.backend === id), {
      what: 'the alert active in Alertmanager',
      timeoutMs: 20_000,
    });
    expect(active.labels).toMatchObject({ alertname: 'OrchestryBackendFailure', app: 'web', failure_type: 'health_check_failed', severity: 'low' });
    expect(active.status.state).toBe('active');
    const { body } = await sidecar.api<{ alerts: Array<{ backend: string; failure_type: string }> }>('/api/v1/alerts');
    expect(body.alerts).toEqual([expect.objectContaining({ backend: id, failure_type: 'health_check_failed' })]);

    const escalated = await waitFor(() => escalations.find((e) => e.status === 'firing' && e.escalated), { what: 'the escalation' });
    expect(escalated.alert).toMatchObject({ backend: id, failure_type: 'health_check_failed' });

    b.setMode('ok');
    await waitFor(async () => !(await am.activeAlerts()).some((a) => a.labels.backend === id), {
      what: 'the alert resolved in Alertmanager',
      timeoutMs: 20_000,
    });
    await waitFor(() => escalations.some((e) => e.status === 'resolved'), { what: 'the resolution sent to the escalation receiver' });
    expect((await sidecar.api<{ alerts: unknown[] }>('/api/v1/alerts')).body.alerts).toEqual([]);
    expect(await sidecar.metric('orchestry_alert_notifications_total', { receiver: 'am', result: 'success' })).toBeGreaterThanOrEqual(2);
    expect(await sidecar.metric('orchestry_alerts_firing')).toBe(0);
  }, 60_000);
});
