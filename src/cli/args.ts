/**
 * The command line as data: each command's arguments, options and help, and a parser that
 * turns argv into one command's values or a UsageError saying what was wrong and what was
 * probably meant. Pure: no I/O.
 */
import { parseArgs } from 'node:util';
import { SidecarError } from '../errors.js';
import { closest } from '../suggest.js';
import { VERSION } from '../version.js';

/** Exit codes, the same for every command. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** A mistake in the command line itself (exit 2): an unknown command or option, a missing argument. */
export class UsageError extends SidecarError {
  /** The command whose help applies, if known. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super('USAGE', message);
    this.name = 'UsageError';
    this.command = command;
  }
}

interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** The value's name in help (`FILE`); string options only. */
  arg?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** Positional arguments after the command, all required (`APP`). */
  args: string[];
  options: Record<string, OptionSpec>;
  /** More help: paragraphs after the options. */
  details?: string;
}

const CONFIG: OptionSpec = { type: 'string', short: 'c', arg: 'FILE', help: 'The config file (default: $ORCHESTRY_CONFIG).' };
const URL_OPTION: OptionSpec = { type: 'string', arg: 'URL', help: "A running sidecar's admin address, e.g. http://127.0.0.1:9180 (instead of the config's admin.listen)." };
const JSON_OPTION: OptionSpec = { type: 'boolean', help: "Print the admin API's JSON instead of a table." };

/** Every command, in the order help lists them; `run` is the default. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    summary: 'run the daemon (the default command)',
    args: [],
    options: { config: CONFIG },
    details:
      'Signals: SIGHUP reloads the config file (also reloaded when it changes on disk); SIGTERM, SIGINT\n' +
      'and SIGQUIT stop it gracefully (state written to the store, nginx keeps its last upstreams).',
  },
  {
    name: 'check-config',
    summary: 'validate a config file the way the daemon does',
    args: [],
    options: {
      config: CONFIG,
      nginx: { type: 'boolean', help: "Also run nginx -t on the rendered files, in a copy of nginx's main config\n(the live files are not touched)." },
    },
    details:
      'Checks the file, then renders the upstreams as the daemon would with every backend routed, for the\n' +
      "update mode it would choose, through the daemon's own checks (so an app nginx would refuse, e.g.\n" +
      "one whose every server is a backup, fails here too), and looks for the nginx binary, main config\n" +
      "and the output files' directories: a missing one is a warning (nginx may be installed or started\n" +
      'later), an error with --nginx.\n' +
      '--nginx: tests what would be written (output_path, and stream_output_path when set) the way the\n' +
      "daemon tests before it swaps a file in: nginx -t on a copy of nginx's main config that reads the\n" +
      'rendered texts where it would read the live files, with the configured nginx (nginx.binary, or in\n' +
      "nginx.container in docker mode). Errors name the file and nginx's error line.\n" +
      'Exit 0 if valid (warnings allowed), 1 if not (or nginx could not be run).',
  },
  {
    name: 'render',
    summary: 'print the upstreams file nginx would get now (every backend routed)',
    args: [],
    options: { config: CONFIG },
    details:
      'Nothing is written and nginx is not touched: handy to write the first file before nginx starts.\n' +
      'Rendered for the update mode the daemon would be in: with nginx.update_via auto, nginx -v (in its\n' +
      'container in docker mode) settles it as the daemon does; when that fails, reload mode is assumed\n' +
      'and stderr says so. With nginx.stream_output_path set, both files are printed, each after a line\n' +
      '"# ==> PATH (FIELD) <==". An app the daemon would not write as configured is printed as its\n' +
      'placeholder, said on stderr, and the exit code is 1.',
  },
  {
    name: 'status',
    summary: "show the apps and backends of a running sidecar",
    args: [],
    options: { config: CONFIG, url: URL_OPTION, json: JSON_OPTION },
    details: 'Without --url or a config, asks the default admin address (http://127.0.0.1:9180).',
  },
  {
    name: 'report',
    summary: 'health report of an app over the last N hours',
    args: ['APP'],
    options: {
      config: CONFIG,
      url: URL_OPTION,
      store: { type: 'string', arg: 'FILE', help: 'Read this store file instead of asking a running sidecar.' },
      hours: { type: 'string', arg: 'N', help: 'The window in hours (default 24, at most 8784).' },
      json: JSON_OPTION,
    },
    details:
      'Asks the running sidecar (--url, or the config\'s admin.listen). When none answers and the config\n' +
      "names a store, reads the store file read-only instead (a sidecar need not run).",
  },
];

const GLOBAL: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', help: 'Show help (of the command, after one).' },
  version: { type: 'boolean', short: 'v', help: 'Print the version.' },
};

/** What argv asks for. */
export type Parsed =
  | { kind: 'help'; command?: string }
  | { kind: 'version' }
  | { kind: 'command'; command: string; args: string[]; values: OptionValues };

