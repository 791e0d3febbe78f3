import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { NginxConfig } from '../config/types.js';
import { SidecarError, describeError } from '../errors.js';
import { runNginx, targetArgs } from './run.js';

/**
 * Tells nginx to re-read its config. With `pid_path`: SIGHUP to the master named in that file
 * (no nginx binary needed, works across a shared pid namespace); otherwise `nginx -s reload`.
 * Both only deliver the signal: nginx loads the new config asynchronously.
 * Throws SidecarError: NGINX_NOT_RUNNING (missing, garbage or stale pid), NGINX_RELOAD_FAILED,
 * or runNginx's errors.
 */
export async function reloadNginx(
  nginx: Pick<NginxConfig, 'binary' | 'prefix' | 'config_path' | 'pid_path'>,
  opts: { timeoutMs?: number } = {},
): Promise<void> {
  if (!nginx.pid_path) {
    await runNginx(nginx.binary, ['-s', 'reload', ...targetArgs(nginx)], opts);
    return;
  }
  // Both reads are of a few bytes and synchronous: on a main thread busy probing, each awaited
  // read waited 100-400 ms for its turn (bench:scale), in front of every reload.
  signalNginx(readPid(nginx.pid_path), nginx.pid_path);
}

function readPid(path: string): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notRunning(`pid file ${path} does not exist`);
    }
    const detail = `cannot read nginx pid file ${path}: ${describeError(err)}`;
    throw new SidecarError('NGINX_RELOAD_FAILED', detail, { cause: err });
  }
  const trimmed = text.trim();
  // pid 0 or a negative pid would signal a whole process group, ours included.
  if (!/^\d+$/.test(trimmed) || Number(trimmed) < 1) {
    throw notRunning(`pid file ${path} holds ${JSON.stringify(trimmed.slice(0, 40))}, not a pid`);
  }
  return Number(trimmed);
}

function signalNginx(pid: number, path: string): void {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') {
      throw notRunning(`pid file ${path} names pid ${pid}, which does not exist`);
    }
    throw cannotSignal(pid, path, err);
  }
  // A stale pid file can name a pid the kernel has since given to another process, for which
  // SIGHUP usually means "terminate". Where /proc exists, make sure it is nginx.
  let cmdline: string | null = null;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    // No /proc (or the process just went): the signal below tells.
  }
  if (cmdline !== null && !cmdline.includes('nginx')) {
    const name = cmdline.split('\0').join(' ').trim().slice(0, 60);
    throw notRunning(`pid file ${path} names pid ${pid}, which is not nginx (${JSON.stringify(name)})`);
  }
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    throw cannotSignal(pid, path, err);
  }
}

function cannotSignal(pid: number, path: string, err: unknown): SidecarError {
  const detail = `cannot signal nginx pid ${pid} (from ${path}): ${describeError(err)}`;
  return new SidecarError('NGINX_RELOAD_FAILED', detail, { cause: err });
}

function notRunning(detail: string): SidecarError {
  return new SidecarError('NGINX_NOT_RUNNING', `nginx is not running: ${detail}`);
}

/**
 * When the nginx named by `pidPath` last loaded its config: the start of its oldest worker (a
 * reload replaces every worker), in epoch ms, from /proc, give or take a clock tick or two (see
 * bootTimeMs). null when that cannot be told (no /proc, no workers, no such process).
 */
export async function configLoadedAt(pidPath: string): Promise<number | null> {
  try {
    const pid = readPid(pidPath);
    // A pid file of no running process: nginx has loaded nothing.
    if (!(await readFile(`/proc/${pid}/stat`, 'utf8').then(() => true, () => false))) return 0;
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).split(/\s+/).filter(Boolean);
    const boot = await bootTimeMs();
    if (children.length === 0 || boot === null) return null;
    let earliest = Infinity;
    for (const child of children) {
      // Field 22 of /proc/<pid>/stat (after the parenthesised name): start time in clock ticks since boot.
      const stat = await readFile(`/proc/${child}/stat`, 'utf8');
      const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      if (Number.isFinite(ticks)) earliest = Math.min(earliest, boot + (ticks * 1000) / CLOCK_TICKS_PER_SECOND);
    }
    return Number.isFinite(earliest) ? earliest : null;
  } catch {
    return null;
  }
}

/**
 * When this machine booted, in epoch ms, to within a clock tick: now less /proc/uptime (in
 * hundredths). Not /proc/stat's btime, which is whole seconds: an nginx started within a
 * second of its file's last write then looked as if it had not loaded it, and every sidecar
 * started beside a freshly started nginx reloaded it for nothing.
 */
async function bootTimeMs(): Promise<number | null> {
  const uptime = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]);
  return Number.isFinite(uptime) ? Date.now() - uptime * 1000 : null;
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * How far configLoadedAt may read early: a worker's start is cut down to its tick and the boot
 * time is good to a tick. Within this of a file's last write, nginx counts as having loaded it.
 */
export const LOADED_AT_SLACK_MS = 2_000 / CLOCK_TICKS_PER_SECOND;
