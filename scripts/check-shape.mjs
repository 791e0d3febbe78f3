#!/usr/bin/env node
// The code's shape limits (issue 9): no src file over 450 lines, no src function over 80 lines
// (counted whole, nested functions included, as eslint's max-lines-per-function does) except
// declarative tables, src/main.ts at most 200 lines. Prints every breach; exits 1 if any.
// A function may opt out only as a declarative table: a `// shape: table` comment on its first line.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const MAX_FILE = 450;
const MAX_FUNCTION = 80;
const MAX_MAIN = 200;
const root = new URL('..', import.meta.url).pathname;

const files = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });

const breaches = [];
for (const file of files(join(root, 'src'))) {
  const rel = relative(root, file);
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  const limit = rel === 'src/main.ts' ? MAX_MAIN : MAX_FILE;
  if (lines > limit) breaches.push(`${rel}: ${lines} lines (limit ${limit})`);
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = src.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = src.getLineAndCharacterOfPosition(node.getEnd()).line;
      const length = end - start + 1;
      const firstLine = text.split('\n')[start] ?? '';
      if (length > MAX_FUNCTION && !firstLine.includes('shape: table')) {
        breaches.push(`${rel}:${start + 1}: function ${nameOf(node)} has ${length} lines (limit ${MAX_FUNCTION})`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
}

function nameOf(node) {
  if (node.name) return node.name.getText();
  const p = node.parent;
  if (p && (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p))) return p.name.getText();
  return '(anonymous)';
}

if (breaches.length > 0) {
  console.error(`check-shape: ${breaches.length} breach(es)\n${breaches.map((b) => `- ${b}`).join('\n')}`);
  process.exit(1);
}
console.log('check-shape: ok');
