/**
 * The listeners that turn what the stages publish into metrics, the event log (`/api/v1/events`)
 * and log lines. Each is one `subscribe*()` over the bus; none is called by hand from the core.
 */
import type { Clock } from '../clock.js';
import { nginxTargetChanges, restartOnlyChanges } from '../config/changes.js';
import type { SidecarBus } from '../events/sidecar-events.js';
import type { ApplyOutcome } from '../nginx/applier.js';
import { describeChanges, diffDesiredSets, type UpstreamChange } from '../upstream/diff.js';
import type { DesiredSet } from '../upstream/types.js';
import type { EventLog } from './event-log.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export function subscribeMetrics(bus: SidecarBus, metrics: Metrics, clock: Clock): void {
  let inFlight = 0;
  bus.on('rejected', (rejected) => metrics.setRejectedContainers(rejected.length));
  bus.on('probe', (result) => metrics.onProbe(result, result.checkType));
  bus.on('failure', ({ event }) => metrics.onFailures([event]));
  bus.on('transition', (t) => metrics.onTransition(t));
  bus.on('routing', ({ set, changed }) => {
    const recomputed = new Set(changed);
    for (const u of set.upstreams) if (recomputed.has(u.name)) metrics.setPanic(u.name, u.panic);
  });
  bus.on('apply', (outcome) => {
    metrics.onApply(outcome);
    metrics.setDegraded(outcome.result === 'failed');
  });
  bus.on('action-started', () => metrics.setRecoveryInFlight(++inFlight));
  bus.on('action', (record) => {
    metrics.setRecoveryInFlight(--inFlight);
    metrics.onRecoveryAction(record);
  });
  bus.on('docker', (status) => metrics.setDockerConnected(status.connected));
  bus.on('config', () => metrics.onConfigReload('success', clock.now()));
  bus.on('config-rejected', () => metrics.onConfigReload('failure', clock.now()));
}

/** What the status page and `/api/v1/events` show: news, not every probe. */
export function subscribeEventLog(bus: SidecarBus, events: EventLog, clock: Clock): void {
  bus.on('transition', (t) =>
    events.push('transition', t.at, `${t.kind} ${t.from} -> ${t.to}`, {
      app: t.app, backend: t.backendId, kind: t.kind, from: t.from, to: t.to, reason: t.reason,
    }),
  );
  // The first of a streak is news; the rest are counted in metrics and the API.
  bus.on('failure', ({ event: f }) => {
    if (f.consecutiveCount !== 1) return;
    events.push('failure', f.timestamp, f.message, {
      app: f.app, backend: f.backendId, failure_type: f.failureType, severity: f.severity, critical: f.critical,
      ...(Object.keys(f.details).length > 0 ? { details: f.details } : {}),
    });
  });
  bus.on('condition', ({ kind, app, active, backupApp, at }) => {
    if (kind === 'failover') {
      const data = { app, strategy: 'failover_to_backup', ...(active ? { backup_app: backupApp } : {}) };
      events.push('recovery', at, active ? `failover_to_backup: routing to ${backupApp}` : 'failover_to_backup over', data);
    } else {
      events.push('transition', at, active ? 'panic: every backend ejected, routing to all' : 'panic over', { app });
    }
  });
  const changesOf = appliedChanges();
  bus.on('apply', (o) => {
    const changes = changesOf(o);
    if (o.result === 'unchanged') return;
    events.push('nginx', clock.now(), o.result === 'failed' ? `nginx update failed at ${o.stage}` : 'nginx upstreams updated', {
      result: o.result, stage: o.stage, error: o.error, duration_ms: Math.round(o.durationMs),
      ...(changes ? { changes: describeChanges(changes) } : {}),
    });
  });
  bus.on('action', (r) =>
    events.push('recovery', r.startedAt, `${r.dryRun ? 'dry-run: ' : ''}${r.strategy} ${r.ok ? 'succeeded' : 'failed'}`, {
      app: r.app, backend: r.backendId, strategy: r.strategy, failure_type: r.failureType, container: r.containerId,
      ...(r.task ? { service: r.service, task: r.task } : {}),
      new_container: r.newContainerId, ok: r.ok, dry_run: r.dryRun, error: r.error, reason: r.reason, duration_ms: Math.round(r.durationMs),
    }),
  );
  bus.on('container', (e) =>
    events.push('docker', e.at, `container ${e.name}: ${e.action}`, {
      ...(e.app ? { app: e.app } : {}), container: e.containerId, exit_code: e.exitCode, signal: e.signal, health: e.health,
    }),
  );
  bus.on('docker', (s) => events.push('docker', clock.now(), s.connected ? 'Docker Engine connected' : `Docker Engine unreachable: ${s.error ?? ''}`));
  bus.on('config', () => events.push('config', clock.now(), 'configuration reloaded'));
  bus.on('config-rejected', ({ error }) => events.push('config', clock.now(), 'configuration rejected; running configuration kept', { error }));
  bus.on('held', ({ apps, at }) => {
    for (const h of apps) events.push('nginx', at, `${h.app} held at its last good upstream: ${h.reason}`, { app: h.app, reason: h.reason });
  });
}

