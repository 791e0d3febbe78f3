/**
 * The validation toolkit: small checks that each validate one value and report every problem
 * with the path a user writes and the value they wrote, and sections read from data tables
 * (key, check, default, meaning). Nothing here throws: a check returns the value, possibly
 * normalised, or undefined after reporting, so one pass collects every issue at once.
 *
 * Each check can carry the JSON Schema of what it accepts (`withSchema`, `schemaOf`): the
 * generated schema for editors is then built from the same checks that validate.
 */
import type { FieldIssue } from '../errors.js';
import { didYouMean } from '../suggest.js';

/** A parsed YAML map. */
export type Raw = Record<string, unknown>;
/** Records one issue; returns undefined so a check can `return report(...)`. */
export type Report = (path: string, message: string) => undefined;
/** Validates one value; returns it (possibly normalised), or undefined after reporting. */
export type Check<T> = (value: unknown, path: string, report: Report) => T | undefined;

/** A JSON Schema (draft-07) fragment. */
export type JsonSchema = Record<string, unknown>;

/** Longest timer Node honours is ~24.8 days; a day is plenty for any interval here. */
export const MAX_SECONDS = 86_400;

/** One key of a section: how its value is checked and what it means (one line, for docs). */
export interface Field<T> {
  check: Check<T>;
  meaning: string;
}

/** Every key of a section with its check; the keys are also the section's only allowed keys. */
export type Fields<T> = { [K in keyof T]-?: Field<T[K]> };

/** A section as data: each key's default, check and meaning. */
export interface Section<T> {
  defaults: Readonly<T>;
  fields: Fields<T>;
}

/** Issues collected by one validation pass, and the `report` that adds to them. */
export function createIssues(): { issues: FieldIssue[]; report: Report } {
  const issues: FieldIssue[] = [];
  const report: Report = (path, message) => {
    issues.push({ path, message });
    return undefined;
  };
  return { issues, report };
}

