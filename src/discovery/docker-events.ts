/**
 * Docker's own failure signals, as data. The Docker source parses each event of the Engine's
 * stream (parseDockerEvent), resyncs, and hands the event with the container as inspected after
 * it to the pure detector below, which tells the failures apart the way the seed names them.
 * The detector is a reducer, `(state, event, now) -> { state, failures }`: a restart loop and
 * "was this stop asked for" need memory across events, and keeping it in the state keeps the
 * function pure and testable without Docker or timers.
 */
import type Dockerode from 'dockerode';
import { constants } from 'node:os';
import type { SidecarConfig } from '../config/types.js';
import type { ContainerRef } from '../model.js';

/** The container actions the Docker source reacts to; `sync` is an observation on a resync. */
export type ContainerAction =
  | 'start'
  | 'die'
  | 'kill'
  | 'stop'
  | 'destroy'
  | 'health_status'
  | 'oom'
  | 'pause'
  | 'unpause'
  | 'restart'
  | 'sync';

const ACTIONS: ReadonlySet<string> = new Set<ContainerAction>([
  'start', 'die', 'kill', 'stop', 'destroy', 'health_status', 'oom', 'pause', 'unpause', 'restart',
]);

/** One Docker container event (or resync observation), with the container as seen after it. */
export interface ContainerEvent {
  action: ContainerAction;
  containerId: string;
  /** Without the leading '/'. */
  name: string;
  /** The container's `orchestry.app` label, if it has one. */
  app: string | null;
  /** Epoch ms when Docker reported it (when observed, for `sync`). */
  at: number;
  /** die: the process's exit code. */
  exitCode: number | null;
  /** kill: the signal number sent. */
  signal: number | null;
  /** health_status: the new HEALTHCHECK status (starting, healthy, unhealthy). */
  health: string | null;
  /** The container as inspected after the event; absent once it is gone. */
  container?: ContainerRef;
}

/** Failure types that Docker itself can tell (the seed's names). */
export type ContainerFailureType =
  | 'container_stopped'
  | 'container_oom_killed'
  | 'container_restart_loop'
  | 'application_startup_failed';

export interface ContainerFailure {
  failureType: ContainerFailureType;
  containerId: string;
  app: string | null;
  details: Record<string, unknown>;
}

export interface DetectorConfig {
  /** Restarts counted within this window... */
  restartWindowMs: number;
  /** ...reaching this many is a restart loop. */
  restartLoopThreshold: number;
  /** A HEALTHCHECK not healthy this long after the start is a failed startup. */
  startupGraceMs: number;
}

/** Restarts within recovery.restart_window_seconds reaching this many make a restart loop. */
export const RESTART_LOOP_THRESHOLD = 3;

/** The detector's settings from the config. */
export function detectorConfig(config: SidecarConfig): DetectorConfig {
  return {
    restartWindowMs: config.recovery.restart_window_seconds * 1000,
    restartLoopThreshold: RESTART_LOOP_THRESHOLD,
    startupGraceMs: config.docker.startup_grace_seconds * 1000,
  };
}

/** What the detector remembers of one container. */
export interface ContainerTrack {
  /** Docker's RestartCount when last seen. */
  restartCount: number;
  /** When each restart counted in the window was seen. */
  restarts: number[];
  /**
   * Someone asked the Engine to stop the container since its last start (docker stop, kill or
   * rm -f: a kill event with a terminating signal, or a stop event): the next die is no failure.
   */
  stopRequested: boolean;
  /** When that stop was asked for (the event's time); null without one. */
  stopRequestedAt: number | null;
  /** Docker reported an OOM kill since the last start. */
  oomSeen: boolean;
  /** startedAt of the run the flags below are about. */
  startedAt: number;
  healthySeen: boolean;
  startupReported: boolean;
}

export type DetectorState = ReadonlyMap<string, ContainerTrack>;

/**
 * Signals after which the container will be gone: `docker stop` sends SIGTERM (or its stop
 * signal, commonly SIGINT or SIGQUIT) then SIGKILL, `docker kill` and `docker rm -f` SIGKILL.
 * The Engine reports a `kill` event only for a signal someone sent through its API (a crash or
 * the kernel's OOM killer sends none), so a die after one of these was asked for: drain, and
 * let the container go without calling it a failure.
 */
const TERMINATING_SIGNALS: ReadonlySet<number> = new Set([
  constants.signals.SIGTERM,
  constants.signals.SIGINT,
  constants.signals.SIGQUIT,
  constants.signals.SIGKILL,
]);

/** Whether a `kill` with this signal means the container is about to stop (HUP etc. do not). */
export function isTerminatingSignal(signal: number | null): boolean {
  return signal !== null && TERMINATING_SIGNALS.has(signal);
}

/** Whether someone asked the Engine to stop (or pause) the container: a `stop`, a `pause`, a terminating `kill`. */
export function isStopRequest(event: Pick<ContainerEvent, 'action' | 'signal'>): boolean {
  return event.action === 'stop' || event.action === 'pause' || (event.action === 'kill' && isTerminatingSignal(event.signal));
}

