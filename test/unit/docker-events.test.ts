import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import {
  detectContainerFailures,
  detectorConfig,
  forgetGone,
  GONE_STOP_KEEP_MS,
  isTerminatingSignal,
  nextStartupDeadline,
  parseDockerEvent,
  type ContainerAction,
  type ContainerEvent,
  type ContainerFailure,
  type DetectorState,
} from '../../src/discovery/docker-events.js';
import type { ContainerRef } from '../../src/model.js';
import { containerRef } from '../helpers/fixtures.js';

const ID = 'c5983de5b0fd971bd82cd9bd4dab1c00c73f4d254f2f8cbbdfc94fe715d1704f';
const START = 1_000_000;
const CFG = { restartWindowMs: 300_000, restartLoopThreshold: 3, startupGraceMs: 60_000 };

/** Container web-1 of app web, running and healthy since START. */
const ref = (over: Partial<ContainerRef> = {}): ContainerRef => containerRef({ id: ID, startedAt: START, ...over });

function event(action: ContainerAction, over: Partial<ContainerEvent> = {}): ContainerEvent {
  return {
    action,
    containerId: ID,
    name: 'web-1',
    app: 'web',
    at: START,
    exitCode: null,
    signal: null,
    health: null,
    container: ref(),
    ...over,
  };
}

/** Feeds events in order; returns every failure type and the final state. */
function run(steps: Array<[ContainerEvent, number]>, state: DetectorState = new Map()) {
  const failures: ContainerFailure[] = [];
  for (const [e, now] of steps) {
    const r = detectContainerFailures(state, e, now, CFG);
    state = r.state;
    failures.push(...r.failures);
  }
  return { state, failures, types: failures.map((f) => f.failureType) };
}

const exited = (over: Partial<ContainerRef> = {}) => ref({ state: 'exited', exitCode: 1, ...over });

describe('parsing the Engine event stream', () => {
  const raw = (action: string, attributes: Record<string, string> = {}) => ({
    status: action,
    id: ID,
    from: 'orchestry-test/node-app:1',
    Type: 'container',
    Action: action,
    Actor: { ID, Attributes: { image: 'orchestry-test/node-app:1', name: 'web-1', 'orchestry.app': 'web', ...attributes } },
    scope: 'local',
    time: 1795849463,
    timeNano: 1795849463232079118,
  });

  test('reads a kill with its signal, a die with its exit code, a health_status with its status', () => {
    expect(parseDockerEvent(raw('kill', { signal: '15' }))).toEqual({
      action: 'kill',
      containerId: ID,
      name: 'web-1',
      app: 'web',
      at: Math.floor(1795849463232079118 / 1e6),
      exitCode: null,
      signal: 15,
      health: null,
    });
    expect(parseDockerEvent(raw('die', { exitCode: '137' }))).toMatchObject({ action: 'die', exitCode: 137 });
    expect(parseDockerEvent(raw('health_status: unhealthy'))).toMatchObject({ action: 'health_status', health: 'unhealthy' });
  });

  test('ignores exec events, other event types and malformed objects', () => {
    expect(parseDockerEvent(raw('exec_start: /bin/sh -c wget -q -O /dev/null http://127.0.0.1:8000/health'))).toBeNull();
    expect(parseDockerEvent(raw('exec_die', { exitCode: '1' }))).toBeNull();
    expect(parseDockerEvent({ ...raw('create'), Type: 'network' })).toBeNull();
    expect(parseDockerEvent(raw('create'))).toBeNull();
    expect(parseDockerEvent({ Type: 'container', Action: 'die' })).toBeNull();
    expect(parseDockerEvent('die')).toBeNull();
  });

  test('a kill with SIGHUP (an nginx reload) does not drain; SIGTERM and SIGKILL do', () => {
    expect(isTerminatingSignal(1)).toBe(false);
    expect(isTerminatingSignal(null)).toBe(false);
    expect(isTerminatingSignal(15)).toBe(true);
    expect(isTerminatingSignal(9)).toBe(true);
  });
});

