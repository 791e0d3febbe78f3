/**
 * docker-stack.yml, the stack file of docs/deployment.md: parsed by the Docker CLI as `docker stack
 * deploy` parses it, its sidecar config accepted by the built CLI, and its demo service deployed
 * for real with `docker stack deploy` on a private two-node swarm (swarm.ts), where the sidecar
 * (the built CLI, `docker.swarm: true` on the manager) discovers the tasks from the service labels
 * the stack file gives and nginx routes to every one of them.
 *
 * The demo service runs as the stack file writes it (its deploy.labels, its environment with
 * {{.Task.Slot}} and {{.Task.Name}}, host networking), with two changes for this machine: the test
 * app image stands in for orchestry-demo-app:local (no image is built into the private engines),
 * and its ports come from a free block instead of 800<slot>. nginx and the sidecar run as
 * processes (swarm-stack.ts), not as the stack's containers.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { freeSlotPrefix, runningTasks, type AppService } from '../helpers/swarm-services.js';
import { startSwarmStack, type SwarmStack } from '../helpers/swarm-stack.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STACK_FILE = join(ROOT, 'docker-stack.yml');
const CLI = join(ROOT, 'dist/cli.js');

interface StackService {
  image: string;
  environment?: Record<string, string>;
  labels?: Record<string, string>;
  networks?: string[] | Record<string, unknown>;
  volumes?: string[];
  deploy?: { mode?: string; replicas?: number; labels?: Record<string, string>; placement?: { constraints?: string[] } };
}
interface StackFile {
  services: Record<string, StackService>;
  networks: Record<string, { external?: boolean; name?: string }>;
}

const stack = parse(await readFile(STACK_FILE, 'utf8')) as StackFile;

describe('docker-stack.yml as written', () => {
  test('the Docker CLI accepts it for `docker stack deploy` (docker stack config)', async () => {
    const { stdout } = await run('docker', ['stack', 'config', '-c', STACK_FILE], { cwd: ROOT });
    const resolved = parse(stdout) as StackFile;
    expect(Object.keys(resolved.services).sort()).toEqual(['demo', 'nginx', 'sidecar']);
  });

  test('nginx and the sidecar run once on every manager, the sidecar with its node socket and identity', () => {
    const { nginx, sidecar } = stack.services;
    for (const s of [nginx!, sidecar!]) {
      expect(s.deploy?.mode).toBe('global');
      expect(s.deploy?.placement?.constraints).toEqual(['node.role == manager']);
    }
    expect(sidecar!.volumes).toContain('/var/run/docker.sock:/var/run/docker.sock');
    expect(sidecar!.environment?.ORCHESTRY_INSTANCE).toBe('{{.Node.Hostname}}');
    expect(nginx!.labels).toEqual({ 'orchestry.role': 'lb' });
    expect(stack.networks.hostnet).toEqual({ external: true, name: 'host' });
  });

  test("the sidecar's config passes check-config", async () => {
    const { stdout } = await run(process.execPath, [CLI, 'check-config', '--config', join(ROOT, 'examples/swarm/sidecar.yaml')]);
    expect(stdout).toContain('valid');
  });
});

describe("docker-stack.yml's demo service, deployed with docker stack deploy on a two-node swarm", () => {
  const APP = 'demo';
  let s: SwarmStack;
  let dir: string;
  const demo = stack.services.demo!;
  const replicas = demo.deploy!.replicas!;

  /** The stack file with only its demo service, on this machine's image and free ports. */
  async function deployDemo(swarm: SwarmStack['swarm']): Promise<AppService> {
    const prefix = await freeSlotPrefix();
    const local = (v: string) => v.replace(/^800\{\{\.Task\.Slot\}\}$/, `${prefix}{{.Task.Slot}}`);
    const service: StackService & { environment: Record<string, string>; deploy: { labels: Record<string, string> } } = {
      ...demo,
      image: swarm.images.nodeApp,
      environment: { ...Object.fromEntries(Object.entries(demo.environment ?? {}).map(([k, v]) => [k, local(v)])), GRACE_MS: '200' },
      deploy: { ...demo.deploy, labels: Object.fromEntries(Object.entries(demo.deploy!.labels!).map(([k, v]) => [k, local(v)])) },
    };
    expect(service.environment.PORT).toBe(`${prefix}{{.Task.Slot}}`);
    expect(service.deploy.labels['orchestry.port']).toBe(`${prefix}{{.Task.Slot}}`);
    dir = await mkdtemp(join(tmpdir(), 'orchestry-stack-'));
    const file = join(dir, 'stack.yml');
    await writeFile(file, stringify({ services: { demo: service }, networks: stack.networks }));
    await run('docker', ['-H', `unix://${swarm.nodes[0]!.socketPath}`, 'stack', 'deploy', '-c', file, 'orchestry'], { cwd: dir });
    const [created] = await swarm.manager.listServices({ filters: { name: ['orchestry_demo'] } });
    return { id: created!.ID, name: 'orchestry_demo', prefix, port: (slot) => Number(`${prefix}${slot}`) };
  }

  beforeAll(async () => {
    s = await startSwarmStack({
      app: APP,
      service: { name: 'orchestry_demo', replicas },
      deploy: deployDemo,
      sidecar: { apps: { [APP]: { docker: { accept_containers: true }, health: { path: '/health' } } } },
    });
  }, 240_000);

  afterAll(async () => {
    await s?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  test('its tasks run on both nodes, are discovered from the service labels, and nginx routes to each', async () => {
    const tasks = await runningTasks(s.swarm, s.web.id, replicas);
    expect(new Set(tasks.map((t) => t.NodeID)).size).toBe(2);
    const service = (await s.swarm.manager.getService(s.web.id).inspect()) as { Spec: { Labels: Record<string, string> } };
    expect(service.Spec.Labels).toMatchObject({ 'orchestry.enable': 'true', 'orchestry.app': APP, 'com.docker.stack.namespace': 'orchestry' });
    const want = tasks.map((t) => `orchestry_demo.${t.Slot}.${t.ID}`).sort();
    const addresses = tasks.map((t) => `127.0.0.1:${s.web.port(t.Slot!)}`).sort();
    await waitFor(async () => (await s.sidecar.backends(APP)).map((b) => b.address).sort().join() === addresses.join(), { what: 'the sidecar to list every task', timeoutMs: 30_000 });
    const seen = await waitFor(
      async () => {
        const names = new Set<string>();
        for (let i = 0; i < replicas * 4; i++) {
          const res = await s.nginx.get('/');
          if (res.status !== 200) return null;
          names.add(res.body);
        }
        return names.size === replicas ? [...names].sort() : null;
      },
      { what: 'nginx to route to every task', timeoutMs: 30_000 },
    );
    expect(seen).toEqual(want);
    const { body } = await s.sidecar.api<{ rejected_containers: unknown[] }>('/api/v1/apps');
    expect(body.rejected_containers).toEqual([]);
  });
});