/** The bad value for an error message: JSON-quoted so control characters stay visible. */
export function show(value: unknown): string {
  if (typeof value === 'string') {
    const json = JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
    // JSON leaves DEL, C1 controls and line separators raw; escape them too for log safety.
    return json.replace(
      /[\u007f-\u009f\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (typeof value === 'object' && value !== null) {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch {
      // YAML anchors can build a cyclic value.
    }
    if (json === undefined || json.length > 80) return Array.isArray(value) ? 'a list' : 'a map';
    return json;
  }
  return String(value);
}

/** The path of `key` under `path`, as a user writes it: `a.b`, `a[0]`, `a["odd key"]`. */
export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const segment = /^[A-Za-z0-9_-]+$/.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (!path) return segment;
  return segment.startsWith('[') ? `${path}${segment}` : `${path}.${segment}`;
}

/** A YAML map (not a list, not null). */
export function isMap(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A section: absent or null means "all defaults"; unknown keys are reported. */
export function readMap(
  value: unknown,
  path: string,
  keys: readonly string[],
  report: Report,
): Raw | undefined {
  if (value === undefined || value === null) return {};
  if (!isMap(value)) return report(path, `must be a map (got ${show(value)})`);
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) report(join(path, key), `unknown key${didYouMean(key, keys)}`);
  }
  return value;
}

/** `raw[key]` checked, or `fallback` when it is absent or invalid (the issue is reported). */
export function field<T>(
  raw: Raw,
  path: string,
  key: string,
  fallback: T,
  check: Check<T>,
  report: Report,
): T {
  const value = raw[key];
  if (value === undefined) return fallback;
  const checked = check(value, join(path, key), report);
  return checked === undefined ? fallback : checked;
}

/** The keys a section accepts, in the order its table lists them. */
export function sectionKeys<T>(section: Section<T>): (keyof T & string)[] {
  return Object.keys(section.fields) as (keyof T & string)[];
}

/**
 * Reads a section by its table: every key checked, absent or invalid keys at their default
 * (a copy, so a parsed config never shares a list or map with the defaults).
 */
export function readSection<T>(value: unknown, path: string, section: Section<T>, report: Report): T {
  const keys = sectionKeys(section);
  const raw = readMap(value, path, keys, report) ?? {};
  const out = {} as T;
  for (const key of keys) {
    const fallback = section.defaults[key] as T[typeof key];
    const copy = typeof fallback === 'object' && fallback !== null ? structuredClone(fallback) : fallback;
    out[key] = field(raw, path, key, copy, section.fields[key].check, report);
  }
  return out;
}

/** `section` with some defaults replaced, e.g. one that follows another section's value. */
export function withDefaults<T>(section: Section<T>, defaults: Partial<T>): Section<T> {
  return { defaults: { ...section.defaults, ...defaults }, fields: section.fields };
}

/** `section` with some checks replaced, e.g. one that knows names defined elsewhere. */
export function withChecks<T>(section: Section<T>, checks: { [K in keyof T]?: Check<T[K]> }): Section<T> {
  const fields = { ...section.fields };
  for (const key of Object.keys(checks) as (keyof T)[]) {
    fields[key] = { ...fields[key], check: checks[key] as Check<T[typeof key]> };
  }
  return { defaults: section.defaults, fields };
}

// ---- JSON Schema of checks ----------------------------------------------------------------

// Lazily built: checks are also made on hot paths (every container's labels), schemas only for docs.
const SCHEMAS = new WeakMap<Check<unknown>, JsonSchema | (() => JsonSchema)>();

/** Records the JSON Schema of what `check` accepts (or a function building it); returns `check`. */
export function withSchema<T>(check: Check<T>, schema: JsonSchema | (() => JsonSchema)): Check<T> {
  SCHEMAS.set(check as Check<unknown>, schema);
  return check;
}

/** The JSON Schema recorded for `check`; `{}` (anything) when none was. */
export function schemaOf(check: Check<unknown>): JsonSchema {
  const schema = SCHEMAS.get(check) ?? {};
  return typeof schema === 'function' ? schema() : schema;
}

/** `^(?:[Hh][Tt][Tt][Pp]|...)$`: JSON Schema patterns have no case-insensitive flag. */
function anyCasePattern(values: readonly string[]): string {
  const anyCase = (c: string) =>
    c.toLowerCase() !== c.toUpperCase() ? `[${c.toUpperCase()}${c.toLowerCase()}]` : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return `^(?:${values.map((v) => [...v].map(anyCase).join('')).join('|')})$`;
}

// ---- checks -------------------------------------------------------------------------------

/** Bounds of a number: `min`/`max` inclusive, `above` exclusive. */
export interface NumberRule {
  int?: boolean;
  min?: number;
  max?: number;
  above?: number;
}

/** Why `value` is outside the rule's bounds ("must be at least 1"), or undefined. */
function boundsProblem(value: number, rule: NumberRule): string | undefined {
  if (rule.above !== undefined && !(value > rule.above)) return `must be greater than ${rule.above}`;
  const { min, max } = rule;
  if (min !== undefined && max !== undefined && (value < min || value > max)) {
    return `must be between ${min} and ${max}`;
  }
  if (min !== undefined && value < min) return `must be at least ${min}`;
  if (max !== undefined && value > max) return `must be at most ${max}`;
  return undefined;
}

/** A number within the rule's bounds. */
export function num(rule: NumberRule): Check<number> {
  const check: Check<number> = (value, path, report) => {
    const kind = rule.int ? 'an integer' : 'a number';
    if (typeof value !== 'number' || Number.isNaN(value)) {
      return report(path, `must be ${kind} (got ${show(value)})`);
    }
    if (!Number.isFinite(value)) return report(path, `must be a finite number (got ${value})`);
    if (rule.int && !Number.isInteger(value)) return report(path, `must be an integer (got ${value})`);
    const problem = boundsProblem(value, rule);
    return problem ? report(path, `${problem} (got ${value})`) : value;
  };
  return withSchema(check, () => ({
    type: rule.int ? 'integer' : 'number',
    ...(rule.min !== undefined ? { minimum: rule.min } : {}),
    ...(rule.above !== undefined ? { exclusiveMinimum: rule.above } : {}),
    ...(rule.max !== undefined ? { maximum: rule.max } : {}),
  }));
}

// ---- durations ----------------------------------------------------------------------------

/** What a bare number means in a duration key: the unit its name ends with. */
export type DurationUnit = 'milliseconds' | 'seconds' | 'minutes' | 'hours' | 'days';

/**
 * A duration string: a decimal number and one unit, `ms`, `s`, `m` or `h` (`500ms`, `1.5s`, `2m`,
 * `1h`). No sign, no exponent, no spaces, lower case only (`M` reads as months or mega elsewhere),
 * one unit (no `1m30s`: write `90s`). Also the JSON Schema's pattern, so both accept the same.
 */
export const DURATION_PATTERN = '^(\\d+(?:\\.\\d+)?|\\.\\d+)(ms|s|m|h)$';
const DURATION = new RegExp(DURATION_PATTERN);
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const KEY_UNIT_MS: Readonly<Record<DurationUnit, number>> = {
  milliseconds: 1,
  seconds: 1000,
  minutes: 60_000,
  hours: 3_600_000,
  days: 86_400_000,
};
/** Examples in an error message, at the scale of the key's unit. */
const EXAMPLES: Readonly<Record<DurationUnit, string>> = {
  milliseconds: '500ms, 2s or 1m',
  seconds: '500ms, 2s or 1m',
  minutes: '30s, 10m or 2h',
  hours: '30m, 12h or 48h',
  days: '12h, 48h or 720h',
};

/** `text` (`500ms`, `1.5s`, `2m`, `1h`) as a number of `unit`s; undefined when it is no duration. */
export function parseDuration(text: string, unit: DurationUnit = 'seconds'): number | undefined {
  const match = DURATION.exec(text);
  if (!match) return undefined;
  const n = Number(match[1]);
  const from = UNIT_MS[match[2] as string] as number;
  const to = KEY_UNIT_MS[unit];
  // The ratio of two units is a whole number either way round: multiplying or dividing by it
  // rounds once, so 100ms is exactly 0.1 s (100 * 0.001 would not be).
  return from >= to ? n * (from / to) : n / (to / from);
}

/** Bounds of a duration, in the key's unit (seconds unless `unit` says otherwise). */
export interface DurationRule extends NumberRule {
  unit?: DurationUnit;
  /** Every duration has a ceiling, which also keeps a string of a thousand digits out. */
  max: number;
}

/**
 * A duration: a number of the key's unit (what every `_seconds` key took before units) or a
 * string with a unit (parseDuration), within the rule's bounds; the value is always a number of
 * the key's unit, so nothing downstream knows which form was written.
 */
export function duration(rule: DurationRule): Check<number> {
  const unit = rule.unit ?? 'seconds';
  const asNumber = num(rule);
  const check: Check<number> = (value, path, report) => {
    if (typeof value === 'number') return asNumber(value, path, report);
    const parsed = typeof value === 'string' ? parseDuration(value, unit) : undefined;
    if (parsed === undefined) {
      return report(path, `must be a duration such as ${EXAMPLES[unit]}, or a number of ${unit} (got ${show(value)})`);
    }
    if (rule.int && !Number.isInteger(parsed)) return report(path, `must be a whole number of ${unit} (got ${show(value)})`);
    const problem = boundsProblem(parsed, rule);
    return problem ? report(path, `${problem} (got ${show(value)})`) : parsed;
  };
  return withSchema(check, () => ({ anyOf: [schemaOf(asNumber), { type: 'string', pattern: DURATION_PATTERN }] }));
}

/** Case-insensitive enum; the value is normalised to the listed spelling. */
export function oneOf<T extends string>(values: readonly T[]): Check<T> {
  const check: Check<T> = (value, path, report) => {
    const match =
      typeof value === 'string'
        ? values.find((v) => v.toLowerCase() === value.toLowerCase())
        : undefined;
    return match ?? report(path, `must be one of ${values.join(', ')} (got ${show(value)})`);
  };
  // The listed spellings for completion; any other case is accepted too, as validation does.
  return withSchema(check, () => ({
    anyOf: [{ enum: [...values] }, { type: 'string', pattern: anyCasePattern(values) }],
  }));
}

/** true or false. */
export const bool: Check<boolean> = withSchema(
  (value, path, report) =>
    typeof value === 'boolean' ? value : report(path, `must be true or false (got ${show(value)})`),
  { type: 'boolean' },
);

/** Any string. */
export const str: Check<string> = withSchema(
  (value, path, report) =>
    typeof value === 'string' ? value : report(path, `must be a string (got ${show(value)})`),
  { type: 'string' },
);

/** `check`, or null. */
export function nullable<T>(check: Check<T>): Check<T | null> {
  return withSchema(
    (value, path, report) => (value === null ? null : check(value, path, report)),
    () => ({ anyOf: [schemaOf(check as Check<unknown>), { type: 'null' }] }),
  );
}

/** A list whose every item passes `check`. */
export function listOf<T>(check: Check<T>): Check<T[]> {
  return withSchema((value, path, report) => {
    if (!Array.isArray(value)) return report(path, `must be a list (got ${show(value)})`);
    const out = value.map((v, i) => check(v, join(path, i), report));
    return out.every((v) => v !== undefined) ? (out as T[]) : undefined;
  }, () => ({ type: 'array', items: schemaOf(check as Check<unknown>) }));
}
