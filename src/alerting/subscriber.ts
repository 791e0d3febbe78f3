/**
 * Alerting as a listener: failures may fire alerts, a backend routed again resolves them, a
 * backend that discovery dropped resolves them too.
 */
import type { SidecarBus } from '../events/sidecar-events.js';
import type { HealthRegistry } from '../health/registry.js';
import type { Alerting } from './alerting.js';

export function subscribeAlerting(bus: SidecarBus, alerting: Alerting, registry: HealthRegistry): void {
  bus.on('failure', ({ event, view }) => alerting.onFailure(event, view?.ejected ?? false));
  bus.on('transition', (t) => {
    const view = registry.view(t.backendId);
    if (view) alerting.onBackend(view);
  });
  bus.on('backends', ({ removed }) => {
    if (removed.length > 0) alerting.onRemoved(removed);
  });
  bus.on('config', ({ next }) => alerting.updateConfig(next.alerting));
}
