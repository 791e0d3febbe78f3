/**
 * Several sidecars, one actor (issue 13, item 3), every part real: a two-node swarm of private
 * dockerd processes, and three sidecars (the built CLI, each with its own private nginx 1.22) on
 * the manager's socket: three sidecars on one node, which is where several of them could act on
 * the same task. They elect one actor by the node's lease, kept in the labels of a Swarm config
 * object and written at the version index read (src/recovery/swarm-lease.ts).
 *
 * - A task all three see failing at the same moment is restarted once (its container removed,
 *   Swarm replaces it), over many repetitions: exactly one action record across the three.
 * - The holder SIGKILLed while its action is under way (the task's container being killed by
 *   the removal): still exactly one action; the lease expires after its TTL, another sidecar
 *   takes it and acts on the next failure, once.
 * - A holder stopped with SIGTERM frees the lease on its way out: no TTL to wait.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { NginxInstance } from '../helpers/nginx-instance.js';
import type { SidecarProcess } from '../helpers/sidecar-process.js';
import type { PrivateSwarm } from '../helpers/swarm.js';
import { createAppService, serviceTasks, type AppService, type TaskInfo } from '../helpers/swarm-services.js';
import { startSwarmSidecar, swarmForThisFile } from '../helpers/swarm-stack.js';
import { waitFor } from '../helpers/wait.js';

const APP = `lease-${process.pid}`;
const TTL_S = 3;
const RENEW_S = 0.5;
const ROUNDS = 20;

const getSwarm = swarmForThisFile();
let swarm: PrivateSwarm;
const nginxes: NginxInstance[] = [];
const sidecars: SidecarProcess[] = [];

interface LeaseJson {
  name: string;
  holder: string | null;
  held: boolean;
  instance: string;
  term: number;
  expires_at: string | null;
}
interface EventJson {
  kind: string;
  data: Record<string, unknown>;
}

beforeAll(async () => {
  swarm = getSwarm();
  // The app exists before the sidecars start (nginx's config names its upstream); each test's
  // own service takes it over after this one is removed.
  const seed = await serviceOnManager('lease-seed');
  await waitFor(async () => (await serviceTasks(swarm, seed.id)).filter((t) => t.Status.State === 'running').length === 2, { what: 'the seed service running' });
  for (let i = 0; i < 3; i++) {
    const { nginx, sidecar } = await startSwarmSidecar({
      swarm,
      app: APP,
      docker: { startup_grace_seconds: 1, swarm_lease_ttl_seconds: TTL_S, swarm_lease_renew_seconds: RENEW_S },
      // Many restarts of one slot in a row: no budget or backoff gets in the way of the count.
      rest: { recovery: { mode: 'on', max_restarts: 1000, backoff_min_seconds: 0, backoff_max_seconds: 0, budget_per_app: 10_000 } },
    });
    nginxes.push(nginx);
    sidecars.push(sidecar);
  }
}, 120_000);

afterAll(async () => {
  for (const s of sidecars) await s.stop();
  for (const n of nginxes) await n.stop();
}, 60_000);

const alive = () => sidecars.filter((s) => s.child.exitCode === null && s.child.signalCode === null);

async function lease(s: SidecarProcess): Promise<LeaseJson | null> {
  return (await s.api<{ swarm_lease: LeaseJson | null }>('/api/v1/apps')).body.swarm_lease;
}

/** The sidecar that holds the lease once every live sidecar agrees on it. */
async function holder(): Promise<SidecarProcess> {
  return waitFor(async () => {
    const leases = await Promise.all(alive().map(lease));
    const holders = leases.filter((l) => l?.held);
    if (holders.length !== 1 || !leases.every((l) => l?.holder === holders[0]!.holder)) return null;
    return alive()[leases.indexOf(holders[0]!)]!;
  }, { what: 'one lease holder all sidecars agree on', timeoutMs: 20_000 });
}

/** Restarts (not the no-op remove_from_lb, not dry-run) a sidecar has recorded. */
async function actions(s: SidecarProcess): Promise<EventJson[]> {
  const { body } = await s.api<{ events: EventJson[] }>('/api/v1/events?kind=recovery&limit=1000');
  return body.events.filter((e) => e.data.strategy !== 'remove_from_lb' && e.data.dry_run === false);
}