describe('container_stopped and container_oom_killed', () => {
  test('a process that exits by itself is container_stopped, with its exit code', () => {
    const { failures } = run([[event('die', { exitCode: 3, container: exited({ exitCode: 3 }) }), START + 5000]]);
    expect(failures).toEqual([
      { failureType: 'container_stopped', containerId: ID, app: 'web', details: { exitCode: 3, removed: false } },
    ]);
  });

  test('docker kill (SIGKILL alone) is asked for through the API: no failure', () => {
    const { types } = run([
      [event('kill', { signal: 9 }), START + 1000],
      [event('die', { exitCode: 137, container: exited({ exitCode: 137 }) }), START + 1001],
    ]);
    expect(types).toEqual([]);
  });

  test('docker rm -f (SIGKILL, die, destroy) is no failure either, and the container is forgotten', () => {
    const { types, state } = run([
      [event('kill', { signal: 9 }), START + 1000],
      [event('die', { exitCode: 137, container: undefined }), START + 1001],
      [event('destroy', { container: undefined }), START + 1002],
    ]);
    expect(types).toEqual([]);
    expect(state.has(ID)).toBe(false);
  });

  test('a kill that does not end the process (SIGHUP, SIGUSR1) does not excuse the die that follows', () => {
    const { types } = run([
      [event('kill', { signal: 1 }), START + 1000],
      [event('kill', { signal: 10 }), START + 1001],
      [event('die', { exitCode: 1, container: exited() }), START + 2000],
    ]);
    expect(types).toEqual(['container_stopped']);
  });

  test('docker stop (SIGTERM, then SIGKILL after the timeout) is no failure', () => {
    const { types } = run([
      [event('kill', { signal: 15 }), START + 1000],
      [event('kill', { signal: 9 }), START + 11_000],
      [event('die', { exitCode: 137, container: exited({ exitCode: 137 }) }), START + 11_001],
      [event('stop', { container: exited() }), START + 11_002],
    ]);
    expect(types).toEqual([]);
  });

  test('a stop asked for covers one die only: the next crash after a restart is a failure', () => {
    const restarted = ref({ startedAt: START + 2000 });
    const { types } = run([
      [event('kill', { signal: 15, container: restarted }), START + 2000],
      [event('die', { exitCode: 0, container: restarted }), START + 2000],
      [event('start', { container: restarted }), START + 2000],
      [event('die', { exitCode: 1, container: exited({ startedAt: START + 2000 }) }), START + 9000],
    ]);
    expect(types).toEqual(['container_stopped']);
  });

  test('a die after an oom event is container_oom_killed even if the restarted container shows OOMKilled false', () => {
    const { failures } = run([
      [event('oom'), START + 1000],
      [event('die', { exitCode: 137, container: ref({ startedAt: START + 1100 }) }), START + 1001],
    ]);
    expect(failures).toEqual([
      { failureType: 'container_oom_killed', containerId: ID, app: 'web', details: { exitCode: 137 } },
    ]);
  });

  test('a die with OOMKilled set in inspect is container_oom_killed', () => {
    const { types } = run([[event('die', { exitCode: 137, container: exited({ oomKilled: true, exitCode: 137 }) }), START + 1]]);
    expect(types).toEqual(['container_oom_killed']);
  });

  test('a container removed right after dying says so, taking its app from the event', () => {
    const { failures } = run([[event('die', { exitCode: 137, container: undefined }), START + 1]]);
    expect(failures).toEqual([
      { failureType: 'container_stopped', containerId: ID, app: 'web', details: { exitCode: 137, removed: true } },
    ]);
  });
});

describe('container_restart_loop', () => {
  const sync = (restartCount: number) => event('sync', { container: ref({ restartCount }) });

  test('RestartCount rising threshold times within the window is a restart loop', () => {
    const { types, failures } = run([
      [sync(0), START],
      [sync(1), START + 10_000],
      [sync(2), START + 20_000],
      [sync(3), START + 30_000],
      [sync(4), START + 40_000],
    ]);
    expect(types).toEqual(['container_restart_loop', 'container_restart_loop']);
    expect(failures[0]?.details).toEqual({ restartCount: 3, restartsInWindow: 3, windowMs: 300_000 });
  });

  test('restarts spread wider than the window are not a loop', () => {
    const { types } = run([
      [sync(0), START],
      [sync(1), START + 200_000],
      [sync(2), START + 400_000],
      [sync(3), START + 600_000],
    ]);
    expect(types).toEqual([]);
  });

  test('several restarts seen at once count each; the same count seen twice counts once', () => {
    expect(run([[sync(0), START], [sync(3), START + 1000]]).types).toEqual(['container_restart_loop']);
    expect(run([[sync(0), START], [sync(2), START + 1000], [sync(2), START + 2000]]).types).toEqual([]);
  });

  test('restarts that happened before the container was first seen are not counted', () => {
    expect(run([[sync(50), START], [sync(51), START + 1000]]).types).toEqual([]);
  });
});

