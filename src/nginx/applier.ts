/**
 * Bringing nginx in line with a DesiredSet. The pipeline decides *what* (DesiredSet); an
 * UpstreamApplier decides *how nginx is told*. This one renders a file and reloads nginx (on
 * this host or in a container, through an NginxControl); a DNS SRV applier (no reloads,
 * nginx >= 1.27.3 `resolve`) can implement the same interface.
 */
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { NginxConfig } from '../config/types.js';
import { SidecarError, describeError } from '../errors.js';
import type { DesiredSet } from '../upstream/types.js';
import { createLocalNginxControl, type NginxControl } from './control.js';
import type { Renderer } from './render.js';
import { toViewModel, type UpstreamsContext } from './view-model.js';

export type ApplyStage = 'render' | 'write' | 'validate' | 'reload';

/** What one apply() did. Data, never an exception. */
export interface ApplyOutcome {
  result: 'unchanged' | 'applied' | 'failed';
  /** Where a failed apply stopped. */
  stage?: ApplyStage;
  error?: string;
  /** SidecarError code of the failure, e.g. NGINX_NOT_RUNNING. */
  code?: string;
  /** Wall time of the whole apply, milliseconds. */
  durationMs: number;
  /** A reload signal was delivered. */
  reloaded: boolean;
  /** The rendered text, when rendering succeeded. */
  text?: string;
  /** Failed: in how many ms the nginx stage tries again by itself (unset if a retry was already due). */
  retryInMs?: number;
  /** Per-stage wall times of the stages that ran, milliseconds (for benchmarks). */
  timings?: Partial<Record<ApplyStage, number>>;
  /** The decision this outcome is about; set by the nginx stage on the bus (for what changed). */
  set?: DesiredSet;
}

/** Tells nginx about a DesiredSet. */
export interface UpstreamApplier {
  /** Never rejects; concurrent calls run one after another. */
  apply(set: DesiredSet): Promise<ApplyOutcome>;
  /** The text last validated and reloaded by this applier (or carried over from `previous`). */
  readonly lastGood: string | null;
  /** Ejections, readmissions and weights reach nginx without a reload (DNS answers). */
  readonly liveUpdates: boolean;
}

export interface RenderReloadApplierOptions {
  nginx: NginxConfig;
  /** Tests and reloads nginx; default: the local nginx described by `nginx`. Whatever the
   *  control, the file is written at nginx.output_path on this side. */
  control?: NginxControl;
  /** A loaded renderer. */
  renderer: Renderer;
  /** An applier this one replaces (e.g. after a template change): its lastGood is kept, so an
   *  identical rendering is still 'unchanged'. */
  previous?: Pick<UpstreamApplier, 'lastGood'>;
  /** The template context of a set; default toViewModel (DNS mode passes its own rendering). */
  viewModel?: (set: DesiredSet) => UpstreamsContext;
}

/**
 * render -> compare with last good -> write temp + fsync -> rename over output_path ->
 * `nginx -t` -> reload; on a failed test the previous file content is put back.
 *
 * Why swap-then-test instead of testing a copy of the main config that includes the temp file:
 * `nginx -t` on the real main config checks exactly what nginx will load, whatever the include
 * style (globs, nested includes, relative paths), and the same steps work when nginx runs in
 * another container (run `nginx -t` there). The cost is a short window in which the untested
 * file is on disk; nginx only reads it on a reload or start, and we restore it before reloading.
 */
export function createRenderReloadApplier(opts: RenderReloadApplierOptions): UpstreamApplier {
  const output = opts.nginx.output_path;
  const s: ApplierState = {
    nginx: opts.nginx,
    renderer: opts.renderer,
    control: opts.control ?? createLocalNginxControl(opts.nginx),
    output,
    // Must not end in .conf: an `include conf.d/*.conf` would otherwise pick up a half-written file.
    tempPath: join(dirname(output), `.${basename(output)}.tmp-${process.pid}`),
    lastGood: opts.previous?.lastGood ?? null,
    onDisk: undefined,
    viewModel: opts.viewModel ?? ((set) => toViewModel(set)),
    tried: opts.previous !== undefined,
  };
  let queue: Promise<unknown> = Promise.resolve();
  return {
    apply(set) {
      const run = queue.then(() => applyOnce(s, set));
      queue = run.catch(() => undefined);
      return run;
    },
    get lastGood() {
      return s.lastGood;
    },
    liveUpdates: false,
  };
}

