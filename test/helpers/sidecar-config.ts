/** A validated SidecarConfig from raw YAML data, for tests; throws with every issue otherwise. */
import { parseConfig } from '../../src/config/schema.js';
import type { SidecarConfig } from '../../src/config/types.js';

export function configOf(raw: unknown): SidecarConfig {
  const result = parseConfig(raw);
  if (!result.ok) throw new Error(result.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return result.config;
}
