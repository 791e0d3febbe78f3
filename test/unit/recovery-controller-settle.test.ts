/**
 * The recovery controller waits DOCKER_SETTLE_MS (1 s) before it plans a container's probe
 * failure: a `docker kill` fails the probes at once, and Docker's event saying the container is
 * being stopped on purpose can come after them. Driven through the real bus, health registry,
 * config defaults and planner, on a manual clock; recovery.mode is dry-run, so planned actions
 * show on the bus ('action-started') and the executor touches no container.
 */
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { createSidecarBus } from '../../src/events/sidecar-events.js';
import type { FailureType } from '../../src/health/types.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { createLogger } from '../../src/observability/logger.js';
import { createRecoveryController } from '../../src/recovery/controller.js';
import { createPlannerState } from '../../src/recovery/planner-state.js';
import type { PlannedAction } from '../../src/recovery/types.js';
import { backend, configOf, containerRef, failureEvent, probeResult } from '../helpers/fixtures.js';

function rig(opts: { stopReason?: () => Promise<string | null> } = {}) {
  const clock = createManualClock(0);
  const config = configOf({ apps: { web: {} }, recovery: { mode: 'dry-run' } });
  const busErrors: unknown[] = [];
  const bus = createSidecarBus((_name, err) => busErrors.push(err));
  const registry = createHealthRegistry({ clock, breaker: config.breaker, detection: config.failure_detection });
  // Started an hour before: out of its startup grace, where probe failures are not recovered.
  const b = backend({ container: containerRef({ startedAt: -3_600_000 }) });
  registry.sync([b]);
  // Ejected by its own probes: the planner acts on probe failures only once a backend is out.
  for (let i = 0; i < 3; i++) registry.record(probeResult({ healthy: false, statusCode: 500, errorClass: 'unexpected_status', error: 'HTTP 500' }));
  expect(registry.isEjected(b.id)).toBe(true);

  // Dry-run never calls Docker; any property read would be a call, so it is recorded and throws
  // (docker-actions turns throws into failed records, so `done` checks the record too).
  const dockerTouched: string[] = [];
  const docker = new Proxy({}, {
    get: (_t, prop) => {
      dockerTouched.push(String(prop));
      throw new Error(`unit test: recovery touched Docker (docker.${String(prop)})`);
    },
  }) as Dockerode;

  // Each planner decision is logged at debug: the count of planning passes, and what each saw.
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  const decisions = () =>
    lines.map((l) => JSON.parse(l) as { msg: string; backendId?: string; strategy?: string; failureType?: string })
      .filter((d) => d.msg === 'recovery decision' && d.backendId === b.id);

  const started: PlannedAction[] = [];
  bus.on('action-started', (a) => started.push(a));
  let holdsApplied = 0;
  // What the Engine is asked before a plan (in the daemon: containerStopReason).
  const asked: [string, number][] = [];
  const controller = createRecoveryController({
    clock, bus, registry, logger, docker, config: () => config, apps: () => config.apps, restored: createPlannerState(),
    applyHolds: async () => void holdsApplied++,
    stopReason: (id, since) => (asked.push([id, since]), (opts.stopReason ?? (async () => null))()),
  });

  const fail = (failureType: FailureType, message: string) =>
    bus.emit('failure', { event: failureEvent({ failureType, message, timestamp: clock.now() }), view: registry.view(b.id) });

  /** Lets the Engine's answer and dry-run results come back (no time passes on the clock). */
  const flush = () => new Promise((resolve) => setImmediate(resolve));
  /** flush(), then checks nothing went wrong. */
  async function done() {
    await flush();
    expect(dockerTouched).toEqual([]);
    expect(busErrors).toEqual([]);
    expect(holdsApplied).toBe(0);
    await controller.stop();
  }
  return { clock, registry, b, controller, started, decisions, fail, flush, asked, done };
}

