/**
 * Writing the generated files without trusting anything else in their directory. The output
 * directory (e.g. /etc/nginx/conf.d, or a volume shared with nginx's container) may be writable
 * by others, so:
 * - a new text goes to a temporary file opened exclusively (O_CREAT|O_EXCL), without following
 *   links (O_NOFOLLOW), under an unpredictable name (16 random hex digits), beside the output,
 *   with the mode of the file it replaces (0644 for a new one); it is fsynced and renamed over
 *   the output. A link planted at any name the sidecar uses is never written through: the
 *   exclusive open fails and another name is drawn, and rename replaces a link instead of
 *   following it;
 * - an output path that is itself a symbolic link is refused (OUTPUT_IS_SYMLINK) rather than
 *   replaced: replacing it would silently cut the link the operator made, following it would
 *   write wherever the link points. Point the setting at the real file instead;
 * - files the sidecar reads back (the output, its last-good copy) are opened with O_NOFOLLOW.
 *
 * Names never end in `.conf` and start with a dot, so `include conf.d/*.conf` never reads them.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsyncSync, lstatSync, openSync, readlinkSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SidecarError, describeError } from '../errors.js';

/** Prefix of every temporary name in an output directory (files and test directories). */
const TEMP_PREFIX = '.orchestry-';
/** The kinds of temporary names: files being written, test directories (test-copy.ts). */
type TempKind = 'tmp' | 'test';
/**
 * A temporary name as randomName draws them, and nothing else: an output called
 * `orchestry-upstreams.conf` has its last-good copy at `.orchestry-upstreams.conf.last-good`.
 */
const TEMP_NAME = /^\.orchestry-(tmp|test)-[0-9a-f]{16}$/;

/** Whether `name` is one of the sidecar's temporary names. */
export function isTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;

/** A fresh unpredictable name for `what` (e.g. `tmp`, `test`) beside `base`. */
export function randomName(what: TempKind): string {
  return `${TEMP_PREFIX}${what}-${randomBytes(8).toString('hex')}`;
}

/** Where the last text that passed `nginx -t` is kept beside `output` (never a `.conf` name). */
export function lastGoodPath(output: string): string {
  return join(dirname(output), `.${basename(output)}.last-good`);
}

/*
 * The writes below are synchronous: they sit between a decision and nginx reloading, on a main
 * thread that is busy probing. At 10,000 backends each awaited step of a write waited ~30-100 ms
 * for its turn of the event loop, and the nine of them cost 240-830 ms per apply (bench:scale);
 * done in one go they take a few ms, the fsync included.
 */

/** Throws OUTPUT_IS_SYMLINK when `path` is a symbolic link; `field` names the setting. */
export function refuseSymlinkSync(path: string, field: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSymbolicLink()) return;
  let target = '?';
  try {
    target = readlinkSync(path);
  } catch {
    // The link is refused either way; its target only helps the message.
  }
  throw new SidecarError(
    'OUTPUT_IS_SYMLINK',
    `${field} ${path} is a symbolic link (to ${target}); the sidecar replaces that file by rename and never writes ` +
      `through or over a link: set ${field} to the real file`,
  );
}

/**
 * Creates a new file in `dir` with `text` (exclusive, no link followed, `mode`, fsynced) and
 * returns its path. `name` defaults to a fresh random name; a given name must not exist.
 */
export function createFileSync(dir: string, text: string, name?: string, mode = 0o644): string {
  for (let attempt = 0; ; attempt++) {
    const path = join(dir, name ?? randomName('tmp'));
    let fd;
    try {
      fd = openSync(path, WRITE_FLAGS, mode);
    } catch (err) {
      // Someone holds this name (a planted link or file): draw another, a few times.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && name === undefined && attempt < 5) continue;
      throw err;
    }
    try {
      // The umask may have taken bits away; nginx (possibly another user) must read it.
      fchmodSync(fd, mode);
      writeFileSync(fd, text, 'utf8');
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      unlinkQuietly(path);
      throw err;
    }
    closeSync(fd);
    return path;
  }
}

/**
 * Writes a scratch file `path` that must not exist (exclusive, no link followed, mode 0644, not
 * fsynced), synchronously: for the test directory's short-lived copies (test-copy.ts).
 */
export function createScratchFileSync(path: string, text: string): void {
  const fd = openSync(path, WRITE_FLAGS, 0o644);
  try {
    // The umask may have taken bits away; nginx (possibly another user) must read it.
    fchmodSync(fd, 0o644);
    writeFileSync(fd, text, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `path` with a file holding `text`, atomically (temp file + rename), keeping the
 * permission bits of the file it replaces (an operator's 0640 stays 0640).
 */
export function replaceFileSync(path: string, text: string): void {
  let mode = 0o644;
  try {
    const old = lstatSync(path);
    if (old.isFile()) mode = old.mode & 0o7777;
  } catch {
    // No file yet (or unreadable): a new one gets 0644.
  }
  const temp = createFileSync(dirname(path), text, undefined, mode);
  try {
    renameSync(temp, path);
  } catch (err) {
    unlinkQuietly(temp);
    throw err;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Best effort: the name is random and removeLeftovers clears it at the next start.
  }
}

/** The text of `path`; null when it does not exist. A link is not followed (ELOOP is thrown). */
export async function readRegular(path: string): Promise<string | null> {
  let handle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** The last-good copy of `output`, or null when there is none (or it is not a regular file). */
export async function readLastGood(output: string): Promise<string | null> {
  return readRegular(lastGoodPath(output)).catch(() => null);
}

/**
 * Removes what a sidecar killed mid-write left in `dir`: its temporary files and test
 * directories (`.orchestry-tmp-<16 hex>`, `.orchestry-test-<16 hex>`). A link is removed, never followed.
 */
export async function removeLeftovers(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    names.filter(isTempName).map((n) => rm(join(dir, n), { recursive: true, force: true }).catch(() => undefined)),
  );
}

/** "cannot write X: reason" with the setting's name, for outcomes. */
export function writeError(field: string, path: string, err: unknown): SidecarError {
  if (err instanceof SidecarError) return err;
  return new SidecarError('OUTPUT_WRITE_FAILED', `cannot write ${field} ${path}: ${describeError(err)}`, { cause: err });
}
