import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors.js';
import { DEFAULT_TEMPLATE_PATH, createRenderer } from '../../src/nginx/render.js';
import { toViewModel } from '../../src/nginx/view-model.js';
import { goldenSets } from '../helpers/fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orchestry-template-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function templateFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

async function templateError(run: () => Promise<unknown>): Promise<SidecarError> {
  const err = await run().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SidecarError);
  expect((err as SidecarError).code).toBe('TEMPLATE_INVALID');
  return err as SidecarError;
}

describe('createRenderer', () => {
  it('uses the built-in template in templates/ when no path is configured', () => {
    expect(createRenderer({ templatePath: null }).templatePath).toBe(DEFAULT_TEMPLATE_PATH);
    expect(DEFAULT_TEMPLATE_PATH).toMatch(/templates[/\\]upstreams\.conf\.hbs$/);
  });

  it('renders a custom template without HTML escaping', async () => {
    const path = await templateFile('custom.hbs', '{{#each upstreams}}{{name}} <{{#each servers}}{{address}}&{{/each}}>\n{{/each}}');
    const renderer = createRenderer({ templatePath: path });
    await renderer.load();
    expect(renderer.render(toViewModel(goldenSets().balance!))).toBe(
      'rr <10.0.3.1:80&>\nlc <10.0.3.2:80&>\niph <10.0.3.3:80&10.0.3.4:80&>\nrand <10.0.3.5:80&>\n',
    );
  });

  it('reports a template syntax error at load with the template path', async () => {
    const path = await templateFile('broken.hbs', '{{#each upstreams}}upstream {{name}} {\n');
    const err = await templateError(() => createRenderer({ templatePath: path }).load());
    expect(err.message).toContain(`template ${path}:`);
    expect(err.message).toContain('Parse error on line 2');
  });

  it('treats an unknown variable as an error, not as an empty string', async () => {
    const path = await templateFile('typo.hbs', '{{#each upstreams}}upstream {{nmae}} {}\n{{/each}}');
    const renderer = createRenderer({ templatePath: path });
    await renderer.load();
    const err = await templateError(async () => renderer.render(toViewModel(goldenSets().normal!)));
    expect(err.message).toContain(`template ${path}:`);
    expect(err.message).toContain('nmae');
  });

  it('reports a missing template file', async () => {
    const path = join(dir, 'missing.hbs');
    const err = await templateError(() => createRenderer({ templatePath: path }).load());
    expect(err.message).toContain(path);
    expect(err.message).toContain('ENOENT');
  });

  it("names each server's container in a comment, as docker-gen's template does, and drops a hostile name", async () => {
    const renderer = createRenderer({ templatePath: null });
    await renderer.load();
    const set = goldenSets().normal!;
    const [a, b] = set.upstreams[0]!.servers;
    a!.container = 'web-1';
    b!.container = 'web-2;\n}\nserver 10.6.6.6:80';
    const text = renderer.render(toViewModel(set));
    expect(text).toContain(`    server ${a!.address} fail_timeout=1s;  # web-1\n`);
    expect(text).toContain(`    server ${b!.address} fail_timeout=1s;\n`);
    expect(text).not.toContain('10.6.6.6');
  });

  it('refuses to render before load', async () => {
    const err = await templateError(async () => createRenderer({ templatePath: null }).render(toViewModel({ upstreams: [] })));
    expect(err.message).toContain('load()');
  });
});
