/**
 * The JSON the admin API serves (`/api/v1/apps`, `/api/v1/apps/{app}`, reports, recovery,
 * alerts), built from what the stages report now. No state of its own.
 */
import type { Alerting } from '../alerting/alerting.js';
import type { AppConfig, SidecarConfig } from '../config/types.js';
import type { ApplyOutcome } from '../nginx/applier.js';
import { SidecarError, describeError } from '../errors.js';
import type { LocalErrorEpisode } from '../health/local-errors.js';
import type { HealthRegistry } from '../health/registry.js';
import type { BackendView } from '../health/types.js';
import type { RejectedContainer } from '../discovery/docker-labels.js';
import { formatAddress, type TaskRef } from '../model.js';
import type { SwarmLeaseStatus } from '../recovery/swarm-lease.js';
import { withDrains } from '../upstream/desired.js';
import type { StateStore } from '../store/types.js';
import { adminLimits } from './admin-connections.js';
import { createAdminServer, type AdminServer, type AdminServerOptions } from './admin-server.js';
import type { EventLog } from './event-log.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { readiness } from './readiness.js';

export interface AdminApiSources {
  apps(): readonly AppConfig[];
  registry: HealthRegistry;
  /** Apps in panic now. */
  panicking(app: string): boolean;
  store: StateStore;
  /** Containers left out for bad labels. */
  rejected(): readonly RejectedContainer[];
  recovery(): unknown;
  /** Containers recovery keeps out of nginx now (shown as draining). */
  drained(): ReadonlySet<string> | undefined;
  alerting: Alerting;
  alertingEnabled(): boolean;
  /** How nginx is told (dns or reload) and why; null before it is settled. */
  nginxMode(): { update_via: string; reason: string } | null;
  /** The passive receiver's address and counters; null when off. */
  passive(): unknown;
  /** The Swarm lease of this sidecar's node; null without Swarm or before the node is known. */
  lease?(): SwarmLeaseStatus | null;
  /** This sidecar's identity (the `sidecar` label of its metrics). */
  instance: string | null;
}

/** The stages the admin server reports on. */
export interface SidecarAdminSources {
  config(): SidecarConfig;
  log: Logger;
  metrics: Metrics;
  events: EventLog;
  registry: HealthRegistry;
  store: StateStore;
  alerting: Alerting;
  router: { apps(): readonly AppConfig[]; conditions(): { panic: ReadonlySet<string> } };
  discovery: {
    current(): { awaiting: string[] } | null;
    rejected(): RejectedContainer[];
    dockerConnected(): boolean | null;
    swarm?(): { connected: boolean; error?: string } | null;
  };
  recovery: { summary(): unknown; holds(): { drainedContainerIds?: ReadonlySet<string> }; lease?(): SwarmLeaseStatus | null };
  nginx: { status(): { firstApplyDone: boolean; lastOutcome: ApplyOutcome | null; updateVia: { mode: string; why: string } | null } };
  passive: { address(): string | null; stats(): unknown };
  health: { localErrors(): LocalErrorEpisode | null };
}

/** The admin server (metrics, probes, JSON API, status page) over what the stages report now. */
export function createSidecarAdmin(s: SidecarAdminSources): AdminServer {
  const { discovery, nginx, router, recovery } = s;
  const dockerOn = s.config().docker.enabled;
  const server = createAdminServer({
    listen: s.config().admin.listen,
    limits: () => adminLimits(s.config().admin),
    logger: s.log,
    metrics: s.metrics,
    getEvents: (q) => s.events.list(q),
    ...createAdminApi({
      apps: () => router.apps(),
      registry: s.registry,
      panicking: (app) => router.conditions().panic.has(app),
      store: s.store,
      rejected: () => discovery.rejected(),
      recovery: () => recovery.summary(),
      drained: () => recovery.holds().drainedContainerIds,
      alerting: s.alerting,
      alertingEnabled: () => s.config().alerting.enabled,
      nginxMode: () => {
        const u = nginx.status().updateVia;
        return u ? { update_via: u.mode, reason: u.why } : null;
      },
      passive: () => (s.passive.address() ? { listen: s.passive.address(), ...(s.passive.stats() as object) } : null),
      lease: () => recovery.lease?.() ?? null,
      instance: s.metrics.instance,
    }),
    readiness: () =>
      readiness({
        awaiting: discovery.current()?.awaiting ?? (dockerOn ? ['docker'] : []),
        firstApplyDone: nginx.status().firstApplyDone,
        docker: dockerOn ? { connected: discovery.dockerConnected() ?? false, socketPath: s.config().docker.socket_path } : null,
        swarm: discovery.swarm?.() ?? null,
        lastOutcome: nginx.status().lastOutcome,
        localErrors: s.health.localErrors(),
      }),
  });
  s.metrics.observeAdmin(() => server.connections());
  s.metrics.observeSwarmLease(() => recovery.lease?.()?.held ?? null);
  return server;
}

type ApiCallbacks = Pick<AdminServerOptions, 'getApps' | 'getApp' | 'getReport' | 'getRecovery' | 'getAlerts'>;