/**
 * Why a container's failing probes are Docker's business rather than probe-based recovery's,
 * asked of the Engine now; null when none. A container that is gone or no longer running: its
 * end is a die event, which the detector below tells apart (a crash is `container_stopped`, a stop
 * someone asked for is none). A running one someone asked to stop since `sinceMs` (its last
 * start): a `kill`/`stop`/`pause` in the Engine's event log, read up to now (the endpoint with
 * `until` answers from the log and ends; the log holds the Engine's last 256 events). The
 * source's own stream can bring those events seconds late on a busy machine (CI: a `docker kill`ed
 * container's failed probes were planned for recovery before its events arrived).
 */
export async function containerStopReason(
  docker: Pick<Dockerode, 'getContainer' | 'getEvents'>,
  id: string,
  sinceMs: number,
  nowMs: number,
): Promise<string | null> {
  let state: { Running?: boolean; Status?: string };
  try {
    state = (await docker.getContainer(id).inspect()).State;
  } catch (err) {
    if ((err as { statusCode?: number } | null)?.statusCode === 404) return 'the container is gone';
    throw err;
  }
  if (!state.Running) return `the container is ${state.Status ?? 'not running'}`;
  // Seconds with a fraction: the Engine reads `1764800000.5` as half a second past.
  const stream = (await docker.getEvents({
    since: Math.floor(Math.min(sinceMs, nowMs)) / 1000,
    until: Math.floor(nowMs) / 1000,
    filters: { type: ['container'], container: [id], event: ['kill', 'stop', 'pause'] },
  })) as unknown as AsyncIterable<Buffer>;
  let text = '';
  for await (const chunk of stream) text += chunk.toString('utf8');
  for (const line of text.split('\n')) {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      continue;
    }
    const event = parseDockerEvent(raw);
    if (event?.containerId === id && isStopRequest(event)) return `someone asked the Engine to ${event.action} it`;
  }
  return null;
}

/**
 * One JSON object of the Engine's event stream, as a ContainerEvent without `container`; null
 * for anything else (other types, actions discovery ignores such as exec_start).
 */
export function parseDockerEvent(raw: unknown): Omit<ContainerEvent, 'container'> | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const e = raw as {
    Type?: unknown;
    Action?: unknown;
    Actor?: { ID?: unknown; Attributes?: Record<string, unknown> };
    time?: unknown;
    timeNano?: unknown;
  };
  if (e.Type !== 'container' || typeof e.Action !== 'string') return null;
  // health_status comes as "health_status: healthy"; exec_* as "exec_start: sh -c ...".
  const colon = e.Action.indexOf(':');
  const action = colon < 0 ? e.Action : e.Action.slice(0, colon);
  const id = e.Actor?.ID;
  if (!ACTIONS.has(action) || typeof id !== 'string' || id === '') return null;
  const attrs = e.Actor?.Attributes ?? {};
  const text = (key: string) => (typeof attrs[key] === 'string' ? (attrs[key] as string) : null);
  const int = (key: string) => {
    const v = text(key);
    return v !== null && /^-?\d+$/.test(v) ? Number(v) : null;
  };
  const at =
    typeof e.timeNano === 'number' ? Math.floor(e.timeNano / 1e6) : typeof e.time === 'number' ? e.time * 1000 : 0;
  return {
    action: action as ContainerAction,
    containerId: id,
    name: (text('name') ?? '').replace(/^\//, ''),
    app: text('orchestry.app'),
    at,
    exitCode: action === 'die' ? int('exitCode') : null,
    signal: action === 'kill' ? int('signal') : null,
    health: action === 'health_status' ? e.Action.slice(colon + 1).trim() || null : null,
  };
}

/**
 * Folds one event into the detector state and returns the failures it reveals:
 * - container_stopped: a die nobody asked for: a process that exits by itself (whatever the
 *   code) or is killed from outside the Engine. A stop asked through the Engine's API (docker
 *   stop, kill, rm -f, restart: a terminating `kill` or a `stop` event first) is none.
 * - container_oom_killed: a die after Docker's `oom` event, or with OOMKilled set.
 * - container_restart_loop: RestartCount rose restartLoopThreshold times within the window
 *   (reported on each further rise while it stays there).
 * - application_startup_failed: a HEALTHCHECK still starting/unhealthy startupGraceMs after
 *   the start, having never been healthy in this run (once per run).
 */
export function detectContainerFailures(
  state: DetectorState,
  event: ContainerEvent,
  now: number,
  cfg: DetectorConfig,
): { state: DetectorState; failures: ContainerFailure[] } {
  const { containerId, container } = event;
  const app = event.app ?? container?.labels['orchestry.app'] ?? null;
  const failures: ContainerFailure[] = [];
  const fail: Fail = (failureType, details) => failures.push({ failureType, containerId, app, details });

  const track = trackOf(state.get(containerId), container, now, cfg);
  foldAction(track, event, fail);
  if (container) foldObservation(track, container, now, cfg, fail);

  const next = new Map(state);
  if (event.action === 'destroy') next.delete(containerId);
  else next.set(containerId, track);
  return { state: next, failures };
}

