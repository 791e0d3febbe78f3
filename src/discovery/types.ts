/**
 * The discovery source interface. A source reports the full set of backends it sees now, every
 * time; a reconnect or restart is simply another full snapshot (a resync), never a delta.
 */
import type { Snapshot } from '../model.js';

export interface DiscoverySource {
  /** Also the `source` of every snapshot it emits, e.g. `file`, `docker`. */
  readonly name: string;
  /** Begins watching; `emit` receives a full snapshot now and after every change. */
  start(emit: (snapshot: Snapshot) => void): Promise<void>;
  /** Stops watching; no snapshot is emitted after it resolves. */
  stop(): Promise<void>;
}
