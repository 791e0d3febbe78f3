/**
 * `check-config` and `render`: what the daemon would do with a config file, without running it
 * (preview.ts: the daemon's own checks and rendering, for the update mode it would choose).
 * `check-config --nginx` also runs `nginx -t` on the rendered files (nginx-check.ts).
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadConfigFile, resolveConfigPath } from '../config/load.js';
import type { SidecarConfig } from '../config/types.js';
import { EXIT } from './args.js';
import { checkWithNginx } from './nginx-check.js';
import { nginxControlOf, previewUpstreams, settleMode, type UpstreamsPreview } from './preview.js';

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
  for (const [field, path] of [['output_path', nginx.output_path], ['stream_output_path', nginx.stream_output_path]] as const) {
    if (path !== null && !existsSync(dirname(path))) warnings.push(`nginx.${field}: directory ${JSON.stringify(dirname(path))} does not exist`);
  }
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

/** The config at `configFlag`, the mode the daemon would choose (notes said on stderr), and the preview. */
async function prepare(configFlag: string | undefined) {
  const path = resolveConfigPath(configFlag, process.env);
  const config = await loadConfigFile(path, process.env);
  const nginx = await nginxControlOf(config);
  const mode = await settleMode(config.nginx, () => nginx.control);
  for (const n of mode.notes) process.stderr.write(`orchestry-sidecar: note: ${n}\n`);
  return { path, config, nginx, preview: await previewUpstreams(config, mode) };
}

/**
 * `check-config`: exit 0 if the daemon would take the file as it is (warnings allowed), 1 if not.
 * With `nginx`, the rendered files must also pass `nginx -t`, and what nginx needs must be there.
 */
export async function checkConfig(configFlag: string | undefined, opts: { nginx?: boolean } = {}): Promise<number> {
  const { path, config, nginx, preview } = await prepare(configFlag);
  const errors = problems(preview);
  const missing = missingNginxFiles(config);
  if (opts.nginx) errors.push(...missing.map((m) => `${m} (nginx -t cannot run)`));
  else for (const w of missing) process.stderr.write(`warning: ${w}\n`);
  let passed: string | null = null;
  if (opts.nginx && errors.length === 0) {
    const checked = await checkWithNginx(config, nginx.control, preview.files);
    if (checked.result === 'failed') errors.push(checked.error);
    else passed = checked.summary;
  }
  if (errors.length > 0) {
    process.stderr.write(`orchestry-sidecar: ${path}: refused:\n${errors.map((e) => `  ${e}\n`).join('')}`);
    return EXIT.failed;
  }
  const backends = config.apps.reduce((n, a) => n + a.backends.length, 0);
  process.stdout.write(`${path}: valid (${config.apps.length} apps, ${backends} backends)\n${passed ? `${passed}\n` : ''}`);
  return EXIT.ok;
}

/**
 * `render`: prints what the daemon would write now: the file of nginx.output_path, or with
 * stream_output_path set both files, each after a `# ==> PATH (FIELD) <==` line. Exit 1 when
 * the daemon would hold an app (said on stderr).
 */
export async function render(configFlag: string | undefined): Promise<number> {
  const { preview } = await prepare(configFlag);
  const many = preview.files.length > 1;
  for (const f of preview.files) process.stdout.write(many ? `# ==> ${f.path} (${f.field}) <==\n${f.text}` : f.text);
  const errors = problems(preview);
  for (const e of errors) process.stderr.write(`orchestry-sidecar: ${e}\n`);
  return errors.length > 0 ? EXIT.failed : EXIT.ok;
}
