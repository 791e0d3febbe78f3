import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configJsonSchemaText } from '../../src/config/json-schema.js';
import { parseConfig } from '../../src/config/schema.js';
import { schemaErrors } from '../helpers/json-schema-lite.js';

const root = new URL('../../', import.meta.url);

describe('docs/orchestry.schema.json', () => {
  it('is the schema the validation tables generate (run `npm run docs:schema` after changing them)', async () => {
    const committed = await readFile(new URL('docs/orchestry.schema.json', root), 'utf8');
    expect(committed).toBe(configJsonSchemaText());
  });

  it('accepts the example compose config, which validation accepts too', async () => {
    const doc: unknown = parse(await readFile(new URL('examples/compose/sidecar.yaml', root), 'utf8'));
    const committed = JSON.parse(await readFile(new URL('docs/orchestry.schema.json', root), 'utf8')) as Record<string, unknown>;
    expect(parseConfig(doc).ok).toBe(true);
    expect(schemaErrors(committed, doc)).toEqual([]);
  });
});
