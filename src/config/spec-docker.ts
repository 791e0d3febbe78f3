/** `docker`: discovery of backends from labelled containers, and the Engine connection. */
import { fsPath, hostProblem, targetProblem } from './allowlists.js';
import { MAX_SECONDS, bool, duration, listOf, nullable, num, oneOf, readSection, show, str, withSchema, type Check, type Report, type Section } from './check.js';
import { ADDRESS_MODES, DEFAULT_DOCKER } from './defaults.js';
import type { DockerConfig } from './types.js';

/** A label key as Docker filters take it (no `=`, no spaces or control characters). */
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$/;

/** `key=value` or `key`: a label a container must carry (with that value) to be discovered. */
export const labelConstraint: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string') return report(path, `must be a string (got ${show(value)})`);
  const eq = value.indexOf('=');
  const key = eq < 0 ? value : value.slice(0, eq);
  const text = eq < 0 ? '' : value.slice(eq + 1);
  if (!LABEL_KEY.test(key) || /[\u0000-\u001f\u007f-\u009f]/.test(text) || text.length > 1024) {
    return report(path, `must be a label "key=value" or "key" (letters, digits, ".", "_", "/", "-" in the key; no control characters) (got ${show(value)})`);
  }
  return value;
}, { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}(=.*)?$' });

/** true, false or `auto`. */
const swarmMode: Check<boolean | 'auto'> = withSchema(
  (value, path, report) =>
    typeof value === 'boolean' ? value
    : typeof value === 'string' && value.toLowerCase() === 'auto' ? 'auto'
    : report(path, `must be true, false or auto (got ${show(value)})`),
  { anyOf: [{ type: 'boolean' }, { enum: ['auto'] }] },
);

/** `docker`'s keys. */
export const DOCKER: Section<DockerConfig> = {
  defaults: DEFAULT_DOCKER,
  fields: {
    enabled: { check: bool, meaning: 'Discover backends from containers labelled orchestry.enable=true.' },
    socket_path: { check: fsPath, meaning: "The Engine's unix socket." },
    address_mode: { check: oneOf(ADDRESS_MODES), meaning: "network: the container's IP on network (compose); host: host_address and the label port." },
    network: { check: nullable(str), meaning: "Docker network whose IP is used in network mode; null = the container's only network." },
    // Any string here; parseDocker then checks that it is a host.
    host_address: { check: str, meaning: 'Address of containers on host networking.' },
    startup_grace_seconds: { check: duration({ min: 0, max: MAX_SECONDS }), meaning: 'A container not healthy this long after it started is application_startup_failed.' },
    reconnect_min_seconds: { check: duration({ above: 0, max: 3600 }), meaning: 'Event-stream reconnect backoff: first wait.' },
    reconnect_max_seconds: { check: duration({ above: 0, max: 3600 }), meaning: 'Event-stream reconnect backoff: longest wait.' },
    constraints: { check: listOf(labelConstraint), meaning: 'Only containers with every one of these labels ("key=value" or "key"), e.g. com.docker.compose.project=shop: several sidecars can share one Engine.' },
    forbidden_ports: { check: listOf(num({ int: true, min: 1, max: 65535 })), meaning: "Ports no container in address mode host is routed to: nginx's own listening ports. The sidecar's own (admin, DNS, passive) are refused anyway." },
    swarm: { check: swarmMode, meaning: 'Discover Swarm services by their labels and their running tasks as backends: true, false, or auto (while the Engine is an active Swarm manager).' },
    swarm_refresh_seconds: { check: duration({ min: 0.1, max: 3600 }), meaning: "How often a Swarm manager's tasks are listed again (its events report no task changes)." },
    swarm_lease: { check: bool, meaning: "Sidecars sharing a node's Engine elect one actor for that node's tasks, by a lease kept in the swarm (a Swarm config's labels, written at the version read)." },
    swarm_lease_ttl_seconds: { check: duration({ min: 1, max: 3600 }), meaning: 'A Swarm lease not renewed for this long is free: another sidecar takes it (the holder stops acting before).' },
    swarm_lease_renew_seconds: { check: duration({ min: 0.1, max: 3600 }), meaning: 'How often the Swarm lease holder renews it and the others read it; less than swarm_lease_ttl_seconds.' },
  },
};

/** `docker`, with its host address and backoff order checked. */
export function parseDocker(value: unknown, report: Report): DockerConfig {
  const docker = readSection(value, 'docker', DOCKER, report);
  const problem = hostProblem(docker.host_address) ?? targetProblem(docker.host_address.toLowerCase());
  if (problem) report('docker.host_address', `${problem} (got ${show(docker.host_address)})`);
  if (docker.reconnect_max_seconds < docker.reconnect_min_seconds) {
    report(
      'docker.reconnect_max_seconds',
      `must be at least reconnect_min_seconds (got ${docker.reconnect_max_seconds} < ${docker.reconnect_min_seconds})`,
    );
  }
  if (docker.swarm_lease_renew_seconds >= docker.swarm_lease_ttl_seconds) {
    report(
      'docker.swarm_lease_renew_seconds',
      `must be less than swarm_lease_ttl_seconds (got ${docker.swarm_lease_renew_seconds} >= ${docker.swarm_lease_ttl_seconds})`,
    );
  }
  if (docker.swarm !== false && !docker.enabled) {
    report('docker.swarm', `needs docker.enabled: true (got ${show(docker.swarm)} with docker.enabled false)`);
  }
  return docker;
}
