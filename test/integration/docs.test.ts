/**
 * The documentation as a reader meets it: README.md stays a short door (at most 12 KB), every
 * relative link in README.md and docs/*.md reaches a file and, for `#anchor`, a heading of that
 * file; and the reference cannot drift from the code: every key the config schema accepts is in
 * docs/configuration.md, every health field has its label in docs/docker.md. It reads files only
 * (no nginx, no Docker), which is why it lives with the integration tests.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/schema.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const README = join(ROOT, 'README.md');
const DOCS = join(ROOT, 'docs');
const README_MAX_BYTES = 12_288;

const docFiles = (): string[] => [
  README,
  ...readdirSync(DOCS).filter((f) => f.endsWith('.md')).sort().map((f) => join(DOCS, f)),
];

const read = (file: string): string => readFileSync(file, 'utf8');

/** The lines outside fenced code blocks, each with its text; fenced lines become empty. */
function proseLines(markdown: string): string[] {
  let fence: string | null = null;
  return markdown.split('\n').map((line) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (marker && (fence === null || marker.startsWith(fence))) {
      fence = fence === null ? marker : null;
      return '';
    }
    return fence === null ? line : '';
  });
}

const HEADING = /^#{1,6}\s+(.*?)\s*#*\s*$/;

/**
 * GitHub's anchor for a heading: the rendered text (code spans and links reduced to their
 * text), lower-cased, punctuation dropped except '-' and '_', each space turned into '-'.
 */
function slug(heading: string): string {
  return heading
    .replace(/`([^`]*)`/g, '$1')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every anchor a file's headings produce; repeated headings get -1, -2, … as on GitHub. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of proseLines(markdown)) {
    const text = HEADING.exec(line)?.[1];
    if (text === undefined) continue;
    const base = slug(text);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Link and image targets outside code, e.g. `docs/x.md#y`; code spans are blanked first. */
