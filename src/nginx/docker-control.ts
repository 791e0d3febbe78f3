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
 * - shows the sidecar nginx's files through the archive endpoint (`GET
 *   /containers/{id}/archive`, read-only, no shell needed in the image), so a copy of the main
 *   config can be tested before a swap (test-copy.ts).
 *
 * The container is looked up again on every call, so an nginx container that was recreated
 * (new id, same name or label) is found without restarting the sidecar.
 */
import type Dockerode from 'dockerode';
import { posix } from 'node:path';
import { PassThrough } from 'node:stream';
import { ConfigError, SidecarError, describeError } from '../errors.js';
import type { NginxControl, NginxFiles } from './control.js';
import { DUMP_MAX_BYTES, errorLines, parseNginxVersion } from './run.js';
import { readTar } from './tar-read.js';

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

/** What every call needs: the lookup, the test command and how errors name the config field. */
interface Control {
  readonly docker: Dockerode;
  readonly ref: string | null;
  readonly label: string | null;
  /** The config field errors point at. */
  readonly field: string;
  readonly binary: string;
  readonly testArgs: string[];
  /** `-p prefix` when one is set, for other runs of nginx. */
  readonly prefixArgs: string[];
  /** The test command as errors show it. */
  readonly command: string;
  readonly timeoutMs: number;
}

/** An NginxControl for nginx running in a container, driven through the Docker Engine API. */
export function createDockerNginxControl(opts: DockerNginxControlOptions): NginxControl {
  const ref = opts.container ?? null;
  const label = opts.label ?? null;
  if (!ref && !label) {
    throw new ConfigError([{ path: 'nginx.container', message: 'must be set (or nginx.container_label) when nginx.mode is docker' }]);
  }
  const binary = opts.binary ?? 'nginx';
  const prefixArgs = opts.prefix ? ['-p', opts.prefix] : [];
  const testArgs = ['-t', ...prefixArgs, ...(opts.configPath ? ['-c', opts.configPath] : [])];
  const ctl: Control = {
    docker: opts.docker,
    ref,
    label,
    field: ref ? 'nginx.container' : 'nginx.container_label',
    binary,
    testArgs,
    prefixArgs,
    command: [binary, ...testArgs].join(' '),
    timeoutMs: opts.timeoutMs ?? 30_000,
  };
  return {
    validate: async () => void (await validate(ctl)),
    dump: async (configPath) => (await validate(ctl, ['-T', ...ctl.prefixArgs, '-c', configPath])).stdout,
    files: containerFiles(ctl),
    reload: () => reload(ctl),
    async version() {
      const found = await find(ctl);
      const { exitCode, stdout, stderr } = await exec(ctl, found, ['-v']);
      const output = `${stderr}\n${stdout}`;
      if (exitCode !== 0) throw new SidecarError('NGINX_FAILED', `${ctl.binary} -v in nginx ${found.name} failed (exit ${exitCode}): ${output.trim()}`);
      return parseNginxVersion(output);
    },
    describe: () => (ref ? `nginx in container "${ref}"` : `nginx in the container labelled "${label}"`),
  };
}

/** Runs nginx with `args` (default the test of the main config); its stdout and stderr when it exits 0. */
async function validate(ctl: Control, args = ctl.testArgs): Promise<{ stdout: string; stderr: string }> {
  const found = await find(ctl);
  const { exitCode, stdout, stderr } = await exec(ctl, found, args);
  if (exitCode === 0) return { stdout, stderr };
  const output = `${stderr}\n${stdout}`;
  if (CANNOT_RUN.has(exitCode)) {
    throw new SidecarError(
      'NGINX_NOT_FOUND',
      `cannot run nginx binary "${ctl.binary}" in nginx ${found.name} (nginx.binary): ` +
        (output.trim() || `exit ${exitCode}`),
    );
  }
  const command = [ctl.binary, ...args].join(' ');
  const message = `${command} in nginx ${found.name} failed (exit ${exitCode}): ${errorLines(output)}`;
  throw new SidecarError('NGINX_FAILED', message);
}

/** The container's files through the archive endpoints. */
function containerFiles(ctl: Control): NginxFiles {
  return {
    async readMain(configPath) {
      const found = await find(ctl);
      const dir = posix.dirname(configPath);
      const entries = readTar(await archive(ctl, found, dir));
      const root = entries[0]?.name ?? '';
      const names = entries.filter((e) => e.name.startsWith(`${root}/`) && !e.name.slice(root.length + 1).includes('/')).map((e) => e.name.slice(root.length + 1));
      let main = entries.find((e) => e.name === `${root}/${posix.basename(configPath)}`);
      // A main config that is a link (e.g. to a file under /etc/nginx/conf.available): follow a few.
      for (let hops = 0; main?.type === 'symlink' && hops < 8; hops++) {
        const target = posix.resolve(dir, main.linkname);
        main = readTar(await archive(ctl, found, target))[0];
      }
      if (main?.type !== 'file') throw new SidecarError('NGINX_FAILED', `${configPath} in nginx ${found.name} is not a file`);
      return { text: main.content.toString('utf8'), names };
    },
    async exists(path) {
      const found = await find(ctl);
      // GET and drop the tar rather than HEAD (infoArchive): dockerode leaves the socket of a
      // HEAD answered 404 open, and that socket alone kept the daemon from exiting at stop.
      try {
        const stream = (await found.container.getArchive({ path })) as unknown as { destroy(): void };
        stream.destroy();
        return true;
      } catch (err) {
        if (statusOf(err) === 404) return false;
        throw apiFailed(ctl, found, `stat ${path}`, err);
      }
    },
  };
}

/** `GET /containers/{id}/archive?path=`: the tar of `path`, at most DUMP_MAX_BYTES. */
async function archive(ctl: Control, found: Found, path: string): Promise<Buffer> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await found.container.getArchive({ path });
  } catch (err) {
    throw apiFailed(ctl, found, `read ${path}`, err);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > DUMP_MAX_BYTES) {
      (stream as unknown as { destroy(): void }).destroy();
      throw new SidecarError('NGINX_FAILED', `${path} in nginx ${found.name} is larger than ${DUMP_MAX_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function reload(ctl: Control): Promise<void> {
  const found = await find(ctl);
  try {
    await found.container.kill({ signal: 'HUP' });
  } catch (err) {
    throw apiFailed(ctl, found, 'send SIGHUP', err);
  }
}

function notRunning(ctl: Control, what: string): SidecarError {
  return new SidecarError('NGINX_NOT_RUNNING', `nginx is not running: ${what} (${ctl.field})`);
}

async function find(ctl: Control): Promise<Found> {
  return ctl.ref ? findByRef(ctl, ctl.ref) : findByLabel(ctl, ctl.label!);
}

async function findByRef(ctl: Control, id: string): Promise<Found> {
  const container = ctl.docker.getContainer(id);
  let info: Dockerode.ContainerInspectInfo;
  try {
    info = await container.inspect();
  } catch (err) {
    if (statusOf(err) === 404) {
      throw new SidecarError('NGINX_CONTAINER_NOT_FOUND', `nginx container "${id}" not found (${ctl.field})`, { cause: err });
    }
    throw dockerFailed(`cannot inspect nginx container "${id}"`, err);
  }
  const name = `container "${id}"`;
  const state = info.State.Paused ? 'paused' : info.State.Status;
  if (state !== 'running') throw notRunning(ctl, `${name} is ${state}`);
  return { container, name };
}

async function findByLabel(ctl: Control, wanted: string): Promise<Found> {
  let list: Dockerode.ContainerInfo[];
  try {
    list = await ctl.docker.listContainers({ all: true, filters: { label: [wanted] } });
  } catch (err) {
    throw dockerFailed(`cannot list containers labelled "${wanted}"`, err);
  }
  const describeAll = (cs: Dockerode.ContainerInfo[]) => cs.map((c) => `${nameOf(c)} ${c.State}`).join(', ');
  if (list.length === 0) {
    throw new SidecarError('NGINX_CONTAINER_NOT_FOUND', `nginx container with label "${wanted}" not found (${ctl.field})`);
  }
  const running = list.filter((c) => c.State === 'running');
  if (running.length === 0) throw notRunning(ctl, `no container labelled "${wanted}" is running (${describeAll(list)})`);
  if (running.length > 1) {
    throw new SidecarError(
      'NGINX_CONTAINER_AMBIGUOUS',
      `${running.length} running containers have label "${wanted}" (${running.map(nameOf).join(', ')}); ` +
        `${ctl.field} must match exactly one`,
    );
  }
  const only = running[0]!;
  return { container: ctl.docker.getContainer(only.Id), name: `container "${nameOf(only)}"` };
}

/** Maps the API's "gone" and "not running" answers to the same errors as the lookup. */
function apiFailed(ctl: Control, found: Found, action: string, err: unknown): SidecarError {
  const status = statusOf(err);
  if (status === 404) {
    return new SidecarError('NGINX_CONTAINER_NOT_FOUND', `nginx ${found.name} not found (${ctl.field})`, { cause: err });
  }
  if (status === 409) return notRunning(ctl, `${found.name}: ${dockerMessage(err)}`);
  return dockerFailed(`cannot ${action} in nginx ${found.name}`, err);
}

/** Runs the test command in the container: its exit code, stdout and stderr. */
async function exec(ctl: Control, found: Found, args = ctl.testArgs): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const command = [ctl.binary, ...args].join(' ');
  let stream: NodeJS.ReadWriteStream;
  let run: Dockerode.Exec;
  try {
    run = await found.container.exec({ Cmd: [ctl.binary, ...args], AttachStdout: true, AttachStderr: true, Tty: false });
    stream = await run.start({ hijack: true, stdin: false });
  } catch (err) {
    throw apiFailed(ctl, found, `run ${command}`, err);
  }
  // Each stream on its own: the engine copies a process's stdout and stderr separately, so one
  // text of both can have stderr's lines in the middle of a stdout line (measured: `nginx -T`'s
  // "test is successful" inside a `# configuration file <path>:` line in 28 of 800 dumps under
  // load, which made test-copy.ts miss a file nginx had read).
  const collect = () => {
    const into = new PassThrough();
    const chunks: Buffer[] = [];
    into.on('data', (d: Buffer) => chunks.push(d));
    return { into, text: () => Buffer.concat(chunks).toString('utf8') };
  };
  const out = collect();
  const err = collect();
  ctl.docker.modem.demuxStream(stream, out.into, err.into);
  await streamEnd(ctl, found, stream);
  const exitCode = await exitCodeOf(ctl, found, run);
  return { exitCode, stdout: out.text(), stderr: err.text() };
}

/** Waits for the exec's output stream to end, at most timeoutMs. */
function streamEnd(ctl: Control, found: Found, stream: NodeJS.ReadWriteStream): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      (stream as unknown as { destroy(): void }).destroy();
      reject(new SidecarError('NGINX_TIMEOUT', `${ctl.command} in nginx ${found.name} timed out after ${ctl.timeoutMs} ms`));
    }, ctl.timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      resolve();
    };
    stream.on('end', finish);
    stream.on('close', finish);
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(apiFailed(ctl, found, `run ${ctl.command}`, err));
    });
  });
}

async function exitCodeOf(ctl: Control, found: Found, run: Dockerode.Exec): Promise<number> {
  // The stream can end a moment before the engine records the exit code.
  for (let attempt = 0; ; attempt++) {
    let info: Dockerode.ExecInspectInfo;
    try {
      info = await run.inspect();
    } catch (err) {
      throw apiFailed(ctl, found, `inspect ${ctl.command}`, err);
    }
    if (!info.Running && info.ExitCode !== null) return info.ExitCode;
    if (attempt >= 50) throw dockerFailed(`${ctl.command} in nginx ${found.name} did not report an exit code`, null);
    await new Promise((r) => setTimeout(r, 20));
  }
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
