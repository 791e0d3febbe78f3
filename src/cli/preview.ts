/**
 * What the daemon would write at start, without running it: the files of nginx.output_path (and
 * nginx.stream_output_path) as the nginx stage renders them, for the update mode the daemon would
 * be in. Both `check-config` and `render` go through this, so neither accepts what the daemon
 * refuses: the config loader, then the routing stage's per-app check (upstream/settle.ts: an app
 * nginx would refuse, such as one whose every server is a backup, is held at a placeholder), then
 * the render stage's template and value checks (nginx/view-model.ts), with every backend routed.
 *
 * The mode matters: in DNS mode an app is a `zone` upstream with one `server ... resolve` line,
 * in reload mode its servers are listed (nginx/update-mode.ts). `auto` is settled the way the
 * daemon settles it, by asking nginx its version (`nginx -v`, in its container in docker mode).
 */
import type Dockerode from 'dockerode';
import { createSystemClock } from '../clock.js';
import type { NginxConfig, SidecarConfig } from '../config/types.js';
import { snapshotFromConfig } from '../discovery/config-source.js';
import { describeError } from '../errors.js';
import { createHealthRegistry } from '../health/registry.js';
import { outputFiles, renderOutputs } from '../nginx/applier.js';
import { createNginxControl, type NginxControl } from '../nginx/control.js';
import { renderingOf } from '../nginx/dns-applier.js';
import { buildZoneTable, DEFAULT_SERVICE } from '../nginx/dns/records.js';
import { createRenderer } from '../nginx/render.js';
import { chooseUpdateMode, type UpdateVia } from '../nginx/update-mode.js';
import { toViewModel, type UpstreamsContext } from '../nginx/view-model.js';
import { buildDesiredSet } from '../upstream/desired.js';
import { settleSet, type HeldApp } from '../upstream/settle.js';
import type { DesiredSet } from '../upstream/types.js';

/** One file the daemon would write. */
export interface PreviewFile {
  field: 'nginx.output_path' | 'nginx.stream_output_path';
  path: string;
  text: string;
}

/** What the daemon would write at start with every backend routed, and what it would refuse. */
export interface UpstreamsPreview {
  /** The files, held apps as their placeholders; empty when rendering failed. */
  files: PreviewFile[];
  /** Apps the daemon would not write as configured, each with nginx's reason. */
  held: HeldApp[];
  /** Why rendering failed (a template or value the render stage refuses), or null. */
  renderError: string | null;
}

/** The update mode the files are rendered for, and why (for stderr). */
export interface PreviewMode {
  mode: UpdateVia;
  why: string;
  /** Things the preview had to assume, one line each (the version unknown, a port picked at start). */
  notes: string[];
}

/** The config's nginx control, as the daemon builds it (with a Docker client in docker mode). */
export async function nginxControlOf(config: SidecarConfig): Promise<{ control: NginxControl; docker: Dockerode | undefined }> {
  const docker = config.nginx.mode === 'docker' ? new (await import('dockerode')).default({ socketPath: config.docker.socket_path }) : undefined;
  return { control: createNginxControl(config.nginx, docker), docker };
}

/**
 * The mode the daemon would choose (update-mode.ts chooseUpdateMode), asking `control` nginx's
 * version when update_via is auto. What the daemon cannot know before it runs (its DNS server
 * failing to listen makes it fall back to reload mode) is not guessed.
 */
export async function settleMode(nginx: NginxConfig, control: () => NginxControl): Promise<PreviewMode> {
  const notes: string[] = [];
  let version: string | null = null;
  if (nginx.update_via === 'auto') {
    try {
      version = await control().version();
    } catch (err) {
      notes.push(`nginx.update_via is auto and nginx's version could not be read (${describeError(err)}): rendered for reload mode, as the daemon would choose`);
    }
  }
  const chosen = chooseUpdateMode(nginx.update_via, version);
  if (nginx.update_via === 'auto' && version !== null) notes.push(`nginx.update_via is auto: ${chosen.mode} mode (${chosen.why})`);
  if (chosen.mode === 'dns' && nginx.dns_resolver === null && /:0$/.test(nginx.dns_listen)) {
    notes.push(`nginx.dns_listen ${nginx.dns_listen} lets the daemon pick a free port at start: the resolver line shows port 0 where the daemon writes the port it got`);
  }
  return { ...chosen, notes };
}

/** See UpstreamsPreview; `mode` from settleMode. */
export async function previewUpstreams(config: SidecarConfig, mode: Pick<PreviewMode, 'mode'>): Promise<UpstreamsPreview> {
  const registry = createHealthRegistry({ clock: createSystemClock(), breaker: config.breaker, detection: config.failure_detection });
  registry.sync(snapshotFromConfig(config).backends);
  const decided = buildDesiredSet(config.apps, registry.views()).set;
  // No last good upstream: a fresh start, where a held app gets its placeholder.
  const { set, held } = settleSet(decided, { lastGood: new Map() });
  const final = set ?? decided;
  const outputs = outputFiles(config.nginx);
  try {
    const renderer = createRenderer({ templatePath: config.nginx.template_path });
    await renderer.load();
    const viewModel = mode.mode === 'dns' ? dnsViewModel(config.nginx, final) : (s: DesiredSet) => toViewModel(s);
    const texts = renderOutputs(outputs, renderer, viewModel, final);
    return { files: outputs.map((o, i) => ({ field: o.field, path: o.path, text: texts[i]! })), held, renderError: null };
  } catch (err) {
    return { files: [], held, renderError: describeError(err) };
  }
}

/**
 * DNS mode's template context, as the DNS applier builds it: the zone the DNS server would
 * publish for `set` says which apps nginx resolves; the resolver is dns_resolver, else dns_listen.
 */
function dnsViewModel(nginx: NginxConfig, set: DesiredSet): (s: DesiredSet) => UpstreamsContext {
  const build = buildZoneTable(set, { zone: nginx.dns_zone, service: DEFAULT_SERVICE }, 1);
  const rendering = renderingOf(set, build, { zone: nginx.dns_zone, service: DEFAULT_SERVICE, resolver: nginx.dns_resolver ?? nginx.dns_listen });
  return (s) => toViewModel(s, rendering);
}
