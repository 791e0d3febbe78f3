/**
 * The nginx stage: brings nginx in line with each routing decision. It drops a decision equal to
 * the last one, coalesces bursts (min/max wait), applies through the UpstreamApplier (render ->
 * write -> `nginx -t` -> reload today), publishes every outcome on the bus, retries a failed
 * update by itself with backoff, and re-applies after a template or nginx setting changes.
 */
import type Dockerode from 'dockerode';
import type { Clock, TimerHandle } from '../clock.js';
import type { NginxConfig } from '../config/types.js';
import type { SidecarBus } from '../events/sidecar-events.js';
import type { DesiredSet } from '../upstream/types.js';
import type { ApplyOutcome, UpstreamApplier } from './applier.js';
import { createCoalescer, type Coalescer } from './coalescer.js';
import { createTemplateHolder } from './template.js';
import type { DnsServerStats } from './dns/server.js';
import { resolveUpdateMode, type UpdateMode, type UpdateVia } from './update-mode.js';

/** Retry of a failed nginx update: from 1 s, doubling, at most every 30 s. */
export const APPLY_RETRY_MIN_MS = 1000;
export const APPLY_RETRY_MAX_MS = 30_000;

/** The wait before the retry after `current`: doubling up to the ceiling. */
export function nextRetryDelay(current: number): number {
  return Math.min(current * 2, APPLY_RETRY_MAX_MS);
}

export interface NginxSyncOptions {
  clock: Clock;
  bus: SidecarBus;
  nginx: NginxConfig;
  /** For nginx in a container (nginx.mode docker). */
  docker: Dockerode | undefined;
}

export interface NginxSyncStatus {
  /** An update has succeeded (applied or found nginx already in line) at least once. */
  firstApplyDone: boolean;
  lastOutcome: ApplyOutcome | null;
  /** How changes reach nginx now, and why; null before start(). */
  updateVia: { mode: UpdateVia; why: string } | null;
}

export interface NginxSync {
  /** Loads the template and starts watching it. */
  start(): Promise<void>;
  /**
   * Takes a routing decision; nginx is told after the coalescing wait if it changed, at once when
   * `urgent` (a backend whose container is being stopped must leave nginx before it exits).
   */
  update(set: DesiredSet, urgent?: boolean): void;
  /** Applies what is pending now and waits until nginx has been told. */
  flush(): Promise<void>;
  /** New nginx settings: new coalescing waits, the template again, nginx told again. */
  reconfigure(nginx: NginxConfig): void;
  status(): NginxSyncStatus;
  /** The app's ejections, readmissions and weights reach nginx without a reload (DNS mode, an app its DNS server serves). */
  liveUpdates(app: string): boolean;
  /**
   * How long a hung backend stays routed after its first timed-out probe: nginx's read timeout
   * in DNS mode, where a changed upstream turns nginx's retries into 502s; 0 with reloads (the
   * old workers finish their requests, retries included, with the old servers).
   */
  timeoutHoldMs(app: string): number;
  /** The DNS server's counters in DNS mode; null otherwise. */
  dnsStats(): DnsServerStats | null;
  stop(): Promise<void>;
}

interface SyncState {
  opts: NginxSyncOptions;
  nginx: NginxConfig;
  template: ReturnType<typeof createTemplateHolder>;
  applier: UpstreamApplier | null;
  /** The mode for the current nginx settings; settled again when they change. */
  mode: Promise<UpdateMode> | null;
  /** The mode last settled, for reads that cannot wait. */
  modeNow: UpdateMode | null;
  coalescer: Coalescer<DesiredSet>;
  last: { key: string; set: DesiredSet } | null;
  status: NginxSyncStatus;
  retryTimer: TimerHandle | null;
  retryDelayMs: number;
  stopped: boolean;
  /** The next applier starts with nothing known good (nginx's files or nginx changed). */
  forget: boolean;
}

export function createNginxSync(opts: NginxSyncOptions): NginxSync {
  const s: SyncState = {
    opts,
    nginx: opts.nginx,
    template: createTemplateHolder(),
    applier: null,
    mode: null,
    modeNow: null,
    coalescer: null as unknown as Coalescer<DesiredSet>,
    last: null,
    status: { firstApplyDone: false, lastOutcome: null, updateVia: null },
    retryTimer: null,
    retryDelayMs: APPLY_RETRY_MIN_MS,
    stopped: false,
    forget: false,
  };
  s.coalescer = makeCoalescer(s);
  // An update that failed while the Engine was away (nginx in a container is tested and
  // reloaded through it) is due now: nothing else would retry an unchanged decision.
  opts.bus.on('docker', ({ connected }) => {
    if (connected && s.status.lastOutcome?.result === 'failed') pushLast(s);
  });
  return {
    async start() {
      await loadTemplate(s);
      watchTemplate(s);
    },
    update(set, urgent = false) {
      const key = keyOf(set);
      if (key === s.last?.key) return;
      s.last = { key, set };
      s.coalescer.push(set);
      if (urgent) void s.coalescer.flush();
    },
    flush: () => s.coalescer.flush(),
    reconfigure: (nginx) => reconfigure(s, nginx),
    status: () => s.status,
    liveUpdates: (app) => liveFor(s, app),
    timeoutHoldMs: (app) => (liveFor(s, app) ? s.nginx.proxy_read_timeout_seconds * 1000 : 0),
    dnsStats: () => s.modeNow?.dns()?.stats() ?? null,
    async stop() {
      s.stopped = true;
      if (s.retryTimer) opts.clock.clearTimeout(s.retryTimer);
      s.coalescer.stop();
      await s.template.close();
      await (await s.mode)?.close();
    },
  };
}

