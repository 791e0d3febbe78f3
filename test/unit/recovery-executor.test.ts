import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import type { DockerActionResult, DockerActions } from '../../src/recovery/docker-actions.js';
import { createRecoveryExecutor, resultInput } from '../../src/recovery/executor.js';
import type { ActionRecord, PlannedAction } from '../../src/recovery/types.js';

const silent = createLogger({ level: 'silent' });

/** DockerActions that log each call and answer from `answer`, advancing the clock by 2 s. */
function fakeActions(clock: ReturnType<typeof createManualClock>, answer: Partial<DockerActionResult> = { ok: true }) {
  const calls: unknown[][] = [];
  const act = (name: string) => async (...args: unknown[]) => {
    calls.push([name, ...args]);
    clock.advance(2000);
    return { ok: true, containerId: String(args[0]), durationMs: 2000, ...answer };
  };
  const actions: DockerActions = {
    restart: act('restart'),
    recreate: act('recreate'),
    replace: act('replace'),
    scaleOut: act('scaleOut'),
    scaleIn: act('scaleIn'),
    restartNamed: act('restartNamed'),
  };
  return { actions, calls };
}

function action(over: Partial<PlannedAction> = {}): PlannedAction {
  return {
    id: '1-1',
    strategy: 'restart_container',
    failureType: 'health_check_failed',
    app: 'web',
    backendId: 'web/127.0.0.1:8001',
    containerId: 'c1',
    containerName: 'web-1',
    task: null,
    reason: 'health_check_failed: HTTP 500; restart 1 of 3 in 300s',
    dryRun: false,
    disruptive: true,
    drainFirst: false,
    spawn: null,
    dependencies: null,
    call: null,
    at: 1,
    ...over,
  };
}

const spawn = { name: 'web-recovery-4', replica: 3, portRange: [20000, 20009] as [number, number], portEnv: 'PORT', usedPorts: [20000] };

