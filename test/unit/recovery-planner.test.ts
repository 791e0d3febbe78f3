import { describe, expect, it } from 'vitest';
import { FAILURE_TYPES, type BackendView, type FailureEvent, type FailureType } from '../../src/health/types.js';
import type { ContainerRef, ProbeResult } from '../../src/model.js';
import { plan, plannerConfig } from '../../src/recovery/planner.js';
import { createPlannerState, restorePlannerState, summarize, type PlannerState } from '../../src/recovery/planner-state.js';
import { DEPENDENCY_TYPES, STOPPING, STRATEGY_MAP } from '../../src/recovery/strategies.js';
import { trafficHolds } from '../../src/recovery/traffic-holds.js';
import type { AppSnapshot, PlanResult, PlannedAction, PlannerConfig, PlannerInput, Strategy } from '../../src/recovery/types.js';

import { backendView, containerRef, failureEvent, recoveryConfig } from '../helpers/fixtures.js';

const T0 = 1_700_000_000_000;
const S = 1000;

/** The schema's defaults, mode on (fixtures.ts). */
const config = (over: Partial<PlannerConfig> = {}): PlannerConfig => recoveryConfig(over);

type ReplicaOver = Partial<Omit<BackendView, 'container'>> & { ctr?: Partial<ContainerRef> | null };

/** Replica n of app `web`: healthy, running, started long ago, on port 8000 + n. */
function replica(n: number, over: ReplicaOver = {}): BackendView {
  const { ctr, ...rest } = over;
  const container =
    ctr === null
      ? null
      : containerRef({ id: `id-${n}`, name: `web-${n}`, image: 'app:1', replica: n, dockerHealth: null, startedAt: T0 - 3600 * S, labels: {}, ...ctr });
  return backendView({ port: 8000 + n, container, since: T0, ...rest });
}

function sick(n: number, over: ReplicaOver = {}): BackendView {
  return replica(n, { health: 'unhealthy', ejected: true, ...over });
}

function snapshot(replicas: BackendView[], over: Partial<AppSnapshot> = {}): AppSnapshot {
  return {
    name: 'web',
    maxReplicas: 5,
    portRange: null,
    portEnv: 'PORT',
    recovery: { dependencies: [], clear_cache: null },
    replicas,
    ...over,
  };
}

function event(type: FailureType, backend: BackendView, consecutive: number, at: number, details: Record<string, unknown> = {}): FailureEvent {
  return failureEvent({
    failureType: type,
    backendId: backend.backendId,
    app: backend.app,
    severity: 'low',
    message: `${type}: test`,
    details,
    timestamp: at,
    consecutiveCount: consecutive,
    totalCount: consecutive,
    firstOccurrence: at,
  });
}

/** Drives the planner like main would: one state, a manual `now`, results fed back. */
function driver(cfg: PlannerConfig = config()) {
  let state: PlannerState = createPlannerState();
  let now = T0;
  const step = (input: PlannerInput): PlanResult => {
    const r = plan(state, input, cfg, now);
    state = r.state;
    return r;
  };
  return {
    get state() {
      return state;
    },
    set state(s: PlannerState) {
      state = s;
    },
    get now() {
      return now;
    },
    advance(seconds: number) {
      now += seconds * S;
    },
    fail(type: FailureType, backend: BackendView, app: AppSnapshot, consecutive = 3, details: Record<string, unknown> = {}) {
      return step({ kind: 'failure', event: event(type, backend, consecutive, now, details), backend, app });
    },
    result(action: PlannedAction, ok = true, extra: { error?: string; newContainerId?: string } = {}) {
      return step({ kind: 'action_result', actionId: action.id, app: action.app, ok, ...extra });
    },
    tick(...apps: AppSnapshot[]) {
      return step({ kind: 'tick', apps });
    },
  };
}

const disruptive = (r: PlanResult) => r.actions.filter((a) => a.disruptive);
const strategies = (r: PlanResult) => r.actions.map((a) => a.strategy);

describe('strategy map', () => {
  const order = (type: FailureType) => STRATEGY_MAP[type];
  const before = (type: FailureType, first: Strategy, then: ReadonlySet<Strategy>) => {
    const list = order(type);
    const at = list.indexOf(first);
    return at !== -1 && list.every((s, i) => !then.has(s) || i > at);
  };

  it('maps every failure type, each to distinct strategies', () => {
    expect(Object.keys(STRATEGY_MAP).sort()).toEqual([...FAILURE_TYPES].sort());
    for (const type of FAILURE_TYPES) expect(new Set(order(type)).size, type).toBe(order(type).length);
  });

  it('takes a dead, refusing or hung backend out of nginx before anything else', () => {
    for (const type of ['health_check_failed', 'health_check_timeout', 'network_unreachable', 'port_not_listening', 'application_deadlock'] as const) {
      expect(order(type)[0], type).toBe('remove_from_lb');
    }
  });

  it('first halves the traffic of a backend that is slow, erroring or busy, and only that for errors below the threshold', () => {
    for (const type of ['high_response_time', 'high_error_rate', 'high_resource_usage'] as const) {
      expect(order(type)[0], type).toBe('redirect_traffic');
    }
    expect(order('high_error_rate')).toEqual(['redirect_traffic']);
  });

  it('tries the shared dependencies before a per-replica restart for failed checks, and only them for probe errors', () => {
    for (const type of DEPENDENCY_TYPES) expect(before(type, 'restart_dependencies', STOPPING), type).toBe(true);
    expect(order('health_check_error')).toEqual(['restart_dependencies']);
  });

  it('clears the cache before stopping a container for memory', () => {
    for (const type of ['high_resource_usage', 'application_memory_leak'] as const) {
      expect(before(type, 'clear_cache', STOPPING), type).toBe(true);
    }
    expect(order('application_memory_leak')).toContain('rolling_restart');
  });

  it('brings back a container that is gone, and only drains one that Docker already restarts', () => {
    expect(order('container_stopped')[0]).toBe('recreate_container');
    expect(order('container_oom_killed')[0]).toBe('replace_instance');
    expect(order('container_restart_loop')).toEqual(['drain_instance']);
  });

  it.each(['dns_resolution_failed', 'application_startup_failed'] as const)(
    'plans nothing for %s and says why',
    (type) => {
      const d = driver();
      const b = sick(1);
      const r = d.fail(type, b, snapshot([b, replica(2)]));
      expect(r.actions).toEqual([]);
      expect(r.decisions).toEqual([expect.objectContaining({ outcome: 'skipped', reason: `no recovery strategy for ${type}` })]);
    },
  );

  it('walks the strategies in order: remove_from_lb as a no-op, then the first applicable disruptive one', () => {
    const d = driver();
    const b = sick(1);
    const r = d.fail('health_check_failed', b, snapshot([b, replica(2)]));
    expect(strategies(r)).toEqual(['remove_from_lb', 'restart_container']);
    expect(r.actions[0]).toMatchObject({ disruptive: false, reason: 'already ejected by the health stage' });
    expect(r.actions[1]).toMatchObject({
      disruptive: true,
      app: 'web',
      backendId: b.backendId,
      containerId: 'id-1',
      containerName: 'web-1',
      failureType: 'health_check_failed',
      dryRun: false,
      drainFirst: false,
      at: T0,
    });
    expect(r.decisions.map((x) => [x.strategy, x.outcome])).toEqual([
      ['remove_from_lb', 'planned'],
      ['restart_dependencies', 'skipped'],
      ['restart_container', 'planned'],
    ]);
  });

  it('records remove_from_lb once per ejection, and again after the backend was readmitted', () => {
    const d = driver(config({ backoff_min_seconds: 1 }));
    const b = sick(1);
    const first = d.fail('health_check_failed', b, snapshot([b, replica(2)]));
    d.result(first.actions[1]!);
    d.advance(2);
    const again = d.fail('health_check_failed', b, snapshot([b, replica(2)]));
    expect(strategies(again)).toEqual(['restart_container']);
    expect(again.decisions[0]).toMatchObject({ strategy: 'remove_from_lb', outcome: 'skipped' });
    d.tick(snapshot([replica(1), replica(2)]));
    d.advance(2);
    expect(strategies(d.fail('health_check_failed', b, snapshot([b, replica(2)])))).toContain('remove_from_lb');
  });

  it('does not claim remove_from_lb for a backend the health stage has not ejected', () => {
    const d = driver();
    const slow = replica(1);
    const r = d.fail('high_response_time', slow, snapshot([slow, replica(2)]), 1);
    expect(r.actions).toEqual([]);
    expect(r.decisions.find((x) => x.strategy === 'remove_from_lb')).toMatchObject({ outcome: 'skipped', reason: expect.stringContaining('not ejected') });
  });

  it('never restarts on single probe failures of a backend that is still in the upstream', () => {
    const d = driver();
    const b = replica(1, { consecutiveFailures: 1 });
    const r = d.fail('health_check_failed', b, snapshot([b, replica(2)]), 1);
    expect(disruptive(r)).toEqual([]);
    expect(r.decisions.find((x) => x.strategy === 'restart_container')?.reason).toContain('not ejected');
  });

  it('leaves alone a container being stopped or no longer running when only probes fail', () => {
    const d = driver();
    const stopping = sick(1, { draining: true });
    const r = d.fail('port_not_listening', stopping, snapshot([stopping, replica(2)]));
    // Not even the remove_from_lb note: it is out of nginx because it is being stopped.
    expect(r.actions).toEqual([]);
    expect(r.decisions.find((x) => x.strategy === 'remove_from_lb')?.reason).toBe('container is being stopped (draining): not recovered');
    expect(r.decisions.find((x) => x.strategy === 'restart_container')?.reason).toBe('container is being stopped (draining): not recovered');
    const exited = sick(1, { ctr: { state: 'exited', exitCode: 0 } });
    const r2 = d.fail('port_not_listening', exited, snapshot([exited, replica(2)]));
    expect(disruptive(r2)).toEqual([]);
    expect(r2.decisions.find((x) => x.strategy === 'restart_container')?.reason).toBe(
      'container is exited: probe failures act only on running containers',
    );
  });

  it('only remove_from_lb for a backend without a container', () => {
    const d = driver();
    const b = sick(1, { ctr: null });
    const r = d.fail('health_check_failed', b, snapshot([b, replica(2)]));
    expect(strategies(r)).toEqual(['remove_from_lb']);
    expect(r.actions[0]).toMatchObject({ containerId: null });
    expect(r.decisions.find((x) => x.strategy === 'restart_container')?.reason).toContain('no container');
  });
});

