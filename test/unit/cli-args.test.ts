import { describe, expect, it } from 'vitest';
import { COMMANDS, commandHelp, EXIT, mainHelp, parseCommandLine, UsageError } from '../../src/cli/args.js';

function usageError(argv: string[]): UsageError {
  try {
    parseCommandLine(argv);
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error(`no usage error for ${argv.join(' ')}`);
}

describe('command line', () => {
  it('runs the daemon when the first word is an option', () => {
    expect(parseCommandLine(['-c', 'x.yaml'])).toEqual({ kind: 'command', command: 'run', args: [], values: { config: 'x.yaml' } });
  });

  it('takes each command its own options and positional arguments', () => {
    const parsed = parseCommandLine(['report', 'web', '--url', 'http://127.0.0.1:9180', '--hours', '2', '--json']);
    expect(parsed).toEqual({ kind: 'command', command: 'report', args: ['web'], values: { url: 'http://127.0.0.1:9180', hours: '2', json: true } });
    expect(parseCommandLine(['status', '--url', 'http://h:1'])).toMatchObject({ command: 'status', values: { url: 'http://h:1' } });
    expect(parseCommandLine(['check-config', '--nginx', '-c', 'x.yaml'])).toMatchObject({ command: 'check-config', values: { nginx: true, config: 'x.yaml' } });
    expect(usageError(['render', '--nginx']).message).toBe('render: unknown option --nginx (an option of check-config)');
  });

  it('gives each command its own help, by --help after it or help before it', () => {
    for (const c of COMMANDS) {
      expect(parseCommandLine([c.name, '--help'])).toEqual({ kind: 'help', command: c.name });
      expect(parseCommandLine(['help', c.name])).toEqual({ kind: 'help', command: c.name });
      expect(commandHelp(c.name)).toContain(`Usage: orchestry-sidecar ${c.name}`);
    }
    expect(commandHelp('report')).toContain('--store FILE');
    expect(commandHelp('status')).not.toContain('--store');
    expect(parseCommandLine(['--help'])).toEqual({ kind: 'help' });
    expect(mainHelp()).toContain('2 usage error');
  });

  it('suggests the option meant for a mistyped one, or the command that has it', () => {
    expect(usageError(['check-config', '--cofig', 'x']).message).toBe('check-config: unknown option --cofig (did you mean --config?)');
    expect(usageError(['report', 'web', '--hour', '3']).message).toContain('(did you mean --hours?)');
    const elsewhere = usageError(['status', '--store', 'f']);
    expect(elsewhere.message).toBe('status: unknown option --store (an option of report)');
    expect(elsewhere.command).toBe('status');
  });

  it('suggests the command meant for a mistyped one', () => {
    expect(usageError(['statsu']).message).toBe('unknown command "statsu" (did you mean status?)');
    expect(usageError(['frobnicate']).message).toBe('unknown command "frobnicate"');
  });

  it('names a missing or extra argument with the usage line', () => {
    expect(usageError(['report']).message).toContain('report: missing APP (usage: orchestry-sidecar report APP');
    expect(usageError(['status', 'web']).message).toBe('status: unexpected argument "web"');
    expect(usageError(['-c', 'x', 'render']).message).toContain('(the command comes first: orchestry-sidecar render ...)');
    expect(usageError(['report', 'web', '--hours']).message).toMatch(/^report: Option '--hours <value>' argument missing/);
  });

  it('uses one set of exit codes', () => {
    expect(EXIT).toEqual({ ok: 0, failed: 1, usage: 2 });
  });
});
