/**
 * Pure mapping from a Swarm manager's services, tasks and nodes to backends: no I/O, so every
 * rule is tested with plain JSON fixtures.
 *
 * Services carry the `orchestry.*` labels (`deploy.labels` in a stack file), and they mean what
 * they mean on a container: this module does not read a label itself. It presents each service,
 * then each running task, to the container mapping (docker-labels.ts) as the container it stands
 * for, so the same validation, the same rejection reasons and the same address rules apply, now
 * and as they change. What is Swarm's own is decided here:
 *
 * - `{{.Task.Slot}}` in an `orchestry.*` label is expanded per task, as Docker expands it in the
 *   task's environment (the slot, or the node id for a task of a global service). Docker does not
 *   expand service labels, and a task's container is out of reach on another node, so this is how
 *   the port of each task is known when several tasks share a host's network:
 *   `PORT=80{{.Task.Slot}}` in the environment, `orchestry.port=80{{.Task.Slot}}` in the labels.
 *   Nothing else in a label is expanded.
 * - A service with a bad label is rejected whole, with every reason, before any of its tasks is
 *   looked at; a task whose expanded labels fail (a slot that makes the port too large, an address
 *   another task already has) is rejected alone.
 * - Only tasks that run and that Swarm wants running are backends: a task being shut down (scale
 *   in, rolling update) leaves nginx as soon as the orchestrator decides it.
 * - Address mode host: the address the task's node advertises, and the port, or the port Swarm
 *   published for it in host mode (`mode: host` in a stack file) when the task has one.
 *   Address mode network: the task's address on the service's network (`orchestry.network` or
 *   `docker.network` picks one when it is on several).
 */
import type { AppConfig } from '../config/types.js';
import type { Backend, TaskRef } from '../model.js';
import { ENABLE_LABEL, LABEL_PREFIX, containersToBackends, type InspectedContainer, type LabelContext, type RejectedContainer } from './docker-labels.js';

/** Source name of snapshots built from Swarm services. */
export const SWARM_SOURCE_NAME = 'swarm';

/** The part of a service (GET /services) that discovery reads. */
export interface SwarmService {
  ID: string;
  /** The version index the manager's last update of the service gave it. */
  Version?: { Index?: number };
  Spec: {
    Name: string;
    Labels?: Record<string, string> | null;
    TaskTemplate?: { ContainerSpec?: { Image?: string } };
  };
}

/** One published port of a task (Status.PortStatus). */
export interface SwarmPort {
  Protocol?: string;
  TargetPort?: number;
  PublishedPort?: number;
  PublishMode?: string;
}

/** The part of a task (GET /tasks) that discovery reads. */
export interface SwarmTask {
  ID: string;
  ServiceID: string;
  /** 0 or absent for a task of a global service. */
  Slot?: number;
  NodeID?: string;
  DesiredState: string;
  Status: {
    State: string;
    /** RFC 3339: when the task entered its state. */
    Timestamp?: string;
    ContainerStatus?: { ContainerID?: string };
    PortStatus?: { Ports?: SwarmPort[] | null };
  };
  Spec?: { ContainerSpec?: { Image?: string } };
  NetworksAttachments?: Array<{ Network: { Spec: { Name: string } }; Addresses?: string[] | null }> | null;
}

/** The part of a node (GET /nodes) that discovery reads. */
export interface SwarmNode {
  ID: string;
  Description?: { Hostname?: string };
  Status: { State: string; Addr?: string };
  /** `host:port` of a manager's Raft endpoint. */
  ManagerStatus?: { Addr?: string } | null;
}

/** What a manager reports, as one snapshot. */
export interface SwarmState {
  services: readonly SwarmService[];
  tasks: readonly SwarmTask[];
  nodes: readonly SwarmNode[];
}

export interface SwarmMapping {
  /** One per running task with valid labels; each carries its `task`, none a `container`. */
  backends: Backend[];
  /** Apps only service labels define, with default settings. */
  apps: AppConfig[];
  /** Services (kind `service`) and tasks (kind `task`) left out, each with every reason. */
  rejected: RejectedContainer[];
}

const SLOT_TEMPLATE = /\{\{\s*\.Task\.Slot\s*\}\}/g;
const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Maps a manager's services, tasks and nodes to backends of the `swarm` source. */
export function servicesToBackends(state: SwarmState, ctx: LabelContext): SwarmMapping {
  const enabled = state.services.filter((s) => s.Spec.Labels?.[ENABLE_LABEL] === 'true');
  // The service itself first, as a container that does not run: its labels are checked once,
  // and a service with no task yet still defines its app.
  const asServices = enabled.map(serviceAsContainer);
  const checked = containersToBackends(asServices, ctx);
  const bad = new Set(checked.rejected.map((r) => r.containerId));
  const valid = new Map(enabled.filter((s) => !bad.has(s.ID)).map((s) => [s.ID, s]));
  const nodes = new Map(state.nodes.map((n) => [n.ID, n]));
  const refs = new Map<string, TaskRef>();
  const asTasks: InspectedContainer[] = [];
  for (const task of state.tasks) {
    const service = valid.get(task.ServiceID);
    if (!service || task.Status.State !== 'running' || task.DesiredState !== 'running') continue;
    const ref = taskRef(task, service, nodes.get(task.NodeID ?? ''));
    refs.set(task.ID, ref);
    asTasks.push(taskAsContainer(task, ref, ctx));
  }
  const mapped = containersToBackends([...asServices.filter((c) => valid.has(c.Id)), ...asTasks], ctx);
  const rejected: RejectedContainer[] = [
    ...checked.rejected.map((r) => ({ ...r, kind: 'service' as const })),
    ...mapped.rejected.filter((r) => refs.has(r.containerId)).map((r) => ({ ...r, kind: 'task' as const })),
  ];
  const backends = mapped.backends.flatMap((b): Backend[] => {
    const task = refs.get(b.container?.id ?? '');
    if (!task) return [];
    const { container: _container, ...rest } = b;
    return [{ ...rest, source: SWARM_SOURCE_NAME, task }];
  });
  return { backends, apps: mapped.apps, rejected };
}

