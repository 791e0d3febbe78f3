/** The store as a listener: every probe, failure, transition and recovery action is kept. */
import type { SidecarBus } from '../events/sidecar-events.js';
import type { StateStore } from './types.js';

export function subscribeStore(bus: SidecarBus, store: StateStore): void {
  bus.on('probe', (result) => store.probe(result));
  bus.on('failure', ({ event }) => store.failure(event));
  bus.on('transition', (t) => store.transition(t));
  bus.on('action', (record) => store.recoveryAction(record));
}
