/**
 * Recovery of Swarm tasks through the orchestrator, never around it. Swarm owns its tasks and
 * restarts failed ones itself; the sidecar acts only where Swarm does not see a problem (a task
 * that runs but fails its probes), and only in Swarm's own ways:
 *
 * - restart (restart_container, recreate_container, replace_instance, rolling_restart steps):
 *   remove that task's container. Swarm sees its task fail and starts a replacement in the same
 *   slot, with its restart policy, placement and update rules; nothing is started behind its
 *   back. Picked over a forced service update (`service update --force`), which would replace
 *   every task of the service, the healthy ones too, for one bad task. Only the Engine of the
 *   node the task runs on can remove its container: the sidecar's own node (one sidecar per node
 *   is the usual shape); a task on another node is refused with the reason.
 * - scale_out / scale_in: a service update of the replica count, carrying the version index the
 *   service was read at when the task was discovered. The manager refuses the update when
 *   anything (another sidecar, an operator, a deploy) updated the service since: then nothing is
 *   done and the result says why, and the next failure is planned on a fresh read. So two
 *   sidecars that saw the same service at the same version scale it once.
 *
 * Each method reports what happened as data, never by throwing.
 */
import type Dockerode from 'dockerode';
import { describeError } from '../errors.js';
import type { DockerActionResult } from './docker-actions.js';
import type { TaskTarget } from './types.js';

/** Docker's label on a task's container: which task it runs. */
const TASK_ID_LABEL = 'com.docker.swarm.task.id';

export interface SwarmActions {
  /** Removes the task's container (on this node's Engine), so that Swarm replaces the task. */
  replaceTask(task: TaskTarget): Promise<DockerActionResult>;
  /** Service update of the replica count by `delta`, at the version the task's service was read at. */
  scale(task: TaskTarget, delta: 1 | -1): Promise<DockerActionResult>;
}

export interface SwarmActionsOptions {
  /** The sidecar's Engine: a manager (for service updates) and the node whose containers it may remove. */
  docker: Dockerode;
  clock?: { now(): number };
}

interface ServiceSpec {
  Name?: string;
  Mode?: { Replicated?: { Replicas?: number }; Global?: object };
  [key: string]: unknown;
}

export function createSwarmActions(opts: SwarmActionsOptions): SwarmActions {
  const { docker } = opts;
  const now = () => opts.clock?.now() ?? Date.now();
  let localNode: Promise<string> | null = null;
  const nodeId = () => {
    localNode ??= docker.info().then((i: { Swarm?: { NodeID?: string } }) => i.Swarm?.NodeID ?? '');
    // A failed look-up is asked again next time.
    localNode.catch(() => (localNode = null));
    return localNode;
  };
  return {
    async replaceTask(task) {
      const t0 = now();
      const done = (r: Omit<DockerActionResult, 'durationMs'>) => ({ ...r, durationMs: now() - t0 });
      const id = task.containerId ?? '';
      try {
        if (!id) return done({ ok: false, containerId: id, error: `task ${task.name} has no container yet` });
        const here = await nodeId();
        if (task.nodeId !== here) {
          return done({
            ok: false,
            containerId: id,
            error: `task ${task.name} runs on node ${task.nodeId}, not this sidecar's node ${here || '(none)'}: only that node's Engine can remove its container`,
          });
        }
        const container = docker.getContainer(id);
        const info = await container.inspect();
        // Never remove a container that is not this task's (a reused id, a stale view).
        if (info.Config.Labels?.[TASK_ID_LABEL] !== task.id) {
          return done({ ok: false, containerId: id, error: `container ${id.slice(0, 12)} does not run task ${task.name} (${task.id})` });
        }
        await container.remove({ force: true });
        return done({ ok: true, containerId: id });
      } catch (err) {
        const gone = (err as { statusCode?: number }).statusCode === 404;
        const error = gone ? `container of task ${task.name} already gone (Swarm or another sidecar removed it)` : describeError(err);
        return done({ ok: false, containerId: id, error });
      }
    },

    async scale(task, delta) {
      const t0 = now();
      const done = (r: Omit<DockerActionResult, 'durationMs'>) => ({ ...r, durationMs: now() - t0 });
      const what = `service ${task.serviceName}`;
      try {
        const service = docker.getService(task.serviceId);
        const info = (await service.inspect()) as { Version?: { Index?: number }; Spec: ServiceSpec };
        const replicas = info.Spec.Mode?.Replicated?.Replicas;
        if (replicas === undefined) return done({ ok: false, containerId: '', error: `${what} is global: it has no replica count to change` });
        const next = replicas + delta;
        if (next < 1) return done({ ok: false, containerId: '', error: `${what} has ${replicas} replica(s): not scaled to ${next}` });
        const spec: ServiceSpec = { ...info.Spec, Mode: { Replicated: { Replicas: next } } };
        // The version read at discovery, not the one just read: an update since then is refused.
        await service.update({ _query: { version: task.serviceVersion }, _body: spec } as never);
        return done({ ok: true, containerId: '' });
      } catch (err) {
        const text = describeError(err);
        const error = /out of sequence/i.test(text)
          ? `${what} changed since version ${task.serviceVersion} was read (the manager refused the update: ${text.trim()}): not scaled`
          : text;
        return done({ ok: false, containerId: '', error });
      }
    },
  };
}
