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

export function backendId(app: string, host: string, port: number): string {
  return `${app}/${formatAddress(host, port)}`;
}

/** host:port, with IPv6 hosts bracketed as nginx expects. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
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
  | 'error';

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
