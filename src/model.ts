/**
 * Domain types shared by the pipeline stages (vocabulary in ARCHITECTURE.md). Stages exchange
 * only these plain data shapes; none of them carries behaviour.
 */
import type { AppConfig, HealthCheckConfig } from './config/types.js';

/** One address of an app, as a discovery source sees it now. */
export interface Backend {
  /** Stable key: `${app}/${host}:${port}`. */
  id: string;
  app: string;
  host: string;
  port: number;
  weight: number;
  backup: boolean;
  health: HealthCheckConfig;
  /** Name of the discovery source that reported it. */
  source: string;
  /** The container behind this backend, when a Docker source found it. */
  container?: ContainerRef;
  /** The Swarm task behind this backend, when the Swarm source found it (no `container` then). */
  task?: TaskRef;
  /** Being stopped (Docker `kill`/`stop` seen): eject at once, before the process exits. */
  draining?: boolean;
}

/** What the pipeline knows of the container behind a backend (from `docker inspect`). */
export interface ContainerRef {
  id: string;
  /** Without the leading '/'. */
  name: string;
  image: string;
  /** `orchestry.replica` label, if any. */
  replica: number | null;
  /** running, restarting, exited, paused, ... */
  state: string;
  /** Docker HEALTHCHECK status: starting, healthy, unhealthy; null without a HEALTHCHECK. */
  dockerHealth: string | null;
  restartCount: number;
  oomKilled: boolean;
  exitCode: number | null;
  /** Epoch ms of the container's last start. */
  startedAt: number;
  /** All labels, as Docker reports them (already validated where they matter). */
  labels: Record<string, string>;
}

/**
 * What the pipeline knows of the Swarm task behind a backend (from a manager's services, tasks
 * and nodes). Swarm owns its tasks: acting on one goes through its service (an update carrying
 * the service's version index) or through the engine of the node it runs on (`nodeId`,
 * `containerId`), never by restarting the container behind Swarm's back.
 */
export interface TaskRef {
  id: string;
  /** Docker's task name without the id: `<service>.<slot>`, or `<service>.<node id>` for a global service. */
  name: string;
  serviceId: string;
  serviceName: string;
  /**
   * The service's version index when it was read: a service update (scale) carries it, and the
   * manager refuses it once anything else has updated the service since (compare-and-swap).
   */
  serviceVersion: number;
  /** The replica slot; null for a task of a global service. */
  slot: number | null;
  nodeId: string;
  /** The node's hostname. */
  nodeName: string;
  /** The address the node advertises (Swarm's Status.Addr). */
  nodeAddress: string;
  /** The task's container on its node, once it has one. */
  containerId: string | null;
  image: string;
  /** The task's state (running, ...) and the state its orchestrator wants (running, shutdown). */
  state: string;
  desiredState: string;
  /** Epoch ms of the task's last state change (for a running task: when it began to run). */
  since: number;
  /** The service's labels, `{{.Task.Slot}}` expanded for this task. */
  labels: Record<string, string>;
}

export function backendId(app: string, host: string, port: number): string {
  return `${app}/${formatAddress(host, port)}`;
}

/** host:port, with IPv6 hosts bracketed as nginx expects. */
export function formatAddress(host: string, port: number): string {
  // Joined rather than a template literal: V8 keeps `${a}:${b}` of 13+ characters as a tree of
  // concatenated strings, and addresses are kept per backend in several places (bench:scale's heap).
  return host.includes(':') ? ['[', host, ']:', port].join('') : [host, ':', port].join('');
}

/** The full set of backends one discovery source sees now. Sources never send deltas. */
export interface Snapshot {
  source: string;
  backends: Backend[];
  /**
   * Apps this source defines: the YAML's apps, or apps only container labels name. The merged
   * snapshot renders one upstream per app, even one with no backend yet.
   */
  apps?: AppConfig[];
}

/** Why a probe failed, as far as the prober can tell. */
export type ProbeErrorClass =
  | 'timeout'
  | 'connection_refused'
  | 'connection_reset'
  | 'network_unreachable'
  | 'dns'
  | 'tls'
  | 'unexpected_status'
  | 'unexpected_body'
  | 'unexpected_response'
  | 'error'
  /**
   * The sidecar could not run the probe (no file descriptors, buffers or local ports left, or
   * its body matcher failed): no evidence about the backend, so health, breaker and failure
   * windows ignore it.
   */
  | 'local_error';

/** One probe's outcome. Data, never an exception. */
export interface ProbeResult {
  backendId: string;
  app: string;
  checkType: 'http' | 'tcp';
  healthy: boolean;
  /** Wall time from start to outcome, milliseconds. */
  responseTimeMs: number;
  statusCode: number | null;
  /** First 1000 characters of an HTTP body. */
  body: string | null;
  errorClass: ProbeErrorClass | null;
  /** Human-readable detail, e.g. `connect ECONNREFUSED 127.0.0.1:8002`. */
  error: string | null;
  /** Epoch ms when the probe started. */
  startedAt: number;
  /** Epoch ms when it finished. */
  finishedAt: number;
  /** Retries used (max_retries). */
  attempts: number;
  /** No verdict: the sidecar stalled through the deadline; the scheduler discards the result. */
  sidecarLate?: true;
}

export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy';
export type BreakerStatus = 'closed' | 'open' | 'half_open';
