/**
 * The composition root: constructs every stage, subscribes the listeners, starts and stops them
 * in order. No decisions live here; each stage owns its state and its rules.
 *
 *   discovery ─discovery─> health monitor ─probe/transition/failure─> router ─> nginx sync
 *                                                  └─failure─> recovery ─holds─> router
 * Metrics, store, event log, logger and alerting listen on the bus (src/events).
 */
import { createAlerting } from './alerting/alerting.js';
import { subscribeAlerting } from './alerting/subscriber.js';
import { createSystemClock, type Clock } from './clock.js';
import { instanceId } from './config/instance.js';
import { loadConfigFile } from './config/load.js';
import type { SidecarConfig } from './config/types.js';
import { createConfigWatcher, type ReloadOutcome } from './config/watch.js';
import { createDiscovery } from './discovery/discovery.js';
import { createSidecarBus } from './events/sidecar-events.js';
import { createContainerFailures } from './health/container-failures.js';
import { createHealthMonitor } from './health/monitor.js';
import { createHealthRegistry } from './health/registry.js';
import { createResourceMonitor } from './health/resource-monitor.js';
import { createNginxSync } from './nginx/sync.js';
import { createPassiveMonitor } from './passive/monitor.js';
import { createSidecarAdmin } from './observability/api.js';
import { createEventLog } from './observability/event-log.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { subscribeEventLog, subscribeLogger, subscribeMetrics } from './observability/subscribers.js';
import { createRecoveryController } from './recovery/controller.js';
import { createStatePersister } from './store/persister.js';
import { createSqliteStore } from './store/sqlite-store.js';
import { subscribeStore } from './store/subscriber.js';
import { createRouter, ROUTING_MEMORY_KEY } from './upstream/router.js';
import { restoreUpstreams } from './upstream/settle.js';
import { ownListeningPorts } from './discovery/own-ports.js';
import { VERSION } from './version.js';

export interface SidecarOptions {
  configPath: string;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  /** Overrides the logger built from the config (tests pass a silent one). */ logger?: Logger;
}

export interface Sidecar {
  /** Where the admin server listens (resolved when port 0 was asked). */
  readonly admin: { host: string; port: number };
  /** Reads the config file now (SIGHUP; `by` is logged), logs an unchanged file (a change or a refusal logs itself), says what came of it. */
  reload(by: string): Promise<ReloadOutcome | 'closed'>;
  stop(): Promise<void>;
}

/** Starts every stage from a config file and returns once the admin server listens. */
export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const env = opts.env ?? process.env;
  const clock = opts.clock ?? createSystemClock();
  const settings: Settings = { configPath: opts.configPath, env, readAt: Date.now(), config: await loadConfigFile(opts.configPath, env) };
  const log = opts.logger ?? createLogger(settings.config.logging);
  const s = await construct(settings, clock, log);
  subscribe(s);
  // A new level applies at once (the format after a restart); a logger given by the caller stays as it is.
  if (!opts.logger) s.bus.on('config', ({ next }) => (log.level = next.logging.level));
  return start(s);
}

interface Settings {
  /** The configuration in effect; replaced on each valid edit of the file. */
  config: SidecarConfig;
  configPath: string;
  env: NodeJS.ProcessEnv;
  /** When the first config was read (file mtimes are real time, whatever the clock). */
  readAt: number;
}

type Stages = Awaited<ReturnType<typeof construct>>;

async function construct(settings: Settings, clock: Clock, log: Logger) {
  const config = settings.config;
  const current = () => settings.config;
  const bus = createSidecarBus((name, err) => log.error({ event: name, err: String(err) }, 'event listener failed'));
  const registry = createHealthRegistry({ clock, breaker: config.breaker, detection: config.failure_detection, timeoutHoldMs: (app) => nginx.timeoutHoldMs(app) });
  const store = createSqliteStore({ config: config.store, clock, logger: log });
  const persister = createStatePersister({ store, registry, clock, logger: log, intervalSeconds: () => current().store.flush_interval_seconds });
  // Before anything probes: breaker states, ejections, budgets and undelivered alerts come back.
  const restored = await persister.restore();
  // The Docker Engine is root-equivalent: only talk to it when discovery or nginx mode asks.
  // Loaded only then: dockerode brings ssh2, protobufjs and grpc (bench:scale: +33 MB RSS, 226 files).
  const docker = config.docker.enabled || config.nginx.mode === 'docker' ? new (await import('dockerode')).default({ socketPath: config.docker.socket_path }) : undefined;
  const discoveryDocker = config.docker.enabled ? docker : undefined;
  const nginx = createNginxSync({ clock, bus, nginx: config.nginx, docker });
  // The last upstreams of apps made of containers stand in for them until Docker answers.
  const memory = restoreUpstreams(restored.states.get(ROUTING_MEMORY_KEY));
  const router = createRouter({ clock, bus, registry, holds: () => recovery.holds(), slowStart: (app) => nginx.liveUpdates(app), leaveToNginx: () => current().nginx.leave_to_nginx, onDesired: (set, urgent) => nginx.update(set, urgent),
    restored: memory, onMemory: (_upstreams, json) => store.saveState(ROUTING_MEMORY_KEY, json) });
  const recovery = createRecoveryController({
    clock, bus, logger: log, registry, config: current, docker, apps: () => router.apps(), restored: restored.planner,
    applyHolds: async () => {
      router.refresh();
      await nginx.flush();
    },
  });
  const containerFailures = createContainerFailures({ clock, bus, registry, logger: log });
  const passive = createPassiveMonitor({ clock, bus, registry, logger: log, config: () => current().passive });
  const listening = { admin: null as number | null };
  return {
    settings, clock, log, bus, registry, store, persister, restored, docker, nginx, router, recovery, containerFailures, passive, listening,
    metrics: createMetrics({ docker: config.docker.enabled, configLoadedAt: clock.now(), instance: instanceId(config) }),
    events: createEventLog(),
    alerting: createAlerting({ config: config.alerting, clock, logger: log, persistence: store }),
    health: createHealthMonitor({ clock, bus, registry, config, version: VERSION, logger: log }),
    resources: createResourceMonitor({ clock, bus, registry, logger: log, docker: discoveryDocker, config: current }),
    discovery: createDiscovery({
      clock, bus, logger: log, config: current, docker: discoveryDocker,
      onContainerEvent: (event, failures) => containerFailures.onContainerEvent(event, failures),
      ownPorts: () => ownListeningPorts(current(), listening.admin, passive.address()),
      knownApps: [...memory.keys()].filter((name) => !config.apps.some((a) => a.name === name)),
    }),
  };
}

