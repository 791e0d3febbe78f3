/**
 * Wiring. The only module that knows every stage: discovery snapshots feed the registry and the
 * probe scheduler; probe results feed the registry's pure reducers; transitions flow to the
 * upstream builder, the nginx applier (through the coalescer), metrics and logs.
 */
import { watch, type FSWatcher } from 'chokidar';
import { createSystemClock, type Clock } from './clock.js';
import { loadConfigFile } from './config/load.js';
import { createConfigWatcher } from './config/watch.js';
import type { AppConfig, SidecarConfig } from './config/types.js';
import { snapshotFromConfig } from './discovery/config-source.js';
import { describeError } from './errors.js';
import { createHealthRegistry } from './health/registry.js';
import type { BackendView, Transition } from './health/types.js';
import { formatAddress, type Backend, type ProbeResult } from './model.js';
import { createRenderReloadApplier } from './nginx/applier.js';
import type { ApplyOutcome, UpstreamApplier } from './nginx/applier.js';
import { createCoalescer } from './nginx/coalescer.js';
import { createRenderer } from './nginx/render.js';
import { createAdminServer } from './observability/admin-server.js';
import { createEventLog } from './observability/event-log.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { createHttpProber } from './probe/http.js';
import { createProbeScheduler } from './probe/scheduler.js';
import { createTcpProber } from './probe/tcp.js';
import { buildDesiredSet } from './upstream/desired.js';
import type { DesiredSet } from './upstream/types.js';
import { VERSION } from './version.js';

export interface SidecarOptions {
  configPath: string;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  /** Overrides the logger built from the config (tests pass a silent one). */
  logger?: Logger;
}

export interface Sidecar {
  /** Where the admin server listens (resolved when port 0 was asked). */
  readonly admin: { host: string; port: number };
  stop(): Promise<void>;
}

