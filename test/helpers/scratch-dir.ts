/** A temporary directory for one test file: made before its tests, removed after them. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export interface ScratchDir {
  /** The path of `name` inside the directory. */
  at(name: string): string;
  /** Writes `text` to `name` inside the directory; returns its path. */
  write(name: string, text: string): Promise<string>;
}

/** Registers the hooks; call at the top level of a test file. */
export function useScratchDir(prefix: string): ScratchDir {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const at = (name: string) => join(dir, name);
  return {
    at,
    async write(name, text) {
      await writeFile(at(name), text);
      return at(name);
    },
  };
}
