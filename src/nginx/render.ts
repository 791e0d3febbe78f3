/**
 * Handlebars rendering of the upstreams file. Strict mode makes a misspelt variable an error
 * instead of an empty string that would silently produce a broken or wrong nginx config;
 * noEscape because the output is nginx config, not HTML (values are validated in view-model).
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { SidecarError, describeError } from '../errors.js';
import type { UpstreamsContext } from './view-model.js';

/**
 * The built-in template. src/nginx and dist/nginx are both two levels below the package root,
 * so the same relative URL works under vitest and after build.
 */
export const DEFAULT_TEMPLATE_PATH = fileURLToPath(
  new URL('../../templates/upstreams.conf.hbs', import.meta.url),
);

export interface Renderer {
  /** Absolute or configured path of the template in use. */
  readonly templatePath: string;
  /** Reads and compiles the template; throws SidecarError('TEMPLATE_INVALID'). */
  load(): Promise<void>;
  /** Renders with the loaded template; throws SidecarError('TEMPLATE_INVALID'). */
  render(context: UpstreamsContext): string;
}

/** A renderer for `templatePath`, or the built-in template when null. Call load() first. */
export function createRenderer(opts: { templatePath: string | null }): Renderer {
  const templatePath = opts.templatePath ?? DEFAULT_TEMPLATE_PATH;
  let compiled: HandlebarsTemplateDelegate<UpstreamsContext> | null = null;
  const fail = (err: unknown): never => {
    throw new SidecarError('TEMPLATE_INVALID', `template ${templatePath}: ${describeError(err)}`, {
      cause: err,
    });
  };
  return {
    templatePath,
    async load() {
      let source: string;
      try {
        source = await readFile(templatePath, 'utf8');
      } catch (err) {
        return fail(err);
      }
      // An isolated instance: helpers registered elsewhere must not change what we render.
      const hb = Handlebars.create();
      try {
        // compile() is lazy; parse now so a syntax error surfaces at load, not at first render.
        hb.parse(source);
        compiled = hb.compile<UpstreamsContext>(source, { noEscape: true, strict: true });
      } catch (err) {
        fail(err);
      }
    },
    render(context) {
      if (!compiled) return fail(new Error('not loaded (call load() first)'));
      try {
        return compiled(context);
      } catch (err) {
        return fail(err);
      }
    },
  };
}
