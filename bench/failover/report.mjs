#!/usr/bin/env node
// The table of several bench/failover.mjs runs together, e.g. one row per run under the lock:
//
//   BENCH_MODES=alone BENCH_JSON=alone.json npm run bench:failover
//   BENCH_MODES=dns BENCH_PROBES=tuned BENCH_JSON=dns-tuned.json npm run bench:failover
//   node bench/failover/report.mjs alone.json dns-tuned.json      # Markdown, targets checked
//
// Rows keep the order of the files; the reload rows' "no more failures than nginx alone" is
// judged against the nginx alone row of any of the files.
import { readFileSync } from 'node:fs';
import { markdownTable } from './table.mjs';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node bench/failover/report.mjs FILE.json ... (files written with BENCH_JSON)');
  process.exit(2);
}
const never = (_k, v) => (v === 'never' ? Infinity : v);
const docs = files.map((f) => JSON.parse(readFileSync(f, 'utf8'), never));
const results = docs.flatMap((d) => d.results);
const opts = docs[0].options;
for (const d of docs) {
  if (d.options.readTimeoutSeconds !== opts.readTimeoutSeconds || d.options.runs !== opts.runs) {
    console.error(`note: the files differ in read timeout or runs (${d.options.readTimeoutSeconds} s, ${d.options.runs} runs)`);
  }
}
console.log(markdownTable(results, opts));
