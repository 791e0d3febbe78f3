import { readFileSync } from 'node:fs';

/**
 * The package's name, version and engines, read once from package.json (one level above src/ and
 * dist/). Kept to what the oldest Node can load: the CLI entry reads `engines` from here before
 * anything that needs a newer Node is imported.
 */
const PKG: { version?: string; engines?: { node?: string } } = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as typeof PKG;
  } catch {
    return {};
  }
})();

/** The package version. */
export const VERSION: string = PKG.version ?? '0.0.0';

/** The Node versions package.json supports (`engines.node`, e.g. ">=22.19"), if it says. */
export const NODE_ENGINES: string | undefined = PKG.engines?.node;
