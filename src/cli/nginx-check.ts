/**
 * `check-config --nginx`: `nginx -t` on what the daemon would write, the way its test before a
 * swap runs it (nginx/test-copy.ts): a copy of nginx's main config that reads the rendered texts
 * where it would read the live files, run by the configured nginx (its binary here in local mode,
 * inside its container in docker mode). The live files are never written: only a test directory
 * beside them, removed afterwards.
 */
import type { SidecarConfig } from '../config/types.js';
import { describeError } from '../errors.js';
import type { NginxControl } from '../nginx/control.js';
import { testCopy } from '../nginx/test-copy.js';
import type { PreviewFile } from './preview.js';

/** What the test found. Data, never an exception. */
export type NginxCheck =
  | { result: 'passed'; summary: string }
  /** nginx refused the rendered files, or could not be run; `error` carries nginx's own lines. */
  | { result: 'failed'; error: string };

/** Tests `files` (the rendered outputs) together in a copy of the main config. */
export async function checkWithNginx(config: SidecarConfig, control: NginxControl, files: PreviewFile[]): Promise<NginxCheck> {
  const names = files.map((f) => `${f.field} ${f.path}`).join(' and ');
  let tested;
  try {
    // Reaching nginx first (its binary, its container) makes "cannot run nginx" one clear line
    // instead of an untestable layout.
    await control.version();
    tested = await testCopy({ nginx: config.nginx, control, candidates: files.map((f) => ({ path: f.path, text: f.text })) });
  } catch (err) {
    return { result: 'failed', error: `nginx -t could not run (${control.describe()}): ${describeError(err)}` };
  }
  switch (tested.result) {
    case 'valid':
      return { result: 'passed', summary: `nginx -t passed with the rendered ${names} (${control.describe()})` };
    case 'invalid':
      return { result: 'failed', error: `nginx -t failed with the rendered ${names}: ${describeError(tested.error)}` };
    case 'io':
      return { result: 'failed', error: `cannot make the test copy beside ${names}: ${describeError(tested.error)}` };
    case 'untestable':
      // The daemon then tests in place (swap, nginx -t, swap back); a check must not touch live files.
      return { result: 'failed', error: `cannot test ${names} without touching the live files: ${tested.why}` };
  }
}
