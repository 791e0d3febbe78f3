/**
 * A JSON Schema (draft-07, what yaml-language-server reads best) of the YAML configuration, for
 * editor completion and inline errors. Generated from the same tables validation reads
 * (reference.ts); `npm run docs:schema` writes it to docs/orchestry.schema.json. It accepts
 * everything validation accepts and closes every map to unknown keys; rules between keys (e.g.
 * timeout_seconds < period_seconds) are left to `orchestry-sidecar check-config`.
 */
import { schemaOf, type Check, type JsonSchema, type Section } from './check.js';
import { CONFIG_TREE, type ConfigNode, type ObjectNode } from './reference.js';

/** The `$schema` of the generated schema. */
export const JSON_SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';

/** The JSON Schema of the configuration file. */
export function configJsonSchema(): JsonSchema {
  const root = nodeSchema(CONFIG_TREE);
  // The document itself must be a map, with at least one app unless Docker discovery is on
  // (apps from container labels only).
  return { $schema: JSON_SCHEMA_DRAFT, title: 'orchestry-sidecar configuration', ...root, type: 'object', anyOf: APPS_OR_DOCKER };
}

/** `apps` with one app at least, or `docker.enabled: true`. */
const APPS_OR_DOCKER: JsonSchema[] = [
  { required: ['apps'], properties: { apps: { type: 'object', minProperties: 1 } } },
  { required: ['docker'], properties: { docker: { type: 'object', required: ['enabled'], properties: { enabled: { enum: [true] } } } } },
];

function nodeSchema(node: ConfigNode): JsonSchema {
  switch (node.kind) {
    case 'object':
      return objectSchema(node);
    case 'named':
      return {
        type: ['object', 'null'],
        description: node.meaning,
        propertyNames: { pattern: node.names.source },
        additionalProperties: nodeSchema(node.value),
      };
    case 'list':
      return { type: ['array', 'null'], description: node.meaning, items: nodeSchema(node.item) };
    case 'value':
      return { ...node.schema, description: node.meaning, default: node.default };
  }
}

function objectSchema(node: ObjectNode): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  if (node.section) {
    const { fields, defaults } = node.section as Section<Record<string, unknown>>;
    const required = new Set(node.required ?? []);
    for (const [key, field] of Object.entries(fields)) {
      properties[key] = {
        ...schemaOf(field.check as Check<unknown>),
        description: field.meaning,
        ...(required.has(key) ? {} : { default: defaults[key] }),
      };
    }
  }
  for (const [key, child] of Object.entries(node.children ?? {})) properties[key] = nodeSchema(child);
  return {
    type: ['object', 'null'],
    description: node.meaning,
    properties,
    additionalProperties: false,
    ...(node.required ? { required: node.required } : {}),
  };
}

/** The schema as docs/orchestry.schema.json holds it. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
