/**
 * `check-config` and `render`: what the daemon would do with a config file, without running it.
 * Both go through the daemon's own path, so neither accepts what the daemon refuses: the config
 * loader, then the routing stage's per-app check (upstream/settle.ts: an app nginx would refuse,
 * such as one whose every server is a backup, is held at a placeholder), then the render stage's
 * template and value checks (nginx/view-model.ts), with every backend routed.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { createSystemClock } from '../clock.js';
import { loadConfigFile, resolveConfigPath } from '../config/load.js';
import type { SidecarConfig } from '../config/types.js';
import { snapshotFromConfig } from '../discovery/config-source.js';
import { describeError } from '../errors.js';
import { createHealthRegistry } from '../health/registry.js';
import { createRenderer } from '../nginx/render.js';
import { toViewModel } from '../nginx/view-model.js';
import { buildDesiredSet } from '../upstream/desired.js';
import { settleSet, type HeldApp } from '../upstream/settle.js';
import { EXIT } from './args.js';

/** What the daemon would write at start with every backend routed, and what it would refuse. */
export interface UpstreamsPreview {
  /** The file's text, held apps as their placeholders; null when rendering failed. */
  text: string | null;
  /** Apps the daemon would not write as configured, each with nginx's reason. */
  held: HeldApp[];
  /** Why rendering failed (a template or value the render stage refuses), or null. */
  renderError: string | null;
}

/** See UpstreamsPreview. */
export async function previewUpstreams(config: SidecarConfig): Promise<UpstreamsPreview> {
  const registry = createHealthRegistry({ clock: createSystemClock(), breaker: config.breaker, detection: config.failure_detection });
  registry.sync(snapshotFromConfig(config).backends);
  const decided = buildDesiredSet(config.apps, registry.views()).set;
  // No last good upstream: a fresh start, where a held app gets its placeholder.
  const { set, held } = settleSet(decided, { lastGood: new Map() });
  try {
    const renderer = createRenderer({ templatePath: config.nginx.template_path });
    await renderer.load();
    return { text: renderer.render(toViewModel(set ?? decided)), held, renderError: null };
  } catch (err) {
    return { text: null, held, renderError: describeError(err) };
  }
}

/**
 * Files a local nginx needs that are not there: warnings, not errors (nginx may be installed or
 * started after the sidecar, which retries), but said before a deployment finds out.
 */
export function missingNginxFiles(config: SidecarConfig): string[] {
  const nginx = config.nginx;
  if (nginx.mode !== 'local') return [];
  const warnings: string[] = [];
  if (nginx.binary.includes('/') ? !existsSync(nginx.binary) : !onPath(nginx.binary)) {
    warnings.push(`nginx.binary: ${JSON.stringify(nginx.binary)} not found${nginx.binary.includes('/') ? '' : ' in PATH'}`);
  }
  if (!existsSync(nginx.config_path)) warnings.push(`nginx.config_path: ${JSON.stringify(nginx.config_path)} does not exist`);
  const outDir = dirname(nginx.output_path);
  if (!existsSync(outDir)) warnings.push(`nginx.output_path: directory ${JSON.stringify(outDir)} does not exist`);
  return warnings;
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(`${dir}/${name}`));
}

/** Every reason the daemon would refuse part of `config`, one line each. */
function problems(preview: UpstreamsPreview): string[] {
  return [
    ...preview.held.map((h) => `apps.${h.app}: the daemon would not write this upstream: ${h.reason}`),
    ...(preview.renderError ? [`render: ${preview.renderError}`] : []),
  ];
}

/** `check-config`: exit 0 if the daemon would take the file as it is (warnings allowed), 1 if not. */
export async function checkConfig(configFlag: string | undefined): Promise<number> {
  const path = resolveConfigPath(configFlag, process.env);
  const config = await loadConfigFile(path, process.env);
  const errors = problems(await previewUpstreams(config));
  for (const w of missingNginxFiles(config)) process.stderr.write(`warning: ${w}\n`);
  if (errors.length > 0) {
    process.stderr.write(`orchestry-sidecar: ${path}: refused:\n${errors.map((e) => `  ${e}\n`).join('')}`);
    return EXIT.failed;
  }
  const backends = config.apps.reduce((n, a) => n + a.backends.length, 0);
  process.stdout.write(`${path}: valid (${config.apps.length} apps, ${backends} backends)\n`);
  return EXIT.ok;
}

/** `render`: prints what the daemon would write now; exit 1 when it would hold an app (said on stderr). */
export async function render(configFlag: string | undefined): Promise<number> {
  const path = resolveConfigPath(configFlag, process.env);
  const preview = await previewUpstreams(await loadConfigFile(path, process.env));
  if (preview.text !== null) process.stdout.write(preview.text);
  const errors = problems(preview);
  for (const e of errors) process.stderr.write(`orchestry-sidecar: ${e}\n`);
  return errors.length > 0 ? EXIT.failed : EXIT.ok;
}