/** The actions the live sidecars have recorded, all together. */
async function allActions(): Promise<EventJson[]> {
  return (await Promise.all(alive().map(actions))).flat();
}

/** Slot 1's running task once every live sidecar sees it healthy and past its startup grace. */
async function healthyVictim(svc: AppService): Promise<TaskInfo> {
  const port = svc.port(1);
  return waitFor(async () => {
    const task = (await serviceTasks(swarm, svc.id)).find((t) => t.Slot === 1 && t.Status.State === 'running' && t.DesiredState === 'running');
    if (!task || Date.now() - Date.parse(task.Status.Timestamp) < 1500) return null;
    for (const s of alive()) {
      const b = (await s.backends(APP)).find((x) => x.address === `127.0.0.1:${port}`) as { health: string; task?: { id: string } } | undefined;
      if (b?.health !== 'healthy' || b.task?.id !== task.ID) return null;
    }
    return task;
  }, { what: 'slot 1 healthy in every sidecar', timeoutMs: 30_000 });
}

/** Makes the task fail its health checks (the sidecars' probes) from now on. */
async function fail(svc: AppService): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${svc.port(1)}/control/fail`, { method: 'POST' });
  expect(res.status).toBe(200);
  return Date.now();
}

/** Swarm running another task in slot 1 than `victim`. */
function replaced(svc: AppService, victim: TaskInfo): Promise<TaskInfo> {
  return waitFor(async () => (await serviceTasks(swarm, svc.id)).find((t) => t.Slot === 1 && t.ID !== victim.ID && t.Status.State === 'running'), {
    what: 'a replacement in slot 1',
    timeoutMs: 30_000,
  });
}

/** Tasks of slot 1 Swarm shut down (each one removal of its container). */
async function shutDown(svc: AppService): Promise<number> {
  return (await serviceTasks(swarm, svc.id)).filter((t) => t.Slot === 1 && t.DesiredState === 'shutdown').length;
}

function serviceOnManager(name: string): Promise<AppService> {
  return createAppService(swarm, {
    name,
    app: APP,
    replicas: 2,
    healthcheck: false,
    constraints: [`node.id==${swarm.nodes[0]!.nodeId}`],
    labels: { 'orchestry.health.path': '/health', 'orchestry.health.period_seconds': '0.5', 'orchestry.health.timeout_seconds': '0.4', 'orchestry.health.failure_threshold': '2' },
  });
}

describe('three sidecars on one node', () => {
  test('one of them holds the lease, kept in a Swarm config on the node, and each says who', async () => {
    const h = await holder();
    const leases = await Promise.all(sidecars.map(lease));
    for (const l of leases) {
      expect(l).toMatchObject({ name: `orchestry-lease-${swarm.nodes[0]!.nodeId}`, holder: (await lease(h))!.instance });
      expect(Date.parse(l!.expires_at!)).toBeGreaterThan(Date.now() - 1000);
    }
    expect(leases.filter((l) => l!.held)).toHaveLength(1);
    expect(await h.metric('orchestry_swarm_lease_held')).toBe(1);
    const labels = ((await swarm.manager.getConfig(leases[0]!.name).inspect()) as unknown as { Spec: { Labels: Record<string, string> } }).Spec.Labels;
    expect(labels['orchestry.lease.holder']).toBe((await lease(h))!.instance);
  }, 60_000);

  test("the manager refuses a write to the lease at a version read before another write: the engine's own compare-and-swap", async () => {
    const name = `orchestry-lease-${swarm.nodes[0]!.nodeId}`;
    const info = (await swarm.manager.getConfig(name).inspect()) as unknown as { ID: string; Version: { Index: number }; Spec: { Name: string; Labels: Record<string, string> } };
    // The holder renews every 0.5 s: the version read is stale once the label changes.
    await waitFor(async () => {
      const now = (await swarm.manager.getConfig(name).inspect()) as unknown as { Version: { Index: number } };
      return now.Version.Index > info.Version.Index;
    }, { what: 'a renewal of the lease' });
    const stale = swarm.manager.getConfig(info.ID).update({ _query: { version: info.Version.Index }, _body: { Name: info.Spec.Name, Labels: { ...info.Spec.Labels, 'orchestry.lease.holder': 'intruder' } } } as never);
    await expect(stale).rejects.toThrow(/out of sequence/);
    await holder();
  }, 60_000);

  test(`a task all three see failing at once is restarted exactly once, ${ROUNDS} times over`, async () => {
    const svc = await serviceOnManager('lease-race');
    const before = (await allActions()).length;
    const bystander = (await serviceTasks(swarm, svc.id)).find((t) => t.Slot === 2 && t.DesiredState === 'running');
    const times: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const victim = await healthyVictim(svc);
      const t0 = await fail(svc);
      const next = await replaced(svc, victim);
      times.push(Date.now() - t0);
      // Every sidecar has moved on to the replacement, the same task Swarm first started in the
      // slot (a second removal would have replaced it too): an action on the old task would be
      // recorded by now.
      expect((await healthyVictim(svc)).ID).toBe(next.ID);
      expect((await allActions()).length - before, `actions after round ${round}`).toBe(round);
    }
    // Lease renewals and the actions on slot 1 restarted nothing else: slot 2 runs the same task.
    expect((await serviceTasks(swarm, svc.id)).filter((t) => t.Slot === 2).map((t) => t.ID)).toEqual([bystander!.ID]);
    const all = (await allActions()).slice(0, ROUNDS);
    expect(all.every((e) => e.data.ok === true && e.data.strategy === 'restart_container' && e.data.service === 'lease-race')).toBe(true);
    console.log(`${ROUNDS} rounds, three sidecars seeing slot 1 fail at once: ${(await allActions()).length - before} actions (one per round); replacement running after ${JSON.stringify(times)} ms`);
  }, 300_000);

  test('the holder SIGKILLed mid-action: still one action; another sidecar takes the lease after the TTL and acts on the next failure, once', async () => {
    const svc = await serviceOnManager('lease-kill');
    const victim = await healthyVictim(svc);
    const killed = await holder();
    const node = swarm.nodes[0]!.docker;
    const survivors = sidecars.filter((x) => x !== killed);
    const count = async () => (await Promise.all(survivors.map(actions))).flat().length;
    const before = await count();
    // The removal kills the task's container first: the moment that happens, the holder's
    // action is under way (its DELETE has not been answered), and the holder is SIGKILLed.
    const events = (await node.getEvents({ filters: { container: [victim.Status.ContainerStatus!.ContainerID!], event: ['kill', 'die'] } })) as NodeJS.ReadableStream & { destroy(): void };
    const killedAt = new Promise<number>((resolve) => events.once('data', () => {
      killed.child.kill('SIGKILL');
      resolve(Date.now());
    }));
    await fail(svc);
    const tKill = await killedAt;
    events.destroy();
    await killed.stop();
    const next = await replaced(svc, victim);
    expect(await shutDown(svc)).toBe(1);

    const successor = await holder();
    const takeover = Date.now() - tKill;
    expect(successor).not.toBe(killed);
    // A survivor waits a TTL from the last renewal it saw (at most one renewal period before the kill).
    expect(takeover).toBeGreaterThanOrEqual((TTL_S - RENEW_S) * 1000 - 100);
    // Neither survivor acted on the killed holder's task.
    expect((await count()) - before).toBe(0);

    // The next failure: the new holder acts, once.
    const victim2 = await healthyVictim(svc);
    expect(victim2.ID).toBe(next.ID);
    await fail(svc);
    await replaced(svc, victim2);
    await healthyVictim(svc);
    expect((await count()) - before).toBe(1);
    expect((await actions(successor))[0]).toMatchObject({ data: { ok: true, strategy: 'restart_container', service: 'lease-kill' } });
    expect(await shutDown(svc)).toBe(2);
    console.log(`holder SIGKILLed mid-action: 1 action (its removal went through); lease taken by another sidecar ${takeover} ms after the kill (TTL ${TTL_S} s, renewal ${RENEW_S} s); the next failure: 1 action, by the new holder`);
  }, 180_000);

  test('a holder stopped normally (SIGTERM) frees the lease as it exits: another sidecar holds it well within the TTL', async () => {
    const leaving = await holder();
    const t0 = Date.now();
    expect(await leaving.stop('SIGTERM')).toBe(0);
    const next = await holder();
    const handover = Date.now() - t0;
    expect(next).not.toBe(leaving);
    expect(handover).toBeLessThan(TTL_S * 1000);
    console.log(`holder stopped with SIGTERM: lease held by another sidecar ${handover} ms after the signal (TTL ${TTL_S} s)`);
  }, 60_000);
});

