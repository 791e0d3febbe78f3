/**
 * The effects of recovery through the Docker Engine API (dockerode). No planning here: each
 * method does one thing to one container and reports what happened as data, never by throwing.
 * Whether to act at all is the planner's decision (planner.ts).
 */
import type Dockerode from 'dockerode';
import { describeError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { ADDED_LABEL, PORT_LABEL, REPLICA_LABEL, cloneSpec, isHostNetwork, type CloneOverrides } from './container-spec.js';

/** What one action did. `containerId` is the container acted on; `newContainerId` one it created. */
export interface DockerActionResult {
  ok: boolean;
  containerId: string;
  newContainerId?: string;
  error?: string;
  durationMs: number;
}

/** A new replica: its container name, and its port when the app runs on host networking. */
export interface NewReplicaOptions {
  name: string;
  /** Host networking only: the port the new replica listens on (env `${portEnv}` and label orchestry.port). */
  port?: number;
  portEnv: string;
}

export interface ScaleOutOptions extends NewReplicaOptions {
  /** `orchestry.replica` of the new replica. */
  replica?: number;
}

export interface DockerActions {
  /** Restarts in place (same id) and waits until it runs again. */
  restart(containerId: string): Promise<DockerActionResult>;
  /**
   * Stops it and creates a new container with the same name, image, config, host config and
   * networks, then starts it. The old one is renamed aside until the new one runs, and is put
   * back if anything fails, so a failed recreate never loses the container.
   */
  recreate(containerId: string): Promise<DockerActionResult>;
  /** Starts a new replica cloned from it (new name, and new port on host networking); once that runs, removes it. */
  replace(containerId: string, opts: NewReplicaOptions): Promise<DockerActionResult>;
  /** Starts one more replica cloned from a healthy one, labelled orchestry.recovery.added=true. */
  scaleOut(templateContainerId: string, opts: ScaleOutOptions): Promise<DockerActionResult>;
  /** Stops (with the stop timeout) and removes it. A container already gone counts as done. */
  scaleIn(containerId: string): Promise<DockerActionResult>;
  /**
   * restart_dependencies: restarts each container, by name, one after the other, waiting until
   * each runs again. Every one is tried; the result fails naming each that could not be
   * restarted (one not found included). `containerId` is the names, comma-separated.
   */
  restartNamed(names: string[]): Promise<DockerActionResult>;
}

export interface DockerActionsOptions {
  docker: Dockerode;
  /** Grace before SIGKILL on every stop and restart (recovery.stop_timeout_seconds). */
  stopTimeoutSeconds: number;
  /** How long a started container may take to be running; default 30 s. */
  startTimeoutMs?: number;
  logger?: Logger;
}

/** Dockerode rejects with the engine's status code; 304 = already in that state, 404 = no such container. */
function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | null)?.statusCode;
}

function messageOf(err: unknown): string {
  const json = (err as { json?: { message?: string } } | null)?.json;
  return json?.message ?? describeError(err);
}

/** What an action reports besides success: a container it created (recreate, replace, scale_out). */
type Done = { newContainerId?: string };

/** What every action needs: the engine, the stop grace, how long a start may take, the log. */
interface DockerContext {
  docker: Dockerode;
  /** Stop timeout in seconds (dockerode's `t`). */
  t: number;
  startTimeoutMs: number;
  log: Logger | undefined;
}

/** DockerActions over one Docker Engine; each method runs one module-level action under `attempt`. */
export function createDockerActions(opts: DockerActionsOptions): DockerActions {
  const ctx: DockerContext = {
    docker: opts.docker,
    t: opts.stopTimeoutSeconds,
    startTimeoutMs: opts.startTimeoutMs ?? 30_000,
    log: opts.logger,
  };
  return {
    restart: (id) => attempt(id, () => restart(ctx, id)),
    recreate: (id) => attempt(id, () => recreate(ctx, id)),
    replace: (id, o) => attempt(id, () => replace(ctx, id, o)),
    scaleOut: (templateId, o) => attempt(templateId, () => scaleOut(ctx, templateId, o)),
    restartNamed: (names) => attempt(names.join(','), () => restartNamed(ctx, names)),
    scaleIn: (id) => attempt(id, () => scaleIn(ctx, id)),
  };
}

/** Runs `fn`, timing it and turning a throw into `{ ok: false }`. */
async function attempt(containerId: string, fn: () => Promise<Done>): Promise<DockerActionResult> {
  const start = performance.now();
  try {
    const { newContainerId } = await fn();
    return { ok: true, containerId, ...(newContainerId ? { newContainerId } : {}), durationMs: performance.now() - start };
  } catch (err) {
    const partial = (err as { newContainerId?: string }).newContainerId;
    return {
      ok: false,
      containerId,
      ...(partial ? { newContainerId: partial } : {}),
      error: messageOf(err),
      durationMs: performance.now() - start,
    };
  }
}

async function stop(ctx: DockerContext, c: Dockerode.Container): Promise<void> {
  await c.stop({ t: ctx.t }).catch((err: unknown) => {
    if (statusOf(err) !== 304) throw err;
  });
}

