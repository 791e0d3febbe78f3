import { mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import type { SidecarConfig } from '../../src/config/types.js';
import { createConfigWatcher, type ConfigWatcher } from '../../src/config/watch.js';
import { ConfigError } from '../../src/errors.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let path: string;
let watcher: ConfigWatcher | undefined;
const changes: SidecarConfig[] = [];
const errors: Error[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-watch-'));
  path = join(dir, 'sidecar.yaml');
  changes.length = 0;
  errors.length = 0;
});

afterEach(async () => {
  await watcher?.close();
  watcher = undefined;
  await rm(dir, { recursive: true, force: true });
});

function yaml(...backends: string[]): string {
  return `apps:\n  web:\n    backends: [${backends.join(', ')}]\n`;
}

/** Saves the way many editors do: write a sibling temp file, then rename it over the original. */
async function saveByRename(text: string): Promise<void> {
  const temp = join(dir, '.sidecar.yaml.swp');
  await writeFile(temp, text);
  await rename(temp, path);
}

function start(initial?: SidecarConfig, initialReadAt?: number): ConfigWatcher {
  watcher = createConfigWatcher({
    path,
    env: {},
    ...(initial ? { initial } : {}),
    ...(initialReadAt !== undefined ? { initialReadAt } : {}),
    debounceMs: 20,
    onChange: (config) => changes.push(config),
    onError: (err) => errors.push(err),
  });
  return watcher;
}

const ports = (config: SidecarConfig | undefined) => config?.apps[0]?.backends.map((b) => b.port);

test('reports the current config once ready when no initial config is given', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  await start().ready;
  expect(changes.map(ports)).toEqual([[8001]]);
});

test('reloads on edits, keeps the last good config through an invalid one, and recovers', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  await start(await loadConfigFile(path, {})).ready;
  expect(changes).toEqual([]);

  await saveByRename(yaml('127.0.0.1:8001', '127.0.0.1:8002'));
  await waitFor(() => changes.length === 1, { what: 'the new backend', intervalMs: 20 });
  expect(ports(changes[0])).toEqual([8001, 8002]);

  await writeFile(path, 'apps:\n  web:\n    backends: [127.0.0.1:8001]\n    health: { port: 0 }\n');
  await waitFor(() => errors.length === 1, { what: 'the validation error', intervalMs: 20 });
  expect(errors[0]).toBeInstanceOf(ConfigError);
  expect(errors[0]?.message).toContain('apps.web.health.port: must be between 1 and 65535 (got 0)');
  expect(changes).toHaveLength(1);

  await saveByRename(yaml('127.0.0.1:8003'));
  await waitFor(() => changes.length === 2, { what: 'the fixed config', intervalMs: 20 });
  expect(ports(changes[1])).toEqual([8003]);
  expect(errors).toHaveLength(1);
});

test('does not report a change when the file still means the same config', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  const initial = await loadConfigFile(path, {});
  // Same meaning, different text: the watcher's first load must compare structurally.
  await writeFile(path, `# edited\n${yaml('127.0.0.1:8001')}`);
  await start(initial).ready;
  expect(changes).toEqual([]);
  expect(errors).toEqual([]);
});

test('notices an edit made between the caller loading the file and the watcher starting', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  const initial = await loadConfigFile(path, {});
  await writeFile(path, yaml('127.0.0.1:8009'));
  await start(initial).ready;
  expect(changes.map(ports)).toEqual([[8009]]);
});

test('does not load the file again at start when it was not modified since the caller read it (a big config costs ~0.7 s to parse)', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  const initial = await loadConfigFile(path, {});
  // Invalid now, but last modified a minute before the caller read it: not read again.
  await writeFile(path, 'apps: [not valid');
  const aMinuteAgo = new Date(Date.now() - 60_000);
  await utimes(path, aMinuteAgo, aMinuteAgo);
  await start(initial, Date.now()).ready;
  expect(errors).toEqual([]);
  expect(changes).toEqual([]);
});

test('still loads the file at start when it was modified after the caller read it', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  const readAt = Date.now();
  const initial = await loadConfigFile(path, {});
  await new Promise((r) => setTimeout(r, 20));
  await writeFile(path, yaml('127.0.0.1:8009'));
  await start(initial, readAt).ready;
  expect(changes.map(ports)).toEqual([[8009]]);
});

test('reports an unreadable file through onError and ignores other files in the directory', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  await start().ready;
  await writeFile(join(dir, 'other.yaml'), 'not: [valid');
  await rm(path);
  await waitFor(() => errors.length === 1, { what: 'the read error', intervalMs: 20 });
  expect(errors[0]?.message).toBe(`cannot read config file ${path}: no such file (ENOENT)`);
  expect(changes).toHaveLength(1);
});

test('ends on the final content after a rapid burst of saves', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  await start().ready;
  await saveByRename(yaml('127.0.0.1:8002'));
  await writeFile(path, yaml('127.0.0.1:8003'));
  await saveByRename(yaml('127.0.0.1:8004'));
  await writeFile(path, yaml('127.0.0.1:8005'));
  await waitFor(() => ports(changes.at(-1))?.[0] === 8005, { what: 'the last save', intervalMs: 20 });
  expect(errors).toEqual([]);
});

test('reload() loads the file now and says what came of it: unchanged, changed or rejected', async () => {
  await writeFile(path, yaml('127.0.0.1:8001'));
  const w = start();
  await w.ready;
  expect(await w.reload()).toBe('unchanged');
  // Written and reloaded at once, before the watcher's debounce: the reload itself loads it.
  await writeFile(path, yaml('127.0.0.1:8002'));
  expect(await w.reload()).toBe('changed');
  expect(ports(changes.at(-1))).toEqual([8002]);
  await writeFile(path, 'apps: [');
  expect(await w.reload()).toBe('rejected');
  expect(errors.at(-1)).toBeInstanceOf(ConfigError);
  await w.close();
  expect(await w.reload()).toBe('closed');
});
