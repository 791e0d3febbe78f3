/**
 * The sidecar's own identity (`instance`): which sidecar a metric, an API answer or a status page
 * comes from when several run (one per Swarm node is the usual shape). Set in the file or by
 * ORCHESTRY_INSTANCE; left unset it is the host name, which in a container is the container's
 * (a stack file sets it to the node's name with `hostname: "{{.Node.Hostname}}"`).
 */
import { hostname } from 'node:os';
import { nullable, show, withSchema, type Check, type Section } from './check.js';

/**
 * What an identity may be: letters, digits and `_ . : -`, starting with a letter or digit, at most
 * 64 characters. Any of these is a Prometheus label value, a path segment and a log field as it is.
 */
export const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** An identity as configured. */
export const instanceName: Check<string> = withSchema((value, path, report) => {
  if (typeof value !== 'string' || !INSTANCE_ID.test(value)) {
    return report(
      path,
      `must start with a letter or digit and contain only letters, digits, '_', '.', ':', '-' (at most 64 characters) (got ${show(value)})`,
    );
  }
  return value;
}, { type: 'string', pattern: INSTANCE_ID.source });

/** The document's own top-level keys (next to its sections). */
export interface TopLevelConfig {
  /** This sidecar's identity; null: the host name. */
  instance: string | null;
}

/** The top-level keys that are not sections. */
export const TOP_LEVEL: Section<TopLevelConfig> = {
  defaults: { instance: null },
  fields: {
    instance: {
      check: nullable(instanceName),
      meaning:
        "This sidecar's identity: the `sidecar` label on every metric, `instance` in /api/v1/apps, the status page's header; null: the host name. ORCHESTRY_INSTANCE overrides it.",
    },
  },
};

/**
 * The identity this sidecar reports: `instance` when set, else `host` (the host name) made
 * label-safe: other characters become `-`, and an empty result is `sidecar`.
 */
export function instanceId(config: TopLevelConfig, host: string = hostname()): string {
  if (config.instance !== null) return config.instance;
  const safe = host.replace(/[^A-Za-z0-9_.:-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return safe === '' ? 'sidecar' : safe;
}
