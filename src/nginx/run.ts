/**
 * Runs the nginx binary without a shell, with a timeout, and turns its failures into errors
 * that say what went wrong in one line (nginx's own [emerg] text, not its boilerplate).
 */
import { execFile } from 'node:child_process';
import { SidecarError } from '../errors.js';
import type { NginxConfig } from '../config/types.js';

/** The part of the nginx config that says which nginx, and which main config, to talk to. */
export type NginxTarget = Pick<NginxConfig, 'binary' | 'prefix' | 'config_path'>;

const DEFAULT_TIMEOUT_MS = 30_000;

/** `[-p prefix] -c config_path`: the same instance for test and reload. */
export function targetArgs(nginx: NginxTarget): string[] {
  return [...(nginx.prefix ? ['-p', nginx.prefix] : []), '-c', nginx.config_path];
}

/**
 * Runs `binary args...`. Throws SidecarError: NGINX_NOT_FOUND (no such binary), NGINX_TIMEOUT,
 * NGINX_FAILED (could not start, or non-zero exit; the message carries nginx's error lines).
 */
export function runNginx(
  binary: string,
  args: string[],
  opts: { timeoutMs?: number; maxBuffer?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const command = `${binary} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: timeoutMs, encoding: 'utf8', maxBuffer: opts.maxBuffer ?? 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const code = (err as NodeJS.ErrnoException).code as string | number | undefined;
      const fail = (errorCode: string, message: string) =>
        reject(new SidecarError(errorCode, message, { cause: err }));
      if (code === 'ENOENT') {
        return fail('NGINX_NOT_FOUND', `nginx binary not found: "${binary}" (nginx.binary)`);
      }
      if (err.killed) return fail('NGINX_TIMEOUT', `${command} timed out after ${timeoutMs} ms`);
      if (typeof code === 'string') return fail('NGINX_FAILED', `could not run ${command}: ${err.message}`);
      fail('NGINX_FAILED', `${command} failed (exit ${code ?? '?'}): ${errorLines(stderr || stdout)}`);
    });
  });
}

/**
 * nginx's error lines without timestamps, pids and the "test failed" trailer. The same error
 * can appear twice (stderr and an error log that is also stderr), so lines are deduplicated.
 */
export function errorLines(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const serious = lines
    .filter((l) => /\[(emerg|alert|crit|error)\]/.test(l))
    .map((l) =>
      l
        .replace(/^nginx: /, '')
        .replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '')
        .replace(/^(\[\w+\]) \d+#\d+: (\*\d+ )?/, '$1 '),
    );
  const chosen = serious.length > 0 ? serious : lines.filter((l) => !/test failed|syntax is ok/.test(l));
  return chosen.length > 0 ? [...new Set(chosen)].join('; ') : '(no output)';
}

/**
 * The files `nginx -T` says it read, in order: the lines `# configuration file <path>:` that
 * precede each file's dump.
 */
export function dumpedFiles(output: string): string[] {
  const out: string[] = [];
  for (const line of output.split('\n')) {
    const m = /^# configuration file (.+):$/.exec(line.replace(/\r$/, ''));
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Most output `nginx -T` may print: every file of the config, mime types and maps included. */
export const DUMP_MAX_BYTES = 64 * 1024 * 1024;

/** `nginx version: nginx/1.30.6` (what `nginx -v` prints) -> `1.30.6`; throws when absent. */
export function parseNginxVersion(output: string): string {
  const m = /nginx version: [\w.-]*?\/(\d+\.\d+\.\d+)/.exec(output);
  if (!m) throw new SidecarError('NGINX_FAILED', `cannot read nginx's version from ${JSON.stringify(output.trim().slice(0, 200))}`);
  return m[1]!;
}

/** Whether version `v` (`1.30.6`) is at least `min` (`1.27.3`). */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}