/** The options given, by long name: a string option's value, true for a boolean flag. */
export type OptionValues = Record<string, string | boolean | undefined>;

/**
 * Reads argv (without node and the script): `[COMMAND] [ARGS] [OPTIONS]`, the command first,
 * `run` when the first word is an option. Throws UsageError.
 */
export function parseCommandLine(argv: readonly string[]): Parsed {
  const first = argv[0];
  if (first === 'help') return { kind: 'help', ...(argv[1] ? { command: commandSpec(argv[1]).name } : {}) };
  const named = first !== undefined && !first.startsWith('-');
  const spec = named ? commandSpec(first) : commandSpec('run');
  const rest = named ? argv.slice(1) : [...argv];
  const options = { ...spec.options, ...GLOBAL };
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: toParseArgs(options), allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(explain(err, rest, spec), spec.name);
  }
  const { values, positionals } = parsed;
  if (values.help) return named ? { kind: 'help', command: spec.name } : { kind: 'help' };
  if (values.version) return { kind: 'version' };
  if (positionals.length < spec.args.length) {
    throw new UsageError(`${spec.name}: missing ${spec.args.slice(positionals.length).join(' ')} (usage: ${usageLine(spec)})`, spec.name);
  }
  if (positionals.length > spec.args.length) {
    const extra = positionals[spec.args.length]!;
    const hint = !named && COMMANDS.some((c) => c.name === extra) ? ` (the command comes first: orchestry-sidecar ${extra} ...)` : '';
    throw new UsageError(`${spec.name}: unexpected argument ${JSON.stringify(extra)}${hint}`, spec.name);
  }
  return { kind: 'command', command: spec.name, args: positionals, values: values as OptionValues };
}

function commandSpec(name: string): CommandSpec {
  const spec = COMMANDS.find((c) => c.name === name);
  if (spec) return spec;
  const guess = closest(name, COMMANDS.map((c) => c.name));
  throw new UsageError(`unknown command ${JSON.stringify(name)}${guess ? ` (did you mean ${guess}?)` : ''}`);
}

function toParseArgs(options: Record<string, OptionSpec>) {
  return Object.fromEntries(Object.entries(options).map(([name, o]) => [name, { type: o.type, ...(o.short ? { short: o.short } : {}) }]));
}

/** node:util's complaint, said for this command: an unknown option gets the one probably meant. */
function explain(err: unknown, args: readonly string[], spec: CommandSpec): string {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `${spec.name}: ${message.replace(/\. To specify a positional argument.*$/s, '')}`;
  const raw = /'(-[^']*)'/.exec(message)?.[1] ?? args.find((a) => a.startsWith('-')) ?? '';
  const name = raw.replace(/^--?/, '').replace(/=.*$/, '');
  const own = Object.keys({ ...spec.options, ...GLOBAL });
  const guess = closest(name, own);
  const elsewhere = COMMANDS.filter((c) => c.name !== spec.name && Object.hasOwn(c.options, name)).map((c) => c.name);
  const hint = guess ? ` (did you mean --${guess}?)` : elsewhere.length > 0 ? ` (an option of ${elsewhere.join(' and ')})` : '';
  return `${spec.name}: unknown option ${raw}${hint}`;
}

function usageLine(spec: CommandSpec): string {
  const options = Object.entries(spec.options).map(([name, o]) => `[--${name}${o.arg ? ` ${o.arg}` : ''}]`);
  return ['orchestry-sidecar', spec.name, ...spec.args, ...options].join(' ');
}

/** The overview: every command in one line each. */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length + c.args.join(' ').length + 1));
  const lines = COMMANDS.map((c) => `  ${`${c.name} ${c.args.join(' ')}`.padEnd(width)}  ${c.summary}`);
  return [
    `orchestry-sidecar ${VERSION}: health checks, circuit breaking and upstream rewriting for nginx`,
    '',
    'Usage: orchestry-sidecar [COMMAND] [ARGS] [OPTIONS]',
    '',
    'Commands:',
    ...lines,
    '',
    '  --help, -h       this help; COMMAND --help (or help COMMAND): that command\'s',
    '  --version, -v    the version',
    '',
    'Exit codes: 0 ok, 1 failed (invalid config, failed check, no answer), 2 usage error.',
    '',
  ].join('\n');
}

/** One command's help: usage, options, details. */
export function commandHelp(name: string): string {
  const spec = commandSpec(name);
  const options = Object.entries({ ...spec.options, help: GLOBAL.help! }).map(([n, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${n}${o.arg ? ` ${o.arg}` : ''}`;
    return `  ${flag.padEnd(20)}  ${o.help.replaceAll('\n', `\n${' '.repeat(24)}`)}`;
  });
  return [`orchestry-sidecar ${spec.name}: ${spec.summary}`, '', `Usage: ${usageLine(spec)}`, '', 'Options:', ...options, '', ...(spec.details ? [spec.details, ''] : [])].join('\n');
}
