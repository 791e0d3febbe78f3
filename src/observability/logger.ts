/** Logging for the daemon (pino): JSON lines for collectors, or readable text for people. */
import { pino } from 'pino';

/** The logger every module receives; modules add context with `logger.child({ ... })`. */
export type Logger = pino.Logger;

/** Where log lines go: a stream, or anything with pino's `write(line)`. */
type Destination = pino.DestinationStream | NodeJS.WritableStream;

/**
 * A pino logger writing to `destination` (stdout by default). `json` (the default) writes one
 * object per line, levels as names ("info", not 30) so logs read the same in a terminal and a
 * collector; `text` writes one readable line per event (formatTextLine).
 */
export function createLogger(opts: { level: string; format?: 'json' | 'text'; destination?: Destination }): Logger {
  const out = opts.destination ?? process.stdout;
  return pino(
    {
      name: 'orchestry-sidecar',
      level: opts.level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.format === 'text' ? { write: (line: string) => void out.write(formatTextLine(line)) } : out,
  );
}

/** Fields every line has, shown in the line's head (time, level, message) or not at all. */
const HEAD_FIELDS = new Set(['time', 'level', 'msg', 'name', 'pid', 'hostname']);

/**
 * One of pino's JSON lines as text: `2025-01-02T03:04:05.678Z INFO  nginx upstreams updated
 * durationMs=12.3 changes="web: ejected 10.0.0.1:80"`. Nested fields are flattened with dots,
 * lists joined with commas, numbers rounded for reading (roundForPeople), and a string is quoted
 * when it holds a space, a quote or an `=`. A line that is not JSON passes through as it is.
 */
export function formatTextLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const fields: string[] = [];
  for (const [key, value] of Object.entries(entry)) {
    if (!HEAD_FIELDS.has(key)) flatten(key, value, fields);
  }
  const level = String(entry.level ?? '').toUpperCase().padEnd(5);
  const head = `${String(entry.time ?? '')} ${level} ${String(entry.msg ?? '')}`;
  return `${[head, ...fields].join(' ')}\n`;
}

function flatten(key: string, value: unknown, out: string[]): void {
  if (value === undefined) return;
  if (Array.isArray(value)) {
    out.push(`${key}=${quote(value.map((v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : scalar(v))).join(','))}`);
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) flatten(`${key}.${k}`, v, out);
  } else {
    out.push(`${key}=${typeof value === 'string' ? quote(value) : scalar(value)}`);
  }
}

function scalar(value: unknown): string {
  return typeof value === 'number' ? String(roundForPeople(value)) : String(value);
}

function quote(text: string): string {
  return text === '' || /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

/**
 * A number as a person reads it: whole numbers as they are; otherwise 3 significant digits,
 * at most 1 decimal from 10 up and none from 100 up (12.3456 -> 12.3, 0.012345 -> 0.0123).
 */
export function roundForPeople(n: number): number {
  if (Number.isInteger(n) || !Number.isFinite(n)) return n;
  const abs = Math.abs(n);
  if (abs >= 100) return Math.round(n);
  if (abs >= 10) return Math.round(n * 10) / 10;
  return Number(n.toPrecision(3));
}
