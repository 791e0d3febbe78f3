/**
 * Reloads the config file when it changes on disk. Editors and config managers often save by
 * writing a temp file and renaming it over the original, which replaces the inode a plain file
 * watch would follow, so this watches the file's directory and filters for the file's name.
 *
 * It polls rather than using fs.watch: chokidar's fs.watch mode drops a change that follows
 * another within 50 ms (no trailing event) and can miss writes while it re-attaches after a
 * rename, so the last write of a burst could go unseen. Polling compares stat with the previous
 * poll, so the file's final state always produces an event; for one file the cost is negligible.
 */
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { watch } from 'chokidar';
import { loadConfigFile } from './load.js';
import type { SidecarConfig } from './types.js';

const POLL_INTERVAL_MS = 200;
/** A file modified this long before `initialReadAt` (or earlier) is taken as read then: coarse mtimes. */
const MTIME_SLACK_MS = 2000;

/** What one load of the file did: a new config, the same one, or a refusal (the last good one stays). */
export type ReloadOutcome = 'changed' | 'unchanged' | 'rejected';

export interface ConfigWatcherOptions {
  path: string;
  /** Environment for the overrides; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * The config already in use. Without it the first successful load counts as a change; with
   * it, an edit made between the caller's own load and the watcher's start is still noticed.
   */
  initial?: SidecarConfig;
  /**
   * Epoch ms just before `initial` was read from the file. When the file has not been modified
   * since, the watcher does not load it again at start: parsing a config of 10,000 backends
   * takes ~0.7 s of the event loop, just as the daemon starts.
   */
  initialReadAt?: number;
  /** Called with each valid config that differs structurally from the last good one. */
  onChange(config: SidecarConfig): void;
  /** Called when the file is unreadable or invalid; the last good config stays in effect. */
  onError(err: Error): void;
  /** Called when a load after the first found the file valid and the same as the last good one. */
  onUnchanged?(): void;
  /** Quiet time after the last file event before reloading; bursts of writes load once. */
  debounceMs?: number; // 100
}

export interface ConfigWatcher {
  /** Resolves once the directory is watched and the file's current content has been loaded. */
  ready: Promise<void>;
  /**
   * Loads the file now (SIGHUP), after any load under way (it may have read the file before the
   * request), and says what it did; the callbacks are called as for a change on disk.
   */
  reload(): Promise<ReloadOutcome | 'closed'>;
  close(): Promise<void>;
}

/** Watches the config file; reports changes and errors through the callbacks, never throws. */
export function createConfigWatcher(opts: ConfigWatcherOptions): ConfigWatcher {
  const file = resolve(opts.path);
  const dir = dirname(file);
  const debounceMs = opts.debounceMs ?? 100;
  let lastGood: SidecarConfig | null = opts.initial ?? null;
  let timer: NodeJS.Timeout | undefined;
  // Loads run one at a time, in the order asked: an event during a load loads once more after it.
  let chain: Promise<unknown> = Promise.resolve();
  let closed = false;

  const watcher = watch(dir, {
    depth: 0,
    ignoreInitial: true,
    usePolling: true,
    interval: POLL_INTERVAL_MS,
    ignored: (path) => path !== dir && path !== file,
  });

  async function load(first: boolean): Promise<ReloadOutcome | 'closed'> {
    let config: SidecarConfig;
    try {
      config = await loadConfigFile(opts.path, opts.env);
    } catch (err) {
      if (closed) return 'closed';
      opts.onError(err instanceof Error ? err : new Error(String(err)));
      return 'rejected';
    }
    if (closed) return 'closed';
    if (lastGood !== null && isDeepStrictEqual(lastGood, config)) {
      if (!first) opts.onUnchanged?.();
      return 'unchanged';
    }
    lastGood = config;
    opts.onChange(config);
    return 'changed';
  }

  function enqueue(first = false): Promise<ReloadOutcome | 'closed'> {
    const run = chain.then(() => (closed ? 'closed' : load(first)));
    chain = run.catch(() => undefined);
    return run;
  }

  function schedule(): void {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void enqueue(), debounceMs);
  }

  watcher.on('all', (_event, path) => {
    if (path === file) schedule();
  });
  watcher.on('error', (err) => {
    if (!closed) opts.onError(err instanceof Error ? err : new Error(String(err)));
  });

  const ready = new Promise<void>((resolveReady) => watcher.once('ready', resolveReady)).then(async () => {
    if (opts.initial && opts.initialReadAt !== undefined && (await unmodifiedSince(file, opts.initialReadAt - MTIME_SLACK_MS))) return;
    await enqueue(true);
  });

  return {
    ready,
    reload: () => enqueue(),
    async close() {
      closed = true;
      clearTimeout(timer);
      await watcher.close();
      await chain;
    },
  };
}

/** Whether the file's last modification is before `at` (false when it cannot be read: load it to say why). */
async function unmodifiedSince(file: string, at: number): Promise<boolean> {
  try {
    return (await stat(file)).mtimeMs < at;
  } catch {
    return false;
  }
}
