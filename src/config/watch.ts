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
  /** Quiet time after the last file event before reloading; bursts of writes load once. */
  debounceMs?: number; // 100
}

export interface ConfigWatcher {
  /** Resolves once the directory is watched and the file's current content has been loaded. */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** Watches the config file; reports changes and errors through the callbacks, never throws. */
export function createConfigWatcher(opts: ConfigWatcherOptions): ConfigWatcher {
  const file = resolve(opts.path);
  const dir = dirname(file);
  const debounceMs = opts.debounceMs ?? 100;
  let lastGood: SidecarConfig | null = opts.initial ?? null;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | null = null;
  let rerun = false;
  let closed = false;

  const watcher = watch(dir, {
    depth: 0,
    ignoreInitial: true,
    usePolling: true,
    interval: POLL_INTERVAL_MS,
    ignored: (path) => path !== dir && path !== file,
  });

  async function reload(): Promise<void> {
    let config: SidecarConfig;
    try {
      config = await loadConfigFile(opts.path, opts.env);
    } catch (err) {
      if (!closed) opts.onError(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (closed || (lastGood !== null && isDeepStrictEqual(lastGood, config))) return;
    lastGood = config;
    opts.onChange(config);
  }

  /** One load at a time; an event during a load triggers exactly one more afterwards. */
  async function run(): Promise<void> {
    if (inFlight) {
      rerun = true;
      return inFlight;
    }
    inFlight = reload();
    await inFlight;
    inFlight = null;
    if (rerun && !closed) {
      rerun = false;
      schedule();
    }
  }

  function schedule(): void {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void run(), debounceMs);
  }

  watcher.on('all', (_event, path) => {
    if (path === file) schedule();
  });
  watcher.on('error', (err) => {
    if (!closed) opts.onError(err instanceof Error ? err : new Error(String(err)));
  });

  const ready = new Promise<void>((resolveReady) => watcher.once('ready', resolveReady)).then(async () => {
    if (opts.initial && opts.initialReadAt !== undefined && (await unmodifiedSince(file, opts.initialReadAt - MTIME_SLACK_MS))) return;
    await run();
  });

  return {
    ready,
    async close() {
      closed = true;
      clearTimeout(timer);
      await watcher.close();
      await inFlight;
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
