/**
 * The failure detectors on real signals: Docker stats of real containers (cgroup limits, a heap
 * that grows until the kernel kills it, a spinning CPU, a process blocked on a lock), the real
 * HTTP prober against hung and flaky servers, a real TCP connect. Short windows keep it quick:
 * samples every second, a 20 s memory-leak window, a 60 s horizon.
 */
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_FAILURE_DETECTION } from '../../src/config/schema.js';
import type { FailureDetectionConfig } from '../../src/config/types.js';
import {
  detectContainerFailures,
  parseDockerEvent,
  type ContainerEvent,
  type ContainerFailure,
  type DetectorState,
} from '../../src/discovery/docker-events.js';
import { checkTcpAccept, createDockerStatsSampler, type DockerStatsSampler, type StatsSample } from '../../src/discovery/docker-stats.js';
import { stepFailures, type FailureHistory } from '../../src/health/classify.js';
import { detectDeadlock, initialResourceState, stepResources, type ResourceState } from '../../src/health/resource-detector.js';
import type { FailureEvent } from '../../src/health/types.js';
import type { Backend } from '../../src/model.js';
import { createHttpProber } from '../../src/probe/http.js';
import { ensureTestImages } from '../helpers/docker-images.js';
import { controlApp, docker, removeTestContainers, requireDocker, testLabels, waitForContainer } from '../helpers/docker.js';
import { freePort } from '../helpers/free-port.js';
import { containerRefOf, probeBackend } from '../helpers/fixtures.js';
import { listenHttp } from '../helpers/probe-servers.js';
import { waitFor } from '../helpers/wait.js';

const SUITE = 'failure-detection';
const MiB = 1024 * 1024;
const detection: FailureDetectionConfig = {
  ...DEFAULT_FAILURE_DETECTION,
  max_error_rate_percent: 5,
  min_error_rate_samples: 20,
  failure_rate_window_minutes: 10,
  max_cpu_percent: 90,
  max_memory_percent: 90,
  stats_interval_seconds: 1,
  resource_samples: 3,
  memory_leak_window_minutes: 20 / 60,
  memory_leak_horizon_minutes: 1,
  deadlock_timeouts: 3,
  deadlock_cpu_percent: 5,
};

let image = '';
const prober = createHttpProber({ version: 'test' });
const samplers: DockerStatsSampler[] = [];

beforeAll(async () => {
  await requireDocker();
  image = (await ensureTestImages()).nodeApp;
  await removeTestContainers(SUITE);
}, 180_000);

afterAll(async () => {
  for (const s of samplers) s.stop();
  await prober.close();
  await removeTestContainers(SUITE);
});

/** The test app on a free loopback port, with cgroup limits and no HEALTHCHECK execs in its CPU. */
async function startApp(limits: { memoryBytes?: number; nanoCpus?: number } = {}) {
  const port = await freePort();
  const container = await docker.createContainer({
    Image: image,
    Env: [`PORT=${port}`, 'NAME=fd'],
    Labels: testLabels(SUITE),
    Healthcheck: { Test: ['NONE'] },
    HostConfig: {
      NetworkMode: 'host',
      // Swap equal to memory: the process is killed at the limit instead of swapping.
      ...(limits.memoryBytes ? { Memory: limits.memoryBytes, MemorySwap: limits.memoryBytes } : {}),
      ...(limits.nanoCpus ? { NanoCpus: limits.nanoCpus } : {}),
    },
  });
  await container.start();
  await waitFor(() => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok), {
    timeoutMs: 20_000,
    what: `the test app on port ${port}`,
  });
  const backend = probeBackend(port, { timeout_seconds: 1 }, 'fd');
  return { container, port, backend };
}

/** Samples one container every second into the resource detector; keeps every sample and event. */
function watch(container: Dockerode.Container, backend: Backend) {
  let state: ResourceState = initialResourceState();
  const samples: StatsSample[] = [];
  const events: FailureEvent[] = [];
  const errors: unknown[] = [];
  const sampler = createDockerStatsSampler({
    docker,
    intervalMs: detection.stats_interval_seconds * 1000,
    onSample: (_id, sample) => {
      samples.push(sample);
      const out = stepResources(state, sample, { backendId: backend.id, app: backend.app }, detection);
      state = out.state;
      events.push(...out.events);
    },
    onError: (_id, err) => errors.push(err),
  });
  samplers.push(sampler);
  sampler.setContainers([container.id]);
  return { samples, events, errors, sampler, state: () => state };
}

