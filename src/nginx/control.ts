/**
 * How the applier talks to nginx once the file is written: test the config, then make nginx
 * load it. Local nginx (a binary and a pid on this host) and nginx in a container (exec and a
 * signal through the Docker API) are two implementations of one interface.
 */
import type Dockerode from 'dockerode';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { NginxConfig } from '../config/types.js';
import { SidecarError } from '../errors.js';
import { createDockerNginxControl } from './docker-control.js';
import { configLoadedAt, reloadNginx } from './reload.js';
import { DUMP_MAX_BYTES, parseNginxVersion, runNginx } from './run.js';
import { validateNginx } from './validate.js';

/** Tests and reloads one nginx. Both methods reject with a SidecarError saying what failed. */
export interface NginxControl {
  /** `nginx -t` on the main config; the error carries nginx's own error lines. */
  validate(): Promise<void>;
  /**
   * `nginx -T -c <configPath>` (same binary and -p): tests that config and returns nginx's dump
   * of every file it read. Throws like validate(). Used to test a copy before a swap.
   */
  dump?(configPath: string): Promise<string>;
  /** The files nginx sees (the same as the sidecar's, or inside nginx's container). */
  files?: NginxFiles;
  /** Delivers the reload signal (nginx loads the config asynchronously). */
  reload(): Promise<void>;
  /** nginx's version (`1.30.6`), from `nginx -v`. */
  version(): Promise<string>;
  /** When nginx last loaded its config (epoch ms), where that can be told; null otherwise. */
  loadedAt?(): Promise<number | null>;
  /** Which nginx this is, for logs and errors. */
  describe(): string;
}

/** What nginx sees, as nginx sees it (paths are nginx's). */
export interface NginxFiles {
  /** The text of the main config `configPath` and the names in its directory. */
  readMain(configPath: string): Promise<{ text: string; names: string[] }>;
  /** Whether `path` exists. */
  exists(path: string): Promise<boolean>;
}

/** The local file system, which a local nginx shares with the sidecar. */
const localFiles: NginxFiles = {
  async readMain(configPath) {
    const [text, names] = await Promise.all([readFile(configPath, 'utf8'), readdir(dirname(configPath))]);
    return { text, names };
  },
  exists: (path) => stat(path).then(() => true, () => false),
};

/** nginx on this host: `nginx -t` by its binary, reload by SIGHUP to its pid or `nginx -s reload`. */
export function createLocalNginxControl(nginx: NginxConfig): NginxControl {
  return {
    validate: () => validateNginx(nginx),
    dump: async (configPath) => {
      const args = ['-T', ...(nginx.prefix ? ['-p', nginx.prefix] : []), '-c', configPath];
      return (await runNginx(nginx.binary, args, { maxBuffer: DUMP_MAX_BYTES })).stdout;
    },
    files: localFiles,
    reload: () => reloadNginx(nginx),
    loadedAt: async () => (nginx.pid_path ? configLoadedAt(nginx.pid_path) : null),
    version: async () => {
      const { stdout, stderr } = await runNginx(nginx.binary, ['-v'], { timeoutMs: 10_000 });
      return parseNginxVersion(`${stderr}\n${stdout}`);
    },
    describe: () => `local nginx (${nginx.config_path})`,
  };
}

/**
 * The control for `nginx.mode`. Mode docker needs a Docker client; binary, prefix and
 * config_path then name nginx's binary and main config inside its container.
 */
export function createNginxControl(nginx: NginxConfig, docker?: Dockerode): NginxControl {
  if (nginx.mode === 'local') return createLocalNginxControl(nginx);
  if (!docker) {
    throw new SidecarError('NGINX_DOCKER_REQUIRED', 'nginx.mode is docker, but no Docker client was given');
  }
  return createDockerNginxControl({
    docker,
    container: nginx.container,
    label: nginx.container_label,
    binary: nginx.binary,
    prefix: nginx.prefix,
    configPath: nginx.config_path,
  });
}