/** Docker's expansion of `{{.Task.Slot}}` in every `orchestry.*` label; other labels stay as they are. */
export function expandSlot(labels: Record<string, string>, slot: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(labels).map(([k, v]) => [k, k.startsWith(LABEL_PREFIX) ? v.replace(SLOT_TEMPLATE, slot) : v]),
  );
}

function serviceAsContainer(s: SwarmService): InspectedContainer {
  return {
    SwarmService: true,
    Id: s.ID,
    Name: `/${s.Spec.Name}`,
    RestartCount: 0,
    State: { Status: 'created', OOMKilled: false, ExitCode: 0, StartedAt: ZERO_TIME },
    // Slot 1 stands for every slot: a label is checked with a value a task would really get.
    Config: { Image: s.Spec.TaskTemplate?.ContainerSpec?.Image ?? '', Labels: expandSlot(s.Spec.Labels ?? {}, '1') },
    NetworkSettings: { Networks: {} },
  };
}

/** Docker's value of `{{.Task.Slot}}`: the slot, or the node id when the task has none (global). */
function slotText(task: SwarmTask): string {
  return task.Slot ? String(task.Slot) : (task.NodeID ?? '');
}

function taskRef(task: SwarmTask, service: SwarmService, node: SwarmNode | undefined): TaskRef {
  const since = Date.parse(task.Status.Timestamp ?? '');
  return {
    id: task.ID,
    name: `${service.Spec.Name}.${slotText(task)}`,
    serviceId: service.ID,
    serviceName: service.Spec.Name,
    serviceVersion: service.Version?.Index ?? 0,
    slot: task.Slot ? task.Slot : null,
    nodeId: task.NodeID ?? '',
    nodeName: node?.Description?.Hostname ?? '',
    nodeAddress: node ? nodeAddress(node) ?? '' : '',
    containerId: task.Status.ContainerStatus?.ContainerID || null,
    image: task.Spec?.ContainerSpec?.Image ?? service.Spec.TaskTemplate?.ContainerSpec?.Image ?? '',
    state: task.Status.State,
    desiredState: task.DesiredState,
    since: Number.isFinite(since) && since > 0 ? since : 0,
    labels: expandSlot(service.Spec.Labels ?? {}, slotText(task)),
  };
}

/**
 * The address a node is reached at: what it advertises, or its manager address's host where an
 * older engine reports 0.0.0.0; null when neither is usable (the task is then reached at
 * `docker.host_address`, right for a swarm of one node).
 */
export function nodeAddress(node: SwarmNode): string | null {
  const usable = (a: string | undefined) => (a && a !== '0.0.0.0' && a !== '::' ? a : null);
  const manager = node.ManagerStatus?.Addr?.replace(/^\[?(.*?)\]?:\d+$/, '$1');
  return usable(node.Status.Addr) ?? usable(manager);
}

function taskAsContainer(task: SwarmTask, ref: TaskRef, ctx: LabelContext): InspectedContainer {
  const networks: Record<string, { IPAddress: string }> = {};
  for (const a of task.NetworksAttachments ?? []) {
    networks[a.Network.Spec.Name] = { IPAddress: (a.Addresses?.[0] ?? '').replace(/\/\d+$/, '') };
  }
  const host = ref.nodeAddress || undefined;
  return {
    Id: task.ID,
    Name: `/${ref.name}.${task.ID}`, // the task's container name on its node
    RestartCount: 0,
    State: { Status: 'running', OOMKilled: false, ExitCode: 0, StartedAt: task.Status.Timestamp ?? ZERO_TIME },
    Config: { Image: ref.image, Labels: withPublishedPort(ref.labels, task, ctx) },
    NetworkSettings: { Networks: networks },
    ...(host ? { HostAddress: host } : {}),
  };
}

/**
 * In address mode host, a port Swarm published on the node for this task (`mode: host`) is
 * where the task is reached: its published port stands in for the target port the labels name.
 */
function withPublishedPort(labels: Record<string, string>, task: SwarmTask, ctx: LabelContext): Record<string, string> {
  const app = ctx.config.apps.find((a) => a.name === labels['orchestry.app']);
  const mode = labels['orchestry.address_mode'] ?? app?.docker.address_mode ?? ctx.config.docker.address_mode;
  const target = Number(labels['orchestry.port']);
  if (mode !== 'host' || !Number.isInteger(target)) return labels;
  const published = (task.Status.PortStatus?.Ports ?? []).find(
    (p) => p.PublishMode === 'host' && (p.Protocol ?? 'tcp') === 'tcp' && p.TargetPort === target && p.PublishedPort,
  );
  return published ? { ...labels, 'orchestry.port': String(published.PublishedPort) } : labels;
}
