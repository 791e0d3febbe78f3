/**
 * A real Prometheus (Debian's /usr/bin/prometheus) scrapes a running sidecar (the built CLI as
 * a child process), and the sidecar's series are read back through Prometheus's HTTP API: what
 * the dashboard and alerts will see.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { freePort } from '../helpers/free-port.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

let dir: string;
let healthy: TestBackend;
let failing: TestBackend;
let sidecar: SidecarProcess;
let prometheus: ChildProcess;
let prometheusUrl: string;
let prometheusLog = '';

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query through Prometheus's HTTP API; the result vector. */
async function query(promql: string): Promise<Sample[]> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; error?: string; data: { resultType: string; result: Sample[] } };
  if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
  return body.data.result;
}

/** `metric` label set -> value, keyed by the `backend` label (or the series' labels). */
const byBackend = (samples: Sample[]) =>
  Object.fromEntries(samples.map((s) => [s.metric.backend ?? JSON.stringify(s.metric), Number(s.value[1])]));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-prometheus-'));
  healthy = await startBackend('web-1');
  failing = await startBackend('web-2');
  failing.setMode('fail');
  const adminPort = await freePort();
  // No nginx here: `true` stands in for `nginx -s reload`, so applies succeed and /readyz is 200.
  await writeFile(
    join(dir, 'sidecar.yaml'),
    `instance: prom-node-1
apps:
  web:
    backends: ["${healthy.address}", "${failing.address}"]
    health: { initial_delay_seconds: 0, period_seconds: 1.5, timeout_seconds: 1, failure_threshold: 1 }
nginx:
  binary: /bin/true
  validate: false
  output_path: ${join(dir, 'upstreams.conf')}
admin:
  listen: 127.0.0.1:${adminPort}
logging:
  level: warn
`,
  );
  sidecar = await startSidecarProcess(join(dir, 'sidecar.yaml'), `http://127.0.0.1:${adminPort}`);
  // Wait for the sidecar's verdicts first, so the first scrape already carries them.
  await waitFor(async () => (await sidecar.metric('orchestry_ejected_backends', { app: 'web' })) === 1, {
    what: 'the failing backend to be ejected',
  });

  const promPort = await freePort();
  prometheusUrl = `http://127.0.0.1:${promPort}`;
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: orchestry-sidecar
    static_configs:
      - targets: ["127.0.0.1:${adminPort}"]
`,
  );
  prometheus = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stdout!.on('data', (d: Buffer) => (prometheusLog += d.toString()));
  prometheus.stderr!.on('data', (d: Buffer) => (prometheusLog += d.toString()));
  prometheus.once('error', (err) => (prometheusLog += `\nspawn failed: ${err.message} (run scripts/setup.sh)`));
  await waitFor(
    async () => {
      if (prometheus.exitCode !== null || prometheus.pid === undefined) throw new Error(`prometheus exited:\n${prometheusLog.slice(-2000)}`);
      return (await fetch(`${prometheusUrl}/-/ready`)).ok;
    },
    { what: 'Prometheus to be ready', timeoutMs: 30_000, intervalMs: 200 },
  );
});

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null && prometheus.pid !== undefined) {
    const exited = new Promise((r) => prometheus.once('exit', r));
    process.kill(prometheus.pid, 'SIGTERM');
    await exited;
  }
  await sidecar?.stop();
  await healthy?.close();
  await failing?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Prometheus scraping the sidecar', () => {
  it('scrapes /metrics without errors', async () => {
    const target = await waitFor(
      async () => {
        const res = await fetch(`${prometheusUrl}/api/v1/targets`);
        const body = (await res.json()) as { data: { activeTargets: Array<{ health: string; lastError: string }> } };
        const t = body.data.activeTargets[0];
        return t && t.health !== 'unknown' ? t : null;
      },
      { what: 'the first scrape', timeoutMs: 15_000 },
    );
    expect(target.lastError).toBe('');
    expect(target.health).toBe('up');
  });

  it("keeps the sidecar's identity label as scraped, beside the instance label Prometheus sets", async () => {
    const info = await waitFor(async () => (await query('orchestry_build_info'))[0], { what: 'orchestry_build_info in Prometheus', timeoutMs: 15_000 });
    expect(info.metric.sidecar).toBe('prom-node-1');
    expect(info.metric.instance).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(info.metric.exported_instance).toBeUndefined();
    // Every series scraped carries it (up and scrape_* are Prometheus's own).
    expect(await query('count({job="orchestry-sidecar", sidecar!="prom-node-1", __name__!~"up|scrape_.*"})')).toEqual([]);
    expect(Number((await query('count({job="orchestry-sidecar", sidecar="prom-node-1"})'))[0]?.value[1])).toBeGreaterThan(50);
  });

  it('has orchestry_backend_up for every backend: 1 routed, 0 ejected', async () => {
    const up = await waitFor(
      async () => {
        const samples = await query('orchestry_backend_up{job="orchestry-sidecar"}');
        return samples.length === 2 ? samples : null;
      },
      { what: 'two orchestry_backend_up series in Prometheus', timeoutMs: 15_000 },
    );
    expect(up.every((s) => s.metric.app === 'web')).toBe(true);
    expect(byBackend(up)).toEqual({ [healthy.address]: 1, [failing.address]: 0 });
  });

  it('has the per-app gauges, one-hot breaker state and probe latency the dashboard queries', async () => {
    const backends = await query('orchestry_backends');
    expect(backends.map((s) => [s.metric.app, Number(s.value[1])])).toEqual([['web', 2]]);
    const ejected = await query('orchestry_ejected_backends');
    expect(ejected.map((s) => [s.metric.app, Number(s.value[1])])).toEqual([['web', 1]]);
    // Exactly one state per backend is 1.
    expect(byBackend(await query('sum by (backend) (orchestry_breaker_state)'))).toEqual({
      [healthy.address]: 1,
      [failing.address]: 1,
    });
    const p95 = await waitFor(
      async () => {
        const v = Number((await query('histogram_quantile(0.95, sum by (le) (rate(orchestry_probe_duration_seconds_bucket[1m])))'))[0]?.value[1]);
        return Number.isFinite(v) ? v : null;
      },
      { what: 'a probe latency p95', timeoutMs: 15_000 },
    );
    expect(p95).toBeGreaterThan(0);
  });
});
