/**
 * The local images every Docker test uses. No image can be pulled on these machines, so they
 * are made with `docker import` from a root filesystem assembled out of files already here
 * (see ENVIRONMENT.md): binaries plus the shared libraries `ldd` lists for them.
 *
 * - orchestry-test/node-app: the Node that runs the tests + the demo app (examples/demo-app/
 *   server.mjs, on loopback, with plain replies) at /app/server.mjs + busybox as /bin/sh and
 *   /bin/wget, for the image's HEALTHCHECK (`wget` of http://127.0.0.1:$PORT/health every
 *   second). `docker import --change` accepts HEALTHCHECK, so containers need no Healthcheck in
 *   their create options (they may override it).
 * - orchestry-test/nginx: Debian's /usr/sbin/nginx + mime.types + passwd/group with
 *   nobody/nogroup; runs `nginx -g 'daemon off;'` with /etc/nginx/nginx.conf bind-mounted.
 *
 * The tag is a hash of everything that goes in (file contents, layout, image config), so an
 * unchanged image is reused in well under a second and a changed input builds a new one.
 */
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { docker as defaultDocker, TEST_LABEL } from './docker.js';

export const NODE_APP_REPO = 'orchestry-test/node-app';
export const NGINX_REPO = 'orchestry-test/nginx';

const APP_SCRIPT = fileURLToPath(new URL('../../examples/demo-app/server.mjs', import.meta.url));
const BUSYBOX = '/usr/bin/busybox';
const NGINX_BIN = '/usr/sbin/nginx';

/** `name:tag` of each test image. */
export interface TestImages {
  nodeApp: string;
  nginx: string;
}

/** A root filesystem, described as data so that it can be hashed before it is built. */
interface ImageRecipe {
  repo: string;
  /** rootfs path -> host file to copy. */
  copies: Record<string, string>;
  /** rootfs path -> link target. */
  links: Record<string, string>;
  /** rootfs path -> content. */
  files: Record<string, string>;
  dirs: string[];
  /** Dockerfile instructions for `docker import --change`. */
  changes: string[];
}

let pending: Promise<TestImages> | null = null;

/**
 * Builds the test images unless images with the same content hash exist; returns their names.
 * Once per process; safe to call from every test file. Takes a few seconds on a first build.
 */
export function ensureTestImages(client: Dockerode = defaultDocker): Promise<TestImages> {
  pending ??= (async () => {
    const [nodeApp, nginx] = await Promise.all([
      nodeAppRecipe().then((r) => ensureImage(client, r)),
      nginxRecipe().then((r) => ensureImage(client, r)),
    ]);
    return { nodeApp, nginx };
  })();
  const result = pending;
  result.catch(() => (pending = null)); // a failed build is retried by the next caller
  return result;
}

async function nodeAppRecipe(): Promise<ImageRecipe> {
  const node = process.execPath;
  return {
    repo: NODE_APP_REPO,
    copies: {
      '/usr/local/bin/node': node,
      '/app/server.mjs': APP_SCRIPT,
      '/bin/busybox': BUSYBOX,
      ...(await librariesOf(node)),
    },
    links: { '/bin/sh': 'busybox', '/bin/wget': 'busybox' },
    files: {},
    dirs: ['/tmp'],
    changes: [
      'ENV PATH=/usr/local/bin:/bin',
      // Test containers share the host's network: loopback only. Bodies without the replica's
      // name or a newline, which the tests compare whole.
      'ENV HOST=127.0.0.1 PLAIN_REPLIES=1',
      'ENTRYPOINT ["/usr/local/bin/node", "/app/server.mjs"]',
      'HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD wget -q -O /dev/null http://127.0.0.1:${PORT:-8000}/health || exit 1',
      `LABEL ${TEST_LABEL}=1`,
    ],
  };
}

async function nginxRecipe(): Promise<ImageRecipe> {
  return {
    repo: NGINX_REPO,
    copies: {
      '/usr/sbin/nginx': NGINX_BIN,
      '/etc/nginx/mime.types': '/etc/nginx/mime.types',
      ...(await librariesOf(NGINX_BIN)),
    },
    links: {},
    files: {
      '/etc/passwd': 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n',
      '/etc/group': 'root:x:0:\nnogroup:x:65534:\n',
    },
    // Debian's nginx is built with --pid-path=/run/nginx.pid, logs in /var/log/nginx and
    // temp dirs under /var/lib/nginx (which nginx creates itself, inside this one).
    dirs: ['/run', '/tmp', '/var/log/nginx', '/var/lib/nginx', '/etc/nginx/conf.d'],
    changes: [
      'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin',
      `ENTRYPOINT ["/usr/sbin/nginx", "-g", "daemon off;"]`,
      `LABEL ${TEST_LABEL}=1`,
    ],
  };
}

