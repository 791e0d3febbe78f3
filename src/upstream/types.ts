/**
 * The pipeline's decision of what nginx should route to, independent of how nginx is told
 * (render + reload today; DNS SRV answers later).
 */
export interface DesiredServer {
  /** host:port as nginx writes it (IPv6 bracketed). */
  address: string;
  weight: number;
  /** nginx `backup`: a configured backup backend, or a server of the app's backup_app. */
  backup: boolean;
  /** Ejected but kept as `down` (eject mode `down`). Omitted servers are not listed at all. */
  down: boolean;
  /**
   * Name of the container behind the server, when Docker discovery found one: written as a
   * comment beside the server line (untrusted: the view model checks it before the template).
   */
  container?: string;
}

export interface DesiredUpstream {
  /** App name, also the nginx upstream name. */
  name: string;
  servers: DesiredServer[];
  /** Every server was ejected, so all are routed to anyway (never render an empty upstream). */
  panic: boolean;
  /**
   * Every own server was ejected and the backup app's servers (listed as `backup`) take the
   * traffic (failover_to_backup). buildDesiredSet always sets it; optional for hand-built sets.
   */
  failover?: boolean;
  keepalive: number;
  balance: 'round_robin' | 'least_conn' | 'ip_hash' | 'random';
  /**
   * Where nginx proxies the app: `http` (the default when absent; nginx.output_path, included in
   * `http {}`) or `stream` (TCP; nginx.stream_output_path, included in `stream {}`).
   */
  context?: 'http' | 'stream';
  /** nginx's own passive check per server (max_fails / fail_timeout); nginx's defaults when absent. */
  maxFails?: number;
  /** 'auto': 1 s when nginx reloads, 2 s when it re-resolves (DNS mode). */
  failTimeoutSeconds?: number | 'auto';
}

export interface DesiredSet {
  upstreams: DesiredUpstream[];
}
