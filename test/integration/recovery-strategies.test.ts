/**
 * The strategies beyond container restarts, planned by the real planner and carried out by the
 * real executor and docker-actions against the Docker Engine, with the test app on host
 * networking: rolling_restart (one replica at a time), restart_dependencies (by container name)
 * and clear_cache (the declared HTTP call, to a backend on loopback).
 */
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../src/clock.js';
import type { AppRecoveryOptions } from '../../src/config/types.js';
import type { BackendView, FailureEvent, FailureType } from '../../src/health/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { createDockerActions } from '../../src/recovery/docker-actions.js';
import { createRecoveryExecutor, resultInput, type RecoveryExecutor } from '../../src/recovery/executor.js';
import { plan } from '../../src/recovery/planner.js';
import { createPlannerState, type PlannerState } from '../../src/recovery/planner-state.js';
import type { ActionRecord, AppSnapshot, PlannedAction, PlannerConfig, PlannerInput } from '../../src/recovery/types.js';
import { ensureTestImages, type TestImages } from '../helpers/docker-images.js';
import { appAnswers, controlApp, docker, removeTestContainers, requireDocker, runContainer } from '../helpers/docker.js';
import { backendView, containerRefOf, failureEvent, probeResult, recoveryConfig } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { httpGet } from '../helpers/nginx-instance.js';
import { sampleEvery, waitFor } from '../helpers/wait.js';

const SUITE = 'recovery-strategies';
const silent = createLogger({ level: 'silent' });
let images: TestImages;
let seq = 0;

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  images = await ensureTestImages();
}, 180_000);

afterAll(async () => {
  await removeTestContainers(SUITE);
});

const CONFIG: PlannerConfig = recoveryConfig({
  backoff_min_seconds: 1,
  backoff_max_seconds: 5,
  stop_timeout_seconds: 2,
  startup_grace_seconds: 0,
});

interface Replica {
  container: Dockerode.Container;
  name: string;
  port: number;
}

async function runApp(what: string): Promise<Replica> {
  const port = await freePort();
  const name = `orchestry-test-strategies-${process.pid}-${what}-${++seq}`;
  const container = await runContainer({ image: images.nodeApp, suite: SUITE, name, env: { PORT: String(port), NAME: name, GRACE_MS: '100' } });
  await appAnswers(port);
  return { container, name, port };
}

function failureOf(type: FailureType, backendId: string, at: number): FailureEvent {
  return failureEvent({
    failureType: type,
    backendId,
    message: `${type}: integration test`,
    timestamp: at,
    consecutiveCount: 1,
    totalCount: 1,
    firstOccurrence: at,
  });
}

/** What the health stage would report: one probe of /health now, plus `docker inspect`. */
async function view(r: Replica): Promise<BackendView> {
  const info = await r.container.inspect();
  const startedAt = Date.now();
  const status = await httpGet(r.port, '/health').then((x) => x.status, () => 0);
  const finishedAt = Date.now();
  const healthy = status === 200;
  const backendId = `web/127.0.0.1:${r.port}`;
  return backendView({
    port: r.port,
    health: healthy ? 'healthy' : 'unhealthy',
    ejected: !healthy,
    container: { ...containerRefOf(info), name: r.name, exitCode: null },
    consecutiveFailures: healthy ? 0 : 3,
    consecutiveSuccesses: healthy ? 1 : 0,
    lastProbe: probeResult({
      backendId,
      healthy,
      responseTimeMs: finishedAt - startedAt,
      statusCode: status || null,
      body: null,
      errorClass: healthy ? null : status ? 'unexpected_status' : 'connection_refused',
      error: healthy ? null : `HTTP ${status}`,
      startedAt,
      finishedAt,
    }),
    lastFailure: healthy ? null : failureOf('health_check_failed', backendId, finishedAt),
    since: startedAt,
  });
}

async function snapshotOf(replicas: Replica[], recovery: AppRecoveryOptions): Promise<AppSnapshot> {
  return { name: 'web', maxReplicas: 5, portRange: null, portEnv: 'PORT', recovery, replicas: await Promise.all(replicas.map(view)) };
}

/** The daemon's loop in miniature: plan, run what is planned, feed results back. */
function loop(executor: RecoveryExecutor) {
  let state: PlannerState = createPlannerState();
  const planned: PlannedAction[] = [];
  const records: ActionRecord[] = [];
  const feed = async (input: PlannerInput): Promise<void> => {
    const r = plan(state, input, CONFIG, Date.now());
    state = r.state;
    for (const a of r.actions) {
      planned.push(a);
      const record = await executor.run(a);
      records.push(record);
      await feed(resultInput(record));
    }
  };
  return { feed, planned, records, state: () => state };
}

function executorWith(drained: string[] = []): RecoveryExecutor {
  return createRecoveryExecutor({
    actions: createDockerActions({ docker, stopTimeoutSeconds: CONFIG.stop_timeout_seconds, logger: silent }),
    clock: createSystemClock(),
    logger: silent,
    drain: async (a) => void drained.push(a.containerName ?? ''),
  });
}

