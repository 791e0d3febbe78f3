/**
 * nginx in its own container (nginx.mode docker). The sidecar writes the generated file into a
 * directory it shares with that container, then:
 * - validates with `nginx -t` run inside the container (Docker exec; output and exit code), so
 *   the test sees the files, paths and binary nginx itself will load;
 * - reloads with SIGHUP through the API (`docker kill -s HUP`), which goes to the container's
 *   pid 1: nginx's master, as in the official images. An entrypoint that wraps nginx must
 *   forward SIGHUP (tini and `exec nginx` do).
 *
 * Share the *directory* holding output_path (a volume or a bind mount of the directory), not
 * the file: the applier replaces the file by rename, and a single-file bind mount keeps showing
 * the container the old inode.
 *
 * The container is looked up again on every call, so an nginx container that was recreated
 * (new id, same name or label) is found without restarting the sidecar.
 */
import type Dockerode from 'dockerode';
import { PassThrough } from 'node:stream';
import { ConfigError, SidecarError, describeError } from '../errors.js';
import type { NginxControl } from './control.js';
import { errorLines } from './run.js';

export interface DockerNginxControlOptions {
  docker: Dockerode;
  /** The nginx container by name or id (nginx.container)... */
  container?: string | null;
  /** ...or by label, `key=value` or `key` (nginx.container_label): exactly one running match. */
  label?: string | null;
  /** nginx binary inside the container; default `nginx` (looked up in the container's PATH). */
  binary?: string;
  /** `-p` inside the container; default none. */
  prefix?: string | null;
  /** `-c` inside the container; default none: the binary's compiled-in nginx.conf. */
  configPath?: string | null;
  /** Most time `nginx -t` may take; default 30 s. */
  timeoutMs?: number;
}

interface Found {
  container: Dockerode.Container;
  /** How errors name it: `container "web-nginx"`. */
  name: string;
}

/** Exit status of a command the runtime could not start (not found, not executable). */
const CANNOT_RUN = new Set([126, 127]);

