/**
 * The `include` directives of an nginx config file, found the way nginx's tokenizer
 * (ngx_conf_read_token in ngx_conf_file.c) splits the text: words separated by white space,
 * `;` ending a directive and `{` `}` blocks, `#` comments from the start of a word to the end of
 * the line, "double" and 'single' quoted words with backslash escapes, a backslash escaping the
 * next character in a bare word, and `${var}` braces that do not open a block. Pure.
 */

/** One `include ARG;` directive: ARG as nginx reads it, and where its raw text is. */
export interface IncludeDirective {
  /** The argument after quotes and escapes are resolved. */
  value: string;
  /** The argument's raw text is text.slice(start, end) (quotes included). */
  start: number;
  end: number;
}

interface Token {
  value: string;
  start: number;
  end: number;
}

const SPACE = new Set([' ', '\t', '\r', '\n']);
const ESCAPES: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', t: '\t', r: '\r', n: '\n' };

/** Every `include` with exactly one argument, in order, at any block depth. */
export function findIncludes(text: string): IncludeDirective[] {
  const out: IncludeDirective[] = [];
  let words: Token[] = [];
  const endStatement = () => {
    if (words.length === 2 && words[0]!.value === 'include') out.push(words[1]!);
    words = [];
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (SPACE.has(ch)) {
      i++;
    } else if (ch === ';' || ch === '{' || ch === '}') {
      endStatement();
      i++;
    } else if (ch === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (ch === '"' || ch === "'") {
      const t = quoted(text, i, ch);
      words.push(t);
      i = t.end;
    } else {
      const t = bare(text, i);
      words.push(t);
      i = t.end;
    }
  }
  return out;
}

function quoted(text: string, start: number, quote: string): Token {
  let value = '';
  let i = start + 1;
  while (i < text.length && text[i] !== quote) {
    if (text[i] === '\\' && i + 1 < text.length) {
      const next = text[i + 1]!;
      // nginx resolves only these escapes; any other backslash stays as written.
      value += ESCAPES[next] ?? `\\${next}`;
      i += 2;
    } else {
      value += text[i++];
    }
  }
  return { value, start, end: Math.min(i + 1, text.length) };
}

function bare(text: string, start: number): Token {
  let value = '';
  let i = start;
  while (i < text.length) {
    const ch = text[i]!;
    if (SPACE.has(ch) || ch === ';' || ch === '}') break;
    if (ch === '{' && text[i - 1] !== '$') break;
    if (ch === '\\' && i + 1 < text.length) {
      value += text[i + 1];
      i += 2;
      continue;
    }
    value += ch;
    i++;
  }
  return { value, start, end: i };
}

/** `value` as one nginx word: double-quoted, with `"` and `\` escaped. */
export function quoteWord(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** `text` with each include's argument replaced by `replace(include)` (undefined keeps it). */
export function rewriteIncludes(text: string, replace: (inc: IncludeDirective) => string | undefined): string {
  let out = '';
  let at = 0;
  for (const inc of findIncludes(text)) {
    const next = replace(inc);
    if (next === undefined) continue;
    out += text.slice(at, inc.start) + quoteWord(next);
    at = inc.end;
  }
  return out + text.slice(at);
}
