/** Structured JSON-lines logging for the daemon (pino). */
import { pino } from 'pino';

/** The logger every module receives; modules add context with `logger.child({ ... })`. */
export type Logger = pino.Logger;

/**
 * A pino logger writing one JSON object per line to `destination` (stdout by default). Levels
 * are written as names ("info", not 30) so logs read the same in a terminal and a collector.
 */
export function createLogger(opts: {
  level: string;
  destination?: pino.DestinationStream | NodeJS.WritableStream;
}): Logger {
  return pino(
    {
      name: 'orchestry-sidecar',
      level: opts.level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? process.stdout,
  );
}