/** An NginxControl for nginx running in a container, driven through the Docker Engine API. */
export function createDockerNginxControl(opts: DockerNginxControlOptions): NginxControl {
  const { docker } = opts;
  const ref = opts.container ?? null;
  const label = opts.label ?? null;
  if (!ref && !label) {
    throw new ConfigError([{ path: 'nginx.container', message: 'must be set (or nginx.container_label) when nginx.mode is docker' }]);
  }
  const field = ref ? 'nginx.container' : 'nginx.container_label';
  const binary = opts.binary ?? 'nginx';
  const testArgs = ['-t', ...(opts.prefix ? ['-p', opts.prefix] : []), ...(opts.configPath ? ['-c', opts.configPath] : [])];
  const command = [binary, ...testArgs].join(' ');
  const timeoutMs = opts.timeoutMs ?? 30_000;

  const notRunning = (what: string) => new SidecarError('NGINX_NOT_RUNNING', `nginx is not running: ${what} (${field})`);

  const find = async (): Promise<Found> => (ref ? findByRef(ref) : findByLabel(label!));

  const findByRef = async (id: string): Promise<Found> => {
    const container = docker.getContainer(id);
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (err) {
      if (statusOf(err) === 404) {
        throw new SidecarError('NGINX_CONTAINER_NOT_FOUND', `nginx container "${id}" not found (${field})`, { cause: err });
      }
      throw dockerFailed(`cannot inspect nginx container "${id}"`, err);
    }
    const name = `container "${id}"`;
    const state = info.State.Paused ? 'paused' : info.State.Status;
    if (state !== 'running') throw notRunning(`${name} is ${state}`);
    return { container, name };
  };

  const findByLabel = async (wanted: string): Promise<Found> => {
    let list: Dockerode.ContainerInfo[];
    try {
      list = await docker.listContainers({ all: true, filters: { label: [wanted] } });
    } catch (err) {
      throw dockerFailed(`cannot list containers labelled "${wanted}"`, err);
    }
    const describeAll = (cs: Dockerode.ContainerInfo[]) => cs.map((c) => `${nameOf(c)} ${c.State}`).join(', ');
    if (list.length === 0) {
      throw new SidecarError('NGINX_CONTAINER_NOT_FOUND', `nginx container with label "${wanted}" not found (${field})`);
    }
    const running = list.filter((c) => c.State === 'running');
    if (running.length === 0) throw notRunning(`no container labelled "${wanted}" is running (${describeAll(list)})`);
    if (running.length > 1) {
      throw new SidecarError(
        'NGINX_CONTAINER_AMBIGUOUS',
        `${running.length} running containers have label "${wanted}" (${running.map(nameOf).join(', ')}); ` +
          `${field} must match exactly one`,
      );
    }
    const only = running[0]!;
    return { container: docker.getContainer(only.Id), name: `container "${nameOf(only)}"` };
  };

  /** Maps the API's "gone" and "not running" answers to the same errors as the lookup. */
  const apiFailed = (found: Found, action: string, err: unknown): SidecarError => {
    const status = statusOf(err);
    if (status === 404) {
      return new SidecarError('NGINX_CONTAINER_NOT_FOUND', `nginx ${found.name} not found (${field})`, { cause: err });
    }
    if (status === 409) return notRunning(`${found.name}: ${dockerMessage(err)}`);
    return dockerFailed(`cannot ${action} in nginx ${found.name}`, err);
  };

  const exec = async (found: Found): Promise<{ exitCode: number; output: string }> => {
    let stream: NodeJS.ReadWriteStream;
    let run: Dockerode.Exec;
    try {
      run = await found.container.exec({ Cmd: [binary, ...testArgs], AttachStdout: true, AttachStderr: true, Tty: false });
      stream = await run.start({ hijack: true, stdin: false });
    } catch (err) {
      throw apiFailed(found, `run ${command}`, err);
    }
    // nginx -t writes to stderr; keep both streams in one text, in order.
    const collected = new PassThrough();
    let output = '';
    collected.on('data', (d: Buffer) => (output += d.toString('utf8')));
    docker.modem.demuxStream(stream, collected, collected);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        (stream as unknown as { destroy(): void }).destroy();
        reject(new SidecarError('NGINX_TIMEOUT', `${command} in nginx ${found.name} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        resolve();
      };
      stream.on('end', finish);
      stream.on('close', finish);
      stream.on('error', (err) => {
        clearTimeout(timer);
        reject(apiFailed(found, `run ${command}`, err));
      });
    });
    // The stream can end a moment before the engine records the exit code.
    for (let attempt = 0; ; attempt++) {
      let info: Dockerode.ExecInspectInfo;
      try {
        info = await run.inspect();
      } catch (err) {
        throw apiFailed(found, `inspect ${command}`, err);
      }
      if (!info.Running && info.ExitCode !== null) return { exitCode: info.ExitCode, output };
      if (attempt >= 50) throw dockerFailed(`${command} in nginx ${found.name} did not report an exit code`, null);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  return {
    async validate() {
      const found = await find();
      const { exitCode, output } = await exec(found);
      if (exitCode === 0) return;
      if (CANNOT_RUN.has(exitCode)) {
        throw new SidecarError(
          'NGINX_NOT_FOUND',
          `cannot run nginx binary "${binary}" in nginx ${found.name} (nginx.binary): ` +
            (output.trim() || `exit ${exitCode}`),
        );
      }
      const message = `${command} in nginx ${found.name} failed (exit ${exitCode}): ${errorLines(output)}`;
      throw new SidecarError('NGINX_FAILED', message);
    },
    async reload() {
      const found = await find();
      try {
        await found.container.kill({ signal: 'HUP' });
      } catch (err) {
        throw apiFailed(found, 'send SIGHUP', err);
      }
    },
    describe: () => (ref ? `nginx in container "${ref}"` : `nginx in the container labelled "${label}"`),
  };
}

function nameOf(c: Dockerode.ContainerInfo): string {
  return (c.Names[0] ?? c.Id.slice(0, 12)).replace(/^\//, '');
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | null)?.statusCode;
}

/** The engine's own message (`json.message`) rather than dockerode's "(HTTP code 409) ..." prefix. */
function dockerMessage(err: unknown): string {
  const json = (err as { json?: { message?: string } } | null)?.json;
  return json?.message ?? describeError(err);
}

/** A failed Docker API call; an unreachable engine gets its own code, so callers can say "degraded". */
function dockerFailed(what: string, err: unknown): SidecarError {
  const errno = (err as NodeJS.ErrnoException | null)?.code;
  if (errno === 'ENOENT' || errno === 'ECONNREFUSED' || errno === 'EACCES') {
    const message = `${what}: cannot reach the Docker Engine (${describeError(err)})`;
    return new SidecarError('DOCKER_UNAVAILABLE', message, { cause: err });
  }
  return new SidecarError('NGINX_DOCKER_FAILED', err === null ? what : `${what}: ${dockerMessage(err)}`, { cause: err });
}
