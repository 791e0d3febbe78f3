/**
 * Recovery of a Swarm task end to end, every part real: a two-node swarm of private dockerd
 * processes, a service of the test app (host networking, 127.0.0.1:<prefix><slot>), the built
 * CLI with `docker.swarm: true` and `recovery.mode: on` on the manager's socket, and a private
 * nginx 1.22 in front. A task that keeps running but fails its health checks is one Swarm
 * thinks healthy (no Docker HEALTHCHECK): the sidecar routes around it, then restarts it the
 * orchestrator's way (its container removed, Swarm starts a replacement in the slot), and the
 * action names the service and the task. Default health settings (period 2 s, 3 failures); the
 * startup grace is 1 s so that tasks just started may be recovered.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runningTasks } from '../helpers/swarm-services.js';
import { startSwarmStack, type SwarmStack } from '../helpers/swarm-stack.js';
import { sampleEvery, waitFor } from '../helpers/wait.js';

const APP = `swarmrec-${process.pid}`;
let stack: SwarmStack;

beforeAll(async () => {
  stack = await startSwarmStack({
    app: APP,
    // No Docker HEALTHCHECK: Swarm would replace the failing task itself, before the sidecar.
    service: { name: 'rec-web', replicas: 3, healthcheck: false },
    sidecar: { docker: { startup_grace_seconds: 1 }, recovery: { mode: 'on' } },
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 120_000);

const routed = (port: number) => stack.routed(port);

interface EventJson {
  kind: string;
  backend: string | null;
  message: string;
  data: Record<string, unknown>;
}

test('a running task that fails its checks: nginx routes around it, the sidecar removes its container, Swarm replaces it, nginx routes to the new task', async () => {
  const tasks = await runningTasks(stack.swarm, stack.web.id, 3);
  const victim = tasks.find((t) => t.NodeID === stack.swarm.nodes[0]!.nodeId)!;
  const port = stack.web.port(victim.Slot!);
  await waitFor(() => routed(port), { what: 'the task routed' });
  const seen: Array<{ at: number; body: string; ok: boolean }> = [];
  const load = sampleEvery(20, async () => {
    const res = await stack.nginx.get('/').catch(() => ({ status: 0, body: '' }));
    seen.push({ at: Date.now(), body: res.body, ok: res.status === 200 });
  });
  // Load under way and the task answering through nginx (after the reload that routed it).
  await waitFor(() => seen.some((s) => s.body === `rec-web.${victim.Slot}.${victim.ID}`), { what: 'the task answering through nginx' });
  const t0 = Date.now();
  const res = await fetch(`http://127.0.0.1:${port}/control/fail`, { method: 'POST' });
  expect(res.status).toBe(200);
  const out = await waitFor(async () => (!(await routed(port)) ? Date.now() : null), { what: 'the failing task out of nginx', timeoutMs: 30_000 });
  const replacement = await waitFor(
    async () => (await runningTasks(stack.swarm, stack.web.id, 3)).find((t) => t.Slot === victim.Slot && t.ID !== victim.ID),
    { what: 'Swarm running a replacement in the slot', timeoutMs: 30_000 },
  ).catch((err: Error) => {
    const recovery = stack.sidecar.logs().filter((l) => /recover|decision/i.test(String(l.msg)));
    throw new Error(`${err.message}; the sidecar's recovery log: ${JSON.stringify(recovery.slice(-10))}`);
  });
  const replaced = Date.now();
  const name = `rec-web.${victim.Slot}.${replacement.ID}`;
  const back = await waitFor(() => seen.find((s) => s.at > replaced - 2000 && s.body === name)?.at, {
    what: 'the replacement answering through nginx',
    timeoutMs: 30_000,
  });
  await load.stop();
  console.log(
    `task rec-web.${victim.Slot} failing its checks: out of nginx's file after ${out - t0} ms, replacement running after ${replaced - t0} ms, ` +
      `answering through nginx after ${back - t0} ms; ${seen.filter((s) => s.at > t0).length} requests meanwhile, ${seen.filter((s) => s.at > t0 && !s.ok).length} failed`,
  );
  console.log(`failed requests at (ms after the fault): ${JSON.stringify(seen.filter((s) => s.at > t0 && !s.ok).map((s) => s.at - t0))}`);
  const { body } = await stack.sidecar.api<{ events: EventJson[] }>('/api/v1/events?kind=recovery');
  // remove_from_lb is recorded as the no-op it is (ejection did it); the restart is the action.
  const actions = body.events.filter((e) => e.kind === 'recovery' && e.data.strategy !== 'remove_from_lb' && e.data.dry_run === false);
  expect(actions).toHaveLength(1);
  expect(actions[0]!.message).toBe('restart_container succeeded');
  expect(actions[0]!.backend).toBe(`${APP}/127.0.0.1:${port}`);
  expect(actions[0]!.data).toMatchObject({ service: 'rec-web', task: `rec-web.${victim.Slot}`, ok: true });
  // The old task was not restarted behind Swarm's back: Swarm shut it down and started another.
  const old = ((await stack.swarm.manager.listTasks({ filters: { service: [stack.web.id] } })) as Array<{ ID: string; DesiredState: string }>).find((t) => t.ID === victim.ID);
  expect(old?.DesiredState).toBe('shutdown');
}, 90_000);
