/**
 * Bringing nginx in line with a DesiredSet. The pipeline decides *what* (DesiredSet); an
 * UpstreamApplier decides *how nginx is told*. This one renders files and reloads nginx (on
 * this host or in a container, through an NginxControl); the DNS applier (dns-applier.ts) wraps
 * it for structural changes.
 *
 * Files: apps with `upstream.context: http` go to nginx.output_path (included in `http {}`),
 * apps with `stream` to nginx.stream_output_path (included in `stream {}`, which has no
 * `keepalive`); both are tested together and nginx is reloaded once.
 *
 * The live files only ever hold text that passed `nginx -t`: the new texts are tested in a copy
 * of nginx's main config that reads them where it would read the live files (test-copy.ts says
 * how, and why that way), then each is written to a fresh temporary file and renamed into place
 * (output-file.ts), then nginx is reloaded. A crash at any point leaves either the old or the new
 * tested text. Each text that passed is also kept as `.<name>.last-good` beside its output: a
 * sidecar that starts next to a config that fails `nginx -t` puts those back (startup.ts).
 *
 * Where a copy cannot stand for the real config (the output is included from another file than
 * the main config, or nginx's files cannot be seen), the applier falls back to testing in place
 * (swap, `nginx -t`, swap back on failure) and logs why once: the file then holds untested text
 * for the duration of one `nginx -t`, as before this check existed.
 */
import { performance } from 'node:perf_hooks';
import type { NginxConfig } from '../config/types.js';
import { SidecarError, describeError } from '../errors.js';
import type { DesiredSet } from '../upstream/types.js';
import { createLocalNginxControl, type NginxControl } from './control.js';
import { keepLastGood, startup, swapIn, testInPlace, type Output } from './startup.js';
import type { Renderer } from './render.js';
import { testCopy } from './test-copy.js';
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
  /** The rendered text of nginx.output_path, when rendering succeeded. */
  text?: string;
  /** The rendered text of nginx.stream_output_path, when it is set and rendering succeeded. */
  streamText?: string;
  /** What went otherwise than it should, for the log (a layout tested in place, a file repaired). */
  warnings?: string[];
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
  /** output_path's text last validated and reloaded by this applier (or carried over from `previous`). */
  readonly lastGood: string | null;
  /** The same for stream_output_path. */
  readonly lastGoodStream?: string | null;
  /** Ejections, readmissions and weights reach nginx without a reload (DNS answers). */
  readonly liveUpdates: boolean;
  /**
   * With liveUpdates: whether this app's routing reaches nginx without a reload (DNS mode renders
   * an app it cannot serve with its servers listed, reloaded like reload mode). Absent: all do.
   */
  liveFor?(app: string): boolean;
}

export interface RenderReloadApplierOptions {
  nginx: NginxConfig;
  /** Tests and reloads nginx; default: the local nginx described by `nginx`. Whatever the
   *  control, the files are written at nginx.output_path (and stream_output_path) on this side. */
  control?: NginxControl;
  /** A loaded renderer. */
  renderer: Renderer;
  /** An applier this one replaces (e.g. after a template change): its last good texts are kept,
   *  so an identical rendering is still 'unchanged'. Given, the start-up checks are skipped. */
  previous?: Pick<UpstreamApplier, 'lastGood' | 'lastGoodStream'>;
  /** The template context of a set; default toViewModel (DNS mode passes its own rendering). */
  viewModel?: (set: DesiredSet) => UpstreamsContext;
  /**
   * At start, nginx counts as running the rendering only if it loaded it at or after this
   * (epoch ms), where its load time can be told. DNS mode passes when its DNS server began
   * answering: an nginx that loaded before then found no server to resolve its upstreams from.
   */
  loadedSince?: number;
  /**
   * DNS mode: when nginx last got an answer from a DNS server of this sidecar, a previous
   * process's included (epoch ms, or null). An nginx loaded before `loadedSince` but answered
   * after it loaded holds resolved servers, and counts as running the rendering.
   */
  answeredAt?: () => number | null;
}

/** Everything one applier keeps between applies. */
export interface ApplierState {
  nginx: NginxConfig;
  renderer: Renderer;
  control: NginxControl;
  outputs: Output[];
  viewModel: (set: DesiredSet) => UpstreamsContext;
  /** An apply got past rendering before: only the first checks what it found on disk. */
  tried: boolean;
  /** Why the layout was last found untestable before a swap (logged when it changes). */
  inPlaceWhy: string | null;
  /** RenderReloadApplierOptions.loadedSince, or 0. */
  loadedSince: number;
  /** RenderReloadApplierOptions.answeredAt. */
  answeredAt: (() => number | null) | undefined;
}