/** Listeners run in subscription order: the registry takes discovery's backends before the stages that read its views. */
function subscribe(s: Stages): void {
  const { bus, metrics, registry } = s;
  subscribeMetrics(bus, metrics, s.clock);
  subscribeStore(bus, s.store);
  subscribeEventLog(bus, s.events, s.clock);
  subscribeLogger(bus, s.log);
  subscribeAlerting(bus, s.alerting, registry);
  if (s.settings.config.store.enabled) metrics.observeStore(() => s.store.status());
  if (s.settings.config.alerting.enabled) metrics.observeAlerting(() => s.alerting.status());
  metrics.observeBackends(() => registry.views());
  metrics.observeFailover(() => ({ updateVia: s.nginx.status().updateVia?.mode ?? null, dns: s.nginx.dnsStats(), passive: s.passive.stats() }));
  bus.on('discovery', ({ backends }) => s.health.sync(backends));
  bus.on('discovery', ({ backends }) => s.containerFailures.remember(backends));
  bus.on('discovery', ({ backends }) => s.resources.track(backends));
  bus.on('discovery', (merged) => s.router.setDiscovery(merged));
  bus.on('config', ({ next }) => registry.updateConfig(next.breaker, next.failure_detection));
  bus.on('config', ({ prev, next }) => s.resources.reconfigure(prev, next));
  bus.on('config', ({ next }) => s.nginx.reconfigure(next.nginx));
  bus.on('config', () => s.discovery.reload());
}

async function start(s: Stages): Promise<Sidecar> {
  const { settings, bus } = s;
  const admin = createSidecarAdmin({ ...s, config: () => settings.config });
  // The admin address is the one start-up step that can fail on the host (address in use):
  // take it first, before anything probes or touches nginx.
  const address = await admin.start();
  s.listening.admin = address.port;
  s.alerting.restore(s.restored.alerts);
  await s.nginx.start();
  await s.discovery.start();
  // Alerts restored for backends that vanished while the sidecar was down resolve now.
  s.alerting.reconcile(s.registry.views().map((v) => v.backendId));
  s.resources.start();
  await s.passive.start();
  s.health.start();
  s.persister.start(() => s.recovery.state());
  s.recovery.start();
  await s.nginx.flush();
  const configWatcher = createConfigWatcher({
    path: settings.configPath, env: settings.env,
    initial: settings.config, initialReadAt: settings.readAt,
    onChange: (next) => {
      const prev = settings.config;
      settings.config = next;
      bus.emit('config', { prev, next });
    },
    onError: (err) => bus.emit('config-rejected', { error: err.message }),
  });
  await configWatcher.ready;
  s.log.info({ admin: `${address.host}:${address.port}`, version: VERSION, instance: s.metrics.instance }, 'orchestry-sidecar started');
  let stopping: Promise<void> | null = null;
  return {
    admin: address,
    async reload(by) {
      s.log.info({ by }, 'configuration reload requested');
      const outcome = await configWatcher.reload();
      if (outcome === 'unchanged') s.log.info({ by }, 'configuration reloaded: unchanged');
      return outcome;
    },
    stop: () => (stopping ??= stop(s, [configWatcher, admin])),
  };
}

async function stop(s: Stages, closers: Array<{ close(): Promise<void> }>): Promise<void> {
  await s.recovery.stop();
  s.router.stop();
  s.resources.stop();
  await s.discovery.stop();
  await s.health.stop();
  await s.passive.stop();
  await s.nginx.stop();
  s.alerting.stop();
  // The last word: states changed since the last flush, then everything queued is written.
  s.persister.stop();
  await s.store.close();
  for (const c of closers) await c.close();
  s.log.info('orchestry-sidecar stopped');
}
