/** The static backends written in the config file, as a discovery snapshot. */
import type { SidecarConfig } from '../config/types.js';
import { backendId, type Snapshot } from '../model.js';

/** Source name of snapshots built from the config file. */
export const CONFIG_SOURCE_NAME = 'file';

/** Every backend listed under `apps.*.backends`, each carrying its app's health config. */
export function snapshotFromConfig(config: SidecarConfig): Snapshot {
  return {
    source: CONFIG_SOURCE_NAME,
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