describe("recovery waits a second for Docker before planning a container's probe failure", () => {
  it("plans a container's probe failure only after Docker had a second to say it was stopped on purpose", async () => {
    const r = rig();
    const before = r.controller.state();
    r.fail('health_check_failed', 'HTTP 500 from /health');
    r.clock.advance(999);
    expect(r.started).toEqual([]);
    expect(r.decisions()).toEqual([]);
    expect(r.controller.state()).toEqual(before);

    r.clock.advance(1);
    await r.flush();
    expect(r.asked).toEqual([[r.b.container!.id, r.b.container!.startedAt]]);
    expect(r.started.map((a) => [a.strategy, a.failureType, a.backendId, a.dryRun])).toEqual([
      ['remove_from_lb', 'health_check_failed', r.b.id, true],
      ['restart_container', 'health_check_failed', r.b.id, true],
    ]);
    expect(r.controller.state()).not.toEqual(before);
    await r.done();
  });

  it('plans a burst of probe failures once, a second after the first, with the latest of them', async () => {
    const r = rig();
    r.fail('health_check_failed', 'HTTP 500 from /health');
    r.clock.advance(400);
    r.fail('health_check_timeout', 'no answer within 5s');
    // The later failure does not restart the wait: it counts from the first.
    r.clock.advance(599);
    expect(r.started).toEqual([]);
    r.clock.advance(1);
    await r.flush();
    expect(r.started.map((a) => [a.strategy, a.failureType])).toEqual([['remove_from_lb', 'health_check_timeout'], ['restart_container', 'health_check_timeout']]);

    r.clock.advance(10_000);
    await r.flush();
    // One planning pass decides remove_from_lb once; a second pass would decide it again (skipped).
    expect(r.decisions().filter((d) => d.strategy === 'remove_from_lb')).toHaveLength(1);
    expect(new Set(r.decisions().map((d) => d.failureType))).toEqual(new Set(['health_check_timeout']));
    expect(r.started).toHaveLength(2);
    await r.done();
  });

  it('plans nothing when the backend left the registry while Docker settled (removed with its container)', async () => {
    const r = rig();
    const before = r.controller.state();
    r.fail('health_check_failed', 'HTTP 500 from /health');
    r.clock.advance(500);
    r.registry.sync([]);
    r.clock.advance(10_000);
    await r.flush();
    expect(r.started).toEqual([]);
    expect(r.asked).toEqual([]);
    expect(r.decisions()).toEqual([]);
    expect(r.controller.state()).toEqual(before);
    await r.done();
  });

  it("plans nothing for a container the Engine says is stopped or being stopped, while the source's events are still on their way", async () => {
    const r = rig({ stopReason: async () => 'the container is exited' });
    const before = r.controller.state();
    r.fail('port_not_listening', 'connect ECONNREFUSED 127.0.0.1:8001');
    r.clock.advance(1000);
    await r.flush();
    r.clock.advance(10_000);
    await r.flush();
    expect(r.asked).toEqual([[r.b.container!.id, r.b.container!.startedAt]]);
    expect(r.started).toEqual([]);
    expect(r.decisions()).toEqual([]);
    expect(r.controller.state()).toEqual(before);
    await r.done();
  });

  it('asks the Engine only when the plan would do something', async () => {
    const r = rig();
    r.fail('health_check_failed', 'HTTP 500 from /health');
    r.clock.advance(1000);
    await r.flush();
    expect(r.started).toHaveLength(2);
    // The same failure again: remove_from_lb is noted already and the restart is in flight, so
    // the plan does nothing and Docker is not asked (an ejected backend fails every 0.25 s).
    for (let i = 0; i < 5; i++) {
      r.fail('health_check_failed', 'HTTP 500 from /health');
      r.clock.advance(1000);
      await r.flush();
    }
    expect(r.asked).toHaveLength(1);
    expect(r.started).toHaveLength(2);
    expect(r.decisions().length).toBeGreaterThan(2);
    await r.done();
  });

  it('plans as before when the Engine cannot be asked', async () => {
    const r = rig({ stopReason: async () => Promise.reject(new Error('connect ENOENT /var/run/docker.sock')) });
    r.fail('health_check_failed', 'HTTP 500 from /health');
    r.clock.advance(1000);
    await r.flush();
    expect(r.started.map((a) => [a.strategy, a.failureType])).toEqual([['remove_from_lb', 'health_check_failed'], ['restart_container', 'health_check_failed']]);
    await r.done();
  });
});
