/** The static backends written in the config file, as a discovery snapshot. */
import type { SidecarConfig } from '../config/types.js';
import { backendId, type Snapshot } from '../model.js';
import type { DiscoverySource } from './types.js';

/** Source name of snapshots built from the config file. */
export const CONFIG_SOURCE_NAME = 'file';

/** Every backend listed under `apps.*.backends`, each carrying its app's health config. */
export function snapshotFromConfig(config: SidecarConfig): Snapshot {
  return {
    source: CONFIG_SOURCE_NAME,
    apps: config.apps,
    backends: config.apps.flatMap((app) =>
      app.backends.map((b) => ({
        id: backendId(app.name, b.host, b.port),
        app: app.name,
        host: b.host,
        port: b.port,
        weight: b.weight,
        backup: b.backup,
        health: app.health,
        source: CONFIG_SOURCE_NAME,
      })),
    ),
  };
}

/** The config file's backends as a DiscoverySource; see createConfigSource. */
export interface ConfigSource extends DiscoverySource {
  /** Emits the snapshot of the current config again (call it after the config changed). */
  refresh(): void;
}

/**
 * The static backends of whatever `config()` returns now, as a source like any other, so the
 * wiring can treat every source alike. The file watching stays with the config watcher.
 */
export function createConfigSource(opts: { config: () => SidecarConfig }): ConfigSource {
  let emit: ((snapshot: Snapshot) => void) | null = null;
  return {
    name: CONFIG_SOURCE_NAME,
    async start(onSnapshot) {
      emit = onSnapshot;
      emit(snapshotFromConfig(opts.config()));
    },
    async stop() {
      emit = null;
    },
    refresh() {
      emit?.(snapshotFromConfig(opts.config()));
    },
  };
}
