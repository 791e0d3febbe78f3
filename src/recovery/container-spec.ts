/**
 * Pure: the create options that reproduce an inspected container, for recreate (same name) and
 * for a new replica (new name, maybe a new port). Kept apart from the Docker calls so the
 * mapping, networks included, is tested without an engine that has networks to offer.
 */
import type Dockerode from 'dockerode';

/** Labels that recovery writes on the containers it creates. */
export const PORT_LABEL = 'orchestry.port';
export const REPLICA_LABEL = 'orchestry.replica';
export const ADDED_LABEL = 'orchestry.recovery.added';

export interface CloneOverrides {
  name: string;
  /** Entries set (or replaced) in Env, e.g. `{ PORT: '20001' }`. */
  env?: Record<string, string>;
  /** Labels set (or replaced). */
  labels?: Record<string, string>;
  /**
   * A new replica next to the original rather than the original itself: static IPs, published
   * host ports and the original's name alias are not carried over, they belong to the original.
   */
  sibling: boolean;
}

export interface CloneSpec {
  create: Dockerode.ContainerCreateOptions;
  /** Networks beyond the first: connected after create and before start (API < 1.44 takes one at create). */
  connect: { network: string; endpoint: Dockerode.EndpointSettings }[];
}

/** Inspect's Config carries these too; the typings leave them out. */
type InspectConfig = Dockerode.ContainerInspectInfo['Config'] & { StopSignal?: string; StopTimeout?: number };

/** True when the container shares the host's network stack. */
export function isHostNetwork(info: Dockerode.ContainerInspectInfo): boolean {
  return info.HostConfig.NetworkMode === 'host';
}

/** Create options reproducing `info`: same image, config, host config and networks. */
export function cloneSpec(info: Dockerode.ContainerInspectInfo, o: CloneOverrides): CloneSpec {
  const c = info.Config as InspectConfig;
  const host = isHostNetwork(info);
  const env = [...(c.Env ?? [])];
  for (const [key, value] of Object.entries(o.env ?? {})) {
    const at = env.findIndex((e) => e.startsWith(`${key}=`));
    if (at >= 0) env[at] = `${key}=${value}`;
    else env.push(`${key}=${value}`);
  }
  const shortId = info.Id.slice(0, 12);
  const oldName = info.Name.replace(/^\//, '');
  // Docker makes the short id the hostname when none was given; only an explicit one is kept.
  // With host networking the hostname is the host's and may not be set.
  const hostname = !host && c.Hostname && c.Hostname !== shortId ? { Hostname: c.Hostname, Domainname: c.Domainname } : {};

  const create: Dockerode.ContainerCreateOptions = {
    name: o.name,
    Image: c.Image,
    ...hostname,
    User: c.User,
    Env: env,
    Cmd: c.Cmd,
    Entrypoint: c.Entrypoint,
    Labels: { ...c.Labels, ...o.labels },
    ExposedPorts: c.ExposedPorts,
    Volumes: c.Volumes,
    WorkingDir: c.WorkingDir,
    Tty: c.Tty,
    OpenStdin: c.OpenStdin,
    StdinOnce: c.StdinOnce,
    ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
    ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
    ...(c.StopTimeout !== undefined ? { StopTimeout: c.StopTimeout } : {}),
    HostConfig: structuredClone(info.HostConfig),
  };
  // Published host ports belong to the original; a sibling is reached on its network address.
  if (o.sibling) create.HostConfig!.PortBindings = {};

  const connect: CloneSpec['connect'] = [];
  if (!host) {
    const networks = Object.entries(info.NetworkSettings.Networks ?? {});
    // The network the container was created on first; the rest are connected afterwards.
    networks.sort(([a], [b]) => Number(b === info.HostConfig.NetworkMode) - Number(a === info.HostConfig.NetworkMode));
    networks.forEach(([network, ep], i) => {
      const aliases = ((ep.Aliases as string[] | null) ?? []).filter(
        (a) => a !== shortId && !(o.sibling && a === oldName),
      );
      const endpoint: Dockerode.EndpointSettings = {
        ...(aliases.length ? { Aliases: aliases } : {}),
        ...(ep.Links ? { Links: ep.Links as string[] } : {}),
        ...(!o.sibling && ep.IPAMConfig ? { IPAMConfig: ep.IPAMConfig as Dockerode.IPAMConfig } : {}),
      };
      if (i === 0) create.NetworkingConfig = { EndpointsConfig: { [network]: endpoint } };
      else connect.push({ network, endpoint });
    });
  }
  return { create, connect };
}