/**
 * A decision's identity for "did it change": each upstream's JSON, computed once per upstream
 * object. The router reuses the objects of apps it did not recompute, so a burst in one app costs
 * that app's text, not the whole set's.
 */
const upstreamKeys = new WeakMap<DesiredSet['upstreams'][number], string>();
function keyOf(set: DesiredSet): string {
  let key = '';
  for (const u of set.upstreams) {
    let k = upstreamKeys.get(u);
    if (k === undefined) {
      k = JSON.stringify(u);
      upstreamKeys.set(u, k);
    }
    key += `${k}\n`;
  }
  return key;
}

function makeCoalescer(s: SyncState): Coalescer<DesiredSet> {
  return createCoalescer<DesiredSet>({
    clock: s.opts.clock,
    minWaitMs: s.nginx.coalesce_min_wait_seconds * 1000,
    maxWaitMs: s.nginx.coalesce_max_wait_seconds * 1000,
    run: (set) => applyNow(s, set),
  });
}

function pushLast(s: SyncState): void {
  if (s.last && !s.stopped) s.coalescer.push(s.last.set);
}

async function applyNow(s: SyncState, set: DesiredSet): Promise<void> {
  const error = s.template.error();
  const outcome: ApplyOutcome =
    error !== null || !s.applier
      ? // The template did not compile: keep the last good file, stay not ready.
        { result: 'failed', stage: 'render', error: error ?? 'no template loaded', durationMs: 0, reloaded: false }
      : await s.applier.apply(set);
  s.status = { ...s.status, firstApplyDone: s.status.firstApplyDone || outcome.result !== 'failed', lastOutcome: outcome };
  if (outcome.result === 'failed') {
    const retryInMs = scheduleRetry(s);
    if (retryInMs !== undefined) outcome.retryInMs = retryInMs;
  } else {
    s.retryDelayMs = APPLY_RETRY_MIN_MS;
  }
  s.opts.bus.emit('apply', { ...outcome, set });
}

/**
 * A failed update (nginx down, its config broken, Docker away) is tried again by itself: nothing
 * else would retry until the decision changed. Returns the wait, or undefined if one is due.
 */
function scheduleRetry(s: SyncState): number | undefined {
  if (s.retryTimer || s.stopped) return undefined;
  const wait = s.retryDelayMs;
  s.retryTimer = s.opts.clock.setTimeout(() => {
    s.retryTimer = null;
    pushLast(s);
  }, wait);
  s.retryTimer.unref?.();
  s.retryDelayMs = nextRetryDelay(wait);
  return wait;
}

/** Loads the configured template; a new applier renders with it (keeping the last good text). */
async function loadTemplate(s: SyncState): Promise<void> {
  s.mode ??= resolveUpdateMode(s.nginx, s.opts.docker);
  const [mode] = await Promise.all([s.mode, s.template.load(s.nginx.template_path)]);
  s.modeNow = mode;
  s.status = { ...s.status, updateVia: { mode: mode.mode, why: mode.why } };
  const renderer = s.template.renderer();
  if (s.template.error() === null && renderer) {
    const previous = s.forget ? { lastGood: null, lastGoodStream: null } : s.applier;
    s.forget = false;
    s.applier = mode.applier(renderer, previous);
  }
}

function watchTemplate(s: SyncState): void {
  s.template.watch(s.nginx.template_path, () => {
    void loadTemplate(s).then(() => pushLast(s));
  });
}

/** nginx settings the sync keeps to itself (the coalescer, the template) or the router reads. */
const SYNC_ONLY_KEYS: ReadonlySet<string> = new Set(['coalesce_min_wait_seconds', 'coalesce_max_wait_seconds', 'template_path', 'ejected', 'leave_to_nginx']);
/** Settings that name other files or another nginx: written, tested and reloaded at once. */
const TARGET_KEYS = ['mode', 'container', 'container_label', 'binary', 'config_path', 'prefix', 'output_path', 'stream_output_path', 'pid_path', 'validate'] as const;

function reconfigure(s: SyncState, nginx: NginxConfig): void {
  if (JSON.stringify(nginx) === JSON.stringify(s.nginx)) return;
  const prev = s.nginx;
  s.nginx = nginx;
  s.coalescer.stop();
  s.coalescer = makeCoalescer(s);
  const changed = (Object.keys(nginx) as Array<keyof NginxConfig>).filter((k) => JSON.stringify(nginx[k]) !== JSON.stringify(prev[k]));
  // The applier and its nginx control are built from these settings: build them again, once the
  // old DNS server (if any) has let go of its address.
  if (changed.some((k) => !SYNC_ONLY_KEYS.has(k))) {
    const old = s.mode;
    s.mode = (old ?? Promise.resolve(null))
      .then((m) => m?.close())
      .catch(() => undefined)
      .then(() => resolveUpdateMode(nginx, s.opts.docker));
  }
  // Other files or another nginx: what nginx has is no longer known good. The new files are
  // written and tested, and nginx reloaded, now, not at the next routing change.
  if (changed.some((k) => (TARGET_KEYS as readonly string[]).includes(k))) s.forget = true;
  if (nginx.template_path !== prev.template_path) watchTemplate(s);
  void loadTemplate(s).then(() => pushLast(s));
}

function liveFor(s: SyncState, app: string): boolean {
  const applier = s.applier;
  return applier !== null && applier.liveUpdates && (applier.liveFor?.(app) ?? true);
}
