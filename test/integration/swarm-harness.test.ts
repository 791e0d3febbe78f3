/**
 * The private multi-daemon swarm that the Swarm tests run on (test/helpers/swarm.ts): it forms,
 * runs a host-network service's tasks on every node, each on its slot's loopback port, and stops
 * without leaving a daemon or a listening task behind. Prints how long start and stop took.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { canListen } from '../helpers/free-port.js';
import { requireDocker } from '../helpers/docker.js';
import { startSwarm, type PrivateSwarm } from '../helpers/swarm.js';
import { createAppService, runningTasks } from '../helpers/swarm-services.js';

let swarm: PrivateSwarm | null = null;

beforeAll(async () => {
  await requireDocker(); // the test images come from the shared engine
  swarm = await startSwarm({ nodes: 2 });
  console.log(`private swarm started: ${JSON.stringify(swarm.timings)}`);
});

afterAll(async () => {
  const stopped = await swarm?.stop();
  if (stopped) console.log(`private swarm stopped in ${stopped.ms} ms`);
});

test('two engines form one swarm: a manager and a worker, both ready', async () => {
  const s = swarm!;
  const nodes = (await s.manager.listNodes()) as Array<{ ID: string; Spec: { Role: string }; Status: { State: string; Addr: string } }>;
  expect(nodes.map((n) => [n.Spec.Role, n.Status.State, n.Status.Addr]).sort()).toEqual([
    ['manager', 'ready', '127.0.0.1'],
    ['worker', 'ready', '127.0.0.1'],
  ]);
  expect(new Set(nodes.map((n) => n.ID))).toEqual(new Set(s.nodes.map((n) => n.nodeId)));
});

test("a host-network service's tasks answer on 127.0.0.1 at their slot's port, spread over the nodes", async () => {
  const s = swarm!;
  const svc = await createAppService(s, { name: 'harness-web', app: 'harness', replicas: 4 });
  const tasks = await runningTasks(s, svc.id, 4);
  expect(new Set(tasks.map((t) => t.NodeID)).size).toBe(2);
  for (const t of tasks) {
    const res = await fetch(`http://127.0.0.1:${svc.port(t.Slot!)}/`);
    expect(await res.text()).toBe(`harness-web.${t.Slot}.${t.ID}`);
  }
});

test('stop() ends every daemon it started and every task it ran', async () => {
  const s = swarm!;
  const svc = await createAppService(s, { name: 'harness-stop', app: 'harness', replicas: 2 });
  await runningTasks(s, svc.id, 2);
  const pids = s.nodes.map((n) => n.pid);
  swarm = null;
  const { ms } = await s.stop();
  console.log(`private swarm stopped in ${ms} ms`);
  for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  expect(await canListen(svc.port(1))).toBe(true);
  expect(await canListen(svc.port(2))).toBe(true);
});
