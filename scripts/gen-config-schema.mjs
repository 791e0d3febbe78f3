#!/usr/bin/env node
// `npm run docs:schema`: writes docs/orchestry.schema.json, the JSON Schema of the YAML
// configuration generated from the validation tables (src/config/json-schema.ts), for editors:
// put `# yaml-language-server: $schema=<path or URL of orchestry.schema.json>` at the top of a
// config file. Reads dist/, so run it after `npm run build` (the npm script does).
// test/integration/config-json-schema.test.ts fails when the committed file is out of date.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchemaText } from '../dist/config/json-schema.js';

const out = fileURLToPath(new URL('../docs/orchestry.schema.json', import.meta.url));
writeFileSync(out, configJsonSchemaText());
console.log(`wrote ${out}`);
