/**
 * The template in use, reloaded when its file changes. A template that does not compile is
 * kept out: the last good one stays loaded for rendering, and `error` says why the new one was
 * refused (the nginx stage then refuses to write until it is fixed).
 */
import { watch, type FSWatcher } from 'chokidar';
import { describeError } from '../errors.js';
import { createRenderer, type Renderer } from './render.js';

export interface TemplateHolder {
  /** The renderer of the last template that compiled; null before one has. */
  renderer(): Renderer | null;
  /** Why the template last read was refused; null when it compiled. */
  error(): string | null;
  /** Reads and compiles the template at `path` (null: the built-in one). */
  load(path: string | null): Promise<void>;
  /** Calls `onChange` after each change of the file at `path`; null stops watching. */
  watch(path: string | null, onChange: () => void): void;
  close(): Promise<void>;
}

export function createTemplateHolder(): TemplateHolder {
  let renderer: Renderer | null = null;
  let error: string | null = null;
  let watcher: FSWatcher | null = null;
  return {
    renderer: () => renderer,
    error: () => error,
    async load(path) {
      const next = createRenderer({ templatePath: path });
      try {
        await next.load();
        renderer = next;
        error = null;
      } catch (err) {
        error = describeError(err);
      }
    },
    watch(path, onChange) {
      void watcher?.close();
      watcher = null;
      if (!path) return;
      watcher = watch(path, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 50 } });
      watcher.on('all', onChange);
    },
    async close() {
      await watcher?.close();
      watcher = null;
    },
  };
}
