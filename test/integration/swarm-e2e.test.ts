/**
 * Swarm end to end, every part real: a two-node swarm of private dockerd processes
 * (test/helpers/swarm.ts), a service of the test app whose tasks run on both nodes (host
 * networking, 127.0.0.1:<prefix><slot>), the built CLI as a child process with
 * `docker.swarm: true` on the manager's socket, and a private nginx 1.22 in front. Recovery is
 * off: Swarm replaces failed tasks itself, and every routing change here comes from discovery
 * and probes. Health settings are the defaults (period 2 s, timeout 1 s, 3 failures, 2
 * successes), the Swarm refresh too (1 s): the figures printed are the ones users get.
 *
 * The tests run in order and share the service.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { NginxInstance } from '../helpers/nginx-instance.js';
import type { SidecarProcess } from '../helpers/sidecar-process.js';
import type { PrivateSwarm } from '../helpers/swarm.js';
import { createAppService, killTask, runningTasks, scaleService, type AppService, type TaskInfo } from '../helpers/swarm-services.js';
import { startSwarmStack, type SwarmStack } from '../helpers/swarm-stack.js';
import { sampleEvery, waitFor } from '../helpers/wait.js';

const APP = `swarm-${process.pid}`;
let stack: SwarmStack;
let swarm: PrivateSwarm;
let nginx: NginxInstance;
let sidecar: SidecarProcess;
let web: AppService;

beforeAll(async () => {
  stack = await startSwarmStack({ app: APP, service: { name: 'e2e-web', replicas: 3 }, sidecar: { logging: { level: 'debug' } } });
  ({ swarm, nginx, sidecar, web } = stack);
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 120_000);

/** `n` sequential requests through nginx: how many each task answered (by its name), and failures. */
async function spread(n: number): Promise<{ counts: Record<string, number>; failed: number }> {
  const counts: Record<string, number> = {};
  let failed = 0;
  for (let i = 0; i < n; i++) {
    const res = await nginx.get('/').catch(() => ({ status: 0, body: '' }));
    if (res.status === 200) counts[res.body] = (counts[res.body] ?? 0) + 1;
    else failed++;
  }
  return { counts, failed };
}

const taskName = (t: TaskInfo) => `e2e-web.${t.Slot}.${t.ID}`;

/** Until requests through nginx reach exactly these tasks, without a failure. */
async function routesTo(tasks: TaskInfo[], timeoutMs = 30_000): Promise<void> {
  const want = tasks.map(taskName).sort().join();
  let last = '';
  await waitFor(
    async () => {
      const { counts, failed } = await spread(tasks.length * 4);
      last = JSON.stringify({ counts, failed });
      return failed === 0 && Object.keys(counts).sort().join() === want;
    },
    { what: `nginx to route to ${want}`, timeoutMs },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last round: ${last}`);
  });
}

const routed = (port: number) => stack.routed(port);

describe('a service on a two-node swarm behind nginx', () => {
  test('nginx routes to every running task of the service, on both nodes', async () => {
    const tasks = await runningTasks(swarm, web.id, 3);
    expect(new Set(tasks.map((t) => t.NodeID)).size).toBe(2);
    await routesTo(tasks);
    const backends = await sidecar.backends(APP);
    expect(backends.map((b) => b.address).sort()).toEqual([1, 2, 3].map((n) => `127.0.0.1:${web.port(n)}`).sort());
  });

  test('a task killed on the worker: nginx routes around it, then to the task Swarm starts in its place', async () => {
    const tasks = await runningTasks(swarm, web.id, 3);
    const worker = swarm.nodes.find((n) => n.role === 'worker')!;
    const victim = tasks.find((t) => t.NodeID === worker.nodeId)!;
    const port = web.port(victim.Slot!);
    const seen: Array<{ at: number; body: string; ok: boolean }> = [];
    const load = sampleEvery(10, async () => {
      const res = await nginx.get('/').catch(() => ({ status: 0, body: '' }));
      seen.push({ at: Date.now(), body: res.body, ok: res.status === 200 });
    });
    const fileWatch: Array<{ at: number; routed: boolean }> = [];
    const files = sampleEvery(10, async () => void fileWatch.push({ at: Date.now(), routed: await routed(port) }));
    const t0 = Date.now();
    await killTask(swarm, victim);
    const replacement = await waitFor(
      async () => (await runningTasks(swarm, web.id, 3)).find((t) => t.Slot === victim.Slot && t.ID !== victim.ID),
      { what: 'the replacement task running', timeoutMs: 30_000 },
    );
    const firstServed = await waitFor(() => seen.find((s) => s.at > t0 && s.body === taskName(replacement))?.at, {
      what: 'a response from the replacement',
      timeoutMs: 30_000,
    });
    await load.stop();
    await files.stop();
    const out = fileWatch.find((f) => f.at > t0 && !f.routed)?.at ?? null;
    const failed = seen.filter((s) => s.at > t0 && !s.ok).length;
    console.log(
      `task ${taskName(victim)} killed on the worker: nginx's file stopped routing it after ${out === null ? 'never' : `${out - t0} ms`}, ` +
        `the replacement ${taskName(replacement)} first answered through nginx after ${firstServed - t0} ms; ` +
        `${seen.filter((s) => s.at > t0).length} requests meanwhile, ${failed} failed`,
    );
    // nginx retries a refused connection on the next server (proxy_next_upstream error): the
    // client sees no failure, whatever the sidecar's timing.
    expect(failed).toBe(0);
    await routesTo(await runningTasks(swarm, web.id, 3));
    const task = (await sidecar.backends(APP)).find((b) => b.address === `127.0.0.1:${port}`) as unknown as { task?: { id: string } };
    expect(task.task?.id).toBe(replacement.ID);
  });

  test('scaling the service out and in (service update of its replicas) is followed by nginx', async () => {
    await scaleService(swarm, web.id, 4);
    await routesTo(await runningTasks(swarm, web.id, 4));
    await scaleService(swarm, web.id, 2);
    await routesTo(await runningTasks(swarm, web.id, 2));
  });

  test('a service with a bad label is listed as rejected with its reason, and its tasks are not routed', async () => {
    const bad = await createAppService(swarm, { name: 'e2e-bad', app: APP, replicas: 1, labels: { 'orchestry.weight': '0' } });
    const [task] = await runningTasks(swarm, bad.id, 1);
    const body = await waitFor(
      async () => {
        const res = await sidecar.api<{ rejected_containers: Array<{ id: string; name: string; kind?: string; errors: string[] }> }>('/api/v1/apps');
        return res.body.rejected_containers.length > 0 ? res.body : null;
      },
      { what: 'the bad service rejected' },
    );
    expect(body.rejected_containers).toEqual([
      { id: bad.id, name: 'e2e-bad', kind: 'service', errors: ['orchestry.weight: must be between 1 and 1000 (got 0)'] },
    ]);
    expect(await routed(bad.port(task!.Slot!))).toBe(false);
    await swarm.manager.getService(bad.id).remove();
  });
});
