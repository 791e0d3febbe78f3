/** `admin`, `probes` and `logging`: the sidecar process's own settings. */
import { listenAddress, token } from './allowlists.js';
import { duration, nullable, num, oneOf, type Section } from './check.js';
import { DEFAULT_ADMIN, DEFAULT_LOGGING, DEFAULT_PROBES, LOG_FORMATS, LOG_LEVELS } from './defaults.js';
import type { AdminConfig, LoggingConfig, ProbeSettings } from './types.js';

/** `admin`: the admin API, metrics and status page. */
export const ADMIN: Section<AdminConfig> = {
  defaults: DEFAULT_ADMIN,
  fields: {
    listen: { check: listenAddress, meaning: 'host:port or [ipv6]:port of the admin API, metrics and status page; ORCHESTRY_ADMIN_LISTEN overrides it.' },
    token: { check: nullable(token), meaning: 'Bearer token for state-changing endpoints (printable ASCII); ORCHESTRY_ADMIN_TOKEN overrides it.' },
    max_connections: {
      check: num({ int: true, min: 1, max: 100_000 }),
      meaning: 'Most admin connections open at once; a new one past it closes the oldest idle one, or is itself closed when all are busy.',
    },
    idle_timeout_seconds: { check: duration({ above: 0, max: 3600 }), meaning: 'An admin connection with nothing received or sent for this long (kept alive between requests, too) is closed.' },
    request_timeout_seconds: { check: duration({ above: 0, max: 3600 }), meaning: "An admin request's headers and body must arrive within this, or the connection is closed (408)." },
  },
};

/** `probes`: scheduling across all backends. */
export const PROBES: Section<ProbeSettings> = {
  defaults: DEFAULT_PROBES,
  fields: {
    max_concurrency: { check: num({ int: true, min: 1, max: 100_000 }), meaning: 'Most probes in flight at once, across all backends.' },
    jitter_fraction: { check: num({ min: 0, max: 1 }), meaning: "Spread of probe start times, as a fraction of each app's period." },
  },
};

/** `logging` */
export const LOGGING: Section<LoggingConfig> = {
  defaults: DEFAULT_LOGGING,
  fields: {
    level: { check: oneOf(LOG_LEVELS), meaning: 'Log level; ORCHESTRY_LOG_LEVEL overrides it.' },
    format: { check: oneOf(LOG_FORMATS), meaning: 'json: one JSON object a line, for a log collector; text: one readable line an event, for people. ORCHESTRY_LOG_FORMAT overrides it.' },
  },
};
