/**
 * The CLI as users run it (dist/cli.js in a child process): exit codes and one-line errors for
 * bad input, and a daemon that stays up when nginx is missing or not running.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backend-server.js';
import { nginxConf, nginxPaths, nginxSection, sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { launchNginx, makeNginxDir } from '../helpers/nginx-instance.js';
import { runCli, startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { env });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const write = async (name: string, text: string) => {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
};

/** Waits until the sidecar's /readyz answers 503 with a reason that contains `text`; its body. */
async function notReadyFor(sidecar: SidecarProcess, text: string): Promise<{ ready: boolean; reasons: string[] }> {
  return waitFor(
    async () => {
      const r = await sidecar.api<{ ready: boolean; reasons: string[] }>('/readyz');
      return r.status === 503 && r.body.reasons.some((x) => x.includes(text)) ? r.body : null;
    },
    { what: `/readyz naming "${text}"` },
  );
}

describe('orchestry-sidecar CLI', () => {
  it('prints its version', async () => {
    const { code, stdout } = await cli(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  // Each case: a command on a config file, its exit code, and lines its output must hold. None
  // prints a stack trace.
  it.each([
    {
      what: 'check-config accepts a valid file and summarises it',
      command: 'check-config',
      file: 'ok.yaml',
      yaml: 'apps:\n  web:\n    backends: ["127.0.0.1:8001", "127.0.0.1:8002"]\n',
      code: 0,
      stdout: ['valid (1 apps, 2 backends)'],
      stderr: [],
    },
    {
      what: 'check-config reports every error with its path and value, and exits 1',
      command: 'check-config',
      file: 'bad.yaml',
      yaml: 'apps:\n  web:\n    backends: ["127.0.0.1:8001"]\n    health: { timeout_seconds: 10, period_seconds: 5, protocol: UDP }\n    bogus: 1\n',
      code: 1,
      stdout: [],
      stderr: [
        'apps.web.health.timeout_seconds: must be less than period_seconds (got 10 >= 5)',
        'apps.web.health.protocol: must be one of HTTP, TCP (got "UDP")',
        'apps.web.bogus: unknown key',
      ],
    },
    {
      what: 'render prints the upstreams without touching nginx',
      command: 'render',
      file: 'render.yaml',
      yaml: 'apps:\n  web:\n    backends: ["127.0.0.1:8001", { address: "127.0.0.1:8002", weight: 3 }]\nnginx:\n  binary: /nonexistent/nginx\n',
      code: 0,
      stdout: ['upstream web {', 'server 127.0.0.1:8001 fail_timeout=1s;', 'server 127.0.0.1:8002 weight=3 fail_timeout=1s;'],
      stderr: [],
    },
  ])('$what', async (c) => {
    const out = await cli([c.command, '--config', await write(c.file, c.yaml)]);
    expect(out.code).toBe(c.code);
    expect(c.stdout.filter((line) => !out.stdout.includes(line))).toEqual([]);
    expect(c.stderr.filter((line) => !out.stderr.includes(line))).toEqual([]);
    expect(out.stderr).not.toMatch(/\n\s+at /);
  });

  it('says clearly when the config file cannot be read or is not given', async () => {
    const missing = await cli(['check-config', '--config', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toContain(join(dir, 'nope.yaml'));
    const none = await cli(['check-config']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/--config|ORCHESTRY_CONFIG/);
  });

  it('takes the config path from ORCHESTRY_CONFIG', async () => {
    const path = await write('env.yaml', 'apps:\n  web:\n    backends: ["127.0.0.1:8001"]\n');
    const { code } = await cli(['check-config'], { ORCHESTRY_CONFIG: path });
    expect(code).toBe(0);
  });

  it('rejects unknown commands with usage and exit 2', async () => {
    const { code, stderr } = await cli(['frobnicate']);
    expect(code).toBe(2);
    expect(stderr).toContain('unknown command "frobnicate"');
    expect(stderr).toContain('orchestry-sidecar --help');
  });

  it('keeps running and reports not ready when nginx is not running and a backend is unreachable', async () => {
    const adminPort = await freePort();
    const path = await write(
      'daemon.yaml',
      `apps:
  web:
    backends: ["127.0.0.1:9"]
    health: { initial_delay_seconds: 0, period_seconds: 2, timeout_seconds: 1, failure_threshold: 1 }
nginx:
  binary: /usr/sbin/nginx
  config_path: ${join(dir, 'nginx.conf')}
  output_path: ${join(dir, 'upstreams.conf')}
  pid_path: ${join(dir, 'nginx.pid')}
  validate: false
admin: { listen: "127.0.0.1:${adminPort}" }
`,
    );
    const sidecar = await startSidecarProcess(path, `http://127.0.0.1:${adminPort}`);
    try {
      const ready = await notReadyFor(sidecar, 'nginx is not running');
      expect(ready.ready).toBe(false);
      // The unreachable backend is probed and classified, not thrown.
      await waitFor(
        async () => {
          const { body } = await sidecar.api<{ backends: Array<{ last_failure: { type: string } | null }> }>('/api/v1/apps/web');
          return body.backends[0]?.last_failure?.type === 'port_not_listening';
        },
        { what: 'port_not_listening classified' },
      );
      expect((await sidecar.api('/healthz')).status).toBe(200);
      expect(sidecar.child.exitCode).toBeNull();
    } finally {
      expect(await sidecar.stop()).toBe(0);
    }
  });

  it('recovers by itself once nginx is started after the sidecar: the failed update is retried', async () => {
    const nginxDir = await makeNginxDir();
    const nginxPort = await freePort();
    const adminPort = await freePort();
    const backend = await startBackend('late-1');
    const { outputPath: output, configPath } = nginxPaths(nginxDir);
    await writeFile(output, `upstream late { server ${backend.address}; }\n`);
    await writeFile(
      configPath,
      nginxConf({ dir: nginxDir, include: 'conf.d/*.conf', http: [`server { listen 127.0.0.1:${nginxPort}; location / { proxy_pass http://late; } }`] }),
    );
    const path = await write(
      'late-nginx.yaml',
      sidecarYaml({
        apps: { late: { backends: [backend.address], health: { initial_delay_seconds: 0, period_seconds: 2, timeout_seconds: 1 } } },
        nginx: nginxSection(nginxDir),
        admin: { listen: `127.0.0.1:${adminPort}` },
      }),
    );
    const sidecar = await startSidecarProcess(path, `http://127.0.0.1:${adminPort}`);
    let nginx: { stop(): Promise<void> } | null = null;
    try {
      await notReadyFor(sidecar, 'nginx is not running');
      nginx = await launchNginx({ dir: nginxDir, probePort: nginxPort });
      // Nothing else changes: only the sidecar's own retry can make it ready.
      await waitFor(async () => (await sidecar.api('/readyz')).status === 200, { timeoutMs: 20_000, what: 'ready after nginx started' });
      expect(await sidecar.metric('orchestry_degraded')).toBe(0);
      expect(sidecar.logs().some((l) => l.msg === 'nginx update failed; last good config kept' && typeof l.retryInMs === 'number')).toBe(true);
    } finally {
      expect(await sidecar.stop()).toBe(0);
      await nginx?.stop();
      await backend.close();
      await rm(nginxDir, { recursive: true, force: true });
    }
  });

  it('leaves nginx\'s file alone until Docker has listed the containers once, when an app takes containers and none was seen before', async () => {
    const adminPort = await freePort();
    const output = join(dir, 'docker-upstreams.conf');
    const good = 'upstream web { server 127.0.0.1:9; }\n';
    await writeFile(output, good);
    const path = await write(
      'docker-down.yaml',
      `apps:
  web:
    backends: []
    docker: { accept_containers: true }
  static:
    backends: ["127.0.0.1:9"]
docker: { enabled: true, socket_path: ${join(dir, 'no-such-docker.sock')} }
nginx:
  output_path: ${output}
  pid_path: ${join(dir, 'docker-down.pid')}
  validate: false
admin: { listen: "127.0.0.1:${adminPort}" }
`,
    );
    const sidecar = await startSidecarProcess(path, `http://127.0.0.1:${adminPort}`);
    try {
      const ready = await notReadyFor(sidecar, 'Docker');
      expect(ready.reasons).toContain('waiting for the first list of containers from Docker');
      expect(await sidecar.metric('orchestry_docker_connected')).toBe(0);
      expect(await readFile(output, 'utf8')).toBe(good);
    } finally {
      expect(await sidecar.stop()).toBe(0);
    }
  });

  it('refuses to start with a clear error when the admin address is taken', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    try {
      const path = await write(
        'busy.yaml',
        `apps:\n  web:\n    backends: ["127.0.0.1:9"]\nnginx:\n  output_path: ${join(dir, 'busy-upstreams.conf')}\n  pid_path: ${join(dir, 'busy.pid')}\n  validate: false\nadmin: { listen: "127.0.0.1:${port}" }\n`,
      );
      const { code, stderr } = await cli(['run', '--config', path]);
      expect(code).toBe(1);
      expect(stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
    } finally {
      blocker.close();
    }
  });
});