/** Starts every stage from a config file and returns once the admin server listens. */
export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const env = opts.env ?? process.env;
  const clock = opts.clock ?? createSystemClock();
  let config = await loadConfigFile(opts.configPath, env);
  const log = opts.logger ?? createLogger({ level: config.logging.level });
  const metrics = createMetrics();
  const events = createEventLog();

  const registry = createHealthRegistry({
    clock,
    breaker: config.breaker,
    detection: config.failure_detection,
  });

  // --- nginx side: render -> validate -> swap -> reload, behind a coalescer -----------------
  let renderer = createRenderer({ templatePath: config.nginx.template_path });
  let templateError: string | null = null;
  try {
    await renderer.load();
  } catch (err) {
    templateError = describeError(err);
    log.error({ err: templateError }, 'template rejected');
  }
  let applier: UpstreamApplier = createRenderReloadApplier({ nginx: config.nginx, renderer });
  let lastOutcome: ApplyOutcome | null = null;
  let firstApplyDone = false;
  let lastDesiredKey = '';
  let lastDesired: DesiredSet | null = null;
  const panicking = new Set<string>();

  const applyNow = async (set: DesiredSet) => {
    if (templateError) {
      // The template did not compile: keep the last good file, stay not ready.
      lastOutcome = { result: 'failed', stage: 'render', error: templateError, durationMs: 0, reloaded: false };
      metrics.onApply(lastOutcome);
      events.push('nginx', clock.now(), 'nginx update failed at render', { result: 'failed', stage: 'render', error: templateError });
      metrics.setDegraded(true);
      return;
    }
    const outcome = await applier.apply(set);
    lastOutcome = outcome;
    metrics.onApply(outcome);
    metrics.setDegraded(outcome.result === 'failed');
    if (outcome.result !== 'unchanged') {
      events.push('nginx', clock.now(), outcome.result === 'failed' ? `nginx update failed at ${outcome.stage}` : 'nginx upstreams updated', {
        result: outcome.result,
        stage: outcome.stage,
        error: outcome.error,
        duration_ms: Math.round(outcome.durationMs),
      });
    }
    if (outcome.result === 'failed') {
      log.error({ stage: outcome.stage, err: outcome.error }, 'nginx update failed; last good config kept');
    } else {
      firstApplyDone = true;
      if (outcome.result === 'applied') {
        log.info(
          { durationMs: Math.round(outcome.durationMs), reloaded: outcome.reloaded, timings: outcome.timings },
          'nginx upstreams updated',
        );
      }
    }
  };
  let coalescer = makeCoalescer();
  function makeCoalescer() {
    return createCoalescer<DesiredSet>({
      clock,
      minWaitMs: config.nginx.coalesce_min_wait_seconds * 1000,
      maxWaitMs: config.nginx.coalesce_max_wait_seconds * 1000,
      run: applyNow,
    });
  }

  /** Recomputes the desired upstreams; hands them to nginx only when they changed. */
  const refresh = (force = false) => {
    const views = registry.views();
    metrics.setBackends(views);
    const { set, panics } = buildDesiredSet(config.apps, views);
    for (const app of config.apps.map((a) => a.name)) {
      const now = panics.includes(app);
      if (now && !panicking.has(app)) {
        log.error({ app }, 'every backend of the app is ejected: routing to all of them (panic)');
        events.push('transition', clock.now(), 'panic: every backend ejected, routing to all', { app });
      } else if (!now && panicking.has(app)) {
        log.warn({ app }, 'panic over: routing to healthy backends only');
        events.push('transition', clock.now(), 'panic over', { app });
      }
      if (now) panicking.add(app);
      else panicking.delete(app);
      metrics.setPanic(app, now);
    }
    const key = JSON.stringify(set);
    if (!force && key === lastDesiredKey) return;
    lastDesiredKey = key;
    lastDesired = set;
    coalescer.push(set);
  };

  const onTransitions = (transitions: Transition[]) => {
    if (transitions.length === 0) return;
    for (const t of transitions) {
      metrics.onTransition(t);
      events.push('transition', t.at, `${t.kind} ${t.from} -> ${t.to}`, {
        app: t.app,
        backend: t.backendId,
        kind: t.kind,
        from: t.from,
        to: t.to,
        reason: t.reason,
      });
      log.info(
        { app: t.app, backend: t.backendId, kind: t.kind, from: t.from, to: t.to, reason: t.reason },
        `${t.kind} ${t.from} -> ${t.to}`,
      );
    }
    refresh();
  };

  // --- probes --------------------------------------------------------------------------------
  const httpProber = createHttpProber({ version: VERSION, clock });
  const tcpProber = createTcpProber({ clock });
  const tickets = new Map<string, number>();
  const scheduler = createProbeScheduler({
    clock,
    maxConcurrency: config.probes.max_concurrency,
    jitterFraction: config.probes.jitter_fraction,
    proberFor: (b: Backend) => (b.health.protocol === 'TCP' ? tcpProber : httpProber),
    admit: (b: Backend) => {
      const verdict = registry.admit(b.id);
      tickets.set(b.id, verdict.ticket);
      onTransitions(verdict.transitions);
      return verdict.admit;
    },
    onResult: (result: ProbeResult, b: Backend) => {
      const { transitions, failures } = registry.record(result, tickets.get(b.id) ?? -1);
      metrics.onProbe(result, result.checkType);
      if (failures.length > 0) {
        metrics.onFailures(failures);
        // The first of a streak is news; the rest are counted in metrics and the API.
        for (const f of failures) {
          if (f.consecutiveCount !== 1) continue;
          events.push('failure', f.timestamp, f.message, {
            app: f.app,
            backend: f.backendId,
            failure_type: f.failureType,
            severity: f.severity,
            critical: f.critical,
          });
        }
      }
      onTransitions(transitions);
    },
  });

  const applySnapshot = () => {
    const snapshot = snapshotFromConfig(config);
    const { added, removed } = registry.sync(snapshot.backends);
    for (const id of removed) tickets.delete(id);
    if (added.length || removed.length) log.info({ added, removed }, 'backends changed');
    scheduler.setTargets(snapshot.backends);
    refresh();
  };

  // --- config and template watching ------------------------------------------------------------
  let templateWatcher: FSWatcher | null = null;
  const watchTemplate = () => {
    void templateWatcher?.close();
    templateWatcher = null;
    const path = config.nginx.template_path;
    if (!path) return;
    templateWatcher = watch(path, { ignoreInitial: true, awaitWriteFinish: { stabilityThreshold: 50 } });
    templateWatcher.on('all', () => {
      void reloadTemplate();
    });
  };
  const reloadTemplate = async () => {
    const next = createRenderer({ templatePath: config.nginx.template_path });
    try {
      await next.load();
      templateError = null;
      renderer = next;
      applier = createRenderReloadApplier({ nginx: config.nginx, renderer, previous: applier });
      log.info({ template: config.nginx.template_path ?? 'built-in' }, 'template loaded');
    } catch (err) {
      templateError = describeError(err);
      log.error({ err: templateError }, 'template rejected; last good config kept');
    }
    if (lastDesired) coalescer.push(lastDesired);
  };

  const watchConfig = () => createConfigWatcher({
    path: opts.configPath,
    env,
    initial: config,
    onChange: (next: SidecarConfig) => {
      const prev = config;
      config = next;
      metrics.onConfigReload('success');
      events.push('config', clock.now(), 'configuration reloaded', { path: opts.configPath });
      log.info({ path: opts.configPath }, 'configuration reloaded');
      if (next.admin.listen !== prev.admin.listen) {
        log.warn({ listen: next.admin.listen }, 'admin.listen changes take effect after a restart');
      }
      registry.updateConfig(next.breaker, next.failure_detection);
      const nginxChanged = JSON.stringify(next.nginx) !== JSON.stringify(prev.nginx);
      if (nginxChanged) {
        coalescer.stop();
        coalescer = makeCoalescer();
        if (next.nginx.template_path !== prev.nginx.template_path) watchTemplate();
        void reloadTemplate();
      }
      applySnapshot();
    },
    onError: (err: Error) => {
      metrics.onConfigReload('failure');
      events.push('config', clock.now(), 'configuration rejected; running configuration kept', { error: err.message });
      log.error({ path: opts.configPath, err: err.message }, 'configuration rejected; running configuration kept');
    },
  });

  // --- admin -----------------------------------------------------------------------------------
  const admin = createAdminServer({
    listen: config.admin.listen,
    logger: log,
    metrics,
    getApps: () => ({ apps: config.apps.map((a) => appJson(a, registry.views(), panicking.has(a.name))) }),
    getApp: (name: string) => {
      const app = config.apps.find((a) => a.name === name);
      return app ? appJson(app, registry.views(), panicking.has(app.name)) : undefined;
    },
    getEvents: (q) => events.list(q),
    readiness: () => {
      const reasons: string[] = [];
      if (!firstApplyDone) reasons.push('nginx upstreams not yet written');
      const last = lastOutcome as ApplyOutcome | null;
      if (last && last.result === 'failed') {
        reasons.push(`last nginx update failed at ${last.stage ?? 'unknown'}: ${last.error ?? ''}`);
      }
      return { ready: reasons.length === 0, reasons };
    },
  });

  // The admin address is the one start-up step that can fail on the host (address in use):
  // take it first, before anything probes or touches nginx.
  const address = await admin.start();
  applySnapshot();
  scheduler.start();
  await coalescer.flush();
  const configWatcher = watchConfig();
  watchTemplate();
  await configWatcher.ready;
  log.info({ admin: `${address.host}:${address.port}`, version: VERSION }, 'orchestry-sidecar started');

  let stopped = false;
  return {
    admin: address,
    async stop() {
      if (stopped) return;
      stopped = true;
      await scheduler.stop();
      coalescer.stop();
      await configWatcher.close();
      await (templateWatcher as FSWatcher | null)?.close();
      await admin.close();
      await httpProber.close();
      log.info('orchestry-sidecar stopped');
    },
  };
}

/** JSON for one app in /api/v1/apps. */
function appJson(app: AppConfig, views: BackendView[], panic: boolean) {
  const backends = views.filter((v) => v.app === app.name);
  return {
    name: app.name,
    panic,
    protocol: app.health.protocol,
    backends: backends.map((v) => ({
      id: v.backendId,
      address: formatAddress(v.host, v.port),
      weight: v.weight,
      backup: v.backup,
      health: v.health,
      breaker: v.breaker,
      ejected: v.ejected,
      since: new Date(v.since).toISOString(),
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
    })),
  };
}
