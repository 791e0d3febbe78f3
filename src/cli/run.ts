/**
 * `orchestry-sidecar run`: the daemon in the foreground, with the signals daemons answer to.
 * SIGHUP reloads the config file (as nginx, HAProxy and Prometheus do; the file is also
 * reloaded when it changes on disk); SIGTERM, SIGINT and SIGQUIT stop gracefully: every stage
 * stops, the states changed since the last flush and everything queued are written to the store,
 * nginx keeps its last upstreams.
 */
import { resolveConfigPath } from '../config/load.js';
import { describeError } from '../errors.js';
import { startSidecar, type Sidecar } from '../main.js';
import { EXIT } from './args.js';

/** Signals that end the daemon, each through the graceful stop (Node's default would kill it unflushed). */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;

/** Runs the daemon until a stop signal; resolves with the exit code once stopped. */
export async function runDaemon(configFlag: string | undefined): Promise<number> {
  const path = resolveConfigPath(configFlag, process.env);
  // Signals are taken from the start: the admin server answers (and a supervisor may signal)
  // before start-up has finished, and the default actions would kill the process without the
  // graceful stop. A SIGHUP then is answered once started (start-up reads the file as it is
  // then, but the reload is still said in the log).
  let stopRequested!: (signal: string) => void;
  const stopSignal = new Promise<string>((resolve) => (stopRequested = resolve));
  let sidecar: Sidecar | undefined;
  const onStop = (signal: NodeJS.Signals) => {
    for (const s of STOP_SIGNALS) process.off(s, onStop);
    stopRequested(signal);
  };
  let hangupPending = false;
  const onHangup = () => {
    if (sidecar) void sidecar.reload('SIGHUP').catch(() => undefined);
    else hangupPending = true;
  };
  for (const s of STOP_SIGNALS) process.on(s, onStop);
  process.on('SIGHUP', onHangup);
  sidecar = await startSidecar({ configPath: path });
  if (hangupPending) onHangup();
  // After start-up nothing may take the daemon down: it keeps protecting traffic with the last
  // good state, and says what went wrong.
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`${JSON.stringify({ level: 50, msg: 'unhandled rejection', err: describeError(reason) })}\n`);
  });
  // A closed log pipe (the supervisor that read stdout/stderr went away) must not stop the
  // daemon, nor loop: an unhandled EPIPE on stderr became an uncaught exception, whose report
  // to stderr failed with EPIPE again, at 80 % of a core.
  for (const out of [process.stdout, process.stderr]) out.on('error', () => undefined);
  process.on('uncaughtException', (err) => {
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return;
    process.stderr.write(`${JSON.stringify({ level: 50, msg: 'uncaught exception', err: describeError(err), stack: err.stack })}\n`);
  });
  await stopSignal;
  await sidecar.stop().catch(() => undefined);
  process.off('SIGHUP', onHangup);
  return EXIT.ok;
}