describe('the seed\'s rules', () => {
  it('restarts at most max_restarts times in the window, then recreates', () => {
    const d = driver(config({ backoff_min_seconds: 1, backoff_max_seconds: 1 }));
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    const done: string[] = [];
    for (let i = 0; i < 5; i++) {
      const [action] = disruptive(d.fail('health_check_failed', b, app));
      done.push(action!.strategy);
      d.result(action!);
      d.advance(5);
    }
    expect(done).toEqual(['restart_container', 'restart_container', 'restart_container', 'recreate_container', 'recreate_container']);
  });

  it('restarts again once the earlier restarts have left the window', () => {
    const d = driver(config({ backoff_min_seconds: 1, backoff_max_seconds: 1 }));
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    for (let i = 0; i < 3; i++) {
      d.result(disruptive(d.fail('health_check_failed', b, app))[0]!);
      d.advance(5);
    }
    const limited = d.fail('health_check_failed', b, app);
    expect(limited.decisions.find((x) => x.strategy === 'restart_container')?.reason).toBe('restart limit reached: 3 of 3 in 300s');
    d.result(disruptive(limited)[0]!);
    d.advance(300);
    expect(disruptive(d.fail('health_check_failed', b, app))[0]?.strategy).toBe('restart_container');
  });

  it('counts a failed restart toward the limit, as the seed records failed actions', () => {
    const d = driver(config({ backoff_min_seconds: 1, backoff_max_seconds: 1, max_restarts: 1 }));
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    d.result(disruptive(d.fail('health_check_failed', b, app))[0]!, false, { error: 'boom' });
    d.advance(5);
    expect(disruptive(d.fail('health_check_failed', b, app))[0]?.strategy).toBe('recreate_container');
  });

  it('does not recreate before a restart was tried', () => {
    const d = driver();
    const b = sick(1);
    const r = d.fail('network_unreachable', b, snapshot([b, replica(2)]));
    expect(disruptive(r)).toEqual([]);
    expect(r.decisions.find((x) => x.strategy === 'recreate_container')).toMatchObject({
      outcome: 'skipped',
      reason: 'no restart tried in the last 300s: restart first',
    });
  });

  it('recreates a stopped container without a restart first', () => {
    const d = driver();
    const b = sick(1, { ctr: { state: 'exited', exitCode: 137, startedAt: T0 - 5 * S } });
    const r = d.fail('container_stopped', b, snapshot([b, replica(2)]), 1);
    expect(strategies(r)).toEqual(['recreate_container']);
    expect(r.actions[0]!.reason).toContain('container stopped');
  });

  it('scales out only after 2 consecutive failures', () => {
    const d = driver();
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    const once = d.fail('high_response_time', b, app, 1);
    expect(once.decisions.find((x) => x.strategy === 'scale_out')?.reason).toBe('only 1 consecutive failure(s); scale_out needs 2');
    expect(disruptive(once).map((a) => a.strategy)).toEqual(['restart_container']);
    const d2 = driver();
    expect(disruptive(d2.fail('high_response_time', b, app, 2))[0]?.strategy).toBe('scale_out');
  });

  it('scales out at most once per window per app, cloning a healthy replica', () => {
    const d = driver(config({ backoff_min_seconds: 1, backoff_max_seconds: 1 }));
    const slow = sick(1);
    const app = snapshot([slow, replica(2), replica(3)]);
    const first = disruptive(d.fail('high_response_time', slow, app, 2))[0]!;
    expect(first).toMatchObject({ strategy: 'scale_out', containerId: 'id-2', backendId: slow.backendId });
    d.result(first, true, { newContainerId: 'new' });
    d.advance(5);
    const other = sick(3);
    const r = d.fail('high_response_time', other, snapshot([slow, replica(2), other]), 2);
    expect(r.decisions.find((x) => x.strategy === 'scale_out')?.reason).toBe('already scaled out in the last 300s');
    expect(disruptive(r)[0]?.strategy).toBe('restart_container');
    d.advance(300);
    expect(disruptive(d.fail('high_response_time', slow, app, 2))[0]?.strategy).toBe('scale_out');
  });

  it('never scales out above the app\'s max replicas', () => {
    const d = driver();
    const b = sick(1, { ctr: { state: 'exited', oomKilled: true } });
    const r = d.fail('container_oom_killed', b, snapshot([b, replica(2)], { maxReplicas: 2 }), 2);
    expect(strategies(r)).toEqual(['replace_instance']);
    // The new replica takes the old one's place, labels included.
    expect(r.actions[0]!.spawn).toMatchObject({ name: 'web-recovery-1', replica: null, usedPorts: [8001, 8002] });
    // Replace comes first; with it impossible (no container), scale_out meets the cap.
    const bare = sick(1, { ctr: null });
    const r2 = driver().fail('container_oom_killed', bare, snapshot([bare, replica(2)], { maxReplicas: 2 }), 2);
    expect(r2.actions).toEqual([]);
    expect(r2.decisions.find((x) => x.strategy === 'scale_out')?.reason).toBe('at max replicas (2 of 2)');
  });

  it('does not scale out without a healthy running replica to clone', () => {
    const d = driver();
    const b = sick(1);
    const r = d.fail('high_resource_usage', b, snapshot([b, sick(2)]), 2);
    expect(r.decisions.find((x) => x.strategy === 'scale_out')).toMatchObject({ outcome: 'skipped', reason: 'no healthy running replica to clone' });
  });

  it('describes the new replica: name, next replica number, ports in use, port range and env', () => {
    const d = driver();
    const b = sick(1);
    const app = snapshot([b, replica(2), replica(7)], { portRange: [20000, 20010], portEnv: 'APP_PORT' });
    const a = disruptive(d.fail('high_response_time', b, app, 2))[0]!;
    expect(a.spawn).toEqual({
      name: `web-recovery-${a.id.split('-')[1]}`,
      replica: 8,
      portRange: [20000, 20010],
      portEnv: 'APP_PORT',
      usedPorts: [8001, 8002, 8007],
    });
  });
});