describe('application_startup_failed', () => {
  const seen = (dockerHealth: string | null, startedAt = START) => event('sync', { container: ref({ dockerHealth, startedAt }) });

  test('a HEALTHCHECK still starting or unhealthy after the grace is reported once per run', () => {
    const { types, failures } = run([
      [seen('starting'), START + 1000],
      [seen('starting'), START + 59_999],
      [seen('unhealthy'), START + 60_000],
      [seen('unhealthy'), START + 90_000],
    ]);
    expect(types).toEqual(['application_startup_failed']);
    expect(failures[0]?.details).toEqual({ dockerHealth: 'unhealthy', sinceStartMs: 60_000, startupGraceMs: 60_000 });
  });

  test('a container that became healthy and later unhealthy did not fail to start', () => {
    expect(run([[seen('healthy'), START + 1000], [seen('unhealthy'), START + 70_000]]).types).toEqual([]);
  });

  test('a new run gets its own grace and its own report', () => {
    const { types } = run([
      [seen('starting'), START + 60_000],
      [seen('starting', START + 100_000), START + 101_000],
      [seen('starting', START + 100_000), START + 160_000],
    ]);
    expect(types).toEqual(['application_startup_failed', 'application_startup_failed']);
  });

  test('a container without a HEALTHCHECK is left to the probes', () => {
    expect(run([[seen(null), START + 600_000]]).types).toEqual([]);
  });

  test('nextStartupDeadline is when the earliest waiting container runs out of grace', () => {
    const a = ref({ dockerHealth: 'starting', startedAt: START + 5000 });
    const b = ref({ id: 'b', dockerHealth: 'starting', startedAt: START });
    const healthy = ref({ id: 'h', dockerHealth: 'healthy' });
    expect(nextStartupDeadline(new Map(), [a, b, healthy], CFG)).toBe(START + 60_000);
    const { state } = run([[event('sync', { containerId: 'b', container: b }), START + 60_000]]);
    expect(nextStartupDeadline(state, [a, b, healthy], CFG)).toBe(START + 65_000);
    expect(nextStartupDeadline(new Map(), [healthy], CFG)).toBeNull();
  });
});

describe('detector state', () => {
  test('destroy forgets a container; forgetGone drops containers no longer listed', () => {
    const { state } = run([[event('sync'), START], [event('sync', { containerId: 'other' }), START]]);
    expect([...state.keys()]).toEqual([ID, 'other']);
    expect([...run([[event('destroy', { container: undefined }), START]], state).state.keys()]).toEqual(['other']);
    expect([...forgetGone(state, new Set(['other']), START).keys()]).toEqual(['other']);
  });

  test('a container removed between its kill and its die (docker rm -f around a resync): the die is still no failure', () => {
    // The kill is folded, then a resync no longer lists the container, then its die and destroy come.
    const killed = run([[event('sync'), START], [event('kill', { signal: 9, at: START + 1000 }), START + 1000]]);
    const resynced = forgetGone(killed.state, new Set(), START + 1200);
    const after = run([[event('die', { exitCode: 137, container: undefined, at: START + 1100 }), START + 1300], [event('destroy', { container: undefined }), START + 1300]], resynced);
    expect(after.types).toEqual([]);
    expect([...after.state.keys()]).toEqual([]);
    // Without a stop asked for, a container gone from the list is forgotten at once; a stop's
    // state is kept a minute for a destroy that never came.
    expect([...forgetGone(run([[event('sync'), START]]).state, new Set(), START).keys()]).toEqual([]);
    expect([...forgetGone(killed.state, new Set(), START + 1000 + GONE_STOP_KEEP_MS).keys()]).toEqual([]);
  });

  test('the input state is never mutated', () => {
    const { state } = run([[event('kill', { signal: 15 }), START]]);
    const before = JSON.stringify([...state]);
    run([[event('die', { container: exited() }), START + 1], [event('start'), START + 2]], state);
    expect(JSON.stringify([...state])).toBe(before);
  });

  test('detectorConfig takes the window from recovery and the grace from docker', () => {
    const result = parseConfig({
      apps: { web: {} },
      recovery: { restart_window_seconds: 120 },
      docker: { startup_grace_seconds: 15 },
    });
    if (!result.ok) throw new Error('invalid');
    expect(detectorConfig(result.config)).toEqual({ restartWindowMs: 120_000, restartLoopThreshold: 3, startupGraceMs: 15_000 });
  });
});
