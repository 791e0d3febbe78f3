/**
 * Pure: whether this Node can run the sidecar. Below the `engines` version a dependency fails
 * at import with a stack trace (undici on Node 20: "ReferenceError: File is not defined", node:sqlite
 * missing) that says nothing about the cause; the CLI says it in one line instead. Loaded before
 * anything else, so it must itself run on any Node.
 */

/**
 * Why Node `actual` (process.versions.node, "20.20.2") is too old for `range` (">=22.19" or
 * ">=22.19.0"; other forms are not checked), or null when it is recent enough.
 */
export function nodeVersionProblem(actual: string, range: string | undefined): string | null {
  const min = /^\s*>=\s*v?(\d+(?:\.\d+){0,2})\s*$/.exec(range ?? '')?.[1];
  if (min === undefined) return null;
  const have = parts(actual);
  const need = parts(min);
  for (let i = 0; i < 3; i++) {
    if (have[i]! > need[i]!) return null;
    if (have[i]! < need[i]!) {
      return `Node.js ${min} or newer is required (package.json engines "${range!.trim()}"); this is Node.js ${actual}`;
    }
  }
  return null;
}

function parts(version: string): number[] {
  const p = version.replace(/^v/, '').split('.').map((x) => Number.parseInt(x, 10) || 0);
  return [p[0] ?? 0, p[1] ?? 0, p[2] ?? 0];
}
