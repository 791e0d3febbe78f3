/**
 * What the daemon loads: dockerode (and with it ssh2, protobufjs, grpc: +33 MB of RSS at start,
 * bench:scale) only when Docker is enabled; node:tls (~4 MB) only for an https backend. The built daemon starts in a child process of its
 * own, which then lists the packages it has loaded.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sidecarYaml } from '../helpers/fixtures.js';

const MAIN = new URL('../../dist/main.js', import.meta.url).href;

/** Starts dist/main.js's startSidecar on `config` in a child; the packages it loaded by then. */
const CHILD = `
const { startSidecar } = await import(process.argv[1]);
const sidecar = await startSidecar({ configPath: process.argv[2], env: {} });
const packages = new Set();
for (const f of Object.keys(process.getBuiltinModule('module')._cache)) {
  const m = [...f.matchAll(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/g)].at(-1);
  if (m) packages.add(m[1]);
}
for (const m of process.moduleLoadList) if (/^NativeModule (tls|https)$/.test(m)) packages.add(\`node:\${m.split(' ')[1]}\`);
await sidecar.stop();
console.log(JSON.stringify([...packages]));
process.exit(0);
`;

function loadedPackages(configPath: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', CHILD, MAIN, configPath], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]') as string[]);
    });
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-lazy-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configWith(docker: boolean): Promise<string> {
  const path = join(dir, `docker-${docker}.yaml`);
  await writeFile(
    path,
    sidecarYaml({
      apps: { web: { backends: ['127.0.0.1:9'] } },
      admin: { listen: '127.0.0.1:0' },
      passive: { listen: '127.0.0.1:0' },
      store: { enabled: false },
      logging: { level: 'fatal' },
      nginx: { binary: join(dir, 'no-nginx'), output_path: join(dir, 'upstreams.conf'), config_path: join(dir, 'nginx.conf'), pid_path: join(dir, 'nginx.pid') },
      docker: { enabled: docker, socket_path: join(dir, 'no-docker.sock') },
    }),
  );
  return path;
}

describe('modules the daemon loads', () => {
  it('does not load dockerode, ssh2, protobufjs or undici when Docker is disabled', async () => {
    const packages = await loadedPackages(await configWith(false));
    expect(packages).toContain('prom-client');
    // undici only for a clear_cache call; the prober speaks HTTP itself.
    expect(packages.filter((p) => ['dockerode', 'docker-modem', 'ssh2', 'protobufjs', '@grpc/grpc-js', 'undici'].includes(p))).toEqual([]);
  });

  it('does not load node:tls or node:https for plain-HTTP backends (prom-client without its index)', async () => {
    const packages = await loadedPackages(await configWith(false));
    expect(packages.filter((p) => p.startsWith('node:'))).toEqual([]);
  });

  it('loads dockerode when Docker is enabled', async () => {
    const packages = await loadedPackages(await configWith(true));
    expect(packages).toContain('dockerode');
  });
});