export function createAdminApi(src: AdminApiSources): ApiCallbacks {
  const appOf = (name: string) => src.apps().find((a) => a.name === name);
  const json = (app: AppConfig) => appJson(app, withDrains(src.registry.viewsOf(app.name), src.drained()), src.panicking(app.name));
  const summary = (app: AppConfig) => appSummaryJson(app, withDrains(src.registry.viewsOf(app.name), src.drained()), src.panicking(app.name));
  return {
    getApps: (q) => {
      const one = q.app === undefined ? undefined : appOf(q.app);
      if (q.app !== undefined && !one) return undefined;
      const apps = one ? [one] : src.apps();
      return {
        instance: src.instance,
        apps: q.summary ? apps.map(summary) : apps.map(json),
        state_store: (({ state, path, error }) => ({ state, path, error }))(src.store.status()),
        rejected_containers: src.rejected().map((r) => ({ id: r.containerId, name: r.containerName, errors: r.errors, ...(r.kind ? { kind: r.kind } : {}) })),
        nginx: src.nginxMode(),
        passive: src.passive(),
        swarm_lease: leaseJson(src.lease?.() ?? null),
      };
    },
    getApp: (name) => {
      const app = appOf(name);
      return app ? json(app) : undefined;
    },
    getReport: async (name, hours) => {
      if (!appOf(name)) return undefined;
      return report(src.store, name, hours);
    },
    getRecovery: () => ({ ...(src.recovery() as object), swarm_lease: leaseJson(src.lease?.() ?? null) }),
    getAlerts: () => ({
      enabled: src.alertingEnabled(),
      alerts: src.alerting.list().map((a) => ({
        id: a.id,
        app: a.app,
        backend: a.backendId,
        failure_type: a.failureType,
        severity: a.severity,
        message: a.message,
        status: a.status,
        starts_at: new Date(a.startsAt).toISOString(),
        escalated: a.escalated,
        receivers: [...a.receivers, ...a.escalationReceivers],
      })),
      receivers: src.alerting.status().byReceiver,
    }),
  };
}

/** An app's health report from the store; a SidecarError when the store cannot answer. */
async function report(store: StateStore, app: string, hours: number): Promise<unknown> {
  const status = store.status();
  if (status.state !== 'ok') {
    const why = status.state === 'disabled' ? 'the state store is disabled (store.enabled: false)' : `state store unavailable: ${status.error ?? status.path}`;
    throw new SidecarError('STORE_UNAVAILABLE', why);
  }
  try {
    return await store.report(app, hours);
  } catch (err) {
    throw new SidecarError('STORE_UNAVAILABLE', `state store could not report: ${describeError(err)}`);
  }
}

/** JSON for one app in /api/v1/apps. */
function appJson(app: AppConfig, backends: BackendView[], panic: boolean) {
  return {
    name: app.name,
    panic,
    protocol: app.health.protocol,
    backends: backends.map(backendJson),
  };
}

function taskJson(t: TaskRef) {
  return {
    id: t.id,
    name: t.name,
    service: { id: t.serviceId, name: t.serviceName },
    slot: t.slot,
    node: { id: t.nodeId, name: t.nodeName, address: t.nodeAddress },
    container_id: t.containerId && t.containerId.slice(0, 12),
    state: t.state,
    desired_state: t.desiredState,
    image: t.image,
  };
}

/**
 * One app in `/api/v1/apps?summary=1`: counts instead of backends, so a page over thousands of
 * backends polls a few hundred bytes per app and asks for an app's backends only when shown.
 */
function appSummaryJson(app: AppConfig, backends: BackendView[], panic: boolean) {
  const counts = { backends: backends.length, routed: 0, ejected: 0, draining: 0, healthy: 0, unhealthy: 0, unknown: 0, breaker_open: 0 };
  for (const v of backends) {
    // As the status page reads it: in panic every backend is routed; a drained or ejected one is not.
    if (panic || (!v.draining && !v.ejected)) counts.routed++;
    if (v.ejected) counts.ejected++;
    if (v.draining) counts.draining++;
    counts[v.health]++;
    if (v.breaker === 'open') counts.breaker_open++;
  }
  return { name: app.name, panic, protocol: app.health.protocol, counts };
}

function backendJson(v: BackendView) {
  return {
    id: v.backendId,
    address: formatAddress(v.host, v.port),
    weight: v.weight,
    backup: v.backup,
    health: v.health,
    breaker: v.breaker,
    ejected: v.ejected,
    since: new Date(v.since).toISOString(),
    draining: v.draining,
    container: v.container && {
      id: v.container.id.slice(0, 12),
      name: v.container.name,
      image: v.container.image,
      state: v.container.state,
      docker_health: v.container.dockerHealth,
      restart_count: v.container.restartCount,
      replica: v.container.replica,
    },
    ...(v.task ? { task: taskJson(v.task) } : {}),
    consecutive_failures: v.consecutiveFailures,
    consecutive_successes: v.consecutiveSuccesses,
    last_probe: v.lastProbe && {
      healthy: v.lastProbe.healthy,
      at: new Date(v.lastProbe.finishedAt).toISOString(),
      response_time_ms: Math.round(v.lastProbe.responseTimeMs * 10) / 10,
      status_code: v.lastProbe.statusCode,
      error_class: v.lastProbe.errorClass,
      error: v.lastProbe.error,
    },
    last_failure: v.lastFailure && {
      type: v.lastFailure.failureType,
      severity: v.lastFailure.severity,
      message: v.lastFailure.message,
      consecutive: v.lastFailure.consecutiveCount,
      total_in_window: v.lastFailure.totalCount,
      at: new Date(v.lastFailure.timestamp).toISOString(),
    },
  };
}

/** `swarm_lease` in /api/v1/apps and /api/v1/recovery: who acts on this node's Swarm tasks. */
function leaseJson(l: SwarmLeaseStatus | null) {
  if (!l) return null;
  return {
    name: l.name,
    node: l.node,
    holder: l.holder,
    term: l.term,
    expires_at: l.expiresAt === null ? null : new Date(l.expiresAt).toISOString(),
    held: l.held,
    instance: l.instance,
  };
}
