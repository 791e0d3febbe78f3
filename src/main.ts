/**
 * Wiring. The only module that knows every stage: discovery snapshots feed the registry and the
 * probe scheduler; probe results feed the registry's pure reducers; transitions flow to the
 * upstream builder, the nginx applier (through the coalescer), metrics and logs.
 */
import { watch, type FSWatcher } from 'chokidar';
import Dockerode from 'dockerode';
import { createAlerting, type Alerting } from './alerting/alerting.js';
import { createSystemClock, type Clock } from './clock.js';
import { loadConfigFile } from './config/load.js';
import { createConfigWatcher } from './config/watch.js';
import { DEFAULT_APP_RECOVERY } from './config/schema.js';
import type { AppConfig, SidecarConfig } from './config/types.js';
import { snapshotFromConfig } from './discovery/config-source.js';
import type { ContainerEvent, ContainerFailure } from './discovery/docker-events.js';
import { createDockerSource, type DockerSource } from './discovery/docker-source.js';
import { checkTcpAccept, createDockerStatsSampler, type DockerStatsSampler, type StatsSample } from './discovery/docker-stats.js';
import { SidecarError, describeError } from './errors.js';
import { isCritical, severityOf } from './health/classify.js';
import { createHealthRegistry } from './health/registry.js';
import { detectDeadlock, initialResourceState, stepResources, type ResourceState } from './health/resource-detector.js';
import type { BackendView, FailureEvent, Transition } from './health/types.js';
import { formatAddress, type Backend, type ProbeResult, type Snapshot } from './model.js';
import { createRenderReloadApplier } from './nginx/applier.js';
import type { ApplyOutcome, UpstreamApplier } from './nginx/applier.js';
import { createCoalescer } from './nginx/coalescer.js';
import { createNginxControl } from './nginx/control.js';
import { createRenderer } from './nginx/render.js';
import { createAdminServer } from './observability/admin-server.js';
import { createEventLog } from './observability/event-log.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { createHttpProber } from './probe/http.js';
import { createProbeScheduler } from './probe/scheduler.js';
import { createTcpProber } from './probe/tcp.js';
import { createDockerActions } from './recovery/docker-actions.js';
import { createRecoveryExecutor, resultInput } from './recovery/executor.js';
import { plan, plannerConfig } from './recovery/planner.js';
import { createPlannerState, restorePlannerState, summarize, type PlannerState } from './recovery/planner-state.js';
import { trafficHolds } from './recovery/traffic-holds.js';
import type { ActionRecord, AppSnapshot, PlannedAction, PlannerInput } from './recovery/types.js';
import { createSqliteStore } from './store/sqlite-store.js';
import type { StateStore } from './store/types.js';
import { buildDesiredSet } from './upstream/desired.js';
import type { DesiredSet } from './upstream/types.js';
import { VERSION } from './version.js';

