/**
 * The render-reload applier's file steps: what a (re)started sidecar finds on disk, putting back
 * the last good copy of a file that fails `nginx -t`, swapping tested texts in, and the
 * test-in-place fallback for layouts a copy cannot stand for (see applier.ts).
 */
import { lstat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SidecarError, describeError } from '../errors.js';
import type { ApplierState, ApplyStage } from './applier.js';
import { LOADED_AT_SLACK_MS } from './reload.js';
import { lastGoodPath, readLastGood, readRegular, refuseSymlinkSync, removeLeftovers, replaceFileSync, writeError } from './output-file.js';
import { testCopy, type Candidate } from './test-copy.js';

/** One generated file and what the applier knows of it. */
export interface Output {
  /** The setting that names it, for errors. */
  field: 'nginx.output_path' | 'nginx.stream_output_path';
  path: string;
  /** Which apps it holds: `http {}` or `stream {}` upstreams. */
  context: 'http' | 'stream';
  /** The text last tested and reloaded. */
  lastGood: string | null;
  /** What the file holds: undefined until read, null when there is none. */
  onDisk: string | null | undefined;
  /** The text of its last-good copy, once written or read. */
  kept?: string | null;
}

/**
 * First apply of a (re)started sidecar, before anything is written: removes what a killed one
 * left, puts back the last good copies when nginx's config fails `nginx -t` as it is, and says
 * whether nginx already runs exactly `texts` (then nothing needs doing).
 */
export async function startup(s: ApplierState, texts: string[], warnings: string[]): Promise<boolean> {
  await Promise.all([...new Set(s.outputs.map((o) => dirname(o.path)))].map(removeLeftovers));
  for (const o of s.outputs) o.onDisk = await readRegular(o.path).catch(() => undefined);
  if (s.nginx.validate && !(await s.control.validate().then(() => true, () => false))) {
    await repair(s, warnings);
    return false;
  }
  if (!s.outputs.every((o, i) => o.onDisk === texts[i])) return false;
  // With nginx -t passing as it is, the file was tested (or is what the sidecar replaced):
  // trust it if nginx loaded it after it was written, where the control can tell.
  const loadedAt = (await s.control.loadedAt?.()) ?? null;
  if (loadedAt !== null && loadedAt + LOADED_AT_SLACK_MS < s.loadedSince && !answeredAfter(s, loadedAt)) return false;
  for (const o of s.outputs) {
    if (loadedAt !== null && loadedAt + LOADED_AT_SLACK_MS < (await lstat(o.path)).mtimeMs) return false;
  }
  s.outputs.forEach((o, i) => (o.lastGood = texts[i]!));
  if (s.nginx.validate) await keepLastGood(s, s.outputs.map((o, i) => ({ path: o.path, text: texts[i]! })), warnings);
  return true;
}

/** nginx was answered by a DNS server of this sidecar after it loaded `loadedAt` (DNS mode). */
function answeredAfter(s: ApplierState, loadedAt: number): boolean {
  const at = s.answeredAt?.() ?? null;
  return at !== null && at > loadedAt + LOADED_AT_SLACK_MS;
}

/** nginx's config fails as it is: each output that differs from its last good copy gets the copy back, if that passes. */
async function repair(s: ApplierState, warnings: string[]): Promise<void> {
  const copies = await Promise.all(s.outputs.map((o) => readLastGood(o.path)));
  const broken = s.outputs.filter((o, i) => copies[i] !== null && copies[i] !== o.onDisk);
  if (broken.length === 0) return;
  const candidates = s.outputs.map((o, i) => ({ path: o.path, text: copies[i] ?? o.onDisk ?? '' }));
  const names = broken.map((o) => o.path).join(', ');
  const tested = await testCopy({ nginx: s.nginx, control: s.control, candidates });
  let failed: unknown = null;
  if (tested.result === 'valid') failed = swapIn(s, candidates);
  else if (tested.result === 'untestable') failed = (await testInPlace(s, candidates, () => undefined))?.error ?? null;
  else failed = tested.error;
  s.outputs.forEach((o, i) => (o.kept = copies[i]));
  warnings.push(
    failed === null
      ? `nginx -t failed at start; put back the last copy of ${names} that passed (${broken.map((o) => lastGoodPath(o.path)).join(', ')})`
      : `nginx -t fails at start and the last good copy of ${names} could not be put back: ${describeError(failed)}`,
  );
}

/** Writes each candidate whose text differs from the last good one (synchronously); the error, or null. */
export function swapIn(s: ApplierState, candidates: Candidate[]): unknown {
  for (const [i, o] of s.outputs.entries()) {
    const text = candidates[i]!.text;
    if (text === o.lastGood && o.onDisk === text) continue;
    try {
      refuseSymlinkSync(o.path, o.field);
      replaceFileSync(o.path, text);
      o.onDisk = text;
    } catch (err) {
      o.onDisk = undefined; // unknown now; read it again next time
      return writeError(o.field, o.path, err);
    }
  }
  return null;
}

/**
 * The fallback for layouts a copy cannot stand for: swap, `nginx -t` on the real config, and on
 * failure the previous files back. Returns where it failed, or null.
 */
export async function testInPlace(
  s: ApplierState,
  candidates: Candidate[],
  lap: (stage: ApplyStage) => void,
): Promise<{ stage: ApplyStage; error: unknown } | null> {
  const previous: Array<string | null> = [];
  try {
    for (const o of s.outputs) {
      refuseSymlinkSync(o.path, o.field);
      o.onDisk = await readRegular(o.path);
      previous.push(o.onDisk);
    }
  } catch (err) {
    return { stage: 'write', error: err };
  }
  const written = swapIn(s, candidates);
  if (written) return { stage: 'write', error: written };
  lap('write');
  try {
    await s.control.validate();
    lap('validate');
    return null;
  } catch (err) {
    lap('validate');
    for (const [i, o] of s.outputs.entries()) {
      try {
        if (previous[i] === null) await unlink(o.path).catch(ignoreMissing);
        else if (previous[i] !== candidates[i]!.text) replaceFileSync(o.path, previous[i]!);
        o.onDisk = previous[i]!;
      } catch (restoreErr) {
        o.onDisk = undefined;
        const message = `${describeError(err)}; restoring ${o.path} also failed: ${describeError(restoreErr)}`;
        return { stage: 'validate', error: new SidecarError('RESTORE_FAILED', message) };
      }
    }
    return { stage: 'validate', error: err };
  }
}

/** Keeps each tested text as its output's last-good copy (for the repair at start). */
export async function keepLastGood(s: ApplierState, candidates: Candidate[], warnings: string[]): Promise<void> {
  for (const [i, o] of s.outputs.entries()) {
    const text = candidates[i]!.text;
    if (o.kept === undefined) o.kept = await readLastGood(o.path);
    if (o.kept === text) continue;
    try {
      replaceFileSync(lastGoodPath(o.path), text);
      o.kept = text;
    } catch (err) {
      o.kept = undefined;
      warnings.push(`cannot keep the last good copy ${lastGoodPath(o.path)}: ${describeError(err)}`);
    }
  }
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
