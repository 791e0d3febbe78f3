import { parseConfig } from '../../src/config/schema.js';
import type { SidecarConfig } from '../../src/config/types.js';
import { createConfigSource } from '../../src/discovery/config-source.js';
import type { Snapshot } from '../../src/model.js';
import { discoverySourceSuite } from '../helpers/discovery-suite.js';

function config(backends: string[]): SidecarConfig {
  const result = parseConfig({ apps: { web: { backends } } });
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

const ids = (s: Snapshot) => s.backends.map((b) => b.id);

discoverySourceSuite('config source', async () => {
  let current = config(['127.0.0.1:8001']);
  // The config watcher refreshes every config source after an edit.
  const sources = [createConfigSource({ config: () => current })];
  return {
    source: sources[0]!,
    initial: (s) => ids(s).includes('web/127.0.0.1:8001'),
    async change() {
      current = config(['127.0.0.1:8001', '127.0.0.1:8002']);
      for (const source of sources) source.refresh();
      return (s) => ids(s).includes('web/127.0.0.1:8002');
    },
    witness() {
      const source = createConfigSource({ config: () => current });
      sources.push(source);
      return source;
    },
    close: async () => {
      for (const source of sources) await source.stop();
    },
  };
});
