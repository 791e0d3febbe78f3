/**
 * nginx >= 1.27.3 for the DNS-mode tests (zone upstreams with `server NAME service=... resolve`,
 * which Debian 12's 1.22 lacks): Debian sid's nginx, which scripts/setup.sh builds into its own
 * root (scripts/setup-nginx-sid.sh, /var/cache/orchestry/nginx-sid).
 *
 * - currentNginx(): the binary to run on this host, scripts/nginx-sid (sid's loader + sid's
 *   libraries, host paths everywhere), or $NGINX_CURRENT_BIN where a newer nginx is installed.
 * - ensureCurrentNginxImage(): an image of that root for nginx-in-a-container tests, tagged
 *   `orchestry-test/nginx-current:<content hash>` and, as a stand-in for the official image,
 *   `nginx:<major.minor>` of the version inside (so a tag never claims a feature its binary lacks).
 *
 * Missing is a test failure that says to run scripts/setup.sh, never a skip.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { docker as defaultDocker, TEST_LABEL } from './docker.js';
import { REPO_ROOT, inspectImage, run } from './standin-images.js';

export const NGINX_SID_ROOT = process.env.ORCHESTRY_NGINX_ROOT ?? '/var/cache/orchestry/nginx-sid';
export const NGINX_CURRENT_BIN = process.env.NGINX_CURRENT_BIN ?? join(REPO_ROOT, 'scripts', 'nginx-sid');
/** The first nginx with `resolve` and `service=` in open source. */
export const MIN_DNS_NGINX = '1.27.3';
export const CURRENT_NGINX_REPO = 'orchestry-test/nginx-current';

export interface CurrentNginx {
  binary: string;
  /** e.g. `1.30.6` */
  version: string;
}

let found: Promise<CurrentNginx> | null = null;

/** The nginx >= 1.27.3 on this machine; rejects with what to run when there is none. */
export function currentNginx(): Promise<CurrentNginx> {
  found ??= (async () => {
    const binary = NGINX_CURRENT_BIN;
    const output = await run(binary, ['-v']).catch((err: unknown) => {
      throw new Error(
        `no nginx >= ${MIN_DNS_NGINX} for the DNS-mode tests (${binary} -v failed); run scripts/setup.sh as root ` +
          `(it builds Debian sid's nginx into ${NGINX_SID_ROOT}):\n${err instanceof Error ? err.message : String(err)}`,
      );
    });
    const version = /nginx\/(\d+\.\d+\.\d+)/.exec(output)?.[1];
    if (!version || compareVersions(version, MIN_DNS_NGINX) < 0) {
      throw new Error(`${binary} is nginx ${version ?? '(unknown)'}, the DNS-mode tests need >= ${MIN_DNS_NGINX}; run scripts/setup.sh as root`);
    }
    return { binary, version };
  })();
  const result = found;
  result.catch(() => (found = null));
  return result;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** Like the official image: config at /etc/nginx/nginx.conf, foreground master. */
const IMAGE_CHANGES = [
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'ENTRYPOINT ["/usr/sbin/nginx", "-g", "daemon off;"]',
  `LABEL ${TEST_LABEL}=1`,
];
/** Not needed to run nginx; leaving them out saves a third of the image. */
const LEFT_OUT = ['./usr/share/doc', './usr/share/man', './usr/share/locale', './usr/share/info', './var/cache/apt'];

/**
 * Makes sure the image of the sid root exists (about 10 s to import the first time, then
 * instant) and tags the `nginx:<major.minor>` stand-in unless a real image has that name.
 * Returns both names.
 */
export async function ensureCurrentNginxImage(client: Dockerode = defaultDocker): Promise<{ image: string; standin: string }> {
  const { version } = await currentNginx();
  const image = `${CURRENT_NGINX_REPO}:${await rootHash()}`;
  if (!(await inspectImage(client, image))) {
    const tar = spawn('tar', ['-C', NGINX_SID_ROOT, '--numeric-owner', ...LEFT_OUT.map((p) => `--exclude=${p}`), '-c', '.'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await run('docker', ['import', ...IMAGE_CHANGES.flatMap((c) => ['-c', c]), '-', image], { input: tar.stdout });
    // Older imports of the root (sid moved on): their tags go, so they do not pile up.
    const older = await client.listImages({ filters: { reference: [CURRENT_NGINX_REPO] } });
    const stale = older.flatMap((i) => i.RepoTags ?? []).filter((t) => t !== image);
    await Promise.all(stale.map((t) => client.getImage(t).remove().catch(() => undefined)));
  }
  const standin = `nginx:${version.split('.').slice(0, 2).join('.')}`;
  const existing = await inspectImage(client, standin);
  if (!existing || existing.Config?.Labels?.[TEST_LABEL]) {
    const [repo, tag] = standin.split(':') as [string, string];
    await client.getImage(image).tag({ repo, tag });
  }
  return { image, standin };
}

/** What identifies the root's content: the nginx binary, the package list, the image settings. */
async function rootHash(): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify({ IMAGE_CHANGES, LEFT_OUT }));
  for (const file of ['usr/sbin/nginx', 'var/lib/dpkg/status']) {
    for await (const chunk of createReadStream(join(NGINX_SID_ROOT, file))) hash.update(chunk as Buffer);
  }
  return hash.digest('hex').slice(0, 16);
}