interface ApplierState {
  nginx: NginxConfig;
  renderer: Renderer;
  control: NginxControl;
  output: string;
  tempPath: string;
  lastGood: string | null;
  /** What output_path holds now: undefined until first read, null when there is no file. */
  onDisk: string | null | undefined;
  viewModel: (set: DesiredSet) => UpstreamsContext;
  /** An apply got past rendering before: only the first may find nginx already in line. */
  tried: boolean;
}

/** Per-stage timing of one apply, and its outcome as data. */
function stopwatch() {
  const started = performance.now();
  const timings: Partial<Record<ApplyStage, number>> = {};
  let stageStart = started;
  return {
    lap(stage: ApplyStage) {
      const now = performance.now();
      timings[stage] = now - stageStart;
      stageStart = now;
    },
    done(o: Omit<ApplyOutcome, 'durationMs' | 'timings'>): ApplyOutcome {
      return { ...o, durationMs: performance.now() - started, timings };
    },
  };
}

function failure(stage: ApplyStage, err: unknown, text?: string): Omit<ApplyOutcome, 'durationMs' | 'timings'> {
  return {
    result: 'failed',
    stage,
    error: describeError(err),
    ...(err instanceof SidecarError ? { code: err.code } : {}),
    reloaded: false,
    ...(text === undefined ? {} : { text }),
  };
}

async function applyOnce(s: ApplierState, set: DesiredSet): Promise<ApplyOutcome> {
  const watch = stopwatch();
  let text: string;
  try {
    text = s.renderer.render(s.viewModel(set));
  } catch (err) {
    return watch.done(failure('render', err));
  }
  watch.lap('render');
  if (text === s.lastGood) return watch.done({ result: 'unchanged', reloaded: false, text });
  const first = !s.tried;
  s.tried = true;
  if (s.lastGood === null && first && (await alreadyLoaded(s, text))) {
    // A (re)started sidecar next to an nginx that runs exactly this: a reload would only reset
    // client connections.
    s.lastGood = text;
    return watch.done({ result: 'unchanged', reloaded: false, text });
  }

  let previous: string | null;
  try {
    if (s.onDisk === undefined) s.onDisk = await readFile(s.output, 'utf8').catch(nullIfMissing);
    previous = s.onDisk;
    await writeAtomically(s, text);
    s.onDisk = text;
  } catch (err) {
    await unlink(s.tempPath).catch(() => undefined);
    return watch.done(failure('write', err, text));
  }
  watch.lap('write');

  if (s.nginx.validate) {
    const invalid = await validateOrRestore(s, previous);
    watch.lap('validate');
    if (invalid) return watch.done(failure('validate', invalid, text));
  }

  try {
    await s.control.reload();
  } catch (err) {
    // The file stays: it passed `nginx -t` (unless validation is off), so it is what nginx
    // should load at its next start or reload. lastGood is not updated, so the same set is retried on the next apply.
    watch.lap('reload');
    return watch.done(failure('reload', err, text));
  }
  watch.lap('reload');
  s.lastGood = text;
  return watch.done({ result: 'applied', reloaded: true, text });
}

/** `nginx -t`; on failure the previous file is put back. Returns the error, or null when valid. */
async function validateOrRestore(s: ApplierState, previous: string | null): Promise<unknown> {
  try {
    await s.control.validate();
    return null;
  } catch (err) {
    try {
      await restore(s, previous);
    } catch (restoreErr) {
      s.onDisk = undefined; // unknown now; read it again next time
      return new SidecarError('RESTORE_FAILED', `${describeError(err)}; restoring ${s.output} also failed: ${describeError(restoreErr)}`);
    }
    return err;
  }
}

/**
 * Whether output_path already holds `text` and nginx loaded it after it was written (when the
 * control can tell; when it cannot, the file is trusted: the sidecar writes only what passed nginx -t, or the text it replaced).
 */
async function alreadyLoaded(s: ApplierState, text: string): Promise<boolean> {
  const onDisk = await readFile(s.output, 'utf8').catch(() => null);
  s.onDisk = onDisk;
  if (onDisk !== text) return false;
  const loadedAt = (await s.control.loadedAt?.()) ?? null;
  if (loadedAt === null) return true;
  const written = (await stat(s.output)).mtimeMs;
  return loadedAt >= written;
}

async function writeAtomically(s: ApplierState, text: string): Promise<void> {
  const handle = await open(s.tempPath, 'w', 0o644);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(s.tempPath, s.output);
}

async function restore(s: ApplierState, previous: string | null): Promise<void> {
  if (previous === null) await unlink(s.output).catch(ignoreMissing);
  else await writeAtomically(s, previous);
  s.onDisk = previous;
}

function nullIfMissing(err: unknown): null {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
  throw err;
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
