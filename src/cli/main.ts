/**
 * The command line: parses argv (args.ts), runs one command, and turns its outcome into the
 * exit code, the same for every command: 0 ok, 1 failed (invalid config, failed check, no
 * answer), 2 usage (unknown command or option, missing or bad argument; the command's help
 * is named).
 */
import { ConfigError, SidecarError } from '../errors.js';
import { VERSION } from '../version.js';
import { report, status } from './admin-commands.js';
import { commandHelp, EXIT, mainHelp, parseCommandLine, UsageError } from './args.js';
import { checkConfig, render } from './config-commands.js';
import { runDaemon } from './run.js';

/** Runs the command `argv` (without node and the script) asks for; resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const parsed = parseCommandLine(argv);
    if (parsed.kind === 'version') {
      process.stdout.write(`${VERSION}\n`);
      return EXIT.ok;
    }
    if (parsed.kind === 'help') {
      process.stdout.write(parsed.command ? commandHelp(parsed.command) : mainHelp());
      return EXIT.ok;
    }
    const { command, args, values } = parsed;
    const config = values.config as string | undefined;
    switch (command) {
      case 'check-config':
        return await checkConfig(config, { nginx: values.nginx === true });
      case 'render':
        return await render(config);
      case 'status':
        return await status(values);
      case 'report':
        return await report(values, args[0]!);
      default:
        return await runDaemon(config);
    }
  } catch (err) {
    return failure(err);
  }
}

/** One clear message, no stack trace, for what was expected to go wrong; the exit code it means. */
function failure(err: unknown): number {
  if (err instanceof UsageError) {
    const help = err.command ? `orchestry-sidecar ${err.command} --help` : 'orchestry-sidecar --help';
    process.stderr.write(`orchestry-sidecar: ${err.message}\n(see ${help})\n`);
    return EXIT.usage;
  }
  if (err instanceof ConfigError || err instanceof SidecarError) {
    process.stderr.write(`orchestry-sidecar: ${err.message}\n`);
  } else {
    process.stderr.write(`orchestry-sidecar: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  return EXIT.failed;
}
