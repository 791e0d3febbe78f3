/**
 * The I/O behind the resource and deadlock detectors (src/health/resource-detector.ts): Docker
 * stats samples of the containers behind backends, and a bare TCP accept check. The parsing of
 * Docker's stats JSON is pure and exported beside the sampler.
 *
 * A one-shot stats request (`stream: false`) on API 1.41 waits for the engine's next collection
 * (about a second) and carries precpu_stats from the collection before, so one request gives a
 * CPU rate; when precpu is empty the rate comes from the previous sample of the same container.
 */
import { connect } from 'node:net';
import type Dockerode from 'dockerode';
import { createSystemClock, type Clock, type TimerHandle } from '../clock.js';

/** One reading of a container's resources, as the detectors use it. */
export interface StatsSample {
  /** Epoch ms when the sample arrived (the sampler's clock). */
  at: number;
  /**
   * CPU used since the previous reading, as a percent of what the container may use: its
   * NanoCpus, or CpuQuota/CpuPeriod, or its cpuset, else all online CPUs of the host. Null when
   * there is no previous reading yet.
   */
  cpuPercent: number | null;
  /** Working set: usage minus inactive file pages (page cache the kernel can drop at once). */
  memoryBytes: number;
  /** The container's memory limit; Docker reports the host's memory when none is set. */
  memoryLimitBytes: number;
  memoryPercent: number;
}

/** Cumulative CPU counters of one reading, nanoseconds. */
export interface CpuReading {
  /** CPU time the container used. */
  totalNs: number;
  /** CPU time of the whole host (all CPUs). */
  systemNs: number;
  onlineCpus: number;
}

/** The parts of Docker's stats JSON read here; every field may be missing (stopped container). */
export interface RawStats {
  cpu_stats?: RawCpuStats;
  precpu_stats?: RawCpuStats;
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number | undefined> };
}

interface RawCpuStats {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] };
  system_cpu_usage?: number;
  online_cpus?: number;
}

/** The CPU limit fields of a container's HostConfig. */
export interface CpuLimitConfig {
  NanoCpus?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  CpusetCpus?: string;
}

/** CPUs the container may use at most (fractional), or null when nothing limits it. */
export function cpuLimitOf(host: CpuLimitConfig): number | null {
  let limit: number | null = null;
  if (host.NanoCpus && host.NanoCpus > 0) limit = host.NanoCpus / 1e9;
  // CpuPeriod 0 means the kernel's default period, 100 ms.
  else if (host.CpuQuota && host.CpuQuota > 0) limit = host.CpuQuota / (host.CpuPeriod || 100_000);
  const pinned = host.CpusetCpus ? cpusetSize(host.CpusetCpus) : 0;
  if (pinned > 0 && (limit === null || pinned < limit)) limit = pinned;
  return limit;
}

/** Number of CPUs in a cpuset list such as `0-3,6`; 0 when it does not parse. */
function cpusetSize(list: string): number {
  let n = 0;
  for (const part of list.split(',')) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!m) return 0;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return 0;
    n += hi - lo + 1;
  }
  return n;
}

/** The counters of one cpu_stats/precpu_stats block, or null when it is empty. */
export function cpuReadingOf(raw: RawCpuStats | undefined): CpuReading | null {
  const totalNs = raw?.cpu_usage?.total_usage;
  const systemNs = raw?.system_cpu_usage;
  if (!totalNs || !systemNs) return null;
  // Engines before API 1.27 give no online_cpus; the per-CPU list has one entry per CPU then.
  const onlineCpus = raw?.online_cpus || raw?.cpu_usage?.percpu_usage?.length || 0;
  if (onlineCpus <= 0) return null;
  return { totalNs, systemNs, onlineCpus };
}

/**
 * CPU used between two readings, in percent of `limitCpus` (or of all online CPUs when null or
 * larger), the way `docker stats` computes it before scaling to the limit. Null when the
 * readings cannot be compared (same instant, counters reset by a restart).
 */
