/**
 * Recovery through the orchestrator (src/recovery/swarm-actions.ts) against a real two-node
 * swarm of private dockerd processes (test/helpers/swarm.ts): a scale is a service update that
 * carries the version index the service was discovered at, and the manager refuses a stale one;
 * several actors racing on the same view scale once; a task's restart is the removal of its
 * container, after which Swarm starts a replacement in the same slot. Task targets come from the
 * Swarm source itself (real discovery), as the planner gets them.
 */
import { beforeEach, describe, expect, test } from 'vitest';
import { createSystemClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/schema.js';
import { createSwarmSource } from '../../src/discovery/swarm-source.js';
import type { Backend, Snapshot } from '../../src/model.js';
import { taskTarget } from '../../src/recovery/planner-state.js';
import { createSwarmActions } from '../../src/recovery/swarm-actions.js';
import type { TaskTarget } from '../../src/recovery/types.js';
import { backendView } from '../helpers/fixtures.js';
import type { PrivateSwarm } from '../helpers/swarm.js';
import { createAppService, runningTasks, serviceTasks } from '../helpers/swarm-services.js';
import { swarmForThisFile } from '../helpers/swarm-stack.js';
import { waitFor } from '../helpers/wait.js';

const getSwarm = swarmForThisFile();
let swarm: PrivateSwarm;
beforeEach(() => {
  swarm = getSwarm();
});

/** The task targets of `app` as the Swarm source discovers them once `count` tasks are listed. */
async function discover(app: string, count: number): Promise<TaskTarget[]> {
  const result = parseConfig({ apps: { unrelated: {} }, docker: { enabled: true, swarm: true } });
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  const config = result.config;
  let latest: Snapshot | null = null;
  const source = createSwarmSource({ docker: swarm.manager, config: () => config, clock: createSystemClock() });
  await source.start((s) => void (latest = s));
  try {
    const backends = await waitFor(() => {
      const mine = (latest?.backends ?? []).filter((b: Backend) => b.app === app);
      return mine.length === count ? mine : null;
    }, { what: `${count} backends of ${app}` });
    return backends.map((b) => taskTarget(backendView({ task: b.task! }))!);
  } finally {
    await source.stop();
  }
}

async function replicas(service: string): Promise<{ replicas: number; version: number }> {
  const info = (await swarm.manager.getService(service).inspect()) as { Version: { Index: number }; Spec: { Mode: { Replicated: { Replicas: number } } } };
  return { replicas: info.Spec.Mode.Replicated.Replicas, version: info.Version.Index };
}

describe('scale through a service update carrying the version index', () => {
  test('scales out and in at the version it was discovered at; the manager refuses a stale version', async () => {
    const svc = await createAppService(swarm, { name: 'rec-scale', app: 'recscale', replicas: 2 });
    await runningTasks(swarm, svc.id, 2);
    const [task] = await discover('recscale', 2);
    const actions = createSwarmActions({ docker: swarm.manager });
    expect(await actions.scale(task!, 1)).toMatchObject({ ok: true });
    expect((await replicas(svc.id)).replicas).toBe(3);
    await runningTasks(swarm, svc.id, 3);

    // The same (now stale) view again: refused, nothing changed.
    const stale = await actions.scale(task!, 1);
    expect(stale.ok).toBe(false);
    expect(stale.error).toMatch(new RegExp(`^service rec-scale changed since version ${task!.serviceVersion} was read \\(the manager refused the update: .*out of sequence.*\\): not scaled$`));
    expect((await replicas(svc.id)).replicas).toBe(3);

    const [fresh] = await discover('recscale', 3);
    expect(fresh!.serviceVersion).toBeGreaterThan(task!.serviceVersion);
    expect(await actions.scale(fresh!, -1)).toMatchObject({ ok: true });
    await runningTasks(swarm, svc.id, 2);
  });

  test('actors racing on the same view scale the service exactly once, every time', async () => {
    const svc = await createAppService(swarm, { name: 'rec-race', app: 'recrace', replicas: 1 });
    await runningTasks(swarm, svc.id, 1);
    const rounds = 5;
    const actors = 3;
    for (let round = 0; round < rounds; round++) {
      const [task] = await discover('recrace', 1 + round);
      // Separate actors (as separate sidecars would be), each with its own connection.
      const results = await Promise.all(
        Array.from({ length: actors }, () => createSwarmActions({ docker: swarm.manager }).scale(task!, 1)),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      for (const r of results.filter((x) => !x.ok)) expect(r.error).toMatch(/changed since version \d+ was read/);
      expect((await replicas(svc.id)).replicas).toBe(2 + round);
      await runningTasks(swarm, svc.id, 2 + round);
    }
  });
});

describe('restart of a task: remove its container so that Swarm replaces it', () => {
  test("a task on the sidecar's node is replaced by Swarm in its slot; a second removal of it finds it gone; a task on another node is refused", async () => {
    const svc = await createAppService(swarm, { name: 'rec-restart', app: 'recrestart', replicas: 2 });
    await runningTasks(swarm, svc.id, 2);
    const targets = await discover('recrestart', 2);
    const manager = swarm.nodes[0]!;
    const local = targets.find((t) => t.nodeId === manager.nodeId);
    const remote = targets.find((t) => t.nodeId !== manager.nodeId);
    expect(local && remote, 'one task on each node').toBeTruthy();
    const actions = createSwarmActions({ docker: manager.docker });

    const t0 = Date.now();
    const [first, second] = await Promise.all([actions.replaceTask(local!), createSwarmActions({ docker: manager.docker }).replaceTask(local!)]);
    expect([first!.ok, second!.ok].sort()).toEqual([false, true]);
    const loser = first!.ok ? second! : first!;
    expect(loser.error).toMatch(/already gone|removal of container .* is already in progress|No such container/i);
    const replacement = await waitFor(
      async () => (await runningTasks(swarm, svc.id, 2)).find((t) => t.Slot === Number(local!.name.split('.')[1]) && t.ID !== local!.id),
      { what: 'the replacement task running', timeoutMs: 30_000 },
    );
    console.log(`task ${local!.name} removed: Swarm ran its replacement ${replacement.ID} after ${Date.now() - t0} ms`);
    const old = (await serviceTasks(swarm, svc.id)).find((t) => t.ID === local!.id);
    expect(old?.DesiredState).toBe('shutdown');

    const refused = await actions.replaceTask(remote!);
    expect(refused).toMatchObject({
      ok: false,
      error: `task ${remote!.name} runs on node ${remote!.nodeId}, not this sidecar's node ${manager.nodeId}: only that node's Engine can remove its container`,
    });
  });
});