describe('safety beyond the seed', () => {
  it('backs off between disruptive actions on one container: doubling, capped, from the end of the last', () => {
    const d = driver(config({ backoff_min_seconds: 10, backoff_max_seconds: 40, max_restarts: 100 }));
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    const waits: number[] = [];
    let action = disruptive(d.fail('health_check_failed', b, app))[0]!;
    for (let i = 0; i < 4; i++) {
      d.advance(3); // the action took 3 s; backoff runs from its result
      d.result(action);
      let waited = 0;
      for (;;) {
        const next = disruptive(d.fail('health_check_failed', b, app))[0];
        if (next) {
          action = next;
          break;
        }
        d.advance(1);
        waited++;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([10, 20, 40, 40]);
    const refused = d.fail('health_check_failed', b, app);
    expect(refused.decisions.at(-1)?.reason).toMatch(/^(backoff|.*in flight)/);
  });

  it('says how long the backoff still holds', () => {
    const d = driver();
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    d.result(disruptive(d.fail('health_check_failed', b, app))[0]!);
    d.advance(4);
    const r = d.fail('health_check_failed', b, app);
    expect(disruptive(r)).toEqual([]);
    expect(r.decisions.at(-1)?.reason).toBe('backoff: no disruptive action on web-1 for 6s more (10s after the last one)');
  });

  it('resets the backoff once the container has been healthy for twice the longest backoff', () => {
    const cfg = config({ backoff_min_seconds: 10, backoff_max_seconds: 60, max_restarts: 100, restart_window_seconds: 60 });
    const d = driver(cfg);
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    for (let i = 0; i < 3; i++) {
      d.result(disruptive(d.fail('health_check_failed', b, app))[0]!);
      d.advance(60);
    }
    expect(d.state.instances['web-1']!.backoffMs).toBe(40_000);
    const healthy = snapshot([replica(1), replica(2)]);
    d.tick(healthy);
    d.advance(119);
    d.tick(healthy);
    expect(d.state.instances['web-1']!.backoffMs).toBe(40_000);
    d.advance(1);
    d.tick(healthy);
    expect(d.state.instances['web-1']!.backoffMs).toBe(0);
  });

  it('keeps one disruptive action in flight per app; other apps are not held up', () => {
    const d = driver();
    const a1 = sick(1);
    const a2 = sick(2);
    const app = snapshot([a1, a2, replica(3), replica(4)]);
    const first = disruptive(d.fail('health_check_failed', a1, app))[0]!;
    const blocked = d.fail('health_check_failed', a2, app);
    expect(disruptive(blocked)).toEqual([]);
    expect(blocked.decisions.at(-1)?.reason).toBe(`restart_container (${first.id}) is in flight for app web: one disruptive action at a time`);

    const api = { ...sick(1), backendId: 'api/127.0.0.1:9001', app: 'api', container: { ...sick(1).container!, id: 'api-id', name: 'api-1' } };
    const apiApp = { ...snapshot([api, { ...replica(2), app: 'api', backendId: 'api/x', container: { ...replica(2).container!, name: 'api-2' } }]), name: 'api' };
    expect(disruptive(d.fail('health_check_failed', api, apiApp))[0]?.app).toBe('api');

    d.result(first);
    expect(disruptive(d.fail('health_check_failed', a2, app))[0]?.containerName).toBe('web-2');
  });

  it('frees an app whose action never reported back after action_timeout_seconds', () => {
    const d = driver();
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    const lost = disruptive(d.fail('health_check_failed', b, app))[0]!;
    d.advance(79);
    expect(d.tick(app).decisions).toEqual([]);
    d.advance(1);
    const t = d.tick(app);
    expect(t.decisions).toEqual([expect.objectContaining({ outcome: 'noted', reason: `no result for action ${lost.id} after 80s: taken as failed` })]);
    expect(d.state.apps.web!.inFlight).toBeNull();
    const late = d.result(lost);
    expect(late.decisions[0]!.reason).toBe(`result of action ${lost.id} ignored: not in flight`);
  });

  it('never acts on more than the allowed share of replicas at once', () => {
    const d = driver(config({ max_unavailable_fraction: 0.5, backoff_min_seconds: 1 }));
    const [r1, r2, r3, r4] = [sick(1), sick(2), sick(3), replica(4)];
    const app = snapshot([r1, r2, r3, r4]); // at most ceil(0.5 x 4) = 2
    d.result(disruptive(d.fail('health_check_failed', r1, app))[0]!);
    d.result(disruptive(d.fail('health_check_failed', r2, app))[0]!);
    const third = d.fail('health_check_failed', r3, app);
    expect(disruptive(third)).toEqual([]);
    expect(third.decisions.find((x) => x.strategy === 'restart_container')?.reason).toBe('would act on 3 of 4 replicas at once (at most 2)');
    // A replica already being recovered can be acted on again.
    d.advance(11);
    expect(disruptive(d.fail('health_check_failed', r1, app))[0]?.containerName).toBe('web-1');
  });

  it('acts on at least one replica even when the share rounds to zero', () => {
    const d = driver(config({ max_unavailable_fraction: 0 }));
    const b = sick(1);
    expect(disruptive(d.fail('health_check_failed', b, snapshot([b, replica(2)])))).toHaveLength(1);
  });

  it('frees the share once a recovered replica is healthy again', () => {
    const d = driver(config({ max_unavailable_fraction: 0.25 }));
    const [r1, r2] = [sick(1), sick(2)];
    d.result(disruptive(d.fail('health_check_failed', r1, snapshot([r1, r2, replica(3), replica(4)])))[0]!);
    expect(disruptive(d.fail('health_check_failed', r2, snapshot([r1, r2, replica(3), replica(4)])))).toEqual([]);
    expect(disruptive(d.fail('health_check_failed', r2, snapshot([replica(1), r2, replica(3), replica(4)])))).toHaveLength(1);
  });

  it('refuses to stop the last healthy replica but restarts one that is already unhealthy', () => {
    const d = driver();
    const busy = replica(1);
    const r = d.fail('high_resource_usage', busy, snapshot([busy, sick(2)]), 1);
    expect(r.actions).toEqual([]);
    expect(r.decisions.map((x) => x.reason)).toEqual([
      'no other healthy replica at full weight to take its traffic',
      'the app declares no clear_cache call',
      'only 1 consecutive failure(s); scale_out needs 2',
      'would leave 0 healthy replica(s), below min_healthy_replicas 1',
      'would leave 0 healthy replica(s), below min_healthy_replicas 1',
      'no applicable strategy among redirect_traffic, clear_cache, scale_out, restart_container, replace_instance',
    ]);
    const only = sick(1);
    expect(disruptive(d.fail('health_check_failed', only, snapshot([only])))[0]?.strategy).toBe('restart_container');
  });

  it('drains a container that still receives traffic before stopping it', () => {
    const d = driver();
    const busy = replica(1);
    const a = disruptive(d.fail('high_resource_usage', busy, snapshot([busy, replica(2)], { maxReplicas: 2 }), 1))[0]!;
    expect(a).toMatchObject({ strategy: 'restart_container', drainFirst: true });
  });

  it("plans nothing for a running container's probe failures inside its startup grace, not even remove_from_lb", () => {
    const d = driver(config({ startup_grace_seconds: 60 }));
    const b = sick(1, { ctr: { startedAt: T0 - 30 * S } });
    const r = d.fail('health_check_failed', b, snapshot([b, replica(2)]));
    expect(r.actions).toEqual([]);
    expect(r.decisions.map((x) => [x.strategy, x.outcome, x.reason])).toEqual([
      [null, 'skipped', 'inside startup grace: started 30s ago (< 60s); probe failures of a starting container are not recovered'],
    ]);
    d.advance(30);
    expect(disruptive(d.fail('health_check_failed', b, snapshot([b, replica(2)])))).toHaveLength(1);
  });

  it('recreates an exited container even if it died inside the startup grace', () => {
    const d = driver();
    const b = sick(1, { ctr: { state: 'exited', startedAt: T0 - 2 * S } });
    expect(strategies(d.fail('container_stopped', b, snapshot([b, replica(2)]), 1))).toEqual(['recreate_container']);
  });

  it('stops at the recovery budget per app until old actions leave the window', () => {
    const d = driver(config({ budget_per_app: 2, budget_window_seconds: 100, backoff_min_seconds: 1, backoff_max_seconds: 1 }));
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    d.result(disruptive(d.fail('health_check_failed', b, app))[0]!);
    d.advance(5);
    d.result(disruptive(d.fail('health_check_failed', b, app))[0]!);
    d.advance(5);
    const r = d.fail('health_check_failed', b, app);
    expect(disruptive(r)).toEqual([]);
    expect(r.decisions.at(-1)?.reason).toBe('recovery budget exhausted: 2 of 2 disruptive actions in 100s');
    d.advance(91);
    expect(disruptive(d.fail('health_check_failed', b, app))).toHaveLength(1);
  });
});

describe('scale-in of replicas recovery added', () => {
  const added = (id: string) =>
    replica(9, { ctr: { id, name: 'web-recovery-2', labels: { 'orchestry.recovery.added': 'true' } } });

  function scaledOut() {
    const d = driver();
    const slow = sick(1);
    const a = disruptive(d.fail('high_response_time', slow, snapshot([slow, replica(2)]), 2))[0]!;
    expect(a.spawn?.name).toBe('web-recovery-2'); // sequence 1 went to the remove_from_lb record
    d.result(a, true, { newContainerId: 'new-id' });
    return d;
  }

  it('removes the added replica, drained first, once every original replica has been healthy long enough', () => {
    const d = scaledOut();
    const healthy = snapshot([replica(1), replica(2), added('new-id')]);
    expect(d.tick(healthy).actions).toEqual([]);
    d.advance(299);
    expect(d.tick(healthy).actions).toEqual([]);
    d.advance(1);
    const r = d.tick(healthy);
    expect(r.actions).toEqual([
      expect.objectContaining({
        strategy: 'scale_in',
        failureType: null,
        containerId: 'new-id',
        containerName: 'web-recovery-2',
        backendId: 'web/127.0.0.1:8009',
        drainFirst: true,
        disruptive: true,
      }),
    ]);
    d.result(r.actions[0]!);
    d.advance(1000);
    expect(d.tick(snapshot([replica(1), replica(2)])).actions).toEqual([]);
    expect(d.state.apps.web!.added).toEqual([]);
  });

  it('waits again from the start when an original replica fails meanwhile', () => {
    const d = scaledOut();
    d.tick(snapshot([replica(1), replica(2), added('new-id')]));
    d.advance(200);
    d.tick(snapshot([sick(1), replica(2), added('new-id')]));
    d.advance(200);
    const healthy = snapshot([replica(1), replica(2), added('new-id')]);
    expect(d.tick(healthy).actions).toEqual([]);
    d.advance(300);
    expect(d.tick(healthy).actions.map((a) => a.strategy)).toEqual(['scale_in']);
  });

  it('does not scale in while an original replica still answers too slowly, though it passes its checks', () => {
    const d = scaledOut();
    const probe = { finishedAt: T0 } as BackendView['lastProbe'];
    const slowFailure = { failureType: 'high_response_time', timestamp: T0 } as BackendView['lastFailure'];
    // Healthy and routed, but its latest probe raised high_response_time: the incident goes on.
    const stillSlow = snapshot([replica(1, { lastProbe: probe, lastFailure: slowFailure }), replica(2), added('new-id')]);
    d.tick(stillSlow);
    d.advance(600);
    expect(d.tick(stillSlow).actions).toEqual([]);
    // Its next probe was fast: now the healthy time counts.
    const fast = snapshot([
      replica(1, { lastProbe: { finishedAt: T0 + 601 * S } as BackendView['lastProbe'], lastFailure: slowFailure }),
      replica(2),
      added('new-id'),
    ]);
    d.tick(fast);
    d.advance(300);
    expect(d.tick(fast).actions.map((a) => a.strategy)).toEqual(['scale_in']);
  });

  it('forgets an added replica that someone else removed', () => {
    const d = scaledOut();
    d.advance(81);
    d.tick(snapshot([replica(1), replica(2)]));
    expect(d.state.apps.web!.added).toEqual([]);
  });

  it('does not scale out for real in dry-run, so there is nothing to scale in', () => {
    const d = driver(config({ mode: 'dry-run' }));
    const slow = sick(1);
    const a = disruptive(d.fail('high_response_time', slow, snapshot([slow, replica(2)]), 2))[0]!;
    expect(a).toMatchObject({ strategy: 'scale_out', dryRun: true });
    d.result(a);
    expect(d.state.apps.web!.added).toEqual([]);
  });
});

describe('modes and state', () => {
  it('dry-run plans exactly what on would, marked dryRun', () => {
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    const on = driver().fail('health_check_failed', b, app);
    const dry = driver(config({ mode: 'dry-run' })).fail('health_check_failed', b, app);
    expect(dry.actions).toEqual(on.actions.map((a) => ({ ...a, dryRun: true })));
    expect(dry.decisions).toEqual(on.decisions);
  });

  it('dry-run keeps the limits, as if every action had been taken', () => {
    const d = driver(config({ mode: 'dry-run' }));
    const b = sick(1);
    const app = snapshot([b, replica(2)]);
    d.result(disruptive(d.fail('health_check_failed', b, app))[0]!);
    expect(disruptive(d.fail('health_check_failed', b, app))).toEqual([]);
  });

  it('off plans nothing and explains nothing', () => {
    const d = driver(config({ mode: 'off' }));
    const b = sick(1);
    const r = d.fail('container_stopped', b, snapshot([b, replica(2)]));
    expect(r.actions).toEqual([]);
    expect(r.decisions).toEqual([]);
    expect(d.tick(snapshot([b, replica(2)])).actions).toEqual([]);
  });

  it('does not mutate the state it is given', () => {
    const state = createPlannerState();
    const before = JSON.stringify(state);
    const b = sick(1);
    plan(state, { kind: 'failure', event: event('health_check_failed', b, 3, T0), backend: b, app: snapshot([b, replica(2)]) }, config(), T0);
    expect(JSON.stringify(state)).toBe(before);
  });

  it('plans the same after a JSON round trip of its state', () => {
    const run = (roundTrip: boolean) => {
      const d = driver(config({ backoff_min_seconds: 1 }));
      const b = sick(1);
      const app = snapshot([b, replica(2), replica(3)]);
      const out: PlannedAction[] = [];
      for (let i = 0; i < 6; i++) {
        const r = d.fail(i % 2 ? 'high_response_time' : 'health_check_failed', b, app, 2);
        out.push(...r.actions);
        const a = disruptive(r)[0];
        if (a) d.result(a, true, { newContainerId: `n${i}` });
        if (roundTrip) d.state = JSON.parse(JSON.stringify(d.state)) as PlannerState;
        d.advance(30);
      }
      return { out, state: d.state };
    };
    const plain = run(false);
    const tripped = run(true);
    expect(tripped.out).toEqual(plain.out);
    expect(tripped.state).toEqual(plain.state);
    expect(plain.out.filter((a) => a.disruptive).length).toBeGreaterThan(3);
  });

  it('forgets containers that are gone once their history has expired', () => {
    const d = driver();
    const b = sick(1);
    d.result(disruptive(d.fail('health_check_failed', b, snapshot([b, replica(2)])))[0]!);
    d.tick(snapshot([replica(2)]));
    expect(d.state.instances['web-1']).toBeDefined();
    d.advance(301);
    d.tick(snapshot([replica(2)]));
    expect(d.state.instances['web-1']).toBeUndefined();
  });

  it('takes startup grace from docker and sizes the action timeout from the stop timeout', () => {
    const cfg = plannerConfig({
      recovery: { ...config(), mode: 'dry-run', stop_timeout_seconds: 15 },
      docker: { startup_grace_seconds: 45 } as Parameters<typeof plannerConfig>[0]['docker'],
    });
    expect(cfg).toMatchObject({ mode: 'dry-run', startup_grace_seconds: 45, action_timeout_seconds: 90 });
  });
});

/** `v` with a probe that started at `at`. */
function probed(v: BackendView, at: number, healthy = true): BackendView {
  const probe: ProbeResult = {
    backendId: v.backendId,
    app: v.app,
    checkType: 'http',
    healthy,
    responseTimeMs: 5,
    statusCode: healthy ? 200 : 503,
    body: null,
    errorClass: null,
    error: null,
    startedAt: at,
    finishedAt: at + 5,
    attempts: 1,
  };
  return { ...v, lastProbe: probe };
}

/** Replica n, ejected for failing its checks, its latest failure of `type` at `at`. */
function failing(n: number, at: number, type: FailureType = 'health_check_failed'): BackendView {
  const v = sick(n);
  return { ...v, lastFailure: event(type, v, 3, at) };
}

const DEPS = { dependencies: ['redis', 'postgres'], clear_cache: null };
const CACHE = { dependencies: [], clear_cache: { method: 'POST' as const, path: '/admin/cache/clear' } };

describe('restart_dependencies', () => {
  it('restarts the declared dependencies, not a replica, when half the replicas fail their checks together', () => {
    const d = driver();
    const [a, b] = [failing(1, T0 - 5 * S), failing(2, T0 - 20 * S, 'health_check_timeout')];
    const app = snapshot([a, b, replica(3), replica(4)], { recovery: DEPS });
    const r = d.fail('health_check_failed', a, app);
    expect(disruptive(r)).toEqual([
      expect.objectContaining({
        strategy: 'restart_dependencies',
        dependencies: ['redis', 'postgres'],
        containerId: null,
        drainFirst: false,
        reason: 'health_check_failed: test; 2 of 4 replicas failing their checks at once (health_check_failed): restarting dependencies redis, postgres (1 of 3 in 300s)',
      }),
    ]);
    expect(d.state.apps.web!.disruptive).toEqual([T0]);
  });

  it('restarts the replica itself when only one of three fails, or the app declares no dependencies', () => {
    const one = failing(1, T0);
    const r = driver().fail('health_check_failed', one, snapshot([one, replica(2), replica(3)], { recovery: DEPS }));
    expect(r.decisions.find((x) => x.strategy === 'restart_dependencies')?.reason).toBe(
      '1 of 3 replica(s) failing their checks: a shared dependency needs at least 2',
    );
    expect(disruptive(r)[0]?.strategy).toBe('restart_container');
    const [a, b] = [failing(1, T0), failing(2, T0)];
    const none = driver().fail('health_check_failed', a, snapshot([a, b]));
    expect(none.decisions.find((x) => x.strategy === 'restart_dependencies')?.reason).toBe(
      'the app declares no dependencies (recovery.dependencies)',
    );
  });

  it('does not count replicas whose failures are old or of another kind', () => {
    const a = failing(1, T0);
    const stale = failing(2, T0 - 61 * S);
    const refused = failing(3, T0, 'port_not_listening');
    const r = driver().fail('health_check_failed', a, snapshot([a, stale, refused], { recovery: DEPS }));
    expect(r.decisions.find((x) => x.strategy === 'restart_dependencies')?.reason).toBe(
      '1 of 3 replica(s) failing their checks: a shared dependency needs at least 2',
    );
  });

  it('restarts them once per backoff, holding replica restarts meanwhile, and hands over to replica restarts at the limit', () => {
    const d = driver(config({ backoff_min_seconds: 10, backoff_max_seconds: 10 }));
    const at = () => [failing(1, d.now), failing(2, d.now)] as const;
    const app = () => snapshot([...at()], { recovery: DEPS });
    const first = disruptive(d.fail('health_check_failed', at()[0], app()))[0]!;
    d.result(first);
    d.advance(5);
    const held = d.fail('health_check_failed', at()[0], app());
    expect(disruptive(held)).toEqual([]);
    expect(held.decisions.at(-1)).toMatchObject({
      strategy: 'restart_dependencies',
      reason: 'dependencies restarted 5s ago: waiting 5s more (backoff) for the app to recover',
    });
    const done: string[] = ['restart_dependencies'];
    for (let i = 0; i < 3; i++) {
      d.advance(11);
      const a = disruptive(d.fail('health_check_failed', at()[0], app()))[0]!;
      done.push(a.strategy);
      d.result(a);
    }
    expect(done).toEqual(['restart_dependencies', 'restart_dependencies', 'restart_dependencies', 'restart_container']);
  });
});

describe('clear_cache', () => {
  it('calls the declared endpoint on the leaking backend first, then restarts the replicas one by one', () => {
    const d = driver(config({ backoff_min_seconds: 1 }));
    const b = replica(1);
    const app = snapshot([b, replica(2), replica(3)], { recovery: CACHE });
    const r = d.fail('application_memory_leak', b, app, 1);
    expect(r.actions).toEqual([
      expect.objectContaining({
        strategy: 'clear_cache',
        disruptive: true,
        drainFirst: false,
        call: { method: 'POST', path: '/admin/cache/clear', host: '127.0.0.1', port: 8001 },
        containerName: 'web-1',
      }),
    ]);
    d.result(r.actions[0]!);
    d.advance(5);
    const again = d.fail('application_memory_leak', b, app, 2);
    expect(again.decisions.find((x) => x.strategy === 'clear_cache')?.reason).toBe('cache already cleared 5s ago: it did not help');
    expect(again.actions.map((a) => [a.strategy, a.containerName])).toEqual([['rolling_restart', 'web-1']]);
  });

  it('clears the cache for high memory usage, not for high CPU', () => {
    const b = replica(1);
    const app = snapshot([b, replica(2)], { recovery: CACHE });
    const memory = driver().fail('high_resource_usage', b, app, 1, { metric: 'memory' });
    expect(disruptive(memory).map((a) => a.strategy)).toEqual(['clear_cache']);
    const cpu = driver().fail('high_resource_usage', b, app, 1, { metric: 'cpu' });
    expect(cpu.decisions.find((x) => x.strategy === 'clear_cache')?.reason).toBe('high cpu usage: clearing a cache frees memory only');
  });

  it('goes straight to the rolling restart when the app declares no call', () => {
    const b = replica(1);
    const r = driver().fail('application_memory_leak', b, snapshot([b, replica(2)]), 1);
    expect(r.decisions[0]).toMatchObject({ strategy: 'clear_cache', outcome: 'skipped', reason: 'the app declares no clear_cache call' });
    expect(disruptive(r)[0]?.strategy).toBe('rolling_restart');
  });
});

describe('rolling_restart', () => {
  /** Drives a rolling restart of web-1..3 to its end, the way main would, and returns what happened. */
  function rollThrough(cfg: PlannerConfig = config({ backoff_min_seconds: 1 })) {
    const d = driver(cfg);
    let replicas = [1, 2, 3].map((n) => probed(replica(n), T0 - S));
    const app = () => snapshot(replicas);
    const planned: PlannedAction[] = [];
    const running: { action: PlannedAction | null } = { action: null };
    let maxDown = 0;
    const take = (r: PlanResult) => {
      for (const a of r.actions) {
        planned.push(a);
        running.action = a;
      }
    };
    take(d.fail('application_memory_leak', replicas[1]!, app(), 1));
    for (let i = 0; i < 40 && (d.state.apps.web?.rolling ?? null) !== null; i++) {
      d.advance(1);
      const a = running.action;
      if (a) {
        // The replica is down while restarting, then probed healthy a second later.
        replicas = replicas.map((v) => (v.backendId === a.backendId ? { ...v, health: 'unknown', ejected: true } : v));
        maxDown = Math.max(maxDown, replicas.filter((v) => v.ejected).length);
        d.result(a);
        running.action = null;
        d.advance(1);
        replicas = replicas.map((v) => (v.backendId === a.backendId ? probed(replica(Number(v.backendId.slice(-1)), { ctr: { startedAt: d.now } }), d.now) : v));
      }
      take(d.tick(app()));
    }
    return { d, planned, maxDown };
  }

  it('restarts every replica once, the leaking one first, one at a time, each healthy again before the next', () => {
    const { d, planned, maxDown } = rollThrough();
    expect(planned.map((a) => [a.strategy, a.containerName, a.drainFirst, a.disruptive])).toEqual([
      ['rolling_restart', 'web-2', true, true],
      ['rolling_restart', 'web-1', true, true],
      ['rolling_restart', 'web-3', true, true],
    ]);
    expect(planned[0]!.reason).toBe(
      'application_memory_leak: test; restarting 3 replica(s) one at a time, each drained first and healthy again before the next: web-2 (1 of 3)',
    );
    expect(maxDown).toBe(1);
    expect(d.state.apps.web!.rolling).toBeNull();
  });

  it('waits for a probe after the restart: the health state from before it does not count', () => {
    const d = driver(config({ backoff_min_seconds: 1 }));
    const replicas = [1, 2, 3].map((n) => probed(replica(n), T0 - S));
    const first = d.fail('application_memory_leak', replicas[0]!, snapshot(replicas), 1).actions[0]!;
    d.advance(2);
    d.result(first);
    d.advance(2);
    expect(d.tick(snapshot(replicas)).actions).toEqual([]);
    const after = [probed(replicas[0]!, d.now), replicas[1]!, replicas[2]!];
    const next = d.tick(snapshot(after));
    expect(next.actions.map((a) => a.containerName)).toEqual(['web-2']);
    expect(next.decisions[0]!.reason).toBe('web-1 healthy again after its restart');
  });

  it('abandons the rolling restart when a restart fails or the replica does not come back in time', () => {
    const replicas = [1, 2, 3].map((n) => probed(replica(n), T0 - S));
    const d = driver(config({ backoff_min_seconds: 1 }));
    const first = d.fail('application_memory_leak', replicas[0]!, snapshot(replicas), 1).actions[0]!;
    const failed = d.result(first, false, { error: 'boom' });
    expect(failed.decisions.at(-1)!.reason).toBe('restarting web-1 failed: rolling restart abandoned (0 restarted, 2 left)');
    expect(d.state.apps.web!.rolling).toBeNull();

    const slow = driver(config({ backoff_min_seconds: 1 }));
    const a = slow.fail('application_memory_leak', replicas[0]!, snapshot(replicas), 1).actions[0]!;
    slow.result(a);
    slow.advance(140);
    expect(slow.tick(snapshot(replicas)).decisions).toEqual([]);
    slow.advance(1);
    const gaveUp = slow.tick(snapshot(replicas));
    expect(gaveUp.actions).toEqual([]);
    expect(gaveUp.decisions.at(-1)!.reason).toBe('web-1 not healthy 141s after its restart: rolling restart abandoned (0 restarted, 2 left)');
  });

  it('resumes from its persisted state, and abandons a step whose restart never reported back', () => {
    const replicas = [1, 2, 3].map((n) => probed(replica(n), T0 - S));
    const d = driver(config({ backoff_min_seconds: 1 }));
    const first = d.fail('application_memory_leak', replicas[0]!, snapshot(replicas), 1).actions[0]!;
    d.result(first);
    d.advance(3);
    d.state = JSON.parse(JSON.stringify(d.state)) as PlannerState;
    const resumed = d.tick(snapshot([probed(replicas[0]!, d.now), replicas[1]!, replicas[2]!]));
    expect(resumed.actions.map((a) => a.containerName)).toEqual(['web-2']);

    d.state = JSON.parse(JSON.stringify(d.state)) as PlannerState;
    d.advance(80);
    const lost = d.tick(snapshot(replicas));
    expect(lost.decisions.map((x) => x.reason)).toEqual([
      `no result for action ${resumed.actions[0]!.id} after 80s: taken as failed`,
      "web-2's restart never reported back: rolling restart abandoned (1 restarted, 1 left)",
    ]);
    expect(lost.actions).toEqual([]);
  });

  it('waits while another replica is unhealthy (min healthy, max unavailable) and goes on once it is back', () => {
    const d = driver(config({ backoff_min_seconds: 1, min_healthy_replicas: 2 }));
    const replicas = [1, 2, 3].map((n) => probed(replica(n), T0 - S));
    const down = [replicas[0]!, sick(2), replicas[2]!];
    const r = d.fail('application_memory_leak', replicas[0]!, snapshot(down), 1);
    expect(r.actions).toEqual([]);
    expect(r.decisions.at(-1)!.reason).toBe('next: web-1; waiting: would leave 1 healthy replica(s), below min_healthy_replicas 2');
    d.advance(5);
    expect(d.tick(snapshot(replicas)).actions.map((a) => a.containerName)).toEqual(['web-1']);
  });

  it('skips replicas started since it began and refuses a second one in the same window or for a lone replica', () => {
    const d = driver(config({ backoff_min_seconds: 1 }));
    const replicas = [1, 2].map((n) => probed(replica(n), T0 - S));
    const first = d.fail('application_memory_leak', replicas[0]!, snapshot(replicas), 1).actions[0]!;
    d.result(first);
    d.advance(2);
    const fresh = probed(replica(2, { ctr: { startedAt: T0 + S } }), d.now);
    const end = d.tick(snapshot([probed(replicas[0]!, d.now), fresh]));
    expect(end.decisions.map((x) => x.reason)).toEqual([
      'web-1 healthy again after its restart',
      'web-2 skipped: started since the rolling restart began',
      'rolling restart complete: 1 replica(s) restarted',
    ]);
    d.advance(10);
    const again = d.fail('application_memory_leak', replicas[0]!, snapshot(replicas), 1);
    expect(again.decisions.find((x) => x.strategy === 'rolling_restart')!.reason).toBe('a rolling restart began 12s ago (at most one per 300s)');
    const lone = replicas[0]!;
    const single = driver().fail('application_memory_leak', lone, snapshot([lone]), 1);
    expect(single.decisions.at(-1)!.reason).toBe('no applicable strategy among clear_cache, rolling_restart');
    expect(single.decisions.find((x) => x.strategy === 'rolling_restart')!.reason).toBe(
      '1 replica(s): restarting one would go below min_healthy_replicas 1',
    );
  });
});

describe('redirect_traffic', () => {
  it('halves the share of a slow but healthy backend after 2 slow probes, and says so in the traffic holds', () => {
    const d = driver();
    const slow = replica(1);
    const app = snapshot([slow, replica(2)]);
    const once = d.fail('high_response_time', slow, app, 1);
    expect(once.decisions[0]).toMatchObject({ strategy: 'redirect_traffic', reason: 'only 1 consecutive slow probe(s); redirect_traffic needs 2' });
    const r = d.fail('high_response_time', slow, app, 2);
    expect(r.actions[0]).toMatchObject({
      strategy: 'redirect_traffic',
      disruptive: false,
      backendId: slow.backendId,
      reason: 'high_response_time: test; weight 1 lowered to 50% of its share (1 other replica(s) take the rest) until no such failure for 300s',
    });
    expect(trafficHolds(d.state).weightFactors).toEqual(new Map([[slow.backendId, 0.5]]));
    const again = d.fail('high_response_time', slow, app, 3);
    expect(again.actions.filter((a) => a.strategy === 'redirect_traffic')).toEqual([]);
  });

  it('restores the weight once the backend has been fast for scale_in_after_seconds, counted from its last slow probe', () => {
    const d = driver();
    const slow = replica(1);
    const app = snapshot([slow, replica(2)]);
    d.fail('high_error_rate', slow, app, 1);
    d.advance(200);
    d.fail('high_error_rate', slow, app, 1);
    d.advance(299);
    expect(d.tick(app).actions).toEqual([]);
    d.advance(1);
    const r = d.tick(app);
    expect(r.actions).toEqual([
      expect.objectContaining({
        strategy: 'restore_traffic',
        failureType: null,
        disruptive: false,
        reason: 'no slow, erroring or overloaded signal for 300s: back to its configured weight 1',
      }),
    ]);
    expect(trafficHolds(d.state).weightFactors.size).toBe(0);
  });

  it('restores the weight when the backend is readmitted after an ejection', () => {
    const d = driver();
    const slow = replica(1);
    d.fail('high_response_time', slow, snapshot([slow, replica(2)]), 2);
    expect(d.tick(snapshot([sick(1), replica(2)])).actions).toEqual([]);
    const r = d.tick(snapshot([slow, replica(2)]));
    expect(r.actions.map((a) => [a.strategy, a.reason])).toEqual([
      ['restore_traffic', 'readmitted after an ejection: back to its configured weight 1'],
    ]);
  });

  it('does not redirect when no other healthy replica at full weight can take the traffic', () => {
    const slow = replica(1);
    const r = driver().fail('high_error_rate', slow, snapshot([slow, sick(2)]), 1);
    expect(r.actions).toEqual([]);
    expect(r.decisions[0]!.reason).toBe('no other healthy replica at full weight to take its traffic');
  });

  it('records a dry-run redirect without handing it to nginx', () => {
    const d = driver(config({ mode: 'dry-run' }));
    const slow = replica(1);
    const r = d.fail('high_error_rate', slow, snapshot([slow, replica(2)]), 1);
    expect(r.actions[0]).toMatchObject({ strategy: 'redirect_traffic', dryRun: true });
    expect(trafficHolds(d.state).weightFactors.size).toBe(0);
  });
});

describe('drain_instance', () => {
  it('holds a container in a restart loop out of nginx until it has run healthy for the startup grace without a restart', () => {
    const d = driver();
    const looping = replica(1, { ctr: { restartCount: 4 } });
    const app = (v: BackendView) => snapshot([v, replica(2), replica(3)]);
    const r = d.fail('container_restart_loop', looping, app(looping), 1);
    expect(r.actions).toEqual([
      expect.objectContaining({
        strategy: 'drain_instance',
        disruptive: false,
        containerId: 'id-1',
        reason: 'container_restart_loop: test; held out of nginx, still probed, until it has run 60s healthy without a restart (Docker\'s restart policy restarts it)',
      }),
    ]);
    expect(trafficHolds(d.state).drainedContainerIds).toEqual(new Set(['id-1']));
    expect(d.fail('container_restart_loop', looping, app(looping), 2).actions).toEqual([]);

    const drained = (restarts: number) => probed({ ...looping, ejected: true, draining: true, container: { ...looping.container!, restartCount: restarts } }, d.now);
    d.tick(app(drained(4)));
    d.advance(50);
    d.tick(app(drained(5)));
    d.advance(59);
    expect(d.tick(app(drained(5))).actions).toEqual([]);
    d.advance(1);
    const released = d.tick(app(drained(5)));
    expect(released.actions).toEqual([
      expect.objectContaining({ strategy: 'undrain_instance', failureType: null, reason: 'healthy without a restart for 60s: back in nginx' }),
    ]);
    expect(trafficHolds(d.state).drainedContainerIds.size).toBe(0);
  });

  it('does not drain the last healthy replica', () => {
    const looping = replica(1);
    const r = driver().fail('container_restart_loop', looping, snapshot([looping, sick(2)]), 1);
    expect(r.actions).toEqual([]);
    expect(r.decisions[0]!.reason).toBe('would leave 0 healthy replica(s), below min_healthy_replicas 1');
  });
});

describe('application_deadlock and high_error_rate', () => {
  it('takes a deadlocked replica out of nginx before restarting it', () => {
    const stuck = replica(1);
    const r = driver().fail('application_deadlock', stuck, snapshot([stuck, replica(2)]), 1);
    expect(r.actions.map((a) => [a.strategy, a.drainFirst])).toEqual([['restart_container', true]]);
    const ejected = sick(1);
    const r2 = driver().fail('application_deadlock', ejected, snapshot([ejected, replica(2)]), 1);
    expect(r2.actions.map((a) => [a.strategy, a.drainFirst])).toEqual([['remove_from_lb', false], ['restart_container', false]]);
  });

  it('answers a high error rate with a lower weight only, never a restart', () => {
    const flaky = replica(1);
    const r = driver().fail('high_error_rate', flaky, snapshot([flaky, replica(2)]), 5);
    expect(r.actions.map((a) => a.strategy)).toEqual(['redirect_traffic']);
  });
});

describe('planner state', () => {
  it('reads a state persisted before traffic holds and rolling restarts existed', () => {
    const old = { seq: 3, instances: {}, apps: { web: { inFlight: null, disruptive: [], scaleOuts: [], added: [], healthySince: null } } };
    const b = replica(1);
    const r = plan(old as unknown as PlannerState, { kind: 'failure', event: event('high_error_rate', b, 1, T0), backend: b, app: snapshot([b, replica(2)]) }, config(), T0);
    expect(r.actions.map((a) => a.id)).toEqual([`${T0}-4`]);
    expect(r.state.apps.web).toMatchObject({ rolling: null, lastRollingAt: null });
    expect(trafficHolds(r.state).weightFactors.get(b.backendId)).toBe(0.5);
  });
});

describe('planner state across restarts', () => {
  it('restores a JSON round-tripped state as it was, and rejects a malformed one', () => {
    const state = createPlannerState();
    state.seq = 7;
    const saved = JSON.parse(JSON.stringify(state));
    expect(restorePlannerState(saved)).toEqual(state);
    expect(restorePlannerState(null)).toBeNull();
    expect(restorePlannerState({ ...saved, seq: 'x' })).toBeNull();
    expect(restorePlannerState({ ...saved, instances: { a: { app: 'web', actions: 'no', backoffMs: 0, notBefore: 0 } } })).toBeNull();
    expect(restorePlannerState({ ...saved, redirects: { b: { app: 'web', factor: 5 } } })).toBeNull();
  });

  it('reads a state saved before redirects, drains and rolling restarts existed', () => {
    const old = { seq: 3, instances: {}, apps: { web: { inFlight: null, disruptive: [1], scaleOuts: [], added: [], healthySince: null } } };
    const restored = restorePlannerState(old)!;
    expect(restored.redirects).toEqual({});
    expect(restored.drains).toEqual({});
    expect(restored.apps.web).toMatchObject({ disruptive: [1], rolling: null, lastRollingAt: null });
  });
});

describe('recovery summary', () => {
  it('shows the budget used, the backoff and what is in flight, then the backoff ending', () => {
    const d = driver(config({ budget_per_app: 2 }));
    const app = snapshot([sick(1), replica(2)]);
    const r = d.fail('health_check_failed', sick(1), app);
    const restart = r.actions.find((a) => a.strategy === 'restart_container')!;
    expect(restart).toBeDefined();
    const during = summarize(d.state, config({ budget_per_app: 2 }), d.now);
    expect(during.apps).toEqual([
      { app: 'web', budget_used: 1, budget: 2, in_flight: { strategy: 'restart_container', since: new Date(T0).toISOString() }, added_replicas: [], rolling_restart: null },
    ]);
    d.result(restart);
    const after = summarize(d.state, config({ budget_per_app: 2 }), d.now);
    expect(after.apps[0]!.in_flight).toBeNull();
    expect(after.instances).toEqual([
      { instance: 'web-1', app: 'web', actions_in_window: 1, backoff_seconds: 10, not_before: new Date(T0 + 10 * S).toISOString() },
    ]);
    d.advance(11);
    expect(summarize(d.state, config({ budget_per_app: 2 }), d.now).instances[0]!.not_before).toBeNull();
  });
});

describe('Swarm tasks: recovery through the service, naming service and task', () => {
  /** Task `web.<slot>` of service `web` (version 7): no container, a TaskRef instead. */
  function task(slot: number, over: ReplicaOver & { taskState?: string } = {}): BackendView {
    const { taskState, ...rest } = over;
    return replica(slot, {
      ctr: null,
      task: {
        id: `task-${slot}`,
        name: `web.${slot}`,
        serviceId: 'svc-web',
        serviceName: 'web',
        serviceVersion: 7,
        slot,
        nodeId: 'node-1',
        nodeName: 'vm',
        nodeAddress: '127.0.0.1',
        containerId: `ctr-${slot}`,
        image: 'app:1',
        state: taskState ?? 'running',
        desiredState: 'running',
        since: T0 - 3600 * S,
        labels: {},
      },
      ...rest,
    });
  }
  const sickTask = (slot: number) => task(slot, { health: 'unhealthy', ejected: true });
  const target = { id: 'task-1', name: 'web.1', serviceId: 'svc-web', serviceName: 'web', serviceVersion: 7, nodeId: 'node-1', containerId: 'ctr-1' };

  it('restarts a task that fails its checks: an action on the task, keyed by its name, no container', () => {
    const d = driver();
    const b = sickTask(1);
    const [a] = disruptive(d.fail('health_check_failed', b, snapshot([b, task(2)])));
    expect(a).toMatchObject({ strategy: 'restart_container', containerId: null, containerName: 'web.1', task: target, backendId: b.backendId });
    expect(Object.keys(d.state.instances)).toContain('web.1');
  });

  it('leaves a task inside its startup grace alone, as a container', () => {
    const d = driver();
    const b = task(1, { health: 'unhealthy', ejected: true, task: { ...sickTask(1).task!, since: T0 - 10 * S } });
    const r = d.fail('health_check_failed', b, snapshot([b, task(2)]));
    expect(r.actions).toEqual([]);
    expect(r.decisions.map((x) => [x.strategy, x.reason])).toEqual([
      [null, 'inside startup grace: started 10s ago (< 60s); probe failures of a starting container are not recovered'],
    ]);
  });

  it("scales out by the service's replica count, the new task named for the next slot, then scales in the same way", () => {
    const d = driver();
    const slow = sickTask(1);
    const [out] = disruptive(d.fail('high_response_time', slow, snapshot([slow, task(2)]), 2));
    expect(out).toMatchObject({ strategy: 'scale_out', task: { ...target, id: 'task-2', name: 'web.2', containerId: 'ctr-2' } });
    expect(out!.spawn?.name).toBe('web.3');
    expect(out!.reason).toContain('one more replica of service web (3 of at most 5 replicas)');
    d.result(out!);
    const healthy = snapshot([task(1), task(2), task(3)]);
    d.tick(healthy);
    d.advance(300);
    const [inn] = d.tick(healthy).actions;
    expect(inn).toMatchObject({ strategy: 'scale_in', containerName: 'web.3', drainFirst: false, task: { name: 'web.3', serviceId: 'svc-web' } });
    expect(inn!.reason).toContain('one replica fewer for service web');
  });
});