/** Probes `n` times in a row with the real HTTP prober; returns the last timeout streak. */
async function timeoutStreak(backend: Backend, n: number): Promise<number> {
  let history: FailureHistory = {};
  let streak = 0;
  for (let i = 0; i < n; i++) {
    const out = stepFailures(history, await prober.probe(backend), detection, Date.now());
    history = out.history;
    streak = out.events.find((e) => e.failureType === 'health_check_timeout')?.consecutiveCount ?? 0;
  }
  return streak;
}

/** The Engine's events for one container, parsed as the Docker source parses them. */
async function containerEvents(container: Dockerode.Container) {
  const stream = (await docker.getEvents({ filters: { container: [container.id] } })) as NodeJS.ReadableStream & { destroy(): void };
  const events: Array<Omit<ContainerEvent, 'container'>> = [];
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      const parsed = line ? parseDockerEvent(JSON.parse(line)) : null;
      if (parsed) events.push(parsed);
    }
  });
  return { events, close: () => stream.destroy() };
}

describe('failure detection on real containers', () => {
  it('reports application_memory_leak before the limit, then Docker reports the OOM kill', async () => {
    const limit = 128 * MiB;
    const { container, port, backend } = await startApp({ memoryBytes: limit });
    const dockerEvents = await containerEvents(container);
    try {
      expect((await controlApp(port, 'leak?mb_per_s=3')).status).toBe(200);
      const watched = watch(container, backend);

      const leak = await waitFor(() => watched.events.find((e) => e.failureType === 'application_memory_leak'), {
        timeoutMs: 40_000,
        what: `a memory leak event (samples: ${watched.samples.length})`,
      });
      expect(leak).toMatchObject({ backendId: backend.id, app: 'fd', severity: 'low', consecutiveCount: 1 });
      const d = leak.details as Record<string, number>;
      // The app keeps 3 MB a second; the fit sees the working set climb at about that pace.
      expect(d.slope_bytes_per_second).toBeGreaterThan(1.5 * MiB);
      expect(d.slope_bytes_per_second).toBeLessThan(6 * MiB);
      expect(d.r_squared).toBeGreaterThanOrEqual(0.8);
      expect(d.memory_limit_bytes).toBe(limit);
      expect(d.memory_bytes).toBeLessThan(limit);
      expect(d.seconds_to_limit).toBeGreaterThan(0);
      expect(d.seconds_to_limit).toBeLessThanOrEqual(60);

      const info = await waitForContainer(container, (i) => !i.State.Running, { what: 'the OOM kill', timeoutMs: 60_000 });
      expect(info.State.OOMKilled).toBe(true);
      // The leak was reported while the container was still running.
      expect(leak.timestamp).toBeLessThan(Date.parse(info.State.FinishedAt));

      // The existing container detector, fed with the Engine's own events, calls it an OOM kill.
      await waitFor(() => dockerEvents.events.some((e) => e.action === 'die'), { what: 'the die event' });
      const ref = containerRefOf(info);
      let state: DetectorState = new Map();
      const failures: ContainerFailure[] = [];
      for (const e of dockerEvents.events) {
        const out = detectContainerFailures(state, { ...e, container: ref }, e.at, {
          restartWindowMs: 60_000,
          restartLoopThreshold: 3,
          startupGraceMs: 60_000,
        });
        state = out.state;
        failures.push(...out.failures);
      }
      expect(failures.map((f) => f.failureType)).toEqual(['container_oom_killed']);
    } finally {
      dockerEvents.close();
    }
  }, 120_000);

  it('reports high_resource_usage (cpu) for a container spinning at its 0.5-CPU limit', async () => {
    const { container, port, backend } = await startApp({ nanoCpus: 500_000_000 });
    const watched = watch(container, backend);
    expect((await controlApp(port, 'burn')).status).toBe(200);
    const high = await waitFor(() => watched.events.find((e) => e.failureType === 'high_resource_usage'), {
      timeoutMs: 30_000,
      what: `a high_resource_usage event (cpu samples: ${watched.samples.map((s) => s.cpuPercent?.toFixed(0)).join(' ')})`,
    });
    expect(high).toMatchObject({ severity: 'medium', consecutiveCount: 1, details: { metric: 'cpu', threshold: 90, samples_above: 3 } });
    // Half a CPU fully used is 100% of the limit (25% of this 2-CPU host).
    expect(high.details.cpu_percent as number).toBeGreaterThan(90);
    expect(high.details.cpu_percent as number).toBeLessThan(115);

    // Its HTTP probes time out too, but it is busy, not deadlocked.
    const streak = await timeoutStreak(backend, detection.deadlock_timeouts);
    const tcp = await checkTcpAccept('127.0.0.1', port, 1000);
    const out = detectDeadlock(
      watched.state(),
      { subject: { backendId: backend.id, app: 'fd' }, consecutiveTimeouts: streak, containerState: 'running', tcp, sample: watched.samples.at(-1) ?? null },
      detection,
      Date.now(),
    );
    expect([streak, tcp, out.verdict, out.event]).toEqual([3, 'accepted', 'busy', null]);
  }, 90_000);

  it('reports application_deadlock for a container that accepts connections but never answers, with idle CPU', async () => {
    const { container, port, backend } = await startApp();
    const watched = watch(container, backend);
    expect((await controlApp(port, 'deadlock')).status).toBe(200);
    const since = Date.now();

    const streak = await timeoutStreak(backend, detection.deadlock_timeouts);
    const tcp = await checkTcpAccept('127.0.0.1', port, 1000);
    // A CPU reading taken wholly after the lock-up (each covers the second before it).
    const sample = await waitFor(() => watched.samples.find((s) => s.at > since + 2000 && s.cpuPercent !== null), {
      timeoutMs: 15_000,
      what: 'a stats sample after the deadlock',
    });
    const out = detectDeadlock(
      watched.state(),
      { subject: { backendId: backend.id, app: 'fd' }, consecutiveTimeouts: streak, containerState: 'running', tcp, sample },
      detection,
      Date.now(),
    );
    expect([streak, tcp, out.verdict]).toEqual([3, 'accepted', 'deadlock']);
    expect(out.event).toMatchObject({
      failureType: 'application_deadlock',
      backendId: backend.id,
      consecutiveCount: 1,
      details: { consecutive_timeouts: 3, tcp: 'accepted', threshold: 5 },
    });
    expect(out.event!.details.cpu_percent as number).toBeLessThan(5);
    // The same container with its port closed is not a deadlock: the TCP check tells them apart.
    await container.kill();
    expect(await checkTcpAccept('127.0.0.1', port, 1000)).toBe('refused');
  }, 90_000);
});

