/**
 * nginx in a container from the local orchestry-test/nginx image, for nginx.mode docker tests.
 * It runs with host networking on a free 127.0.0.1 port. Its config lives in a temp dir on
 * this side, mounted the way users deploy it: nginx.conf as /etc/nginx/nginx.conf, the
 * directory of the generated file as /etc/nginx/conf.d (a directory mount, so a rename on this
 * side is seen inside), logs as /var/log/nginx (read here to count reloads).
 */
import type Dockerode from 'dockerode';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { containerLogs, runContainer, waitForContainer } from './docker.js';
import { ensureTestImages } from './docker-images.js';
import { httpGet, makeNginxDir, nginxLogCounts, nginxSettled } from './nginx-instance.js';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

/** Where nginx, inside its container, sees the generated file. */
export const INCLUDED_PATH = '/etc/nginx/conf.d/orchestry-upstreams.conf';

export interface NginxContainer {
  /** The container now running (replaced by recreate()). */
  readonly container: Dockerode.Container;
  readonly name: string;
  readonly dir: string;
  readonly port: number;
  /** The generated upstreams file on this side (nginx.output_path). */
  readonly outputPath: string;
  /** GET through nginx; `body` is the backend's name. */
  get(path?: string): Promise<{ status: number; body: string }>;
  /** Reload signals the master has logged since the current container started. */
  reloadCount(): Promise<number>;
  /** Waits until `reloads` reloads were logged and the workers they replaced have exited. */
  settle(reloads: number): Promise<void>;
  /** `docker stop`: the container stays, not running. */
  stop(): Promise<void>;
  /** Removes the container and starts a new one (new id) with the same name, labels and files. */
  recreate(): Promise<void>;
  /** Removes the container and the temp dir. */
  remove(): Promise<void>;
}

/**
 * Starts an nginx container proxying `/` to upstream `app` (default `web`), with `upstreams` as
 * the initial content of the generated file, and waits until it answers.
 */
export async function startNginxContainer(opts: {
  suite: string;
  upstreams: string;
  /** The upstream `/` is proxied to; a unique one keeps other test files' containers out. */
  app?: string;
  name?: string;
  labels?: Record<string, string>;
}): Promise<NginxContainer> {
  const { nginx: image } = await ensureTestImages();
  const dir = await makeNginxDir();
  const port = await freePort();
  const name = opts.name ?? `orchestry-test-nginx-${port}`;
  const outputPath = join(dir, 'conf.d', 'orchestry-upstreams.conf');
  const errorLog = join(dir, 'logs', 'error.log');
  await writeFile(outputPath, opts.upstreams);
  await writeFile(
    join(dir, 'nginx.conf'),
    containerNginxConf([
      'access_log /var/log/nginx/access.log;',
      'include /etc/nginx/conf.d/*.conf;',
      'proxy_http_version 1.1;',
      'proxy_set_header Connection "";',
      `server { listen 127.0.0.1:${port}; location / { proxy_pass http://${opts.app ?? 'web'}; } }`,
    ]),
  );

  const start = async () => {
    await writeFile(errorLog, ''); // counts start again with each container
    return runNginxContainer({
      image,
      suite: opts.suite,
      name,
      ...(opts.labels ? { labels: opts.labels } : {}),
      dir,
      port,
      binds: [`${join(dir, 'conf.d')}:/etc/nginx/conf.d`],
    });
  };

  let container = await start().catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    get container() {
      return container;
    },
    name,
    dir,
    port,
    outputPath,
    get: (path = '/') => httpGet(port, path),
    async reloadCount() {
      return (await nginxLogCounts(errorLog)).reloads;
    },
    settle: (reloads) => nginxSettled(errorLog, reloads),
    async stop() {
      await container.stop({ t: 5 });
      await waitForContainer(container, (i) => !i.State.Running, { what: 'nginx container to stop' });
    },
    async recreate() {
      await container.remove({ force: true });
      container = await start();
    },
    async remove() {
      await container.remove({ force: true }).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * nginx.conf for nginx in a container, which logs to /var/log/nginx (runNginxContainer mounts
 * `dir`/logs there): one worker, and `http` inside `http {}`.
 */
export function containerNginxConf(http: string[]): string {
  return [
    'error_log /var/log/nginx/error.log notice;',
    'worker_processes 1;',
    'events { worker_connections 64; }',
    'http {',
    ...http.map((line) => `    ${line}`),
    '}',
    '',
  ].join('\n');
}

/**
 * Runs `image` with `dir`/nginx.conf as /etc/nginx/nginx.conf and `dir`/logs as /var/log/nginx
 * (plus `binds`) and waits until nginx answers on 127.0.0.1:`port` (with a status `answered`
 * accepts: any by default). A container that exits or never answers is removed, with its logs
 * in the error.
 */
export async function runNginxContainer(opts: {
  image: string;
  suite: string;
  dir: string;
  port: number;
  name?: string;
  labels?: Record<string, string>;
  binds?: string[];
  answered?: (status: number) => boolean;
}): Promise<Dockerode.Container> {
  const container = await runContainer({
    image: opts.image,
    suite: opts.suite,
    ...(opts.name ? { name: opts.name } : {}),
    ...(opts.labels ? { labels: opts.labels } : {}),
    binds: [
      `${join(opts.dir, 'nginx.conf')}:/etc/nginx/nginx.conf:ro`,
      ...(opts.binds ?? []),
      `${join(opts.dir, 'logs')}:/var/log/nginx`,
    ],
  });
  const answered = opts.answered ?? (() => true);
  try {
    await waitFor(
      async () => {
        const info = await container.inspect();
        if (!info.State.Running) throw new Error(`nginx container exited: ${await containerLogs(container)}`);
        return answered((await httpGet(opts.port)).status);
      },
      { what: `nginx in a container to answer on port ${opts.port}`, timeoutMs: 15_000 },
    );
  } catch (err) {
    await container.remove({ force: true }).catch(() => undefined);
    throw err;
  }
  return container;
}
