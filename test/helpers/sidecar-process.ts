/**
 * Runs the built CLI (`dist/cli.js run`) as a real child process, the way users run it, and
 * talks to it through its admin HTTP server.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

/** The built CLI entry. */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** One CLI command run to its end (ORCHESTRY_CONFIG cleared unless `env` sets it), with `node` (default: this Node). */
export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; node?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(opts.node ?? process.execPath, [CLI, ...args], { env: { ...process.env, ORCHESTRY_CONFIG: '', ...opts.env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** One backend as GET /api/v1/apps/<app> lists it (the fields tests read). */
export interface BackendJson {
  id: string;
  address: string;
  health: string;
  breaker: string;
  ejected: boolean;
  container: { id: string; name: string } | null;
  last_probe: { at: string; response_time_ms: number } | null;
}

export interface SidecarProcess {
  readonly child: ChildProcess;
  readonly adminUrl: string;
  /** Every JSON log line so far, parsed. */
  logs(): Array<Record<string, unknown>>;
  api<T = unknown>(path: string): Promise<{ status: number; body: T }>;
  /** The backends of `app` (none while the app is unknown). */
  backends(app: string): Promise<BackendJson[]>;
  /** The value of one metric series from /metrics (sum over matching series), or 0. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code (null: killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startSidecarProcess(
  configPath: string,
  adminUrl: string,
  opts: {
    env?: Record<string, string>;
    /** Starts it another way (a service manager's command line); configPath is then unused. */
    command?: { file: string; args: string[] };
    /** A command that runs the sidecar's command line, e.g. `['prlimit', '--nofile=256', '--']`. */
    wrapper?: string[];
  } = {},
): Promise<SidecarProcess> {
  const base = opts.command ?? { file: process.execPath, args: [CLI, 'run', '--config', configPath] };
  const [file = base.file, ...args] = [...(opts.wrapper ?? []), base.file, ...base.args];
  const child = spawn(file, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ORCHESTRY_CONFIG: '', ...opts.env },
  });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const api = async <T>(path: string) => {
    // A connection each: the admin server closes idle kept-alive ones when it is at its cap.
    const res = await fetch(adminUrl + path, { headers: { connection: 'close' } });
    const text = await res.text();
    let body: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json')) body = JSON.parse(text);
    return { status: res.status, body: body as T };
  };
  const sidecar: SidecarProcess = {
    child,
    adminUrl,
    logs: () => lines,
    api,
    async backends(app) {
      const { status, body } = await api<{ backends: BackendJson[] }>(`/api/v1/apps/${app}`);
      return status === 200 ? body.backends : [];
    },
    async metric(name, labels = {}) {
      const { body } = await api<string>('/metrics');
      let sum = 0;
      for (const line of body.split('\n')) {
        if (!line.startsWith(name)) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
        if (!m || m[1] !== name) continue;
        const lbl = m[2] ?? '';
        if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3]);
      }
      return sum;
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`sidecar exited ${child.exitCode}: ${stderr}`);
        return (await fetch(`${adminUrl}/healthz`)).ok;
      },
      { timeoutMs: 15_000, what: 'sidecar /healthz' },
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\nstderr: ${stderr}\nlogs: ${JSON.stringify(lines.slice(-10))}`);
  }
  return sidecar;
}
