/**
 * How `expected_body` is read, and which regular expressions it accepts.
 *
 * A pattern is written by whoever edits the YAML; the body it runs against is whatever the
 * backend answers. V8's default engine (irregexp) backtracks: `/^(\w+\s?)*$/` against 40 letters
 * and a `!` takes minutes at 100 % CPU, and it ran on the event loop, so every probe, nginx
 * update and /healthz stopped with it. Patterns therefore run on V8's linear-time engine (the
 * `l` flag, enabled by `--enable-experimental-regexp-engine`): a breadth-first automaton whose
 * time grows with body length × pattern size, never exponentially. Measured on Node 24 with a
 * 4 KB body: 0.7 ms for that pattern (irregexp: 0.4 s at 26 letters, doubling with each one),
 * 2 µs for a typical `"status":\s*"ok"`.
 *
 * Why this engine rather than a JS port of RE2 (re2js, as fast here): no dependency, and what it
 * accepts means exactly what the same JavaScript regular expression means, because V8 parses
 * it. What it cannot run is refused here, naming the field: backreferences, lookahead, the
 * `i`, `u`, `v` and `d` flags, and counted repetition above 16 (nested counts multiply). A
 * native RE2 addon would need a compiler at install time.
 *
 * Linear time still grows with the pattern (a 1,000-character pattern of `(?:a?){16}` groups
 * takes seconds on 4 KB), so the match also runs off the event loop under a time budget:
 * src/probe/body-matcher.ts.
 */
import v8 from 'node:v8';

/** Longest pattern accepted, in characters: bounds parsing and the automaton's size. */
export const MAX_PATTERN_LENGTH = 1000;

/** What `expected_body` asks of a response body. */
export type ExpectedBody =
  | { kind: 'substring'; text: string }
  /** `flags` as written; the matcher adds `l`. */
  | { kind: 'regex'; source: string; flags: string };

/** `/pattern/flags`: the form read as a regular expression. */
export const REGEX_FORM = /^\/(.+)\/([a-z]*)$/s;

let linearEngine: boolean | undefined;

/**
 * Whether this process can compile `l` regular expressions, turning V8's flag on if the command
 * line did not (the CLI's shebang, `npm start` and the image pass it; a plain `node dist/cli.js`
 * or a test runner may not). The flag only makes `l` mean something; no other expression changes.
 */
export function hasLinearEngine(): boolean {
  if (linearEngine !== undefined) return linearEngine;
  const works = (): boolean => {
    try {
      new RegExp('', 'l');
      return true;
    } catch {
      return false;
    }
  };
  if (!works()) v8.setFlagsFromString('--enable-experimental-regexp-engine');
  linearEngine = works();
  return linearEngine;
}

/** The linear-time RegExp of a checked pattern; throws what V8 says otherwise. */
export function linearRegExp(source: string, flags: string): RegExp {
  if (!hasLinearEngine()) throw new Error('no linear-time regular expression engine in this Node.js');
  return new RegExp(source, `${flags}l`);
}

/**
 * Reads `expected_body`: `/pattern/flags` is a regular expression, anything else a substring.
 * Returns an error text (without the field name) when the pattern cannot run in linear time.
 */
export function parseExpectedBody(text: string): ExpectedBody | string {
  const regex = REGEX_FORM.exec(text);
  if (!regex) return { kind: 'substring', text };
  const [, source = '', flags = ''] = regex;
  // g and y make RegExp#test stateful across calls (lastIndex), so one probe would affect the next.
  if (/[gy]/.test(flags)) return 'must not use the g or y regular expression flags';
  if (flags.includes('i')) {
    return 'must not use the i flag: the linear-time engine has no case-insensitive mode (write both cases, e.g. [Oo][Kk])';
  }
  if (/[uvd]/.test(flags)) return 'must not use the u, v or d flags: the linear-time engine does not run them';
  if (source.length > MAX_PATTERN_LENGTH) {
    return `must be a pattern of at most ${MAX_PATTERN_LENGTH} characters (this one has ${source.length})`;
  }
  try {
    // Checks the syntax first, so a typo is reported as one rather than as a linear-time problem.
    new RegExp(source, flags);
  } catch (err) {
    return `is not a valid regular expression: ${(err as Error).message}`;
  }
  if (!hasLinearEngine()) {
    return 'cannot be run: this Node.js has no linear-time regular expression engine (V8 flag --enable-experimental-regexp-engine); use a plain substring';
  }
  try {
    linearRegExp(source, flags);
  } catch {
    return (
      'cannot run in linear time: backreferences (\\1, \\k<name>), lookahead ((?=…), (?!…)) ' +
      'and counted repetition above {16} (nested counts multiply) are not supported'
    );
  }
  return { kind: 'regex', source, flags };
}
