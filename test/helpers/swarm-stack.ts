/**
 * The Swarm end-to-end stack the e2e tests share: a private two-node swarm (swarm.ts), one
 * service of the test app on it (swarm-services.ts), a private nginx 1.22 in front, and the built
 * CLI with `docker.swarm: true` on the manager's socket, ready (/readyz 200).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { requireDocker } from './docker.js';
import { nginxSection, sidecarYaml } from './fixtures.js';
import { freePort } from './free-port.js';
import { startNginx, type NginxInstance } from './nginx-instance.js';
import { startSidecarProcess, type SidecarProcess } from './sidecar-process.js';
import { startSwarm, type PrivateSwarm } from './swarm.js';
import { createAppService, removeServices, runningTasks, type AppService } from './swarm-services.js';
import { waitFor } from './wait.js';

export interface SwarmStack {
  swarm: PrivateSwarm;
  nginx: NginxInstance;
  sidecar: SidecarProcess;
  web: AppService;
  /** Whether nginx's upstream file routes to 127.0.0.1:port (listed and not down). */
  routed(port: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** A private two-node swarm, its start-up timings logged. */
async function startLoggedSwarm(): Promise<PrivateSwarm> {
  await requireDocker(); // the test images come from the shared engine
  const swarm = await startSwarm({ nodes: 2 });
  console.log(`private swarm started: ${JSON.stringify(swarm.timings)}`);
  return swarm;
}

/**
 * One private swarm for the test file that calls this: started before its tests, stopped after
 * them, every service removed after each test. Returns the swarm's getter.
 */
export function swarmForThisFile(): () => PrivateSwarm {
  let swarm: PrivateSwarm | null = null;
  beforeAll(async () => {
    swarm = await startLoggedSwarm();
  }, 120_000);
  afterAll(async () => {
    const stopped = await swarm?.stop();
    if (stopped) console.log(`private swarm stopped in ${stopped.ms} ms`);
  }, 120_000);
  afterEach(async () => {
    if (swarm) await removeServices(swarm);
  });
  return () => swarm!;
}

/**
 * Starts the stack. `service` is createAppService's options for the one service (its health
 * path is /health), or `deploy` puts it on the swarm another way (a stack file) and says where
 * its tasks listen; `sidecar` is merged into the sidecar's YAML (`docker` into its docker section).
 */
export async function startSwarmStack(opts: {
  app: string;
  service: Omit<Parameters<typeof createAppService>[1], 'app'>;
  deploy?: (swarm: PrivateSwarm) => Promise<AppService>;
  sidecar?: { docker?: Record<string, unknown> } & Record<string, unknown>;
}): Promise<SwarmStack> {
  const swarm = await startLoggedSwarm();
  const { docker, ...rest } = opts.sidecar ?? {};
  const web = opts.deploy
    ? await opts.deploy(swarm)
    : await createAppService(swarm, { ...opts.service, app: opts.app, labels: { 'orchestry.health.path': '/health', ...opts.service.labels } });
  await runningTasks(swarm, web.id, opts.service.replicas);
  const { nginx, sidecar } = await startSwarmSidecar({ swarm, app: opts.app, docker, rest });
  return {
    swarm,
    nginx,
    sidecar,
    web,
    async routed(port) {
      const text = await readFile(nginx.outputPath, 'utf8');
      const line = new RegExp(`^\\s*server 127\\.0\\.0\\.1:${port}\\b([^;]*);`, 'm').exec(text);
      return line !== null && !/\bdown\b/.test(line[1] ?? '');
    },
    async stop() {
      await sidecar.stop();
      await nginx.stop();
      const stopped = await swarm.stop();
      console.log(`private swarm stopped in ${stopped.ms} ms`);
    },
  };
}

/**
 * A private nginx 1.22 for `app` and the built CLI beside it with `docker.swarm: true` on the
 * manager's socket (node 1), ready (/readyz 200). `docker` is merged into its docker section,
 * `rest` into the rest of its YAML.
 */
export async function startSwarmSidecar(opts: {
  swarm: PrivateSwarm;
  app: string;
  docker?: Record<string, unknown>;
  rest?: Record<string, unknown>;
}): Promise<{ nginx: NginxInstance; sidecar: SidecarProcess }> {
  // nginx needs the upstream to exist before the sidecar writes it.
  const nginx = await startNginx({ app: opts.app, upstreams: `upstream ${opts.app} { server 127.0.0.1:1 down; }\n` });
  const adminPort = await freePort();
  const configPath = join(nginx.dir, 'sidecar.yaml');
  await writeFile(
    configPath,
    sidecarYaml({
      apps: { unrelated: {} },
      docker: { enabled: true, socket_path: opts.swarm.nodes[0]!.socketPath, swarm: true, ...opts.docker },
      nginx: nginxSection(nginx.dir),
      admin: { listen: `127.0.0.1:${adminPort}` },
      store: { enabled: false },
      ...opts.rest,
    }),
  );
  const sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`).catch(async (err: unknown) => {
    await nginx.stop();
    throw err;
  });
  try {
    await waitFor(async () => (await sidecar.api('/readyz')).status === 200, { what: 'sidecar ready', timeoutMs: 30_000 });
  } catch (err) {
    // Nobody else holds these yet: left running, they would outlive the test process.
    await sidecar.stop('SIGKILL');
    await nginx.stop();
    throw err;
  }
  return { nginx, sidecar };
}