describe('high_error_rate from real probes', () => {
  it('fires once when 30% of a real backend\'s health checks fail', async () => {
    let requests = 0;
    const server = await listenHttp((_req, res) => {
      // 3 of every 10 checks fail.
      res.statusCode = requests++ % 10 < 3 ? 503 : 200;
      res.end();
    });
    try {
      const backend = probeBackend(server.port, { timeout_seconds: 2 }, 'fd');
      let history: FailureHistory = {};
      const rate: Array<{ probe: number; event: FailureEvent }> = [];
      for (let i = 0; i < 40; i++) {
        const out = stepFailures(history, await prober.probe(backend), detection, Date.now());
        history = out.history;
        for (const event of out.events) if (event.failureType === 'high_error_rate') rate.push({ probe: i + 1, event });
      }
      // Not before min_error_rate_samples (20) probes; then once, however long it stays above.
      expect(rate.map((r) => r.probe)).toEqual([20]);
      expect(rate[0]!.event).toMatchObject({
        severity: 'low',
        consecutiveCount: 1,
        details: { failed_probes: 6, total_probes: 20, error_rate_percent: 30, threshold: 5 },
      });
      expect(history.probes).toMatchObject({ sumTotal: 40, sumFailed: 12, above: true });
    } finally {
      await server.close();
    }
  });
});
