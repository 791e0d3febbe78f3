// Times a /metrics scrape at N backends (issue 12: < 1 s at 10,000), through the real admin
// server and the daemon's metrics over the built dist/. Every backend has a view and a probe
// result, so every per-backend series exists. Usage: node scripts/measure-metrics.mjs [backends] [apps]
import { createAdminServer } from '../dist/observability/admin-server.js';
import { createLogger } from '../dist/observability/logger.js';
import { createMetrics } from '../dist/observability/metrics.js';

const backends = Number(process.argv[2] ?? 10_000);
const apps = Number(process.argv[3] ?? 20);
const views = [];
const metrics = createMetrics();
for (let i = 0; i < backends; i++) {
  const app = `app-${i % apps}`;
  const port = 10_000 + i;
  const backendId = `${app}/127.0.0.1:${port}`;
  views.push({
    backendId, app, host: '127.0.0.1', port, weight: 1, backup: false, health: i % 7 ? 'healthy' : 'unhealthy', breaker: i % 7 ? 'closed' : 'open',
    ejected: i % 7 === 0, draining: false, container: null, consecutiveFailures: 0, consecutiveSuccesses: 1, lastProbe: null, lastFailure: null, since: 0,
  });
  const now = Date.now();
  metrics.onProbe({ backendId, app, checkType: 'http', healthy: true, responseTimeMs: 1 + (i % 50), statusCode: 200, body: null, errorClass: null, error: null, startedAt: now, finishedAt: now, attempts: 1 }, 'http');
}
metrics.observeBackends(() => views);
const admin = createAdminServer({
  listen: '127.0.0.1:0',
  logger: createLogger({ level: 'silent' }),
  metrics,
  getApps: () => ({ apps: [] }),
  getApp: () => undefined,
  readiness: () => ({ ready: true, reasons: [] }),
});
const { port } = await admin.start();
const times = [];
let bytes = 0;
for (let i = 0; i < 7; i++) {
  const t0 = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  bytes = (await res.arrayBuffer()).byteLength;
  times.push(performance.now() - t0);
}
await admin.close();
times.sort((a, b) => a - b);
console.log(`${backends} backends in ${apps} apps: /metrics ${(bytes / 1e6).toFixed(1)} MB, scrape ms min ${times[0].toFixed(0)} median ${times[3].toFixed(0)} max ${times[6].toFixed(0)} (7 scrapes)`);
