/**
 * The Swarm mapping (services, tasks, nodes -> backends) with JSON shaped like a 20.10 manager's
 * answers on this machine. The label rules themselves are docker-labels.test.ts's: here, that a
 * service meets the same ones with the same reasons, and what is Swarm's own (slots, nodes,
 * task states, published ports).
 */
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import type { SidecarConfig } from '../../src/config/types.js';
import { containersToBackends, type InspectedContainer } from '../../src/discovery/docker-labels.js';
import {
  expandSlot,
  nodeAddress,
  servicesToBackends,
  type SwarmNode,
  type SwarmService,
  type SwarmTask,
} from '../../src/discovery/swarm-labels.js';

const MANAGER = 'x1h1lwvs8yh523zd4r0mdm7o4';
const WORKER = 'bfzx2ypo3w99ta3jz5uxtkwe6';
const IMAGE = 'orchestry-test/node-app:a4f970d8520c9fc3';

function config(raw: Record<string, unknown> = {}): SidecarConfig {
  const result = parseConfig({ apps: { other: {} }, docker: { enabled: true, swarm: true }, ...raw });
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

const HOST_LABELS = {
  'orchestry.enable': 'true',
  'orchestry.app': 'shop',
  'orchestry.port': '1950{{.Task.Slot}}',
  'orchestry.address_mode': 'host',
};

function service(id: string, name: string, labels: Record<string, string> = HOST_LABELS): SwarmService {
  return {
    ID: id,
    Version: { Index: 42 },
    Spec: { Name: name, Labels: labels, TaskTemplate: { ContainerSpec: { Image: IMAGE } } },
  };
}

function task(
  id: string,
  serviceId: string,
  opts: { slot?: number; node?: string; state?: string; desired?: string; ports?: NonNullable<SwarmTask['Status']['PortStatus']>['Ports']; networks?: SwarmTask['NetworksAttachments'] } = {},
): SwarmTask {
  return {
    ID: id,
    ServiceID: serviceId,
    ...(opts.slot === undefined ? {} : { Slot: opts.slot }),
    NodeID: opts.node ?? MANAGER,
    DesiredState: opts.desired ?? 'running',
    Status: {
      Timestamp: '2026-12-03T03:19:41.284110661Z',
      State: opts.state ?? 'running',
      ContainerStatus: { ContainerID: `ctr-${id}` },
      PortStatus: opts.ports ? { Ports: opts.ports } : {},
    },
    Spec: { ContainerSpec: { Image: IMAGE } },
    NetworksAttachments: opts.networks ?? [{ Network: { Spec: { Name: 'host' } } }],
  };
}

function node(id: string, addr = '127.0.0.1', manager?: string): SwarmNode {
  return {
    ID: id,
    Description: { Hostname: 'vm' },
    Status: { State: 'ready', Addr: addr },
    ...(manager ? { ManagerStatus: { Addr: manager } } : {}),
  };
}

const NODES = [node(MANAGER, '10.1.0.1'), node(WORKER, '10.1.0.2')];

describe('services and their running tasks', () => {
  test('each running task is a backend at its node address and its slot port, carrying its task, not a container', () => {
    const out = servicesToBackends(
      {
        services: [service('svc1', 'web')],
        tasks: [task('t1', 'svc1', { slot: 1, node: MANAGER }), task('t2', 'svc1', { slot: 2, node: WORKER })],
        nodes: NODES,
      },
      { config: config() },
    );
    expect(out.rejected).toEqual([]);
    expect(out.backends.map((b) => [b.id, b.source, b.container])).toEqual([
      ['shop/10.1.0.1:19501', 'swarm', undefined],
      ['shop/10.1.0.2:19502', 'swarm', undefined],
    ]);
    expect(out.backends[1]!.task).toEqual({
      id: 't2',
      name: 'web.2',
      serviceId: 'svc1',
      serviceName: 'web',
      serviceVersion: 42,
      slot: 2,
      nodeId: WORKER,
      nodeName: 'vm',
      nodeAddress: '10.1.0.2',
      containerId: 'ctr-t2',
      image: IMAGE,
      state: 'running',
      desiredState: 'running',
      since: Date.parse('2026-12-03T03:19:41.284Z'),
      labels: { ...HOST_LABELS, 'orchestry.port': '19502' },
    });
    expect(out.apps.map((a) => a.name)).toEqual(['shop']);
  });

  test('services without orchestry.enable=true are ignored, whatever else they carry', () => {
    const { enable: _e, ...rest } = { enable: 1, ...HOST_LABELS };
    const labels = { ...rest, 'orchestry.enable': 'false' };
    const out = servicesToBackends(
      { services: [service('svc1', 'web', labels)], tasks: [task('t1', 'svc1', { slot: 1 })], nodes: NODES },
      { config: config() },
    );
    expect(out).toEqual({ backends: [], apps: [], rejected: [] });
  });

  test('tasks that do not run, or that Swarm is shutting down, are not backends', () => {
    const out = servicesToBackends(
      {
        services: [service('svc1', 'web')],
        tasks: [
          task('t1', 'svc1', { slot: 1, state: 'starting' }),
          task('t2', 'svc1', { slot: 2, desired: 'shutdown' }),
          task('t3', 'svc1', { slot: 3, state: 'failed', desired: 'shutdown' }),
          task('t4', 'svc1', { slot: 4 }),
        ],
        nodes: NODES,
      },
      { config: config() },
    );
    expect(out.backends.map((b) => b.id)).toEqual(['shop/10.1.0.1:19504']);
  });

  test('a service with no running task still defines its app (an upstream nginx can name)', () => {
    const out = servicesToBackends({ services: [service('svc1', 'web')], tasks: [], nodes: NODES }, { config: config() });
    expect(out.backends).toEqual([]);
    expect(out.apps.map((a) => a.name)).toEqual(['shop']);
  });

  test('a service may join an app the YAML defines only as a container may: with accept_containers', () => {
    const cfg = config({ apps: { shop: { health: { path: '/ready' } } } });
    const out = servicesToBackends({ services: [service('svc1', 'web')], tasks: [task('t1', 'svc1', { slot: 1 })], nodes: NODES }, { config: cfg });
    expect(out.backends).toEqual([]);
    expect(out.rejected).toEqual([
      {
        containerId: 'svc1',
        containerName: 'web',
        kind: 'service',
        errors: [
          'orchestry.app: app "shop" is defined in the YAML, which does not let containers join it (set apps.shop.docker.accept_containers: true) (got "shop")',
        ],
      },
    ]);
  });

  test('a task of a service the YAML app names joins that app with its health settings', () => {
    const cfg = config({ apps: { shop: { health: { path: '/ready' }, docker: { accept_containers: true } } } });
    const out = servicesToBackends({ services: [service('svc1', 'web')], tasks: [task('t1', 'svc1', { slot: 1 })], nodes: NODES }, { config: cfg });
    expect(out.backends.map((b) => [b.id, b.health.path])).toEqual([['shop/10.1.0.1:19501', '/ready']]);
    expect(out.apps).toEqual([]);
  });
});

describe('label validation, as for containers', () => {
  const BAD = { ...HOST_LABELS, 'orchestry.port': '80;', 'orchestry.weight': 'heavy', 'orchestry.health.path': 'no-slash' };

  test('a service with bad labels is rejected whole with the reasons a container with those labels gets', () => {
    const out = servicesToBackends(
      { services: [service('svc1', 'web', BAD)], tasks: [task('t1', 'svc1', { slot: 1 })], nodes: NODES },
      { config: config() },
    );
    const asContainer: InspectedContainer = {
      Id: 'c1',
      Name: '/web',
      RestartCount: 0,
      State: { Status: 'running', OOMKilled: false, ExitCode: 0, StartedAt: '2026-12-03T03:19:41Z' },
      Config: { Image: IMAGE, Labels: BAD },
      NetworkSettings: { Networks: { host: { IPAddress: '' } } },
    };
    const containerErrors = containersToBackends([asContainer], { config: config() }).rejected[0]!.errors;
    expect(containerErrors).toHaveLength(3);
    expect(out.rejected).toEqual([{ containerId: 'svc1', containerName: 'web', kind: 'service', errors: containerErrors }]);
    expect(out.backends).toEqual([]);
    expect(out.apps).toEqual([]);
  });

  test('one bad service leaves the others mapped', () => {
    const out = servicesToBackends(
      {
        services: [service('svc1', 'bad', BAD), service('svc2', 'good', { ...HOST_LABELS, 'orchestry.port': '2950{{.Task.Slot}}' })],
        tasks: [task('t1', 'svc1', { slot: 1 }), task('t2', 'svc2', { slot: 1 })],
        nodes: NODES,
      },
      { config: config() },
    );
    expect(out.rejected.map((r) => r.containerName)).toEqual(['bad']);
    expect(out.backends.map((b) => b.id)).toEqual(['shop/10.1.0.1:29501']);
  });

  test('a slot that makes the port too large rejects that task alone, with the expanded value', () => {
    const out = servicesToBackends(
      {
        services: [service('svc1', 'web', { ...HOST_LABELS, 'orchestry.port': '6553{{.Task.Slot}}' })],
        tasks: [task('t1', 'svc1', { slot: 1 }), task('t6', 'svc1', { slot: 6 })],
        nodes: NODES,
      },
      { config: config() },
    );
    expect(out.backends.map((b) => b.id)).toEqual(['shop/10.1.0.1:65531']);
    expect(out.rejected).toEqual([
      { containerId: 't6', containerName: 'web.6.t6', kind: 'task', errors: ['orchestry.port: must be between 1 and 65535 (got 65536)'] },
    ]);
  });

  test('two tasks claiming one address: the second is rejected, as a second container would be', () => {
    const out = servicesToBackends(
      {
        services: [service('svc1', 'web', { ...HOST_LABELS, 'orchestry.port': '19500' })],
        tasks: [task('t1', 'svc1', { slot: 1 }), task('t2', 'svc1', { slot: 2 })],
        nodes: [node(MANAGER, '127.0.0.1')],
      },
      { config: config() },
    );
    expect(out.backends.map((b) => b.task?.id)).toEqual(['t1']);
    expect(out.rejected.map((r) => [r.containerId, r.kind, r.errors[0]])).toEqual([
      ['t2', 'task', 'orchestry.port: address 127.0.0.1:19500 of app "shop" is already used by container "web.1.t1"'],
    ]);
  });
});

describe("what is Swarm's own", () => {
  test('{{.Task.Slot}} is expanded in orchestry.* labels only, with or without spaces; nothing else is', () => {
    expect(
      expandSlot({ 'orchestry.port': '80{{ .Task.Slot }}', 'orchestry.replica': '{{.Task.Slot}}', other: '{{.Task.Slot}}', 'orchestry.app': '{{.Node.ID}}' }, '3'),
    ).toEqual({ 'orchestry.port': '803', 'orchestry.replica': '3', other: '{{.Task.Slot}}', 'orchestry.app': '{{.Node.ID}}' });
  });

  test("a global service's task has no slot: {{.Task.Slot}} is its node id, as Docker expands it", () => {
    const out = servicesToBackends(
      {
        services: [service('svc1', 'agent', { ...HOST_LABELS, 'orchestry.port': '9100', 'orchestry.replica': '{{.Task.Slot}}' })],
        tasks: [task('t1', 'svc1', { node: WORKER })],
        nodes: NODES,
      },
      { config: config() },
    );
    expect(out.backends).toEqual([]);
    expect(out.rejected[0]).toMatchObject({ containerId: 't1', kind: 'task', errors: [`orchestry.replica: must be an integer (got "${WORKER}")`] });
  });

  test('a global service with a fixed port: one backend per node, named by node', () => {
    const out = servicesToBackends(
      {
        services: [service('svc1', 'agent', { ...HOST_LABELS, 'orchestry.port': '9100' })],
        tasks: [task('t1', 'svc1', { node: MANAGER }), task('t2', 'svc1', { node: WORKER })],
        nodes: NODES,
      },
      { config: config() },
    );
    expect(out.backends.map((b) => [b.id, b.task?.name, b.task?.slot]).sort()).toEqual([
      ['shop/10.1.0.1:9100', `agent.${MANAGER}`, null],
      ['shop/10.1.0.2:9100', `agent.${WORKER}`, null],
    ]);
  });

  test('host mode: a port Swarm published on the node for the task (mode host) is where it is reached', () => {
    const out = servicesToBackends(
      {
        services: [service('svc1', 'web', { ...HOST_LABELS, 'orchestry.port': '80' })],
        tasks: [task('t1', 'svc1', { slot: 1, ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 30080, PublishMode: 'host' }] })],
        nodes: NODES,
      },
      { config: config() },
    );
    expect(out.backends.map((b) => b.id)).toEqual(['shop/10.1.0.1:30080']);
    expect(out.backends[0]!.task?.labels['orchestry.port']).toBe('80');
  });

  test("network mode: the task's address on the service's network and the label port; several networks need one named", () => {
    const networks = [
      { Network: { Spec: { Name: 'ingress' } }, Addresses: ['10.0.0.7/24'] },
      { Network: { Spec: { Name: 'demo_default' } }, Addresses: ['10.0.1.5/24'] },
    ];
    const labels = { 'orchestry.enable': 'true', 'orchestry.app': 'shop', 'orchestry.port': '8000' };
    const run = (extra: Record<string, string>) =>
      servicesToBackends(
        { services: [service('svc1', 'web', { ...labels, ...extra })], tasks: [task('t1', 'svc1', { slot: 1, networks })], nodes: NODES },
        { config: config() },
      );
    expect(run({ 'orchestry.network': 'demo_default' }).backends.map((b) => b.id)).toEqual(['shop/10.0.1.5:8000']);
    expect(run({}).rejected[0]?.errors).toEqual([
      'orchestry.network: is required when the container is on several networks (attached: demo_default, ingress), or set docker.network',
    ]);
  });

  test('a node that advertises 0.0.0.0 is reached at its manager address, else at docker.host_address', () => {
    expect(nodeAddress(node(MANAGER, '0.0.0.0', '10.1.0.9:2377'))).toBe('10.1.0.9');
    expect(nodeAddress(node(MANAGER, '0.0.0.0'))).toBeNull();
    const out = servicesToBackends(
      { services: [service('svc1', 'web')], tasks: [task('t1', 'svc1', { slot: 1 })], nodes: [node(MANAGER, '0.0.0.0')] },
      { config: config({ docker: { enabled: true, swarm: true, host_address: '192.0.2.10' } }) },
    );
    expect(out.backends.map((b) => b.id)).toEqual(['shop/192.0.2.10:19501']);
  });
});