function linkTargets(markdown: string): string[] {
  const targets: string[] = [];
  for (const line of proseLines(markdown)) {
    const prose = line.replace(/`[^`]*`/g, 'code');
    for (const m of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      if (m[1] !== undefined) targets.push(m[1]);
    }
  }
  return targets;
}

/** Why a link from `file` to `target` does not resolve, or null when it does. */
function brokenLink(file: string, target: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null; // absolute: http(s), mailto
  const hash = target.indexOf('#');
  const pathPart = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
  const anchor = hash === -1 ? null : decodeURIComponent(target.slice(hash + 1));
  const dest = pathPart === '' ? file : resolve(dirname(file), pathPart);
  if (!existsSync(dest)) return `${target}: no such file`;
  if (anchor === null || !dest.endsWith('.md')) return null;
  return anchors(read(dest)).has(anchor) ? null : `${target}: no heading with that anchor`;
}

// ---- config keys ----------------------------------------------------------------------------

/**
 * A small valid config with one of each repeated thing (app, backend, receiver, route), so
 * that parseConfig fills in every other key with its default.
 */
const SAMPLE = {
  apps: { web: { backends: ['127.0.0.1:8000'] } },
  alerting: {
    receivers: { ops: { type: 'webhook', url: 'http://127.0.0.1:9/hook' } },
    routes: [{ receivers: ['ops'] }],
  },
};

/** Maps the YAML writes as `name: {...}` that the parsed config holds as lists with a `name`. */
const NAMED_MAPS = new Map([
  ['apps', 'apps.<name>'],
  ['alerting.receivers', 'alerting.receivers.<name>'],
]);

/** Parsed fields that the YAML writes as another key: a backend's `address` becomes host + port. */
const YAML_KEY = new Map([
  ['apps.<name>.backends[].host', 'apps.<name>.backends[].address'],
  ['apps.<name>.backends[].port', 'apps.<name>.backends[].address'],
]);

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The dotted paths of the leaves a user can write, in the docs' notation, each with its parsed
 * value: `apps.<name>.…` and `alerting.receivers.<name>.…` for user-named maps, `…[]` for the
 * elements of a list of maps (`alerting.routes[].receivers`). A scalar, a list of scalars, an
 * empty map (`headers: {}`) or a null (`clear_cache`) is a leaf.
 */
function configEntries(value: unknown, path: string, out: Map<string, unknown>): Map<string, unknown> {
  if (Array.isArray(value) && isMap(value[0])) {
    const named = NAMED_MAPS.get(path);
    for (const [key, v] of Object.entries(value[0])) {
      if (named === undefined || key !== 'name') configEntries(v, `${named ?? `${path}[]`}.${key}`, out);
    }
  } else if (isMap(value) && Object.keys(value).length > 0) {
    for (const [key, v] of Object.entries(value)) configEntries(v, path === '' ? key : `${path}.${key}`, out);
  } else {
    out.set(YAML_KEY.get(path) ?? path, value);
  }
  return out;
}

const configKeys = (value: unknown): Set<string> => new Set(configEntries(value, '', new Map()).keys());

function parsedSample(): Record<string, unknown> {
  const result = parseConfig(SAMPLE);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config as unknown as Record<string, unknown>;
}

interface Section {
  /** The code spans of the heading: the key paths the section documents (`nginx`, `apps.<name>.health`). */
  names: string[];
  /** The code spans of the section's own text, up to the next heading of any level. */
  spans: Set<string>;
  /**
   * Each key of the section's `| Key | Type | Default | Meaning |` table with the code span its
   * Default cell opens with (`2`, `[refused]`, `nginx.ejected`), or null where it has none
   * ("(required)", "see below"). `a` / `b` rows give each key its own half of the cell.
   */
  defaults: Map<string, string | null>;
}

const codeSpans = (text: string): string[] => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');

/** A table row's cells, split at the pipes that are not escaped (`\|` stands inside a cell). */
const cells = (row: string): string[] => row.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());

function sections(markdown: string): Section[] {
  const out: Section[] = [];
  let defaultColumn = -1;
  for (const line of proseLines(markdown)) {
    const heading = HEADING.exec(line)?.[1];
    if (heading !== undefined) {
      out.push({ names: codeSpans(heading), spans: new Set(), defaults: new Map() });
      continue;
    }
    for (const span of codeSpans(line)) out.at(-1)?.spans.add(span);
    if (!line.startsWith('|')) defaultColumn = -1;
    else if (defaultColumn === -1) defaultColumn = cells(line).indexOf('Default');
    else readDefaults(cells(line), defaultColumn, out.at(-1)?.defaults);
  }
  return out;
}

function readDefaults(row: string[], column: number, into: Map<string, string | null> | undefined): void {
  const keys = (row[0] ?? '').split(' / ');
  const values = (row[column] ?? '').split(' / ');
  keys.forEach((key, i) => {
    const [name] = codeSpans(key);
    if (name !== undefined) into?.set(name, codeSpans(values.length === keys.length ? values[i] ?? '' : '')[0] ?? null);
  });
}

/**
 * The check is per section, not a bare search for the last segment (`enabled` appears
 * everywhere): the key's longest prefix that a heading names in a code span (`## \`nginx\``,
 * `### … \`apps.<name>.health\``) owns it, and that section's own text must show the rest of the
 * path as a code span (`output_path`, `receivers.<name>.url`) or the whole path. So a key is
 * found only in the table of its own section, and the tables may keep their short names.
 */
function owners(key: string, docs: Section[]): { sections: Section[]; rest: string } {
  const segments = key.split('.');
  for (let i = segments.length - 1; i >= 1; i--) {
    const found = docs.filter((s) => s.names.includes(segments.slice(0, i).join('.')));
    if (found.length > 0) return { sections: found, rest: segments.slice(i).join('.') };
  }
  // A top-level scalar key (`instance`): a heading of its own names it, and its text shows it.
  if (segments.length === 1) return { sections: docs.filter((s) => s.names.includes(key)), rest: key };
  return { sections: [], rest: key };
}

function documented(key: string, docs: Section[]): boolean {
  const { sections: found, rest } = owners(key, docs);
  return found.some((s) => s.spans.has(rest) || s.spans.has(key));
}

/** The default the key's own table row states, as its code span; null where it states none. */
function documentedDefault(key: string, docs: Section[]): string | null {
  const { sections: found, rest } = owners(key, docs);
  for (const s of found) {
    const span = s.defaults.get(rest) ?? s.defaults.get(key);
    if (span !== undefined) return span;
  }
  return null;
}

// ---- tests ----------------------------------------------------------------------------------

describe('documentation', () => {
  test('README.md is at most 12,288 bytes', () => {
    expect(readFileSync(README).byteLength).toBeLessThanOrEqual(README_MAX_BYTES);
  });

  test('anchors follow GitHub: lower case, punctuation dropped except - and _, spaces to -', () => {
    expect(slug('nginx in a container (`nginx.mode: docker`)')).toBe('nginx-in-a-container-nginxmode-docker');
    expect(slug("The design's other strategies")).toBe('the-designs-other-strategies');
    expect(slug('`failure_detection`')).toBe('failure_detection');
    expect(slug('Apps: `apps.<name>` (required)')).toBe('apps-appsname-required');
    expect([...anchors('# A\n```\n# not a heading\n```\n## A\n')]).toEqual(['a', 'a-1']);
  });

  test('every relative link in README.md and docs/*.md reaches a file and a heading there', () => {
    const broken = docFiles().flatMap((file) =>
      linkTargets(read(file)).flatMap((target) => {
        const why = brokenLink(file, target);
        return why === null ? [] : [`${relative(ROOT, file)}: ${why}`];
      }));
    expect(broken).toEqual([]);
  });

  test('the README links every page of docs/', () => {
    const linked = new Set(linkTargets(read(README)).map((t) => t.split('#')[0]));
    const pages = readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
    expect(pages.filter((p) => !linked.has(p))).toEqual([]);
  });

  test('the key list derived from parseConfig reaches every section and speaks YAML', () => {
    const config = parsedSample();
    const keys = configKeys(config);
    for (const section of Object.keys(config)) {
      // A section has keys under it; a top-level scalar (`instance`) is a key itself.
      expect([...keys].some((k) => k === section || k.startsWith(`${section}.`)), section).toBe(true);
    }
    for (const key of ['nginx.output_path', 'apps.<name>.health.path', 'apps.<name>.backends[].address',
      'alerting.receivers.<name>.url', 'alerting.routes[].min_severity', 'alerting.escalation.after_seconds']) {
      expect(keys, key).toContain(key);
    }
    expect([...keys].filter((k) => /\.(name|host|port)$/.test(k) && !k.endsWith('health.port'))).toEqual([]);
  });

  test('docs/configuration.md documents every key the config schema accepts', () => {
    const docs = sections(read(join(DOCS, 'configuration.md')));
    const keys = [...configKeys(parsedSample())];
    expect(keys.filter((key) => !documented(key, docs))).toEqual([]);
  });

  test('every default docs/configuration.md states is the one parseConfig fills in', () => {
    const docs = sections(read(join(DOCS, 'configuration.md')));
    const values = configEntries(parsedSample(), '', new Map());
    const wrong: string[] = [];
    const unstated: string[] = [];
    for (const [key, value] of values) {
      const stated = documentedDefault(key, docs);
      if (stated === null) {
        unstated.push(key);
        continue;
      }
      // A default written as another key (`nginx.ejected`) is that key's value.
      const expected = values.has(stated) ? values.get(stated) : parseYaml(stated);
      if (!isDeepStrictEqual(expected, value)) wrong.push(`${key}: the docs say ${stated}, parseConfig gives ${JSON.stringify(value)}`);
    }
    expect(wrong).toEqual([]);
    // Only the keys a user must write have no default (SAMPLE writes them).
    expect(unstated.sort()).toEqual([
      'alerting.receivers.<name>.type',
      'alerting.receivers.<name>.url',
      'alerting.routes[].receivers',
      'apps.<name>.backends[].address',
    ]);
  });

  test('docs/docker.md has an orchestry.health.* label for every health check field', () => {
    const health = (parsedSample().defaults as { health: Record<string, unknown> }).health;
    const text = read(join(DOCS, 'docker.md'));
    const missing = Object.keys(health).filter((field) => !text.includes(`\`orchestry.health.${field}\``));
    expect(missing).toEqual([]);
  });
});