/** The daemon's log lines for what happened (probes themselves are not logged). */
export function subscribeLogger(bus: SidecarBus, log: Logger): void {
  bus.on('transition', (t) =>
    log.info({ app: t.app, backend: t.backendId, kind: t.kind, from: t.from, to: t.to, reason: t.reason }, `${t.kind} ${t.from} -> ${t.to}`),
  );
  bus.on('failure', ({ event: f }) => {
    if (f.failureType.startsWith('container_') || f.failureType === 'application_startup_failed') {
      log.warn({ app: f.app, backend: f.backendId, failure: f.failureType, details: f.details }, 'container failure');
    }
  });
  bus.on('backends', ({ added, removed }) => log.info({ added, removed }, 'backends changed'));
  bus.on('condition', ({ kind, app, active, backupApp }) => {
    if (kind === 'failover' && active) log.error({ app, backup_app: backupApp }, `every backend of the app is ejected: failing over to the servers of ${backupApp}`);
    else if (kind === 'failover') log.warn({ app }, "failover over: routing to the app's own backends again");
    else if (active) log.error({ app }, 'every backend of the app is ejected: routing to all of them (panic)');
    else log.warn({ app }, 'panic over: routing to healthy backends only');
  });
  const changesOf = appliedChanges();
  bus.on('apply', (o) => {
    const changes = changesOf(o);
    if (o.result === 'failed') log.error({ stage: o.stage, err: o.error, retryInMs: o.retryInMs }, 'nginx update failed; last good config kept');
    else if (o.result === 'applied') {
      const timings = Object.fromEntries(Object.entries(o.timings ?? {}).map(([k, ms]) => [k, Math.round(ms * 10) / 10]));
      log.info({ durationMs: Math.round(o.durationMs), reloaded: o.reloaded, timings, changes: describeChanges(changes ?? []) }, 'nginx upstreams updated');
    }
  });
  // What an update did otherwise than it should (tested in place, a broken file repaired).
  bus.on('apply', (o) => {
    for (const warning of o.warnings ?? []) log.warn(warning);
  });
  bus.on('config', ({ prev, next }) => {
    log.info('configuration reloaded');
    for (const line of restartOnlyChanges(prev, next)) log.warn(line);
    for (const line of nginxTargetChanges(prev, next)) log.info(line);
  });
  bus.on('config-rejected', ({ error }) => log.error({ err: error }, 'configuration rejected; running configuration kept'));
  bus.on('held', ({ apps }) => {
    for (const h of apps) log.error({ app: h.app, reason: h.reason }, 'app held at its last good upstream; the other apps keep updating');
  });
}

/**
 * What each applied decision changed against the one nginx had before (the first against
 * nothing); null for outcomes that changed nothing in nginx. One tracker per listener.
 */
function appliedChanges(): (o: ApplyOutcome) => UpstreamChange[] | null {
  let current: DesiredSet | null = null;
  return (o) => {
    if (o.result === 'failed' || !o.set) return null;
    const changes = o.result === 'applied' ? diffDesiredSets(current, o.set) : null;
    current = o.set;
    return changes;
  };
}
