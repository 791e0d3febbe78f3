/**
 * Test before swap: `nginx -T` on a copy of nginx's main config that reads the new text where
 * it would read the live file, so the live file only ever holds text that passed.
 *
 * How nginx finds files (ngx_conf_file.c, nginx.c): `include` takes one path, absolute or
 * relative to the *directory of the -c file* (conf_prefix; so are ssl_certificate,
 * auth_basic_user_file and other conf-relative paths, in every included file), and a path with
 * `*?[` is a glob(3), sorted, not matching dot files. So a copy of the main config placed
 * anywhere else would resolve relative paths elsewhere, and rewriting them all is an open-ended
 * job. Instead, in each output directory (the one place the sidecar can write that nginx, even in
 * its own container, can read), a fresh test directory `.orchestry-test-<random>` holds:
 * - `d/`: a mirror of the output directory, every entry a relative link to the real one, except
 *   the outputs, which are the new texts under their own names. An include of the output
 *   directory, literal or glob, redirected here reads the same names in the same order, with
 *   the new texts in place of the live ones;
 * - `p/`: a shadow of the main config's directory, every entry a link to the real one, and the
 *   copy of the main config. Run as `-c p/<copy>`, every conf-relative path in every file resolves
 *   through those links to the same file as for the real config.
 * Only the main config's own includes are rewritten, and only those whose directory *is* the
 * output directory, which is checked as nginx sees it (does `<dir>/.orchestry-test-<random>`
 * exist there?), so nothing needs to know where a shared volume is mounted inside nginx's
 * container. `nginx -T` then lists every file it read: the test counts only if it read the new
 * texts. When it did not (the output is included from another file, through a glob in a
 * directory name, or not at all), or the copy cannot be made (nginx's control cannot show its
 * files), the layout is `untestable`: the applier then tests in place and says so in its log.
 */
import { mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, posix } from 'node:path';
import type { NginxConfig } from '../config/types.js';
import { SidecarError, describeError } from '../errors.js';
import { findIncludes, rewriteIncludes } from './conf-includes.js';
import type { NginxControl } from './control.js';
import { createScratchFileSync, isTempName, randomName } from './output-file.js';
import { dumpedFiles } from './run.js';

/** A new text for an output file, as the sidecar writes it. */
export interface Candidate {
  path: string;
  text: string;
}

export type CopyTest =
  | { result: 'valid' }
  /** nginx rejected the copy; the error names the real paths. */
  | { result: 'invalid'; error: unknown }
  /** The copy cannot stand for the real config; why, for the log. */
  | { result: 'untestable'; why: string }
  /** The test directory could not be made in an output directory. */
  | { result: 'io'; error: unknown };

/** The copy of the main config inside `p/`. */
const COPY_NAME = '.orchestry-main.conf';

interface Stage {
  /** The output directory, as the sidecar sees it. */
  dir: string;
  name: string;
  candidates: Candidate[];
  /** The output directory as nginx sees it, once an include of the main config named it. */
  seen?: string;
}

/** Tests `candidates` together in a copy of nginx's main config; never touches the live files. */
export async function testCopy(opts: {
  nginx: Pick<NginxConfig, 'config_path' | 'prefix'>;
  control: NginxControl;
  candidates: Candidate[];
}): Promise<CopyTest> {
  const { control } = opts;
  const mainPath = mainConfigPath(opts.nginx);
  if (!control.dump || !control.files) return { result: 'untestable', why: `${control.describe()} cannot show nginx's files` };
  if (mainPath === null) return { result: 'untestable', why: `nginx.config_path ${opts.nginx.config_path} is relative and nginx.prefix is not set` };
  const stages: Stage[] = [];
  try {
    try {
      for (const [dir, candidates] of groupByDir(opts.candidates)) stages.push(makeStage(dir, candidates));
    } catch (err) {
      return { result: 'io', error: err };
    }
    let main: { text: string; names: string[] };
    try {
      main = await control.files.readMain(mainPath);
    } catch (err) {
      return { result: 'untestable', why: `cannot read ${mainPath}: ${describeError(err)}` };
    }
    const copy = await redirectIncludes(main.text, mainPath, stages, control);
    const lost = stages.find((s) => s.seen === undefined);
    if (lost) return { result: 'untestable', why: `${mainPath} has no include of ${lost.dir} (where ${lost.candidates.map((c) => basename(c.path)).join(', ')} is)` };
    const primary = stages[0]!;
    try {
      makeShadow(primary, main.names, posix.dirname(mainPath), copy);
    } catch (err) {
      return { result: 'io', error: err };
    }
    let dump: string;
    try {
      dump = await control.dump(`${primary.seen}/${primary.name}/p/${COPY_NAME}`);
    } catch (err) {
      return { result: 'invalid', error: realPaths(err, stages, mainPath) };
    }
    const read = new Set(dumpedFiles(dump));
    for (const s of stages) {
      const missed = s.candidates.find((c) => !read.has(`${s.seen}/${s.name}/d/${basename(c.path)}`));
      if (missed) return { result: 'untestable', why: `a copy of ${mainPath} did not read ${missed.path}: it is included from another file than ${mainPath}, or not at all` };
    }
    return { result: 'valid' };
  } finally {
    // Synchronously, as it was made (makeStage).
    for (const s of stages) {
      try {
        rmSync(join(s.dir, s.name), { recursive: true, force: true });
      } catch {
        // Left behind: a name no test uses again, skipped by isTempName.
      }
    }
  }
}