describe('recovery executor', () => {
  it('runs each strategy through its docker action and records the outcome and duration', async () => {
    const clock = createManualClock(1000);
    const { actions, calls } = fakeActions(clock, { ok: true, newContainerId: 'n1' });
    const records: ActionRecord[] = [];
    const ex = createRecoveryExecutor({ actions, clock, logger: silent, onRecord: (r) => records.push(r), pickPort: async () => 20001 });
    await ex.run(action({ id: 'a', strategy: 'restart_container' }));
    await ex.run(action({ id: 'b', strategy: 'recreate_container' }));
    await ex.run(action({ id: 'c', strategy: 'scale_in' }));
    await ex.run(action({ id: 'd', strategy: 'scale_out', containerId: 't1', spawn }));
    await ex.run(action({ id: 'e', strategy: 'replace_instance', spawn: { ...spawn, replica: null } }));
    expect(calls).toEqual([
      ['restart', 'c1'],
      ['recreate', 'c1'],
      ['scaleIn', 'c1'],
      ['scaleOut', 't1', { name: 'web-recovery-4', portEnv: 'PORT', port: 20001, replica: 3 }],
      ['replace', 'c1', { name: 'web-recovery-4', portEnv: 'PORT', port: 20001 }],
    ]);
    expect(records[0]).toEqual({
      id: 'a',
      strategy: 'restart_container',
      failureType: 'health_check_failed',
      app: 'web',
      backendId: 'web/127.0.0.1:8001',
      containerId: 'c1',
      newContainerId: 'n1',
      ok: true,
      dryRun: false,
      reason: 'health_check_failed: HTTP 500; restart 1 of 3 in 300s',
      startedAt: 1000,
      durationMs: 2000,
    });
    expect(records.map((r) => r.id)).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('passes no port when the app has no port range', async () => {
    const clock = createManualClock();
    const { actions, calls } = fakeActions(clock);
    const ex = createRecoveryExecutor({ actions, clock, logger: silent, pickPort: async () => 1 });
    await ex.run(action({ strategy: 'scale_out', spawn: { ...spawn, portRange: null, replica: null } }));
    expect(calls).toEqual([['scaleOut', 'c1', { name: 'web-recovery-4', portEnv: 'PORT' }]]);
  });

  it('fails a host-mode spawn when no port of the range is free, without calling docker', async () => {
    const clock = createManualClock();
    const { actions, calls } = fakeActions(clock);
    const ex = createRecoveryExecutor({ actions, clock, logger: silent, pickPort: async () => null });
    const r = await ex.run(action({ strategy: 'scale_out', spawn }));
    expect(r).toMatchObject({ ok: false, error: 'no free port in 20000-20009' });
    expect(calls).toEqual([]);
  });

  it('records dry-run and remove_from_lb actions without acting', async () => {
    const clock = createManualClock();
    const { actions, calls } = fakeActions(clock);
    let drained = 0;
    const ex = createRecoveryExecutor({ actions, clock, logger: silent, drain: async () => void drained++ });
    const dry = await ex.run(action({ dryRun: true, drainFirst: true }));
    const noop = await ex.run(action({ strategy: 'remove_from_lb', disruptive: false }));
    expect(calls).toEqual([]);
    expect(drained).toBe(0);
    expect(dry).toMatchObject({ ok: true, dryRun: true, durationMs: 0 });
    expect(noop).toMatchObject({ ok: true, strategy: 'remove_from_lb' });
  });

  it('drains before a stopping action when the plan says so, and stops anyway if draining fails', async () => {
    const clock = createManualClock();
    const { actions, calls } = fakeActions(clock);
    const order: string[] = [];
    const ex = createRecoveryExecutor({
      actions: { ...actions, scaleIn: async (id) => (order.push('stop'), actions.scaleIn(id)) },
      clock,
      logger: silent,
      drain: async (a) => {
        order.push(`drain ${a.backendId}`);
        if (order.length > 2) throw new Error('nginx did not confirm');
      },
    });
    await ex.run(action({ strategy: 'scale_in', drainFirst: true }));
    const second = await ex.run(action({ strategy: 'scale_in', drainFirst: true }));
    await ex.run(action({ strategy: 'scale_in', drainFirst: false }));
    expect(order).toEqual(['drain web/127.0.0.1:8001', 'stop', 'drain web/127.0.0.1:8001', 'stop', 'stop']);
    expect(second.ok).toBe(true);
    expect(calls).toHaveLength(3);
  });

  it('reports a failed action with its error and feeds it back to the planner', async () => {
    const clock = createManualClock();
    const { actions } = fakeActions(clock, { ok: false, error: 'No such container: c1' });
    const ex = createRecoveryExecutor({ actions, clock, logger: silent });
    const r = await ex.run(action());
    expect(r).toMatchObject({ ok: false, error: 'No such container: c1' });
    expect(resultInput(r)).toEqual({
      kind: 'action_result',
      actionId: '1-1',
      app: 'web',
      ok: false,
      error: 'No such container: c1',
      newContainerId: null,
    });
  });

  it('counts actions in flight while they run', async () => {
    const clock = createManualClock();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { actions } = fakeActions(clock);
    const ex = createRecoveryExecutor({
      actions: { ...actions, restart: async (id) => (await gate, actions.restart(id)) },
      clock,
      logger: silent,
    });
    const pending = ex.run(action());
    expect(ex.inFlight()).toBe(1);
    release();
    await pending;
    expect(ex.inFlight()).toBe(0);
  });

  it('keeps a bounded history, newest first, filtered by app, backend, strategy and time', async () => {
    const clock = createManualClock();
    const { actions } = fakeActions(clock);
    const ex = createRecoveryExecutor({ actions, clock, logger: silent, historySize: 3 });
    await ex.run(action({ id: 'a', app: 'web' }));
    await ex.run(action({ id: 'b', app: 'api', backendId: 'api/x' }));
    await ex.run(action({ id: 'c', app: 'web', strategy: 'scale_in' }));
    await ex.run(action({ id: 'd', app: 'web' }));
    expect(ex.history().map((r) => r.id)).toEqual(['d', 'c', 'b']);
    expect(ex.history({ app: 'web' }).map((r) => r.id)).toEqual(['d', 'c']);
    expect(ex.history({ backendId: 'api/x' }).map((r) => r.id)).toEqual(['b']);
    expect(ex.history({ strategy: 'scale_in' }).map((r) => r.id)).toEqual(['c']);
    expect(ex.history({ since: 4000 }).map((r) => r.id)).toEqual(['d', 'c']);
    expect(ex.history({ limit: 1 }).map((r) => r.id)).toEqual(['d']);
  });
});

describe('recovery executor: the strategies beyond container restarts', () => {
  it('restarts a rolling-restart replica after draining it, and dependencies by name', async () => {
    const clock = createManualClock();
    const { actions, calls } = fakeActions(clock);
    const order: string[] = [];
    const ex = createRecoveryExecutor({ actions, clock, logger: silent, drain: async (a) => void order.push(`drain ${a.containerName}`) });
    await ex.run(action({ strategy: 'rolling_restart', failureType: 'application_memory_leak', drainFirst: true }));
    const deps = await ex.run(action({ strategy: 'restart_dependencies', containerId: null, containerName: null, dependencies: ['redis', 'pg'] }));
    expect(order).toEqual(['drain web-1']);
    expect(calls).toEqual([['restart', 'c1'], ['restartNamed', ['redis', 'pg']]]);
    expect(deps).toMatchObject({ ok: true, strategy: 'restart_dependencies', containerId: null });
  });

  it('tells nginx about traffic holds for the traffic strategies, and fails the action when it cannot', async () => {
    const clock = createManualClock();
    const { actions, calls } = fakeActions(clock);
    const told: string[] = [];
    const ex = createRecoveryExecutor({
      actions,
      clock,
      logger: silent,
      applyTraffic: async (a) => {
        told.push(a.strategy);
        if (a.strategy === 'undrain_instance') throw new Error('nginx -t failed');
      },
    });
    const records = [];
    for (const strategy of ['redirect_traffic', 'restore_traffic', 'drain_instance', 'undrain_instance'] as const) {
      records.push(await ex.run(action({ strategy, disruptive: false })));
    }
    await ex.run(action({ strategy: 'redirect_traffic', disruptive: false, dryRun: true }));
    expect(told).toEqual(['redirect_traffic', 'restore_traffic', 'drain_instance', 'undrain_instance']);
    expect(records.map((r) => r.ok)).toEqual([true, true, true, false]);
    expect(records[3]!.error).toBe('Error: nginx -t failed');
    expect(calls).toEqual([]);
  });

  it('makes the clear_cache call and records its outcome', async () => {
    const clock = createManualClock();
    const { actions } = fakeActions(clock);
    const made: unknown[] = [];
    const ex = createRecoveryExecutor({
      actions,
      clock,
      logger: silent,
      callBackend: async (call) => (made.push(call), { ok: false, status: 503, error: 'POST http://127.0.0.1:8001/cache answered HTTP 503 (expected 2xx)' }),
    });
    const call = { method: 'POST' as const, path: '/cache', host: '127.0.0.1', port: 8001 };
    const r = await ex.run(action({ strategy: 'clear_cache', call }));
    expect(made).toEqual([call]);
    expect(r).toMatchObject({ ok: false, strategy: 'clear_cache', error: 'POST http://127.0.0.1:8001/cache answered HTTP 503 (expected 2xx)' });
  });
});

describe('recovery executor on Swarm tasks', () => {
  const task = { id: 'task-1', name: 'web.1', serviceId: 'svc', serviceName: 'web', serviceVersion: 7, nodeId: 'n1', containerId: 'ctr-1' };

  it('goes through Swarm: restarts, recreates and replaces remove the task, scales change the replica count; records name service and task', async () => {
    const clock = createManualClock(1000);
    const { actions, calls } = fakeActions(clock);
    const swarmCalls: unknown[][] = [];
    const swarm = {
      replaceTask: async (t: typeof task) => (swarmCalls.push(['replaceTask', t.name]), { ok: true, containerId: t.containerId, durationMs: 1 }),
      scale: async (t: typeof task, delta: 1 | -1) => (swarmCalls.push(['scale', t.serviceName, t.serviceVersion, delta]), { ok: true, containerId: '', durationMs: 1 }),
    };
    const records: ActionRecord[] = [];
    const ex = createRecoveryExecutor({ actions, swarm, clock, logger: silent, onRecord: (r) => records.push(r) });
    for (const strategy of ['restart_container', 'recreate_container', 'replace_instance', 'scale_out', 'scale_in'] as const) {
      await ex.run(action({ id: strategy, strategy, containerId: null, containerName: 'web.1', task }));
    }
    expect(calls).toEqual([]);
    expect(swarmCalls).toEqual([
      ['replaceTask', 'web.1'],
      ['replaceTask', 'web.1'],
      ['replaceTask', 'web.1'],
      ['scale', 'web', 7, 1],
      ['scale', 'web', 7, -1],
    ]);
    expect(records.map((r) => [r.ok, r.service, r.task])).toEqual(Array(5).fill([true, 'web', 'web.1']));
  });

  it('fails a task action, naming the task, when Swarm discovery is off', async () => {
    const clock = createManualClock();
    const { actions } = fakeActions(clock);
    const ex = createRecoveryExecutor({ actions, clock, logger: silent });
    const r = await ex.run(action({ containerId: null, task }));
    expect(r).toMatchObject({ ok: false, error: 'restart_container of task web.1 needs Swarm discovery (docker.swarm)' });
  });

  it('checks the lease immediately before acting: a task action of a sidecar that lost it is not done, and says why', async () => {
    const clock = createManualClock();
    const { actions } = fakeActions(clock);
    const swarmCalls: string[] = [];
    const swarm = {
      replaceTask: async (t: typeof task) => (swarmCalls.push(t.name), { ok: true, containerId: t.containerId, durationMs: 1 }),
      scale: async (t: typeof task) => (swarmCalls.push(t.name), { ok: true, containerId: '', durationMs: 1 }),
    };
    let held = true;
    const ex = createRecoveryExecutor({ actions, swarm, clock, logger: silent, mayActOn: (t) => held && t.nodeId === 'n1' });
    expect(await ex.run(action({ id: 'a', containerId: null, task }))).toMatchObject({ ok: true });
    held = false;
    expect(await ex.run(action({ id: 'b', containerId: null, task }))).toMatchObject({ ok: false, error: 'not done: this sidecar no longer holds the Swarm lease of node n1' });
    expect(await ex.run(action({ id: 'c', strategy: 'scale_out', containerId: null, task }))).toMatchObject({ ok: false });
    expect(swarmCalls).toEqual(['web.1']);
  });
});
