/**
 * Where in the YAML text a config path was written, so an error can say `sidecar.yaml:12:7`
 * (editors and terminals jump there). Pure: a parsed document and its line counter in, a
 * position out.
 */
import { isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';

/** A 1-based line and column. */
export interface TextPosition {
  line: number;
  column: number;
}

/**
 * The position of `path` (as validation writes it: `apps.web.health.timeout_seconds`,
 * `apps["odd key"]`, `backends[0]`) in `doc`: the key itself when `at` is 'key' (an unknown
 * key), else its value. Where the path leaves the document (a default, a value from the
 * environment), the deepest node it reached; undefined for the whole document.
 */
export function locatePath(doc: Document, counter: LineCounter, path: string, at: 'key' | 'value' = 'value'): TextPosition | undefined {
  const segments = pathSegments(path);
  if (segments === undefined || segments.length === 0) return undefined;
  let node: unknown = doc.contents;
  let found: Node | undefined;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      const key = pair.key as Node;
      const value = pair.value as Node | null;
      found = last && (at === 'key' || !value?.range) ? key : (value ?? key);
      node = value;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      found = node.items[seg] as Node;
      node = found;
    } else {
      break;
    }
  }
  const offset = found?.range?.[0];
  if (offset === undefined) return undefined;
  const { line, col } = counter.linePos(offset);
  return { line, column: col };
}

/** `a.b[0]["c d"]` -> ['a', 'b', 0, 'c d']; undefined when it is not such a path. */
export function pathSegments(path: string): Array<string | number> | undefined {
  const out: Array<string | number> = [];
  const token = /\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  let i = 0;
  while (i < path.length) {
    token.lastIndex = i;
    const m = token.exec(path);
    if (!m) return undefined;
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3]!) as string);
    i = token.lastIndex;
  }
  return out;
}
