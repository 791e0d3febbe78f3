/**
 * Reading the configuration file: YAML text -> raw value -> environment overrides -> validated
 * SidecarConfig. Every failure is a SidecarError with a one-line cause or a ConfigError listing
 * every invalid field.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigError, SidecarError, describeError, type FieldIssue } from '../errors.js';
import { locatePath } from './locate.js';
import { parseConfig } from './schema.js';
import type { SidecarConfig } from './types.js';

/**
 * Environment variables that override one config key each, validated like the file's value;
 * `section: null` is a key at the top of the document.
 */
const ENV_OVERRIDES: ReadonlyArray<{ env: string; section: string | null; key: string }> = [
  { env: 'ORCHESTRY_INSTANCE', section: null, key: 'instance' },
  { env: 'ORCHESTRY_ADMIN_TOKEN', section: 'admin', key: 'token' },
  { env: 'ORCHESTRY_ADMIN_LISTEN', section: 'admin', key: 'listen' },
  { env: 'ORCHESTRY_LOG_LEVEL', section: 'logging', key: 'level' },
  { env: 'ORCHESTRY_LOG_FORMAT', section: 'logging', key: 'format' },
  { env: 'ORCHESTRY_STORE_PATH', section: 'store', key: 'path' },
];

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'a parent is not a directory',
};

/**
 * The config file path: the `--config` flag, else ORCHESTRY_CONFIG. Throws SidecarError
 * CONFIG_MISSING when neither is set.
 */
export function resolveConfigPath(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const path = flag || env.ORCHESTRY_CONFIG;
  if (!path) {
    throw new SidecarError(
      'CONFIG_MISSING',
      'no configuration file given: pass --config <file> or set ORCHESTRY_CONFIG',
    );
  }
  return path;
}

/**
 * Reads, parses and validates the config file, with environment overrides applied (an empty
 * variable counts as unset). Relative nginx paths resolve against the file's directory.
 * Throws SidecarError CONFIG_UNREADABLE or ConfigError (CONFIG_INVALID) naming the file.
 */
export async function loadConfigFile(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<SidecarConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code && READ_ERRORS[code] ? `${READ_ERRORS[code]} (${code})` : describeError(err);
    throw new SidecarError('CONFIG_UNREADABLE', `cannot read config file ${path}: ${why}`, {
      cause: err,
    });
  }
  return parseConfigText(text, path, env);
}

/**
 * The config in `text`, read from the file `path`: parsed, overridden from `env` and validated
 * like loadConfigFile (which reads the file and calls this). Each issue carries the line and
 * column it was written at, when it was written in the file. Throws ConfigError.
 */
export function parseConfigText(text: string, path: string, env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  const { raw, doc, counter } = parseYaml(text, path);
  const overridden = applyEnv(raw, env);
  const result = parseConfig(raw, { baseDir: dirname(resolve(path)) });
  if (!result.ok) {
    throw new ConfigError(
      result.issues.map((issue) => {
        const from = overridden.get(issue.path);
        if (from) return { ...issue, message: `${issue.message} (from ${from})` };
        const at = locatePath(doc, counter, issue.path, issue.message.startsWith('unknown key') ? 'key' : 'value');
        return at ? { ...issue, ...at } : issue;
      }),
      path,
    );
  }
  return result.config;
}

function parseYaml(text: string, source: string): { raw: unknown; doc: Document; counter: LineCounter } {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter });
  if (doc.errors.length > 0) {
    const issues: FieldIssue[] = doc.errors.map((err) => {
      // The library appends " at line L, column C:" and a source excerpt; keep one line.
      const message = err.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
      const at = err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
      return { path: '', message: `YAML syntax error${at}: ${message}` };
    });
    throw new ConfigError(issues, source);
  }
  try {
    return { raw: doc.toJS({ maxAliasCount: 100 }), doc, counter };
  } catch (err) {
    // e.g. an alias to an undefined anchor, or an alias explosion.
    throw new ConfigError([{ path: '', message: `YAML error: ${describeError(err)}` }], source);
  }
}

/**
 * Writes overrides into the raw value (validation then treats them like file values) and
 * returns which config paths came from which variable. A section that is not a map is left
 * alone so that validation reports the file's own mistake.
 */
function applyEnv(raw: unknown, env: NodeJS.ProcessEnv): Map<string, string> {
  const from = new Map<string, string>();
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return from;
  const top = raw as Record<string, unknown>;
  for (const { env: name, section, key } of ENV_OVERRIDES) {
    const value = env[name];
    if (!value) continue;
    if (section === null) {
      top[key] = value;
      from.set(key, name);
      continue;
    }
    const current = top[section];
    if (current === undefined || current === null) {
      top[section] = { [key]: value };
    } else if (typeof current === 'object' && !Array.isArray(current)) {
      top[section] = { ...current, [key]: value };
    } else {
      continue;
    }
    from.set(`${section}.${key}`, name);
  }
  return from;
}
