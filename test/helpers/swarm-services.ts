/**
 * Services of the test app on a private swarm (swarm.ts): host networking, each task listening
 * on 127.0.0.1:<prefix><slot> (env PORT from `{{.Task.Slot}}`, which Docker expands per task,
 * and the same template in the `orchestry.port` service label, which the sidecar expands), named
 * by Docker's task name (env NAME, the body the app answers with).
 */
import type Dockerode from 'dockerode';
import { canListen } from './free-port.js';
import type { PrivateSwarm } from './swarm.js';
import { waitFor } from './wait.js';

/** The parts of a task (GET /tasks) the tests read. */
export interface TaskInfo {
  ID: string;
  ServiceID: string;
  Slot?: number;
  NodeID?: string;
  DesiredState: string;
  Status: { State: string; Timestamp: string; ContainerStatus?: { ContainerID?: string } };
}

export interface AppService {
  id: string;
  name: string;
  /** Task slot N listens on 127.0.0.1:`${prefix}${N}` (slots 1 to 9). */
  prefix: string;
  port(slot: number): number;
}

/**
 * A prefix such that `${prefix}1` to `${prefix}9` are all free loopback ports below the
 * ephemeral range (20001 to 31769).
 */
export async function freeSlotPrefix(): Promise<string> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const prefix = 2000 + Math.floor(Math.random() * 1176);
    const ports = Array.from({ length: 9 }, (_, i) => prefix * 10 + i + 1);
    if ((await Promise.all(ports.map(canListen))).every(Boolean)) return String(prefix);
  }
  throw new Error('no free block of slot ports');
}

/**
 * Creates a replicated service of the test app with `orchestry.*` service labels (app, port
 * template, address_mode host, plus `labels`; `labels` may override them, or drop one by
 * mapping it to null). Swarm restarts a failed task at once (restart delay 0) and gives a
 * stopping task 1 s (GRACE_MS 200). `healthcheck: false` turns the image's HEALTHCHECK off: Swarm
 * then thinks a task healthy as long as it runs.
 */
export async function createAppService(
  swarm: PrivateSwarm,
  opts: { name: string; app: string; replicas: number; labels?: Record<string, string | null>; env?: Record<string, string>; healthcheck?: false; constraints?: string[] },
): Promise<AppService> {
  const prefix = await freeSlotPrefix();
  const labels: Record<string, string | null> = {
    'orchestry.enable': 'true',
    'orchestry.app': opts.app,
    'orchestry.port': `${prefix}{{.Task.Slot}}`,
    'orchestry.address_mode': 'host',
    ...opts.labels,
  };
  const env = { PORT: `${prefix}{{.Task.Slot}}`, NAME: '{{.Task.Name}}', GRACE_MS: '200', ...opts.env };
  const created = (await swarm.manager.createService({
    Name: opts.name,
    Labels: Object.fromEntries(Object.entries(labels).filter((e): e is [string, string] => e[1] !== null)),
    TaskTemplate: {
      ContainerSpec: {
        Image: swarm.images.nodeApp,
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        StopGracePeriod: 1_000_000_000,
        ...(opts.healthcheck === false ? { HealthCheck: { Test: ['NONE'] } } : {}),
      },
      RestartPolicy: { Condition: 'any', Delay: 0, MaxAttempts: 0 },
      Networks: [{ Target: 'host' }],
      ...(opts.constraints ? { Placement: { Constraints: opts.constraints } } : {}),
    },
    Mode: { Replicated: { Replicas: opts.replicas } },
  } as Dockerode.CreateServiceOptions)) as unknown as { id: string };
  return { id: created.id, name: opts.name, prefix, port: (slot) => Number(`${prefix}${slot}`) };
}

/** The service's tasks (any state), newest first per slot as the manager lists them. */
export async function serviceTasks(swarm: PrivateSwarm, service: string): Promise<TaskInfo[]> {
  return (await swarm.manager.listTasks({ filters: { service: [service] } })) as TaskInfo[];
}

/** The running tasks of the service once exactly `count` of them run (and want to). */
export function runningTasks(swarm: PrivateSwarm, service: string, count: number, timeoutMs = 30_000): Promise<TaskInfo[]> {
  return waitFor(
    async () => {
      const running = (await serviceTasks(swarm, service)).filter((t) => t.Status.State === 'running' && t.DesiredState === 'running');
      return running.length === count ? running : null;
    },
    { timeoutMs, intervalMs: 100, what: `${count} running task(s) of service ${service}` },
  );
}

/** Sets the service's replica count (`docker service scale`), with the version it was read at. */
export async function scaleService(swarm: PrivateSwarm, service: string, replicas: number): Promise<void> {
  const s = swarm.manager.getService(service);
  const info = (await s.inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
  await s.update({ ...info.Spec, version: info.Version.Index, Mode: { Replicated: { Replicas: replicas } } });
}

/** SIGKILLs the task's container through the engine of the node it runs on. */
export async function killTask(swarm: PrivateSwarm, task: TaskInfo): Promise<void> {
  const id = task.Status.ContainerStatus?.ContainerID;
  if (!id || !task.NodeID) throw new Error(`task ${task.ID} has no container yet`);
  await swarm.node(task.NodeID).docker.getContainer(id).kill({ signal: 'SIGKILL' });
}

/** Removes every service of the swarm (between tests). */
export async function removeServices(swarm: PrivateSwarm): Promise<void> {
  const services = await swarm.manager.listServices();
  await Promise.all(services.map((s) => swarm.manager.getService(s.ID).remove()));
}
