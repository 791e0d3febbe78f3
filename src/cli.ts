#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=30 --no-allocation-site-pretenuring --enable-experimental-regexp-engine
/**
 * The shebang caps V8's young generation (semi-space) at 8 MB: V8 otherwise grows it to
 * 128 MB on a large machine, which at thousands of probes per second is most of the RSS
 * (bench/probe-scale.mjs: 274 MB -> 197 MB at 2,000 probes/s with 16 MB; bench/scale.mjs,
 * whole daemon at 2,000 backends: 16 -> 8 MB saves another 11-16 MB at the same CPU; 4 MB
 * saved 8 MB more but cost 3 points of CPU, more than HAProxy's). See docs/benchmarks.md.
 * It also lets the old generation grow to 1.3x its live size between full GCs instead of V8's
 * adaptive factor (up to 4x), and turns off allocation-site pretenuring: with thousands of
 * probes in flight at every young-generation collection, V8 judged the sites of per-probe
 * objects long-lived and allocated them straight in the old generation, where they died at
 * once; at 10,000 backends that was ~6 MB/s of old-generation garbage and a full GC a second.
 * Without it (and with nothing kept per probe, see the registry), full GCs are rare, V8's GC
 * threads went from 7-8 % to 2 % of a core, and the tighter factor costs no CPU: RSS at 10,000
 * backends 232-237 -> 219-221 MB (bench/scale.mjs; docs/benchmarks.md, "GC churn"). Before,
 * 1.5x (50 %) was the most that did not cost CPU (25 % caused GC storms).
 * --enable-experimental-regexp-engine gives `expected_body` patterns V8's linear-time engine
 * (src/config/expected-body.ts, which also turns it on when the command line did not).
 *
 * The entry point checks the Node version before importing anything that needs a newer one
 * (on an older Node undici fails at import with a stack trace), then runs the command line
 * (cli/main.ts: run | check-config | render | status | report).
 */
import { nodeVersionProblem } from './cli/node-version.js';
import { NODE_ENGINES } from './version.js';

const tooOld = nodeVersionProblem(process.versions.node, NODE_ENGINES);
if (tooOld !== null) {
  process.stderr.write(`orchestry-sidecar: ${tooOld}\n`);
  process.exitCode = 1;
} else {
  const { main } = await import('./cli/main.js');
  process.exitCode = await main(process.argv.slice(2));
}
