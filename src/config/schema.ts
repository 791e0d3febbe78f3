/**
 * Validation of the YAML configuration into a defaulted SidecarConfig. This is a security
 * boundary: values end up in nginx's config and in probe requests, so names, hosts and paths are
 * checked against allowlists rather than blocklists, and every problem is reported at once with
 * the path a user writes and the value they wrote.
 *
 * Where things are: check.ts (the validation toolkit), allowlists.ts (addresses, hosts, paths,
 * headers, URLs, names), defaults.ts (every default and enum), spec-*.ts (one table per section:
 * key, check, default via defaults.ts, meaning), reference.ts (the document's shape, from which
 * json-schema.ts and the docs' key reference are generated).
 */
import type { FieldIssue } from '../errors.js';
import { createIssues, field, isMap, readMap, readSection, sectionKeys, show } from './check.js';
import { DEFAULT_HEALTH } from './defaults.js';
import { TOP_LEVEL } from './instance.js';
import { CONFIG_TREE } from './reference.js';
import { parseAlerting } from './spec-alerting.js';
import { parseApps } from './spec-apps.js';
import { ADMIN, LOGGING, PROBES } from './spec-daemon.js';
import { FAILURE_DETECTION, parseBreaker } from './spec-detection.js';
import { parseDocker } from './spec-docker.js';
import { parseHealthFields } from './spec-health.js';
import { parseNginx } from './spec-nginx.js';
import { parseRecovery } from './spec-recovery.js';
import { parseStore } from './spec-store.js';
import type { SidecarConfig } from './types.js';

// Every name this module exported before the split, so that existing importers keep working;
// new code imports a name from the module that defines it.
export { bool, num, oneOf, show, type Check, type Report } from './check.js';
export { parseExpectedBody, type ExpectedBody } from './expected-body.js';
export {
  DEFAULT_APP_DOCKER,
  DEFAULT_APP_RECOVERY,
  DEFAULT_FAILURE_DETECTION,
  DEFAULT_HEALTH,
} from './defaults.js';
import { parsePassive } from './spec-passive.js';
export { clearCacheCall, defaultApp } from './spec-apps.js';
export { parseHealthOverlay } from './spec-health.js';

const TOP_KEYS = [...sectionKeys(TOP_LEVEL), ...Object.keys(CONFIG_TREE.children)];

/**
 * Validates raw parsed YAML into a defaulted SidecarConfig, collecting every issue. Relative
 * nginx paths are resolved against `opts.baseDir` (the config file's directory) when given.
 */
export function parseConfig(
  raw: unknown,
  opts: { baseDir?: string } = {},
): { ok: true; config: SidecarConfig } | { ok: false; issues: FieldIssue[] } {
  const { issues, report } = createIssues();
  if (raw !== undefined && raw !== null && !isMap(raw)) {
    return { ok: false, issues: [{ path: '', message: `the document must be a map (got ${show(raw)})` }] };
  }
  const top = readMap(raw, '', TOP_KEYS, report) ?? {};
  const instance = field(top, '', 'instance', TOP_LEVEL.defaults.instance, TOP_LEVEL.fields.instance.check, report);

  const defaults = readMap(top.defaults, 'defaults', ['health'], report) ?? {};
  const healthDefaults = parseHealthFields(defaults.health, 'defaults.health', report);
  const nginx = parseNginx(top.nginx, opts.baseDir, report);
  // Whether apps may be absent depends on docker.enabled; its issues still come after the apps'.
  const dockerIssues = createIssues();
  const docker = parseDocker(top.docker, dockerIssues.report);
  const apps = parseApps(top.apps, healthDefaults, nginx, report, issues, docker.enabled);
  issues.push(...dockerIssues.issues);
  // The order of these calls is the order of their issues.
  const config: SidecarConfig = {
    instance,
    // The seed's health defaults under defaults.health: the base of apps that only Docker
    // labels define.
    defaults: { health: structuredClone({ ...DEFAULT_HEALTH, ...healthDefaults }) },
    apps,
    docker,
    recovery: parseRecovery(top.recovery, report),
    store: parseStore(top.store, opts.baseDir, report),
    alerting: parseAlerting(top.alerting, report),
    breaker: parseBreaker(top.breaker, report),
    failure_detection: readSection(top.failure_detection, 'failure_detection', FAILURE_DETECTION, report),
    passive: parsePassive(top.passive, report),
    nginx,
    admin: readSection(top.admin, 'admin', ADMIN, report),
    probes: readSection(top.probes, 'probes', PROBES, report),
    logging: readSection(top.logging, 'logging', LOGGING, report),
  };
  return issues.length > 0 ? { ok: false, issues } : { ok: true, config };
}
