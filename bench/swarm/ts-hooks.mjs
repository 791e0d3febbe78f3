// Module resolution hooks that let a bench script import the TypeScript test helpers
// (test/helpers/*.ts) directly: Node strips their types itself, and these hooks map the `.js`
// specifiers they use (TypeScript's NodeNext style) to the `.ts` file when no `.js` file exists.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** @type {import('node:module').ResolveHook} */
export async function resolve(specifier, context, next) {
  if (specifier.endsWith('.js') && (specifier.startsWith('.') || specifier.startsWith('file:')) && context.parentURL?.startsWith('file:')) {
    const url = new URL(specifier, context.parentURL);
    const ts = new URL(url.href.replace(/\.js$/, '.ts'));
    if (!existsSync(fileURLToPath(url)) && existsSync(fileURLToPath(ts))) return next(ts.href, context);
  }
  return next(specifier, context);
}
