/**
 * The default template's exact output. To regenerate after a deliberate template change:
 * UPDATE_GOLDEN=1 npx vitest run test/integration/render-golden.test.ts, then review the diff.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRenderer, type Renderer } from '../../src/nginx/render.js';
import { toViewModel } from '../../src/nginx/view-model.js';
import { goldenSets } from '../helpers/fixtures.js';

const GOLDEN_DIR = new URL('../golden/', import.meta.url);
const update = process.env.UPDATE_GOLDEN === '1';

describe('default template', () => {
  let renderer: Renderer;
  beforeAll(async () => {
    renderer = createRenderer({ templatePath: null });
    await renderer.load();
  });

  it.each(Object.entries(goldenSets()))('renders %s exactly as test/golden/%s.conf', async (name, set) => {
    const text = renderer.render(toViewModel(set));
    const file = new URL(`${name}.conf`, GOLDEN_DIR);
    if (update) await writeFile(file, text);
    expect(text).toBe(await readFile(file, 'utf8'));
  });

  it('renders an unchanged set byte-identically', () => {
    const set = goldenSets().normal!;
    expect(renderer.render(toViewModel(set))).toBe(renderer.render(toViewModel(structuredClone(set))));
  });
});