export function cpuPercentBetween(prev: CpuReading, cur: CpuReading, limitCpus: number | null): number | null {
  const systemDelta = cur.systemNs - prev.systemNs;
  const cpuDelta = cur.totalNs - prev.totalNs;
  if (systemDelta <= 0 || cpuDelta < 0) return null;
  const coresUsed = (cpuDelta / systemDelta) * cur.onlineCpus;
  const capacity = limitCpus === null ? cur.onlineCpus : Math.min(limitCpus, cur.onlineCpus);
  return (coresUsed / capacity) * 100;
}

/**
 * Working set and limit from memory_stats, or null when there is none (container not running).
 * Like `docker stats`: usage minus inactive_file (cgroup v2) or total_inactive_file (v1).
 */
export function memoryOf(raw: RawStats['memory_stats']): { bytes: number; limitBytes: number } | null {
  const usage = raw?.usage;
  const limitBytes = raw?.limit;
  if (usage === undefined || !limitBytes || limitBytes <= 0) return null;
  const inactive = raw?.stats?.total_inactive_file ?? raw?.stats?.inactive_file ?? 0;
  return { bytes: inactive < usage ? usage - inactive : usage, limitBytes };
}

/**
 * A sample from one stats response: CPU from its own precpu block, else from `previous` (the
 * last reading of the same container). Null when the container has no memory stats (not
 * running). `cpu` is this response's reading, to pass as `previous` next time.
 */
export function sampleOf(
  raw: RawStats,
  previous: CpuReading | null,
  limitCpus: number | null,
  at: number,
): { sample: StatsSample; cpu: CpuReading | null } | null {
  const memory = memoryOf(raw.memory_stats);
  if (!memory) return null;
  const cpu = cpuReadingOf(raw.cpu_stats);
  const before = cpuReadingOf(raw.precpu_stats) ?? previous;
  const cpuPercent = cpu && before ? cpuPercentBetween(before, cpu, limitCpus) : null;
  return {
    sample: {
      at,
      cpuPercent,
      memoryBytes: memory.bytes,
      memoryLimitBytes: memory.limitBytes,
      memoryPercent: (memory.bytes / memory.limitBytes) * 100,
    },
    cpu,
  };
}

export interface DockerStatsSamplerOptions {
  docker: Pick<Dockerode, 'getContainer'>;
  clock?: Clock;
  /** Each tracked container is sampled this often (a due container waits for a free slot). */
  intervalMs: number;
  onSample(containerId: string, sample: StatsSample): void;
  /** A request failed for another reason than the container being gone; it is tried next interval. */
  onError?(containerId: string, err: unknown): void;
  /** Stats requests in flight at most (each takes about a second on the engine). Default 4. */
  maxInFlight?: number;
}

export interface DockerStatsSampler {
  /** The containers to sample from now on; new ones are spread over the next interval. */
  setContainers(ids: Iterable<string>): void;
  /** No more requests; answers still in flight are dropped. */
  stop(): void;
}

interface Tracked {
  due: number;
  busy: boolean;
  /** From `docker inspect`, once; undefined until then. */
  limitCpus: number | null | undefined;
  lastCpu: CpuReading | null;
}

/** One sampler's state; the functions below work on it. */
interface SamplerState {
  readonly opts: DockerStatsSamplerOptions;
  readonly clock: Clock;
  readonly maxInFlight: number;
  readonly tracked: Map<string, Tracked>;
  inFlight: number;
  stopped: boolean;
  timer: TimerHandle | null;
  timerAt: number;
}

/** Samples the given containers every intervalMs. Never throws; a gone container is dropped. */
export function createDockerStatsSampler(opts: DockerStatsSamplerOptions): DockerStatsSampler {
  const s: SamplerState = {
    opts,
    clock: opts.clock ?? createSystemClock(),
    maxInFlight: opts.maxInFlight ?? 4,
    tracked: new Map(),
    inFlight: 0,
    stopped: false,
    timer: null,
    timerAt: Infinity,
  };
  return {
    setContainers: (ids) => setContainers(s, ids),
    stop() {
      s.stopped = true;
      s.tracked.clear();
      if (s.timer !== null) s.clock.clearTimeout(s.timer);
      s.timer = null;
    },
  };
}

