/**
 * The lease that makes one sidecar the actor for the Swarm tasks of its node, kept in the swarm's
 * own state: the labels of a small Swarm config object, `orchestry-lease-<node id>`, created by
 * the first sidecar that needs it. Every write is a config update carrying the version index the
 * object was read at; the manager refuses a stale one ("update out of sequence"), so of sidecars
 * racing for the lease exactly one wins: Raft is the consensus, nothing is added beside it.
 *
 * Why per node: only the Engine of the node a task runs on can remove its container (the
 * orchestrator's way to restart a task, swarm-actions.ts), so the sidecars that can act on a task
 * are those on its node; the lease elects one of them. A service update (scale) is planned for a
 * task by that same actor, and carries the service's version index besides.
 *
 * Why a config object: its labels can be updated with a version check, updating them restarts
 * nothing, and the sidecars' discovery does not listen to config events (a lease on a service
 * would change its version at every renewal, making every scale stale, and trigger resyncs).
 * The decisions are pure (lease.ts); this file reads, writes and keeps time.
 */
import type Dockerode from 'dockerode';
import type { Clock, TimerHandle } from '../clock.js';
import { describeError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import {
  initialLeaseState,
  leaseFromLabels,
  leaseHeld,
  leaseLost,
  leaseStatus,
  leaseStep,
  leaseToLabels,
  leaseWritten,
  type LeaseRecord,
  type LeaseState,
  type LeaseStatus,
} from './lease.js';

/** The lease as the status API shows it: its object, node and this sidecar's instance id besides. */
export type SwarmLeaseStatus = LeaseStatus & { name: string; node: string; instance: string };

export interface SwarmLease {
  /** Whether this sidecar may act on tasks of `nodeId` now: its own node, and it holds the lease. */
  mayAct(nodeId: string): boolean;
  /** The lease for the status API: its object's name and node, null before the node is known. */
  status(): SwarmLeaseStatus | null;
  start(): void;
  /** Stops renewing, and frees the lease when held so another sidecar takes it at once. */
  stop(): Promise<void>;
}

export interface SwarmLeaseOptions {
  docker: Dockerode;
  clock: Clock;
  logger: Logger;
  /** This sidecar's instance id (instanceId()). */
  instance: string;
  ttlMs: () => number;
  renewMs: () => number;
  /** Whether to take the lease (recovery is not off): a sidecar that never acts must not block the others. */
  campaign: () => boolean;
}

interface ConfigInfo {
  ID: string;
  Version: { Index: number };
  Spec: { Name: string; Labels?: Record<string, string> };
}

/** How long stop() waits for the Engine to free the lease. */
const STOP_WAIT_MS = 2000;

/** Name prefix of the lease objects (`docker config ls`). */
export const LEASE_OBJECT_PREFIX = 'orchestry-lease-';

export function createSwarmLease(opts: SwarmLeaseOptions): SwarmLease {
  const { docker, clock, logger } = opts;
  let state: LeaseState = initialLeaseState(opts.instance);
  let node = '';
  let timer: TimerHandle | null = null;
  let stopped = false;
  let running: Promise<void> | null = null;
  let lastError = '';

  const name = () => `${LEASE_OBJECT_PREFIX}${node}`;
  const setState = (next: LeaseState) => {
    const was = leaseHeld(state, clock.now());
    state = next;
    logChange(logger, was, leaseHeld(state, clock.now()), { lease: name(), instance: opts.instance, term: state.observed?.term });
  };

  async function round(): Promise<void> {
    if (!node) node = ((await docker.info()) as { Swarm?: { NodeID?: string } }).Swarm?.NodeID ?? '';
    // No swarm (yet): no Swarm task to act on either; asked again next round.
    if (!node) return;
    const info = await readLeaseObject(docker, name());
    const step = leaseStep(state, leaseFromLabels(info.Spec.Labels), clock.now(), opts.ttlMs(), opts.campaign());
    setState(step.state);
    if (step.kind === 'follow') return;
    const startedAt = clock.now();
    const ok = await writeLease(docker, info, step.write);
    setState(leaseWritten(state, step.write, ok, startedAt, clock.now()));
  }

  function schedule(): void {
    if (stopped) return;
    timer = clock.setTimeout(() => {
      running = round()
        .then(() => {
          lastError = '';
        })
        .catch((err: unknown) => {
          setState(leaseLost(state));
          const text = describeError(err);
          if (text !== lastError) logger.warn({ lease: name(), err: text }, 'Swarm lease unreadable: not acting on tasks until it is read again');
          lastError = text;
        })
        .finally(() => {
          running = null;
          schedule();
        });
    }, timer === null ? 0 : opts.renewMs());
    timer.unref?.();
  }

  /** Frees the lease at once rather than leaving it to expire: a graceful stop hands over without a TTL's wait. */
  async function free(): Promise<void> {
    await running;
    const observed = state.observed;
    if (!leaseHeld(state, clock.now()) || !observed) return;
    state = leaseLost(state);
    await freeLease(docker, name(), opts.instance, { ...observed, holder: '', renewedAt: clock.now() }, logger);
  }

  return {
    mayAct: (nodeId) => node !== '' && nodeId === node && leaseHeld(state, clock.now()),
    status() {
      if (!node) return null;
      return { name: name(), node, instance: opts.instance, ...leaseStatus(state, clock.now()) };
    },
    start() {
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      // An Engine that does not answer must not hold up the daemon's exit: the lease then expires.
      let waited: TimerHandle | null = null;
      const giveUp = new Promise<void>((resolve) => (waited = clock.setTimeout(resolve, STOP_WAIT_MS)));
      await Promise.race([free(), giveUp]);
      if (waited) clock.clearTimeout(waited);
    },
  };
}

function logChange(logger: Logger, was: boolean, is: boolean, fields: Record<string, unknown>): void {
  if (was === is) return;
  if (is) logger.info(fields, "Swarm lease taken: this sidecar acts on its node's tasks");
  else logger.info(fields, "Swarm lease not held: this sidecar does not act on its node's tasks");
}

/** The lease object, created (empty) when there is none yet. */
async function readLeaseObject(docker: Dockerode, name: string): Promise<ConfigInfo> {
  try {
    return (await docker.getConfig(name).inspect()) as unknown as ConfigInfo;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  try {
    await docker.createConfig({ Name: name, Labels: {}, Data: Buffer.from('orchestry-sidecar lease: see its labels\n').toString('base64') });
  } catch (created) {
    // 409: another sidecar created it first; read theirs.
    if ((created as { statusCode?: number }).statusCode !== 409) throw created;
  }
  return (await docker.getConfig(name).inspect()) as unknown as ConfigInfo;
}

/** Writes `free` (no holder) when the lease still names `instance`; a failure is left to the TTL. */
async function freeLease(docker: Dockerode, name: string, instance: string, free: LeaseRecord, logger: Logger): Promise<void> {
  try {
    const info = await readLeaseObject(docker, name);
    if (leaseFromLabels(info.Spec.Labels)?.holder === instance) await writeLease(docker, info, free);
  } catch (err) {
    logger.debug({ lease: name, err: describeError(err) }, 'Swarm lease not freed; it expires after its TTL');
  }
}

/**
 * Writes the record at the version `info` was read at. False when the manager refused it ("update
 * out of sequence": another write came first); throws on any other error.
 */
async function writeLease(docker: Dockerode, info: ConfigInfo, record: LeaseRecord): Promise<boolean> {
  try {
    // Only labels may change on a config (its data may not): the name is sent as it is.
    await docker.getConfig(info.ID).update({ _query: { version: info.Version.Index }, _body: { Name: info.Spec.Name, Labels: leaseToLabels(record) } } as never);
    return true;
  } catch (err) {
    if (!/out of sequence/i.test(describeError(err))) throw err;
    return false;
  }
}
