import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { loadConfigFile, resolveConfigPath } from '../../src/config/load.js';
import { ConfigError, SidecarError } from '../../src/errors.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-config-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** Runs `fn` and returns what it threw; fails if it did not throw. */
async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const VALID = `
defaults:
  health: { period_seconds: 10, timeout_seconds: 2 }
apps:
  web:
    backends:
      - 127.0.0.1:8001
      - { address: "[::1]:8002", weight: 3 }
    health: { protocol: http, path: /ready }
nginx:
  config_path: conf/nginx.conf
  output_path: /var/run/upstreams.conf
logging: { level: debug }
`;

describe('loadConfigFile', () => {
  test('loads a valid YAML file into a defaulted config', async () => {
    const config = await loadConfigFile(await write('sidecar.yaml', VALID), {});
    expect(config.apps).toEqual([
      expect.objectContaining({
        name: 'web',
        backends: [
          { host: '127.0.0.1', port: 8001, weight: 1, backup: false },
          { host: '::1', port: 8002, weight: 3, backup: false },
        ],
      }),
    ]);
    expect(config.apps[0]?.health).toMatchObject({
      protocol: 'HTTP',
      path: '/ready',
      period_seconds: 10,
      timeout_seconds: 2,
      failure_threshold: 3,
    });
    expect(config.logging.level).toBe('debug');
  });

  test("resolves relative nginx paths against the config file's directory", async () => {
    await mkdir(join(dir, 'etc'));
    const config = await loadConfigFile(await write('etc/sidecar.yaml', VALID), {});
    expect(config.nginx.config_path).toBe(join(dir, 'etc', 'conf', 'nginx.conf'));
    expect(config.nginx.output_path).toBe('/var/run/upstreams.conf');
  });

  test('turns a YAML syntax error into a ConfigError with line and column', async () => {
    const path = await write('bad.yaml', 'apps:\n  web:\n    backends: [127.0.0.1:8001\nlogging: {}\n');
    const err = await thrown(() => loadConfigFile(path, {}));
    expect(err).toBeInstanceOf(ConfigError);
    const { issues, message, code } = err as ConfigError;
    expect(code).toBe('CONFIG_INVALID');
    expect(message.startsWith(`invalid configuration in ${path}:\n`)).toBe(true);
    expect(issues[0]?.message).toMatch(/^YAML syntax error at line \d+, column \d+: \S/);
    expect(issues[0]?.message).not.toContain('\n');
  });

  test('reports a duplicate YAML key with its position', async () => {
    const path = await write('dup.yaml', 'apps:\n  web: {}\napps:\n  api: {}\n');
    const err = (await thrown(() => loadConfigFile(path, {}))) as ConfigError;
    expect(err.issues).toEqual([
      { path: '', message: 'YAML syntax error at line 3, column 1: Map keys must be unique' },
    ]);
  });

  test('reports every invalid field with the file, line and column it was written at', async () => {
    const path = await write('invalid.yaml', 'apps:\n  web:\n    health: { protocol: UDP, port: 0 }\n');
    const err = (await thrown(() => loadConfigFile(path, {}))) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(
      `invalid configuration in ${path}:\n` +
        `  ${path}:3:25: apps.web.health.protocol: must be one of HTTP, TCP (got "UDP")\n` +
        `  ${path}:3:36: apps.web.health.port: must be between 1 and 65535 (got 0)`,
    );
  });

  test('an empty file reports that apps is required', async () => {
    const err = (await thrown(async () => loadConfigFile(await write('empty.yaml', ''), {}))) as ConfigError;
    expect(err.issues).toEqual([{ path: 'apps', message: 'is required (or docker.enabled: true, for apps from container labels only)' }]);
  });

  test('a missing file is CONFIG_UNREADABLE with a one-line message', async () => {
    const path = join(dir, 'nope.yaml');
    const err = await thrown(() => loadConfigFile(path, {}));
    expect(err).toBeInstanceOf(SidecarError);
    expect(err).not.toBeInstanceOf(ConfigError);
    expect((err as SidecarError).code).toBe('CONFIG_UNREADABLE');
    expect((err as SidecarError).message).toBe(`cannot read config file ${path}: no such file (ENOENT)`);
  });

  test('a directory is CONFIG_UNREADABLE', async () => {
    const err = (await thrown(() => loadConfigFile(dir, {}))) as SidecarError;
    expect(err.code).toBe('CONFIG_UNREADABLE');
    expect(err.message).toBe(`cannot read config file ${dir}: is a directory (EISDIR)`);
  });

  test('environment variables override admin.token, admin.listen and logging.level', async () => {
    const path = await write('env.yaml', `${VALID}admin: { listen: "127.0.0.1:1", token: from-file }\n`);
    const config = await loadConfigFile(path, {
      ORCHESTRY_ADMIN_TOKEN: 's3cret-token',
      ORCHESTRY_ADMIN_LISTEN: '[::1]:9999',
      ORCHESTRY_LOG_LEVEL: 'warn',
    });
    expect(config.admin).toMatchObject({ listen: '[::1]:9999', token: 's3cret-token' });
    expect(config.logging.level).toBe('warn');
  });

  test('an empty environment variable counts as unset', async () => {
    const config = await loadConfigFile(await write('env.yaml', VALID), { ORCHESTRY_LOG_LEVEL: '' });
    expect(config.logging.level).toBe('debug');
  });

  test('environment values are validated and the message names the variable', async () => {
    const path = await write('env.yaml', 'apps: { web: {} }\n');
    const err = (await thrown(() =>
      loadConfigFile(path, { ORCHESTRY_ADMIN_LISTEN: 'nowhere', ORCHESTRY_LOG_LEVEL: 'loud' }),
    )) as ConfigError;
    expect(err.issues).toEqual([
      {
        path: 'admin.listen',
        message: 'must be "host:port" or "[ipv6]:port" (got "nowhere") (from ORCHESTRY_ADMIN_LISTEN)',
      },
      {
        path: 'logging.level',
        message:
          'must be one of fatal, error, warn, info, debug, trace (got "loud") (from ORCHESTRY_LOG_LEVEL)',
      },
    ]);
  });

  test('a YAML header named __proto__ stays an ordinary header', async () => {
    const path = await write('proto.yaml', 'apps:\n  web:\n    health:\n      headers: { __proto__: x }\n');
    const config = await loadConfigFile(path, {});
    expect(Object.keys(config.apps[0]?.health.headers ?? {})).toEqual(['__proto__']);
  });
});

describe('resolveConfigPath', () => {
  test('prefers the flag over ORCHESTRY_CONFIG', () => {
    expect(resolveConfigPath('/a.yaml', { ORCHESTRY_CONFIG: '/b.yaml' })).toBe('/a.yaml');
  });

  test('falls back to ORCHESTRY_CONFIG', () => {
    expect(resolveConfigPath(undefined, { ORCHESTRY_CONFIG: '/b.yaml' })).toBe('/b.yaml');
  });

  test('throws CONFIG_MISSING telling the user what to pass', () => {
    let err: unknown;
    try {
      resolveConfigPath(undefined, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SidecarError);
    expect((err as SidecarError).code).toBe('CONFIG_MISSING');
    expect((err as SidecarError).message).toBe(
      'no configuration file given: pass --config <file> or set ORCHESTRY_CONFIG',
    );
  });
});