function setContainers(s: SamplerState, ids: Iterable<string>): void {
  const wanted = new Set(ids);
  for (const id of s.tracked.keys()) if (!wanted.has(id)) s.tracked.delete(id);
  const added = [...wanted].filter((id) => !s.tracked.has(id));
  const now = s.clock.now();
  // Spread a batch over one interval so that a first sync does not send them all at once.
  added.forEach((id, i) => {
    s.tracked.set(id, { due: now + (s.opts.intervalMs * i) / added.length, busy: false, limitCpus: undefined, lastCpu: null });
  });
  if (added.length > 0) pump(s);
}

/** Starts every due request a slot allows, then arms the timer for the next due one. */
function pump(s: SamplerState): void {
  if (s.stopped) return;
  const now = s.clock.now();
  let next = Infinity;
  // Longest overdue first, so that with every slot taken none waits behind the others forever.
  const idle = [...s.tracked].filter(([, t]) => !t.busy).sort(([, a], [, b]) => a.due - b.due);
  for (const [id, t] of idle) {
    if (t.due > now || s.inFlight >= s.maxInFlight) {
      if (t.due < next) next = t.due;
      continue;
    }
    launch(s, id, t, now);
  }
  // With every slot taken, the next finished request pumps again.
  if (s.inFlight >= s.maxInFlight || next === Infinity) return;
  if (s.timer !== null && s.timerAt <= next) return;
  if (s.timer !== null) s.clock.clearTimeout(s.timer);
  s.timerAt = next;
  s.timer = s.clock.setTimeout(() => {
    s.timer = null;
    s.timerAt = Infinity;
    pump(s);
  }, next - now);
  s.timer.unref?.();
}

function launch(s: SamplerState, id: string, t: Tracked, now: number): void {
  t.busy = true;
  s.inFlight++;
  // The next turn counts from this start, so a slow engine does not stretch the interval.
  t.due = now + s.opts.intervalMs;
  sample(s, id, t)
    .catch((err: { statusCode?: number }) => {
      if (err?.statusCode === 404) {
        if (s.tracked.get(id) === t) s.tracked.delete(id);
      } else if (!s.stopped) {
        s.opts.onError?.(id, err);
      }
    })
    .finally(() => {
      t.busy = false;
      s.inFlight--;
      pump(s);
    });
}

async function sample(s: SamplerState, id: string, t: Tracked): Promise<void> {
  const container = s.opts.docker.getContainer(id);
  if (t.limitCpus === undefined) {
    const info = await container.inspect();
    t.limitCpus = cpuLimitOf(info.HostConfig as CpuLimitConfig);
  }
  const raw = (await container.stats({ stream: false })) as RawStats;
  if (s.stopped || s.tracked.get(id) !== t) return;
  const out = sampleOf(raw, t.lastCpu, t.limitCpus, s.clock.now());
  t.lastCpu = out?.cpu ?? null;
  if (out) s.opts.onSample(id, out.sample);
}

/** What a bare TCP connect to a backend's port found. */
export type TcpAccept = 'accepted' | 'refused' | 'timeout' | 'error';

/**
 * Connects to host:port and closes at once: tells a process that still accepts connections
 * (the kernel completes the handshake even when the app never reads) from a closed port.
 */
export function checkTcpAccept(host: string, port: number, timeoutMs: number, clock: Clock = createSystemClock()): Promise<TcpAccept> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (outcome: TcpAccept) => {
      clock.clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = clock.setTimeout(() => finish('timeout'), timeoutMs);
    socket.once('connect', () => finish('accepted'));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? 'refused' : 'error'));
  });
}