/** rootfs path -> host path of every shared library (and the loader) `ldd` lists. */
async function librariesOf(binary: string): Promise<Record<string, string>> {
  const { stdout } = await promisify(execFile)('ldd', [binary], { encoding: 'utf8' });
  const libs: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)";
    // linux-vdso has no file.
    const path = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (path) libs[path] = path; // same path inside: the loader's default search dirs find them
  }
  if (Object.keys(libs).length === 0) throw new Error(`ldd found no libraries for ${binary}:\n${stdout}`);
  return libs;
}

async function ensureImage(client: Dockerode, recipe: ImageRecipe): Promise<string> {
  const tag = await recipeHash(recipe);
  const name = `${recipe.repo}:${tag}`;
  const exists = await client
    .getImage(name)
    .inspect()
    .then(
      () => true,
      (err: { statusCode?: number }) => {
        if (err.statusCode === 404) return false;
        throw err;
      },
    );
  if (exists) return name;
  await buildImage(client, recipe, tag);
  await removeStaleTags(client, recipe.repo, name);
  return name;
}

async function recipeHash(recipe: ImageRecipe): Promise<string> {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(recipe));
  for (const [to, from] of Object.entries(recipe.copies).sort()) {
    hash.update(`\0${to}\0`);
    for await (const chunk of createReadStream(from)) hash.update(chunk as Buffer);
  }
  return hash.digest('hex').slice(0, 16);
}

async function buildImage(client: Dockerode, recipe: ImageRecipe, tag: string): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'orchestry-rootfs-'));
  try {
    await chmod(root, 0o755); // mkdtemp's 0700 would become the image's `/`
    const at = (p: string) => join(root, p);
    for (const dir of recipe.dirs) await mkdir(at(dir), { recursive: true });
    await chmod(at('/tmp'), 0o1777).catch(() => undefined);
    for (const [to, from] of Object.entries(recipe.copies)) {
      await mkdir(dirname(at(to)), { recursive: true });
      await copyFile(from, at(to)); // follows symlinks; keeps the mode
    }
    for (const [to, target] of Object.entries(recipe.links)) {
      await mkdir(dirname(at(to)), { recursive: true });
      await symlink(target, at(to));
    }
    for (const [to, content] of Object.entries(recipe.files)) {
      await mkdir(dirname(at(to)), { recursive: true });
      await writeFile(at(to), content, { mode: 0o644 });
    }
    await importRootfs(client, root, recipe, tag);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** `tar -c rootfs | docker import --change ... - repo:tag`, through the API. */
async function importRootfs(client: Dockerode, root: string, recipe: ImageRecipe, tag: string): Promise<void> {
  const tar = spawn('tar', ['-C', root, '--owner=0', '--group=0', '--numeric-owner', '-c', '.'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tarErr = '';
  tar.stderr.on('data', (d: Buffer) => (tarErr += d.toString()));
  const tarExit = new Promise<number | null>((resolve) => tar.once('close', resolve));
  const stream = await client.importImage(tar.stdout, { repo: recipe.repo, tag, changes: recipe.changes });
  const progress = await new Promise<Array<{ error?: string }>>((resolve, reject) =>
    client.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) =>
      err ? reject(err) : resolve(out),
    ),
  );
  const code = await tarExit;
  const failure = code !== 0 ? `tar exited with ${code}: ${tarErr.trim()}` : progress.find((p) => p.error)?.error;
  if (failure) {
    // A truncated tarball can still have become an image; never leave that behind under this tag.
    await client.getImage(`${recipe.repo}:${tag}`).remove({ force: true }).catch(() => undefined);
    throw new Error(`building ${recipe.repo}:${tag} failed: ${failure}`);
  }
}

/** Removes older builds of `repo` (other tags). One still used by a container stays. */
async function removeStaleTags(client: Dockerode, repo: string, keep: string): Promise<void> {
  const images = await client.listImages({ filters: { reference: [repo] } });
  const stale = images.flatMap((i) => i.RepoTags ?? []).filter((t) => t.startsWith(`${repo}:`) && t !== keep);
  await Promise.all(stale.map((t) => client.getImage(t).remove().catch(() => undefined)));
}