async function waitRunning(ctx: DockerContext, c: Dockerode.Container): Promise<void> {
  const deadline = performance.now() + ctx.startTimeoutMs;
  for (;;) {
    const { State } = await c.inspect();
    if (State.Running && !State.Restarting) return;
    if (State.Status === 'exited' || State.Status === 'dead') {
      throw new Error(`container ${c.id.slice(0, 12)} exited with code ${State.ExitCode}${State.Error ? `: ${State.Error}` : ''}`);
    }
    if (performance.now() > deadline) throw new Error(`container ${c.id.slice(0, 12)} not running after ${ctx.startTimeoutMs} ms (${State.Status})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Creates, networks and starts a container; removes it again if any step fails. */
async function launch(ctx: DockerContext, spec: ReturnType<typeof cloneSpec>): Promise<Dockerode.Container> {
  const created = await ctx.docker.createContainer(spec.create);
  try {
    for (const { network, endpoint } of spec.connect) {
      await ctx.docker.getNetwork(network).connect({ Container: created.id, EndpointConfig: endpoint });
    }
    await created.start();
    await waitRunning(ctx, created);
    return created;
  } catch (err) {
    await created.remove({ force: true }).catch(() => undefined);
    throw err;
  }
}

/** Clone overrides for a new replica; a host-networked one needs its own port. */
function siblingOverrides(info: Dockerode.ContainerInspectInfo, o: NewReplicaOptions, labels: Record<string, string>): CloneOverrides {
  if (!isHostNetwork(info)) return { name: o.name, labels, sibling: true };
  if (o.port === undefined) {
    throw new Error(`${info.Name.replace(/^\//, '')} uses host networking: a new replica needs a port (set the app's port_range)`);
  }
  return {
    name: o.name,
    env: { [o.portEnv]: String(o.port) },
    labels: { ...labels, [PORT_LABEL]: String(o.port) },
    sibling: true,
  };
}

async function restart(ctx: DockerContext, id: string): Promise<Done> {
  const c = ctx.docker.getContainer(id);
  // Restart is for a running container that fails its checks. One that is not running was
  // stopped outside recovery (docker stop or kill, whose event may not have reached the sidecar
  // yet) or crashed, which Docker reports and recreate handles: starting it again here would
  // undo an operator's stop.
  const { State } = await c.inspect();
  if (!State.Running) throw new Error(`not restarted: container ${id.slice(0, 12)} is ${State.Status}, not running (stopped outside recovery)`);
  await c.restart({ t: ctx.t });
  await waitRunning(ctx, c);
  ctx.log?.info({ container: id }, 'container restarted');
  return {};
}

async function recreate(ctx: DockerContext, id: string): Promise<Done> {
  const old = ctx.docker.getContainer(id);
  const info = await old.inspect();
  const name = info.Name.replace(/^\//, '');
  const wasRunning = info.State.Running;
  await stop(ctx, old);
  // Renamed aside rather than removed: the name is free for the new one, and the old one
  // comes back if the new one cannot be created or started.
  await old.rename({ name: `${name}-recreating-${Date.now()}` });
  try {
    const fresh = await launch(ctx, cloneSpec(info, { name, sibling: false }));
    await old.remove({ force: true });
    ctx.log?.info({ container: id, newContainer: fresh.id, name }, 'container recreated');
    return { newContainerId: fresh.id };
  } catch (err) {
    await old.rename({ name }).catch(() => undefined);
    if (wasRunning) await old.start().catch(() => undefined);
    throw err;
  }
}

async function replace(ctx: DockerContext, id: string, o: NewReplicaOptions): Promise<Done> {
  const old = ctx.docker.getContainer(id);
  const info = await old.inspect();
  const fresh = await launch(ctx, cloneSpec(info, siblingOverrides(info, o, {})));
  try {
    await stop(ctx, old);
    await old.remove({ force: true });
  } catch (err) {
    throw Object.assign(new Error(`new replica ${fresh.id.slice(0, 12)} runs, but removing the old one failed: ${messageOf(err)}`), {
      newContainerId: fresh.id,
    });
  }
  ctx.log?.info({ container: id, newContainer: fresh.id, name: o.name }, 'container replaced');
  return { newContainerId: fresh.id };
}

async function scaleOut(ctx: DockerContext, templateId: string, o: ScaleOutOptions): Promise<Done> {
  const info = await ctx.docker.getContainer(templateId).inspect();
  const labels: Record<string, string> = { [ADDED_LABEL]: 'true' };
  if (o.replica !== undefined) labels[REPLICA_LABEL] = String(o.replica);
  const fresh = await launch(ctx, cloneSpec(info, siblingOverrides(info, o, labels)));
  ctx.log?.info({ template: templateId, newContainer: fresh.id, name: o.name, port: o.port }, 'scaled out');
  return { newContainerId: fresh.id };
}

async function restartNamed(ctx: DockerContext, names: string[]): Promise<Done> {
  const problems: string[] = [];
  for (const name of names) {
    const c = ctx.docker.getContainer(name);
    try {
      await c.restart({ t: ctx.t });
      await waitRunning(ctx, c);
      ctx.log?.info({ container: name }, 'dependency restarted');
    } catch (err) {
      problems.push(statusOf(err) === 404 ? `dependency container "${name}" not found` : `dependency "${name}": ${messageOf(err)}`);
    }
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  return {};
}

async function scaleIn(ctx: DockerContext, id: string): Promise<Done> {
  const c = ctx.docker.getContainer(id);
  try {
    await stop(ctx, c);
    await c.remove({ force: true });
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
  ctx.log?.info({ container: id }, 'scaled in');
  return {};
}