/** Records one failure of the container being folded. */
type Fail = (failureType: ContainerFailureType, details: Record<string, unknown>) => void;

/** A copy of what is remembered of a container (restarts within the window), or a new track. */
function trackOf(previous: ContainerTrack | undefined, container: ContainerRef | undefined, now: number, cfg: DetectorConfig): ContainerTrack {
  if (previous) return { ...previous, restarts: previous.restarts.filter((t) => now - t < cfg.restartWindowMs) };
  return {
    restartCount: container?.restartCount ?? 0,
    restarts: [],
    stopRequested: false,
    stopRequestedAt: null,
    oomSeen: false,
    startedAt: container?.startedAt ?? 0,
    healthySeen: false,
    startupReported: false,
  };
}

/** What the event's action tells: stops asked for, OOM kills, and dies that are failures. */
function foldAction(track: ContainerTrack, event: ContainerEvent, fail: Fail): void {
  const { container } = event;
  switch (event.action) {
    case 'kill':
    case 'stop':
      if (isStopRequest(event)) {
        track.stopRequested = true;
        track.stopRequestedAt = event.at;
      }
      break;
    case 'oom':
      track.oomSeen = true;
      break;
    case 'die': {
      const exitCode = event.exitCode ?? container?.exitCode ?? null;
      if (!track.stopRequested) {
        if (track.oomSeen || container?.oomKilled) fail('container_oom_killed', { exitCode });
        else fail('container_stopped', { exitCode, removed: container === undefined });
      }
      track.stopRequested = false;
      track.stopRequestedAt = null;
      track.oomSeen = false;
      break;
    }
    case 'start':
      track.stopRequested = false;
      track.stopRequestedAt = null;
      track.oomSeen = false;
      break;
    default:
      break;
  }
}

/** What the container as inspected tells: restart loops and startups that ran out of grace. */
function foldObservation(track: ContainerTrack, container: ContainerRef, now: number, cfg: DetectorConfig, fail: Fail): void {
  if (container.restartCount > track.restartCount) {
    const rises = container.restartCount - track.restartCount;
    for (let i = 0; i < rises; i++) track.restarts.push(now);
    if (track.restarts.length >= cfg.restartLoopThreshold) {
      fail('container_restart_loop', {
        restartCount: container.restartCount,
        restartsInWindow: track.restarts.length,
        windowMs: cfg.restartWindowMs,
      });
    }
  }
  track.restartCount = container.restartCount;
  if (container.startedAt !== track.startedAt) {
    track.startedAt = container.startedAt;
    track.healthySeen = false;
    track.startupReported = false;
  }
  if (container.dockerHealth === 'healthy') track.healthySeen = true;
  if (startupOverdue(track, container, now, cfg)) {
    track.startupReported = true;
    fail('application_startup_failed', {
      dockerHealth: container.dockerHealth,
      sinceStartMs: now - container.startedAt,
      startupGraceMs: cfg.startupGraceMs,
    });
  }
}

function startupOverdue(track: ContainerTrack, c: ContainerRef, now: number, cfg: DetectorConfig): boolean {
  return (
    c.state === 'running' &&
    (c.dockerHealth === 'starting' || c.dockerHealth === 'unhealthy') &&
    !track.healthySeen &&
    !track.startupReported &&
    c.startedAt > 0 &&
    now - c.startedAt >= cfg.startupGraceMs
  );
}

/**
 * When the next startup grace runs out among these containers (epoch ms), so the source can
 * look again then; null when none is waiting.
 */
export function nextStartupDeadline(
  state: DetectorState,
  containers: readonly ContainerRef[],
  cfg: DetectorConfig,
): number | null {
  let next: number | null = null;
  for (const c of containers) {
    const track = state.get(c.id);
    const waiting =
      c.state === 'running' &&
      (c.dockerHealth === 'starting' || c.dockerHealth === 'unhealthy') &&
      c.startedAt > 0 &&
      !(track && track.startedAt === c.startedAt && (track.healthySeen || track.startupReported));
    if (waiting) {
      const at = c.startedAt + cfg.startupGraceMs;
      if (next === null || at < next) next = at;
    }
  }
  return next;
}

/**
 * How long a container that is no longer listed keeps its state after a stop was asked for: a
 * `docker rm -f` can remove it between its `kill` and its `die` reaching the detector (a resync
 * in between no longer lists it), and that die must still find the stop it follows.
 */
export const GONE_STOP_KEEP_MS = 60_000;

/**
 * The state without containers that are gone (a destroy missed while disconnected), except those
 * whose stop was asked for in the last GONE_STOP_KEEP_MS: their die and destroy are on the way.
 */
export function forgetGone(state: DetectorState, liveIds: ReadonlySet<string>, now: number): DetectorState {
  const keep = (id: string, t: ContainerTrack) =>
    liveIds.has(id) || (t.stopRequested && t.stopRequestedAt !== null && now - t.stopRequestedAt < GONE_STOP_KEEP_MS);
  return new Map([...state].filter(([id, t]) => keep(id, t)));
}