/** nginx's path of its main config: config_path, relative ones against the prefix. */
function mainConfigPath(nginx: Pick<NginxConfig, 'config_path' | 'prefix'>): string | null {
  if (posix.isAbsolute(nginx.config_path)) return nginx.config_path;
  return nginx.prefix ? posix.join(nginx.prefix, nginx.config_path) : null;
}

function groupByDir(candidates: Candidate[]): Map<string, Candidate[]> {
  const out = new Map<string, Candidate[]>();
  for (const c of candidates) out.set(dirname(c.path), [...(out.get(dirname(c.path)) ?? []), c]);
  return out;
}

/**
 * `<dir>/.orchestry-test-<random>/d/`: the output directory's entries, the new texts in place.
 * Synchronously, as makeShadow and the removal: a few links and files in a local directory take
 * about a millisecond, where under load each await waits for a turn of the busy event loop
 * (bench:scale at 10,000 backends: ~70 ms each, 0.4-0.5 s for this step alone).
 */
function makeStage(dir: string, candidates: Candidate[]): Stage {
  const name = randomName('test');
  const root = join(dir, name);
  // mkdir fails on anything already there: nothing planted is ever used.
  mkdirSync(root, { mode: 0o755 });
  mkdirSync(join(root, 'd'), { mode: 0o755 });
  mkdirSync(join(root, 'p'), { mode: 0o755 });
  const own = new Set(candidates.map((c) => basename(c.path)));
  for (const entry of readdirSync(dir)) {
    if (own.has(entry) || isTempName(entry)) continue;
    symlinkSync(`../../${entry}`, join(root, 'd', entry));
  }
  // Read once by nginx -T and removed: not fsynced.
  for (const c of candidates) createScratchFileSync(join(root, 'd', basename(c.path)), c.text);
  return { dir, name, candidates };
}

/**
 * The main config with each include of an output directory pointed at its mirror. An include's
 * directory is an output directory when that output's test directory exists in it, as nginx sees it.
 */
async function redirectIncludes(text: string, mainPath: string, stages: Stage[], control: NginxControl): Promise<string> {
  const confDir = posix.dirname(mainPath);
  const split = (value: string) => {
    const full = posix.isAbsolute(value) ? value : `${confDir}/${value}`;
    const i = full.lastIndexOf('/');
    return { dir: full.slice(0, i) || '/', last: full.slice(i + 1) };
  };
  const owner = new Map<string, Stage | null>();
  for (const inc of findIncludes(text)) {
    const { dir } = split(inc.value);
    if (owner.has(dir)) continue;
    owner.set(dir, null);
    // A glob in a directory name cannot be followed here; nginx -T will show it was not.
    if (/[*?[]/.test(dir)) continue;
    for (const s of stages) {
      if (await control.files!.exists(`${dir}/${s.name}`)) {
        owner.set(dir, s);
        s.seen ??= dir;
        break;
      }
    }
  }
  return rewriteIncludes(text, (inc) => {
    const { dir, last } = split(inc.value);
    const s = owner.get(dir);
    return s ? `${dir}/${s.name}/d/${last}` : undefined;
  });
}

/** `p/`: a link to each entry of the main config's directory, and the copy of the main config. */
function makeShadow(stage: Stage, names: string[], confDir: string, copy: string): void {
  const p = join(stage.dir, stage.name, 'p');
  for (const name of names) {
    if (name === COPY_NAME || isTempName(name)) continue;
    symlinkSync(`${confDir === '/' ? '' : confDir}/${name}`, join(p, name));
  }
  createScratchFileSync(join(p, COPY_NAME), copy);
}

/** nginx's error, with the test directory's paths put back as the real ones. */
function realPaths(err: unknown, stages: Stage[], mainPath: string): unknown {
  if (!(err instanceof Error)) return err;
  let message = err.message;
  const primary = stages[0]!;
  const swap = (from: string, to: string) => (message = message.split(from).join(to));
  swap(`${primary.seen}/${primary.name}/p/${COPY_NAME}`, mainPath);
  swap(`${primary.seen}/${primary.name}/p/`, `${posix.dirname(mainPath)}/`);
  // As nginx names them (inside its container, the directory it mounts), like `nginx -t` on the real config.
  for (const s of stages) swap(`${s.seen}/${s.name}/d/`, `${s.seen}/`);
  const code = err instanceof SidecarError ? err.code : 'NGINX_FAILED';
  return new SidecarError(code, message, { cause: err });
}
