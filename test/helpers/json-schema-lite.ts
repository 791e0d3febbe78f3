/**
 * A small JSON Schema (draft-07) validator covering the keywords the config schema uses, so the
 * tests can check the generated schema without a validation library. Patterns are compiled with
 * the `u` flag, as editors (vscode-json-languageservice) and ajv do. Throws on a keyword it does
 * not know, so a schema that grows one is not silently half-checked.
 */
type Schema = Record<string, unknown>;

const KNOWN = new Set([
  '$schema', 'title', 'description', 'default', 'type', 'enum', 'anyOf', 'pattern', 'minLength',
  'minimum', 'maximum', 'exclusiveMinimum', 'items', 'minItems', 'maxItems', 'properties',
  'additionalProperties', 'required', 'propertyNames', 'minProperties',
]);

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function typeMatches(value: unknown, type: unknown): boolean {
  const types = Array.isArray(type) ? (type as string[]) : [type as string];
  const actual = typeOf(value);
  return types.some((t) => t === actual || (t === 'number' && actual === 'integer'));
}

/** Every way `value` breaks `schema`, as `path: keyword` texts; empty when it is valid. */
export function schemaErrors(schema: Schema, value: unknown, path = '$'): string[] {
  for (const key of Object.keys(schema)) if (!KNOWN.has(key)) throw new Error(`unsupported keyword ${key} at ${path}`);
  const errors: string[] = [];
  const fail = (keyword: string) => errors.push(`${path}: ${keyword}`);
  if (schema.type !== undefined && !typeMatches(value, schema.type)) return [`${path}: type`];
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) fail('enum');
  if (schema.anyOf && !(schema.anyOf as Schema[]).some((s) => schemaErrors(s, value, path).length === 0)) fail('anyOf');
  if (typeof value === 'string') {
    if (schema.pattern !== undefined && !new RegExp(schema.pattern as string, 'u').test(value)) fail('pattern');
    if (schema.minLength !== undefined && value.length < (schema.minLength as number)) fail('minLength');
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < (schema.minimum as number)) fail('minimum');
    if (schema.maximum !== undefined && value > (schema.maximum as number)) fail('maximum');
    if (schema.exclusiveMinimum !== undefined && !(value > (schema.exclusiveMinimum as number))) fail('exclusiveMinimum');
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < (schema.minItems as number)) fail('minItems');
    if (schema.maxItems !== undefined && value.length > (schema.maxItems as number)) fail('maxItems');
    if (schema.items) value.forEach((v, i) => errors.push(...schemaErrors(schema.items as Schema, v, `${path}[${i}]`)));
  }
  if (typeOf(value) === 'object') errors.push(...objectErrors(schema, value as Record<string, unknown>, path));
  return errors;
}

function objectErrors(schema: Schema, value: Record<string, unknown>, path: string): string[] {
  const errors: string[] = [];
  const properties = (schema.properties ?? {}) as Record<string, Schema>;
  for (const key of (schema.required ?? []) as string[]) if (!(key in value)) errors.push(`${path}.${key}: required`);
  if (schema.minProperties !== undefined && Object.keys(value).length < (schema.minProperties as number)) {
    errors.push(`${path}: minProperties`);
  }
  for (const [key, v] of Object.entries(value)) {
    const at = `${path}.${key}`;
    if (schema.propertyNames) errors.push(...schemaErrors(schema.propertyNames as Schema, key, `${at} (name)`));
    if (properties[key]) errors.push(...schemaErrors(properties[key], v, at));
    else if (schema.additionalProperties === false) errors.push(`${at}: additionalProperties`);
    else if (typeof schema.additionalProperties === 'object') {
      errors.push(...schemaErrors(schema.additionalProperties as Schema, v, at));
    }
  }
  return errors;
}