describe('recovery strategies against real containers', () => {
  it('rolling_restart restarts three replicas one at a time, never two down at once', async () => {
    const replicas = await Promise.all(['a', 'b', 'c'].map(runApp));
    const before = await Promise.all(replicas.map(async (r) => (await r.container.inspect()).State.StartedAt));

    // Watch the containers the whole time: running or not, and each start time seen.
    const starts = replicas.map(() => new Set<string>());
    let mostDown = 0;
    const watcher = sampleEvery(25, async () => {
      const infos = await Promise.all(replicas.map((r) => r.container.inspect()));
      infos.forEach((info, i) => starts[i]!.add(info.State.StartedAt));
      mostDown = Math.max(mostDown, infos.filter((info) => !info.State.Running || info.State.Restarting).length);
    });

    const drained: string[] = [];
    const l = loop(executorWith(drained));
    const othersHealthyAtEachStep: boolean[] = [];
    const first = await snapshotOf(replicas, { dependencies: [], clear_cache: null });
    const leaking = first.replicas[1]!;
    await l.feed({ kind: 'failure', event: failureOf('application_memory_leak', leaking.backendId, Date.now()), backend: leaking, app: first });
    await waitFor(
      async () => {
        const app = await snapshotOf(replicas, { dependencies: [], clear_cache: null });
        const steps = l.planned.length;
        await l.feed({ kind: 'tick', apps: [app] });
        if (l.planned.length > steps) othersHealthyAtEachStep.push(app.replicas.filter((v) => v.container!.name !== l.planned.at(-1)!.containerName).every((v) => v.health === 'healthy'));
        return l.state().apps.web?.rolling === null;
      },
      { timeoutMs: 90_000, intervalMs: 200, what: 'the rolling restart to finish' },
    );
    await watcher.stop();

    expect(l.planned.map((a) => a.containerName)).toEqual([replicas[1]!.name, replicas[0]!.name, replicas[2]!.name]);
    expect(l.records.map((r) => [r.strategy, r.ok])).toEqual([['rolling_restart', true], ['rolling_restart', true], ['rolling_restart', true]]);
    expect(drained).toEqual(l.planned.map((a) => a.containerName));
    expect(othersHealthyAtEachStep).toEqual([true, true]);
    expect(mostDown).toBeLessThanOrEqual(1);
    const after = await Promise.all(replicas.map(async (r) => (await r.container.inspect()).State));
    after.forEach((s, i) => {
      expect(s.Running).toBe(true);
      expect(s.StartedAt).not.toBe(before[i]);
      expect(starts[i]!.size).toBe(2); // started once more, not twice
    });
    // In the order planned: b, then a, then c.
    const newStart = after.map((s) => Date.parse(s.StartedAt));
    expect(newStart[1]!).toBeLessThan(newStart[0]!);
    expect(newStart[0]!).toBeLessThan(newStart[2]!);
  }, 120_000);

  it('restart_dependencies restarts the named dependency when both replicas fail, and names one that does not exist', async () => {
    const dependency = await runApp('redis');
    const replicas = await Promise.all(['x', 'y'].map(runApp));
    for (const r of replicas) await controlApp(r.port, 'fail');
    const before = (await dependency.container.inspect()).State.StartedAt;
    const missing = `orchestry-test-strategies-${process.pid}-missing`;
    const recovery = { dependencies: [dependency.name, missing], clear_cache: null };
    const l = loop(executorWith());
    const app = await snapshotOf(replicas, recovery);
    expect(app.replicas.every((v) => v.ejected)).toBe(true);
    const backend = app.replicas[0]!;
    await l.feed({ kind: 'failure', event: failureOf('health_check_failed', backend.backendId, Date.now()), backend, app });

    expect(l.planned.filter((a) => a.disruptive).map((a) => [a.strategy, a.dependencies])).toEqual([
      ['restart_dependencies', [dependency.name, missing]],
    ]);
    const record = l.records.find((r) => r.strategy === 'restart_dependencies')!;
    expect(record).toMatchObject({ ok: false, error: `dependency container "${missing}" not found` });
    const after = (await dependency.container.inspect()).State;
    expect(after.Running).toBe(true);
    expect(after.StartedAt).not.toBe(before);
    await appAnswers(dependency.port);
    // The replicas themselves were left alone.
    for (const r of replicas) expect((await r.container.inspect()).RestartCount).toBe(0);
  }, 60_000);

  it('clear_cache makes the declared call to the backend itself, and records a non-2xx answer as a failure', async () => {
    const replica = await runApp('cache');
    // The test app has no cache; /control/heal stands in for the declared endpoint: its effect
    // shows that the call reached this backend.
    await controlApp(replica.port, 'fail');
    expect((await httpGet(replica.port, '/health')).status).toBe(503);
    const heal = { dependencies: [], clear_cache: { method: 'POST' as const, path: '/control/heal' } };
    const l = loop(executorWith());
    const app = await snapshotOf([replica], heal);
    // The replica fails its checks, so it is not in the upstream: only a memory leak is acted on here.
    const backend = app.replicas[0]!;
    await l.feed({ kind: 'failure', event: failureOf('application_memory_leak', backend.backendId, Date.now()), backend, app });
    expect(l.records.map((r) => [r.strategy, r.ok, r.error])).toEqual([['clear_cache', true, undefined]]);
    expect(l.planned[0]!.call).toEqual({ method: 'POST', path: '/control/heal', host: '127.0.0.1', port: replica.port });
    expect((await httpGet(replica.port, '/health')).status).toBe(200);

    const wrong = loop(executorWith());
    const app2 = await snapshotOf([replica], { dependencies: [], clear_cache: { method: 'POST', path: '/control/none' } });
    await wrong.feed({ kind: 'failure', event: failureOf('application_memory_leak', backend.backendId, Date.now()), backend: app2.replicas[0]!, app: app2 });
    expect(wrong.records.map((r) => [r.strategy, r.ok, r.error])).toEqual([
      ['clear_cache', false, `POST http://127.0.0.1:${replica.port}/control/none answered HTTP 404 (expected 2xx)`],
    ]);
  }, 60_000);
});
