/**
 * A typed, synchronous event bus: stages publish what happened, listeners (metrics, store, event
 * log, logger, alerting, other stages) subscribe. The core never calls a listener by hand, so a
 * new listener is one `on()` and no edit of the stage that emits.
 *
 * Listeners run in subscription order, synchronously, inside `emit`: an event is handled by every
 * listener before the emitter goes on (a transition is in the store's batch before the next probe
 * result is read). A listener that throws does not stop the others or the emitter; its error goes
 * to `onListenerError`. Modelled on cockatiel's EventEmitter: `on()` returns a disposable.
 */

/** What `on()` returns: call `dispose()` (or leave a `using` block) to unsubscribe. */
export interface Subscription extends Disposable {
  dispose(): void;
}

/** A map from event name to payload type, e.g. `{ transition: Transition }`. */
export type EventMap = object;

export interface EventBus<E extends EventMap> {
  /** Adds a listener for one event; it runs for every later `emit` of that event. */
  on<K extends keyof E>(name: K, listener: (payload: E[K]) => void): Subscription;
  /** Calls every listener of `name` with `payload`, in subscription order. Never throws. */
  emit<K extends keyof E>(name: K, payload: E[K]): void;
  /** How many listeners `name` has (for tests and for skipping work nobody listens to). */
  listenerCount(name: keyof E): number;
}

export interface EventBusOptions {
  /** Where a listener's exception goes; default: ignored after a console.error. */
  onListenerError?(name: string, err: unknown): void;
}

/** Creates an empty bus. */
export function createEventBus<E extends EventMap>(opts: EventBusOptions = {}): EventBus<E> {
  // Arrays are replaced, not mutated, on (un)subscribe: an emit in progress keeps its list.
  const listeners = new Map<keyof E, Array<(payload: never) => void>>();
  const report = opts.onListenerError ?? ((name: string, err: unknown) => console.error(`listener of ${name} failed:`, err));
  return {
    on(name, listener) {
      listeners.set(name, [...(listeners.get(name) ?? []), listener as (payload: never) => void]);
      let active = true;
      const dispose = () => {
        if (!active) return;
        active = false;
        listeners.set(name, (listeners.get(name) ?? []).filter((l) => l !== listener));
      };
      return { dispose, [Symbol.dispose]: dispose };
    },
    emit(name, payload) {
      const list = listeners.get(name);
      if (!list) return;
      for (const listener of list) {
        try {
          (listener as (p: typeof payload) => void)(payload);
        } catch (err) {
          report(String(name), err);
        }
      }
    },
    listenerCount: (name) => listeners.get(name)?.length ?? 0,
  };
}
