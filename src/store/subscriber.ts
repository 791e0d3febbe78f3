/** The store as a listener: every probe (but local errors), failure, transition and recovery action is kept. */
import type { SidecarBus } from '../events/sidecar-events.js';
import type { StateStore } from './types.js';

export function subscribeStore(bus: SidecarBus, store: StateStore): void {
  // A probe that failed for a local reason checked nothing: it would count as downtime in reports.
  bus.on('probe', (result) => {
    if (result.errorClass !== 'local_error') store.probe(result);
  });
  bus.on('failure', ({ event }) => store.failure(event));
  bus.on('transition', (t) => store.transition(t));
  bus.on('action', (record) => store.recoveryAction(record));
}