/** render -> test a copy -> swap -> reload; see the module comment. */
export function createRenderReloadApplier(opts: RenderReloadApplierOptions): UpstreamApplier {
  const { nginx } = opts;
  const lastGood = [opts.previous?.lastGood ?? null, opts.previous?.lastGoodStream ?? null];
  const outputs: Output[] = outputFiles(nginx).map((o, i) => ({ ...o, lastGood: lastGood[i]!, onDisk: undefined }));
  const s: ApplierState = {
    nginx,
    renderer: opts.renderer,
    control: opts.control ?? createLocalNginxControl(nginx),
    outputs,
    viewModel: opts.viewModel ?? ((set) => toViewModel(set)),
    tried: opts.previous !== undefined,
    inPlaceWhy: null,
    loadedSince: opts.loadedSince ?? 0,
    answeredAt: opts.answeredAt,
  };
  let queue: Promise<unknown> = Promise.resolve();
  return {
    apply(set) {
      const run = queue.then(() => applyOnce(s, set));
      queue = run.catch(() => undefined);
      return run;
    },
    get lastGood() {
      return outputs[0]!.lastGood;
    },
    get lastGoodStream() {
      return outputs[1]?.lastGood ?? null;
    },
    liveUpdates: false,
  };
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

/** An outcome before its timings. */
type OutcomeBody = Omit<ApplyOutcome, 'durationMs' | 'timings'>;

function failure(stage: ApplyStage, err: unknown, extra: Partial<OutcomeBody> = {}): OutcomeBody {
  return {
    result: 'failed',
    stage,
    error: describeError(err),
    ...(err instanceof SidecarError ? { code: err.code } : {}),
    reloaded: false,
    ...extra,
  };
}

/** The files the applier writes: output_path (http apps), and stream_output_path when set. */
export function outputFiles(nginx: Pick<NginxConfig, 'output_path' | 'stream_output_path'>): Array<Pick<Output, 'field' | 'path' | 'context'>> {
  return [
    { field: 'nginx.output_path', path: nginx.output_path, context: 'http' },
    ...(nginx.stream_output_path ? [{ field: 'nginx.stream_output_path' as const, path: nginx.stream_output_path, context: 'stream' as const }] : []),
  ];
}

/**
 * The texts for each output: the apps of its context, rendered with the output's context.
 * Throws SidecarError (a template or value the render stage refuses). Also what `render` prints.
 */
export function renderOutputs(
  outputs: ReadonlyArray<Pick<Output, 'context'>>,
  renderer: Pick<Renderer, 'render'>,
  viewModel: (set: DesiredSet) => UpstreamsContext,
  set: DesiredSet,
): string[] {
  const stream = set.upstreams.filter((u) => u.context === 'stream').map((u) => u.name);
  if (stream.length > 0 && !outputs.some((o) => o.context === 'stream')) {
    throw new SidecarError(
      'RENDER_INVALID_VALUE',
      `${stream.join(', ')}: upstream.context is stream, but nginx.stream_output_path is not set (the file nginx's stream {} includes)`,
    );
  }
  return outputs.map((o) => {
    const upstreams = set.upstreams.filter((u) => (u.context ?? 'http') === o.context);
    return renderer.render({ ...viewModel({ ...set, upstreams }), context: o.context });
  });
}

async function applyOnce(s: ApplierState, set: DesiredSet): Promise<ApplyOutcome> {
  const watch = stopwatch();
  let texts: string[];
  try {
    texts = renderOutputs(s.outputs, s.renderer, s.viewModel, set);
  } catch (err) {
    return watch.done(failure('render', err));
  }
  watch.lap('render');
  const rendered: Partial<OutcomeBody> = { text: texts[0]!, ...(texts.length > 1 ? { streamText: texts[1]! } : {}) };
  if (s.outputs.every((o, i) => texts[i] === o.lastGood)) return watch.done({ result: 'unchanged', reloaded: false, ...rendered });
  const warnings: string[] = [];
  const withWarnings = (o: OutcomeBody): OutcomeBody => (warnings.length > 0 ? { ...o, warnings } : o);
  const first = !s.tried;
  s.tried = true;
  if (first && (await startup(s, texts, warnings))) {
    // A (re)started sidecar next to an nginx that runs exactly this: a reload would only reset
    // client connections.
    return watch.done(withWarnings({ result: 'unchanged', reloaded: false, ...rendered }));
  }
  const candidates = s.outputs.map((o, i) => ({ path: o.path, text: texts[i]! }));
  if (s.nginx.validate) {
    const tested = await testCopy({ nginx: s.nginx, control: s.control, candidates });
    if (tested.result === 'io') return watch.done(withWarnings(failure('write', tested.error, rendered)));
    if (tested.result === 'invalid') {
      watch.lap('validate');
      return watch.done(withWarnings(failure('validate', tested.error, rendered)));
    }
    if (tested.result === 'untestable') {
      if (tested.why !== s.inPlaceWhy) warnings.push(`nginx -t cannot run before the swap (${tested.why}): testing in place, swap and swap back`);
      s.inPlaceWhy = tested.why;
      const inPlace = await testInPlace(s, candidates, watch.lap);
      if (inPlace) return watch.done(withWarnings(failure(inPlace.stage, inPlace.error, rendered)));
    } else {
      s.inPlaceWhy = null;
      watch.lap('validate');
      const written = swapIn(s, candidates);
      if (written) return watch.done(withWarnings(failure('write', written, rendered)));
      watch.lap('write');
    }
  } else {
    const written = swapIn(s, candidates);
    if (written) return watch.done(failure('write', written, rendered));
    watch.lap('write');
  }
  // The copy kept for the next start is written while nginx reloads, not before: it is not what
  // nginx reads. reload() has signalled a local nginx by the time it returns (keepLastGood never rejects).
  const reloading = s.control.reload();
  const keeping = s.nginx.validate ? keepLastGood(s, candidates, warnings) : Promise.resolve();
  try {
    await reloading;
  } catch (err) {
    // The files stay: they passed `nginx -t` (unless validation is off), so they are what nginx
    // should load at its next start or reload. lastGood is not updated, so the same set is retried.
    watch.lap('reload');
    await keeping;
    return watch.done(withWarnings(failure('reload', err, rendered)));
  }
  watch.lap('reload');
  await keeping;
  s.outputs.forEach((o, i) => (o.lastGood = texts[i]!));
  return watch.done(withWarnings({ result: 'applied', reloaded: true, ...rendered }));
}