/** How long after a drain's reload signal nginx is given to stop routing to the drained backend. */
const RELOAD_SETTLE_MS = 1000;
/** Retry of a failed nginx update: from 1 s, doubling, at most every 30 s. */
const APPLY_RETRY_MIN_MS = 1000;
const APPLY_RETRY_MAX_MS = 30_000;

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

  // --- state store: what a restart must not forget ----------------------------------------------
  // Opened before anything probes, so breaker states, ejections, failure counts, recovery budgets
  // and undelivered alerts are back in place first. A store that cannot be used (corrupt,
  // unwritable) leaves the sidecar routing with state in memory; status() says why.
  const store: StateStore = createSqliteStore({ config: config.store, clock, logger: log });
  const restored = await store.restore();
  const storeStatus = store.status();
  if (storeStatus.state === 'degraded') {
    log.error({ path: storeStatus.path, err: storeStatus.error }, 'state store unavailable: routing goes on with state in memory only');
  }
  const backendStates = new Map<string, unknown>();
  for (const [key, json] of restored.states) if (key.startsWith('backend:')) backendStates.set(key.slice('backend:'.length), json);
  const restoredBackends = registry.restore(backendStates);
  if (restoredBackends.rejected.length > 0) {
    log.warn({ backends: restoredBackends.rejected }, 'saved backend states were malformed and are ignored');
  }
  let plannerState = createPlannerState();
  const savedPlanner = restored.states.get('planner');
  if (savedPlanner !== undefined) {
    const planner = restorePlannerState(savedPlanner);
    if (planner) plannerState = planner;
    else log.warn('saved recovery state was malformed and is ignored: recovery budgets start over');
  }
  if (restoredBackends.restored > 0 || savedPlanner !== undefined) {
    log.info({ backends: restoredBackends.restored, recovery: savedPlanner !== undefined, alerts: restored.alerts.length }, 'state restored from the store');
  }
  let savedPlannerJson = savedPlanner === undefined ? '' : JSON.stringify(savedPlanner);
  let persistedPlanner: PlannerState | null = null;
  /** Writes what changed since the last call: backend states, the planner's state. */
  const persistState = () => {
    for (const id of registry.takeDirty()) {
      const state = registry.exportState(id);
      store.saveState(`backend:${id}`, state ? JSON.stringify(state) : null);
    }
    // plan() returns a new state object on every input; only a new object can hold a change.
    if (plannerState === persistedPlanner) return;
    persistedPlanner = plannerState;
    const plannerJson = JSON.stringify(plannerState);
    if (plannerJson !== savedPlannerJson) {
      store.saveState('planner', plannerJson);
      savedPlannerJson = plannerJson;
    }
  };
  let persistTimer: ReturnType<Clock['setTimeout']> | null = null;
  const persistLoop = () => {
    persistState();
    persistTimer = clock.setTimeout(persistLoop, config.store.flush_interval_seconds * 1000);
    persistTimer.unref?.();
  };
  if (config.store.enabled) metrics.observeStore(() => store.status());

  // --- alerting --------------------------------------------------------------------------------
  const alerting: Alerting = createAlerting({ config: config.alerting, clock, logger: log, persistence: store });
  alerting.restore(restored.alerts);
  if (config.alerting.enabled) metrics.observeAlerting(() => alerting.status());

  // The Docker Engine is root-equivalent: only talk to it when discovery or nginx mode asks.
  const docker =
    config.docker.enabled || config.nginx.mode === 'docker'
      ? new Dockerode({ socketPath: config.docker.socket_path })
      : undefined;

  // --- nginx side: render -> validate -> swap -> reload, behind a coalescer -----------------
  let renderer = createRenderer({ templatePath: config.nginx.template_path });
  let templateError: string | null = null;
  try {
    await renderer.load();
  } catch (err) {
    templateError = describeError(err);
    log.error({ err: templateError }, 'template rejected');
  }
  const makeApplier = (previous?: UpstreamApplier) =>
    createRenderReloadApplier({
      nginx: config.nginx,
      renderer,
      control: createNginxControl(config.nginx, docker),
      ...(previous ? { previous } : {}),
    });
  let applier: UpstreamApplier = makeApplier();
  let lastOutcome: ApplyOutcome | null = null;
  let firstApplyDone = false;
  let lastDesiredKey = '';
  let lastDesired: DesiredSet | null = null;
  const panicking = new Set<string>();
  const failingOver = new Set<string>();

  // A failed update (nginx down, its config broken, Docker away) is tried again by itself, with
  // backoff: otherwise nothing would retry until the desired set changed again.
  let retryTimer: ReturnType<Clock['setTimeout']> | null = null;
  let retryDelayMs = APPLY_RETRY_MIN_MS;
  const scheduleRetry = () => {
    if (retryTimer) return;
    retryTimer = clock.setTimeout(() => {
      retryTimer = null;
      if (lastDesired && !stopping) coalescer.push(lastDesired);
    }, retryDelayMs);
    retryTimer.unref?.();
    retryDelayMs = Math.min(retryDelayMs * 2, APPLY_RETRY_MAX_MS);
  };
  let stopping = false;

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
      log.error(
        { stage: outcome.stage, err: outcome.error, retryInMs: retryTimer ? undefined : retryDelayMs },
        'nginx update failed; last good config kept',
      );
      scheduleRetry();
    } else {
      retryDelayMs = APPLY_RETRY_MIN_MS;
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

  let dockerSource: DockerSource | null = null;
  /** Apps of the YAML, then apps that only Docker labels define. */
  const allApps = (): AppConfig[] => {
    const extra = dockerSource?.state().apps ?? [];
    return [...config.apps, ...extra.filter((a) => !config.apps.some((c) => c.name === a.name))];
  };
  /** The last view of each container-backed backend, for failures of containers already gone. */
  const lastViewByContainer = new Map<string, BackendView>();

  /** Recomputes the desired upstreams; hands them to nginx only when they changed. */
  const refresh = () => {
    const views = registry.views();
    metrics.setBackends(views);
    for (const v of views) if (v.container) lastViewByContainer.set(v.container.id, v);
    const apps = allApps();
    const holds = config.recovery.mode === 'on' ? trafficHolds(plannerState) : null;
    const { set, panics, failovers } = buildDesiredSet(apps, views, holds ? { weightFactors: holds.weightFactors } : {});
    for (const app of apps) {
      const name = app.name;
      const backup = app.upstream.backup_app;
      switch (edge(failingOver, name, failovers.includes(name))) {
        case 'start':
          log.error({ app: name, backup_app: backup }, `every backend of the app is ejected: failing over to the servers of ${backup}`);
          events.push('recovery', clock.now(), `failover_to_backup: routing to ${backup}`, { app: name, strategy: 'failover_to_backup', backup_app: backup });
          break;
        case 'end':
          log.warn({ app: name }, 'failover over: routing to the app\'s own backends again');
          events.push('recovery', clock.now(), 'failover_to_backup over', { app: name, strategy: 'failover_to_backup' });
          break;
      }
      const panic = panics.includes(name);
      switch (edge(panicking, name, panic)) {
        case 'start':
          log.error({ app: name }, 'every backend of the app is ejected: routing to all of them (panic)');
          events.push('transition', clock.now(), 'panic: every backend ejected, routing to all', { app: name });
          break;
        case 'end':
          log.warn({ app: name }, 'panic over: routing to healthy backends only');
          events.push('transition', clock.now(), 'panic over', { app: name });
          break;
      }
      metrics.setPanic(name, panic);
    }
    // Until Docker has answered once, the containers' servers are unknown: writing now would
    // replace a good file with one that lacks them (502s). Keep nginx's file as it is.
    if (dockerSource && !snapshots.has('docker')) return;
    const key = JSON.stringify(set);
    if (key === lastDesiredKey) return;
    lastDesiredKey = key;
    lastDesired = set;
    coalescer.push(set);
  };

  const onTransitions = (transitions: Transition[]) => {
    if (transitions.length === 0) return;
    for (const t of transitions) {
      metrics.onTransition(t);
      store.transition(t);
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
    for (const t of transitions) {
      const view = registry.view(t.backendId);
      if (view) alerting.onBackend(view);
    }
    refresh();
  };

  /** Failure events from probes, Docker stats and the deadlock check: metrics, store, alerts, recovery, log. */
  const onFailures = (failures: FailureEvent[], view: BackendView | undefined) => {
    metrics.onFailures(failures);
    for (const f of failures) {
      store.failure(f);
      alerting.onFailure(f, view?.ejected ?? false);
    }
    // Only container-backed backends can be recovered.
    if (view?.container && executor && config.recovery.mode !== 'off') {
      const app = appSnapshot(view.app);
      for (const f of failures) recover({ kind: 'failure', event: f, backend: view, app });
    }
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
  };

  // --- Docker stats: high_resource_usage, application_memory_leak, and the deadlock check -------
  const resourceStates = new Map<string, ResourceState>();
  const latestSample = new Map<string, StatsSample>();
  let sampler: DockerStatsSampler | null = null;
  const startSampler = () => {
    sampler?.stop();
    sampler = null;
    const fd = config.failure_detection;
    if (!docker || !config.docker.enabled || fd.stats_interval_seconds <= 0) return;
    sampler = createDockerStatsSampler({
      docker,
      clock,
      intervalMs: fd.stats_interval_seconds * 1000,
      onError: (id, err) => log.debug({ container: id, err: describeError(err) }, 'docker stats failed'),
      onSample: (cid, sample) => {
        latestSample.set(cid, sample);
        const view = lastViewByContainer.get(cid);
        if (!view) return;
        const r = stepResources(resourceStates.get(cid) ?? initialResourceState(), sample, { backendId: view.backendId, app: view.app }, config.failure_detection);
        resourceStates.set(cid, r.state);
        if (r.events.length > 0) onFailures(r.events, registry.view(view.backendId) ?? view);
      },
    });
  };
  /**
   * An HTTP backend in a container that keeps timing out: if its port still accepts and its CPU
   * is idle, the process is stuck (application_deadlock), not overloaded or gone.
   */
  const checkDeadlock = (b: Backend, consecutiveTimeouts: number) => {
    void checkTcpAccept(b.host, b.port, b.health.timeout_seconds * 1000, clock).then((tcp) => {
      const view = registry.view(b.id);
      if (!view?.container) return;
      const cid = view.container.id;
      const r = detectDeadlock(
        resourceStates.get(cid) ?? initialResourceState(),
        { subject: { backendId: b.id, app: b.app }, consecutiveTimeouts, containerState: view.container.state, tcp, sample: latestSample.get(cid) ?? null },
        config.failure_detection,
        clock.now(),
      );
      resourceStates.set(cid, r.state);
      if (r.event) onFailures([r.event], view);
      else log.debug({ backend: b.id, verdict: r.verdict }, 'repeated timeouts, not a deadlock');
    });
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
      store.probe(result);
      if (failures.length > 0) {
        onFailures(failures, registry.view(b.id));
        const timeout = failures.find((f) => f.failureType === 'health_check_timeout');
        if (timeout && b.container && b.health.protocol === 'HTTP' && timeout.consecutiveCount >= config.failure_detection.deadlock_timeouts) {
          checkDeadlock(b, timeout.consecutiveCount);
        }
      }
      onTransitions(transitions);
    },
  });

  /** The latest full snapshot of each discovery source. */
  const snapshots = new Map<string, Snapshot>();
  /** Containers recovery is about to stop: ejected before the stop, like a `docker stop`. */
  const recoveryDraining = new Set<string>();
  const applySnapshot = () => {
    snapshots.set('file', snapshotFromConfig(config));
    // drain_instance holds (recorded in dry-run: never applied).
    const drained = config.recovery.mode === 'on' ? trafficHolds(plannerState).drainedContainerIds : new Set<string>();
    const seen = new Set<string>();
    const backends: Backend[] = [];
    for (const snap of snapshots.values()) {
      for (const b of snap.backends) {
        // The same address from two sources is one backend; the file source wins (it comes first).
        if (seen.has(b.id)) continue;
        seen.add(b.id);
        const held = b.container && (recoveryDraining.has(b.container.id) || drained.has(b.container.id));
        backends.push(held ? { ...b, draining: true } : b);
      }
    }
    const { added, removed } = registry.sync(backends);
    for (const id of removed) tickets.delete(id);
    if (removed.length > 0) alerting.onRemoved(removed);
    const running = backends.flatMap((b) => (b.container?.state === 'running' ? [b.container.id] : []));
    sampler?.setContainers(running);
    const live = new Set(running);
    for (const id of [...resourceStates.keys(), ...latestSample.keys()]) {
      if (!live.has(id)) {
        resourceStates.delete(id);
        latestSample.delete(id);
      }
    }
    if (added.length || removed.length) log.info({ added, removed }, 'backends changed');
    scheduler.setTargets(backends);
    refresh();
  };

  // --- recovery --------------------------------------------------------------------------------
  const executor = docker
    ? createRecoveryExecutor({
        actions: createDockerActions({ docker, stopTimeoutSeconds: config.recovery.stop_timeout_seconds, logger: log }),
        clock,
        logger: log,
        drain: async (action: PlannedAction) => {
          if (!action.containerId) return;
          recoveryDraining.add(action.containerId);
          applySnapshot();
          await coalescer.flush();
          // A reload only delivers a signal: until nginx has read the new config and replaced its
          // workers, the old ones still open new connections to this backend.
          await new Promise<void>((resolve) => clock.setTimeout(resolve, RELOAD_SETTLE_MS));
        },
        // redirect_traffic, drain_instance and their undoing change only what nginx is told: the
        // planner's state already holds the change, so apply it now.
        applyTraffic: async () => {
          applySnapshot();
          await coalescer.flush();
        },
        onRecord: (record: ActionRecord) => {
          metrics.onRecoveryAction(record);
          store.recoveryAction(record);
          events.push('recovery', record.startedAt, `${record.dryRun ? 'dry-run: ' : ''}${record.strategy} ${record.ok ? 'succeeded' : 'failed'}`, {
            app: record.app,
            backend: record.backendId,
            strategy: record.strategy,
            failure_type: record.failureType,
            container: record.containerId,
            new_container: record.newContainerId,
            ok: record.ok,
            dry_run: record.dryRun,
            error: record.error,
            reason: record.reason,
            duration_ms: Math.round(record.durationMs),
          });
          const line = { app: record.app, backend: record.backendId, strategy: record.strategy, ok: record.ok, dryRun: record.dryRun, err: record.error, reason: record.reason };
          if (record.ok) log.info(line, 'recovery action');
          else log.warn(line, 'recovery action failed');
        },
      })
    : null;

  const appSnapshot = (name: string): AppSnapshot => {
    const app = allApps().find((a) => a.name === name);
    return {
      name,
      maxReplicas: app?.docker.max_replicas ?? config.recovery.max_replicas,
      portRange: app?.docker.port_range ?? null,
      portEnv: app?.docker.port_env ?? 'PORT',
      recovery: app?.recovery ?? DEFAULT_APP_RECOVERY,
      replicas: registry.viewsOf(name),
    };
  };

  /** Feeds the planner and runs what it plans. */
  const recover = (input: PlannerInput) => {
    if (!executor || config.recovery.mode === 'off') return;
    const result = plan(plannerState, input, plannerConfig(config), clock.now());
    plannerState = result.state;
    for (const d of result.decisions) log.debug({ ...d }, 'recovery decision');
    for (const action of result.actions) {
      const running = executor.run(action);
      metrics.setRecoveryInFlight(executor.inFlight());
      void running.then((record) => {
        metrics.setRecoveryInFlight(executor.inFlight());
        if (action.containerId && recoveryDraining.delete(action.containerId)) applySnapshot();
        recover(resultInput(record));
      });
    }
  };

  /** Docker's own signals (exited, OOM, restart loop, never healthy) as failure events. */
  const onContainerEvent = (event: ContainerEvent, failures: ContainerFailure[]) => {
    if (event.action !== 'sync') {
      events.push('docker', event.at, `container ${event.name}: ${event.action}`, {
        ...(event.app ? { app: event.app } : {}),
        container: event.containerId,
        exit_code: event.exitCode,
        signal: event.signal,
        health: event.health,
      });
    }
    for (const f of failures) {
      const last = lastViewByContainer.get(f.containerId);
      if (!last || !f.app) {
        log.warn({ container: f.containerId, failure: f.failureType }, 'failure of a container that was never routed; not acted on');
        continue;
      }
      const now = clock.now();
      const severity = severityOf(f.failureType);
      const failure: FailureEvent = {
        failureType: f.failureType,
        backendId: last.backendId,
        app: f.app,
        severity,
        message: `${f.failureType}: container ${event.name}`,
        details: f.details,
        timestamp: now,
        consecutiveCount: 1,
        totalCount: 1,
        firstOccurrence: now,
        critical: isCritical(f.failureType, severity, 1),
      };
      metrics.onFailures([failure]);
      store.failure(failure);
      events.push('failure', now, failure.message, {
        app: f.app,
        backend: last.backendId,
        failure_type: f.failureType,
        severity,
        critical: failure.critical,
        details: f.details,
      });
      log.warn({ app: f.app, backend: last.backendId, failure: f.failureType, details: f.details }, 'container failure');
      const backend: BackendView = registry.view(last.backendId) ?? {
        ...last,
        container: event.container ?? last.container,
        ejected: true,
      };
      alerting.onFailure(failure, backend.ejected);
      recover({ kind: 'failure', event: failure, backend, app: appSnapshot(f.app) });
    }
  };

  let dockerConnected = true;
  if (docker && config.docker.enabled) {
    dockerSource = createDockerSource({
      docker,
      config: () => config,
      defaultHealth: () => config.defaults.health,
      clock,
      logger: log,
      onStatus: (status) => {
        dockerConnected = status.connected;
        metrics.setDockerConnected(status.connected);
        events.push('docker', clock.now(), status.connected ? 'Docker Engine connected' : `Docker Engine unreachable: ${status.error ?? ''}`);
        // An update that failed while the Engine was away (nginx in a container is tested and
        // reloaded through it) is due now: nothing else would retry an unchanged desired set.
        const last = lastOutcome as ApplyOutcome | null;
        if (status.connected && last?.result === 'failed' && lastDesired) coalescer.push(lastDesired);
      },
      onContainerEvent,
    });
  }

  // Scale-in of replicas recovery added, and timeouts of actions that never reported back.
  let tickTimer: ReturnType<Clock['setTimeout']> | null = null;
  const tick = () => {
    recover({ kind: 'tick', apps: allApps().map((a) => appSnapshot(a.name)) });
    tickTimer = clock.setTimeout(tick, 5000);
    tickTimer.unref?.();
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
      applier = makeApplier(applier);
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
      alerting.updateConfig(next.alerting);
      if (next.failure_detection.stats_interval_seconds !== prev.failure_detection.stats_interval_seconds) startSampler();
      if (JSON.stringify(next.store) !== JSON.stringify(prev.store)) {
        log.warn('store changes take effect after a restart');
      }
      if (next.alerting.enabled !== prev.alerting.enabled) {
        log.warn('alerting.enabled changes its metrics only after a restart; alerts follow the new setting now');
      }
      const nginxChanged = JSON.stringify(next.nginx) !== JSON.stringify(prev.nginx);
      if (nginxChanged) {
        coalescer.stop();
        coalescer = makeCoalescer();
        if (next.nginx.template_path !== prev.nginx.template_path) watchTemplate();
        void reloadTemplate();
      }
      if (next.docker.enabled !== prev.docker.enabled || next.docker.socket_path !== prev.docker.socket_path) {
        log.warn('docker.enabled and docker.socket_path changes take effect after a restart');
      }
      dockerSource?.resync();
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
    getApps: () => ({
      apps: allApps().map((a) => appJson(a, registry.views(), panicking.has(a.name))),
      state_store: (({ state, path, error }) => ({ state, path, error }))(store.status()),
      rejected_containers: (dockerSource?.state().rejected ?? []).map((r) => ({
        id: r.containerId,
        name: r.containerName,
        errors: r.errors,
      })),
    }),
    getApp: (name: string) => {
      const app = allApps().find((a) => a.name === name);
      return app ? appJson(app, registry.views(), panicking.has(app.name)) : undefined;
    },
    getEvents: (q) => events.list(q),
    getReport: async (name: string, hours: number) => {
      if (!allApps().some((a) => a.name === name)) return undefined;
      const status = store.status();
      if (status.state !== 'ok') {
        const why = status.state === 'disabled' ? 'the state store is disabled (store.enabled: false)' : `state store unavailable: ${status.error ?? status.path}`;
        throw new SidecarError('STORE_UNAVAILABLE', why);
      }
      try {
        return await store.report(name, hours);
      } catch (err) {
        throw new SidecarError('STORE_UNAVAILABLE', `state store could not report: ${describeError(err)}`);
      }
    },
    getRecovery: () => ({
      mode: config.recovery.mode,
      ...summarize(plannerState, plannerConfig(config), clock.now()),
    }),
    getAlerts: () => ({
      enabled: config.alerting.enabled,
      alerts: alerting.list().map((a) => ({
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
      receivers: alerting.status().byReceiver,
    }),
    readiness: () => {
      const reasons: string[] = [];
      if (dockerSource && !snapshots.has('docker')) reasons.push('waiting for the first list of containers from Docker');
      if (!firstApplyDone) reasons.push('nginx upstreams not yet written');
      if (dockerSource && !dockerConnected) {
        reasons.push(`Docker Engine unreachable (${config.docker.socket_path}): routing with the last known containers`);
      }
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
  if (dockerSource) {
    const source = dockerSource;
    // Before the first render: an upstream rendered before Docker answered would drop every
    // container-backed server from nginx until the first snapshot (502s at each sidecar start).
    await source.start((snapshot) => {
      snapshots.set(snapshot.source, snapshot);
      metrics.setRejectedContainers(source.state().rejected.length);
      applySnapshot();
      // A draining backend must leave nginx before its container stops: no coalescing wait.
      if (snapshot.backends.some((b) => b.draining)) void coalescer.flush();
    });
  }
  applySnapshot();
  // Alerts restored for backends that vanished while the sidecar was down resolve now.
  alerting.reconcile(registry.views().map((v) => v.backendId));
  startSampler();
  scheduler.start();
  persistLoop();
  if (executor) tick();
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
      stopping = true;
      if (tickTimer) clock.clearTimeout(tickTimer);
      if (retryTimer) clock.clearTimeout(retryTimer);
      if (persistTimer) clock.clearTimeout(persistTimer);
      (sampler as DockerStatsSampler | null)?.stop();
      await dockerSource?.stop();
      await scheduler.stop();
      coalescer.stop();
      alerting.stop();
      // The last word: states changed since the last flush, then everything queued is written.
      persistState();
      await store.close();
      await configWatcher.close();
      await (templateWatcher as FSWatcher | null)?.close();
      await admin.close();
      await httpProber.close();
      log.info('orchestry-sidecar stopped');
    },
  };
}

/**
 * Records whether `key` is in the state now and says whether that started or ended it, so a
 * condition (panic, failover) is logged once when it begins and once when it ends.
 */
function edge(active: Set<string>, key: string, now: boolean): 'start' | 'end' | null {
  const was = active.has(key);
  if (now === was) return null;
  if (now) active.add(key);
  else active.delete(key);
  return now ? 'start' : 'end';
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
