/**
 * Which strategies recovery tries for which failure, in order, and the sets of strategies and
 * failure types the planner's rules treat alike.
 */
import type { FailureType } from '../health/types.js';
import type { Strategy } from './types.js';

/**
 * The seed's strategy map, in order of preference, with the seed's remaining strategies placed
 * and port_not_listening added (the seed folds a refused connection into network_unreachable,
 * but the prober tells them apart, and a closed port is most often an app that died or never
 * bound, which a restart addresses first).
 *
 * - restart_dependencies before any per-replica restart for probe failures: when at least half
 *   of an app's replicas (and at least 2) are ejected for failed, erroring or timing-out checks at
 *   the same time, the common cause is more likely what they share (database, cache) than each
 *   of them, and restarting every replica would not help. Only apps that declare
 *   recovery.dependencies; health_check_error gets only this (a TLS or unknown probe error of one
 *   backend is more often a probe or certificate problem than a broken container).
 * - redirect_traffic first for a slow (high_response_time), erroring (high_error_rate) or busy
 *   (high_resource_usage) backend that is still healthy: half its share of traffic, instead of
 *   ejecting capacity, until the signal has been gone for scale_in_after_seconds. It is the only
 *   strategy for high_error_rate: intermittent errors that never reach the failure threshold do
 *   not justify stopping a container, and a lower weight cuts the errors users see in proportion.
 * - clear_cache before scale_out/restart for high_resource_usage of memory (not CPU: freeing a
 *   cache costs CPU) and before rolling_restart for application_memory_leak, when the app declares
 *   the call: the cheapest thing that can give memory back, tried once per restart window.
 * - rolling_restart for application_memory_leak: every replica runs the same code under the same
 *   load, so one leaking means all will; restarting them one at a time, drained and waiting for
 *   each to be healthy again, resets them without losing capacity.
 * - drain_instance for container_restart_loop: Docker's restart policy is already restarting it
 *   (acting would race it), but between crashes it passes a probe or two and is readmitted, so
 *   nginx keeps sending it requests that die with it. Drained, it stays out of nginx (still
 *   probed) until it has run startup_grace_seconds healthy without a restart.
 * - application_deadlock: a deadlocked process does not recover by itself; out of nginx (drained
 *   first if not yet ejected), then restarted.
 * Types without strategies, and why:
 * - dns_resolution_failed: not the container's fault.
 * - application_startup_failed: a restart resets a slow start and makes it worse.
 */
export const STRATEGY_MAP: Readonly<Record<FailureType, readonly Strategy[]>> = Object.freeze({
  health_check_failed: ['remove_from_lb', 'restart_dependencies', 'restart_container', 'recreate_container'],
  health_check_timeout: ['remove_from_lb', 'restart_dependencies', 'restart_container'],
  health_check_error: ['restart_dependencies'],
  high_response_time: ['redirect_traffic', 'remove_from_lb', 'scale_out', 'restart_container'],
  high_error_rate: ['redirect_traffic'],
  high_resource_usage: ['redirect_traffic', 'clear_cache', 'scale_out', 'restart_container', 'replace_instance'],
  container_stopped: ['recreate_container', 'replace_instance'],
  container_oom_killed: ['replace_instance', 'scale_out'],
  container_restart_loop: ['drain_instance'],
  network_unreachable: ['remove_from_lb', 'recreate_container'],
  port_not_listening: ['remove_from_lb', 'restart_container', 'recreate_container'],
  dns_resolution_failed: [],
  application_startup_failed: [],
  application_deadlock: ['remove_from_lb', 'restart_container'],
  application_memory_leak: ['clear_cache', 'rolling_restart'],
});

/** Strategies that act on one container: restart, recreate, replace. */
const CONTAINER_LEVEL: ReadonlySet<Strategy> = new Set(['restart_container', 'recreate_container', 'replace_instance']);
/** Strategies that stop a container that may be serving (replace stops the old one). */
export const STOPPING: ReadonlySet<Strategy> = new Set([...CONTAINER_LEVEL, 'scale_in', 'rolling_restart']);
/** Strategies that only change where nginx sends traffic: they never end the strategy loop. */
export const TRAFFIC: ReadonlySet<Strategy> = new Set(['remove_from_lb', 'redirect_traffic', 'drain_instance']);
/**
 * Failure types a single probe produces. Container-level actions for these wait until the
 * health stage has ejected the backend: recovery reacts to transitions, never single probes.
 */
export const PROBE_TYPES: ReadonlySet<FailureType> = new Set([
  'health_check_failed',
  'health_check_timeout',
  'health_check_error',
  'high_response_time',
  'high_error_rate',
  'network_unreachable',
  'port_not_listening',
  'dns_resolution_failed',
]);
/** Probe failures that, on many replicas at once, point at a dependency they share. */
export const DEPENDENCY_TYPES: ReadonlySet<FailureType> = new Set(['health_check_failed', 'health_check_error', 'health_check_timeout']);
