#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=50 --enable-experimental-regexp-engine
/**
 * The shebang caps V8's young generation (semi-space) at 8 MB: V8 otherwise grows it to
 * 128 MB on a large machine, which at thousands of probes per second is most of the RSS
 * (bench/probe-scale.mjs: 274 MB -> 197 MB at 2,000 probes/s with 16 MB; bench/scale.mjs,
 * whole daemon at 2,000 backends: 16 -> 8 MB saves another 11-16 MB at the same CPU; 4 MB
 * saved 8 MB more but cost 3 points of CPU, more than HAProxy's). See docs/benchmarks.md.
 * It also lets the old generation grow to 1.5x its live size between full GCs instead of V8's
 * adaptive factor (up to 4x): every probe promotes some short-lived undici/socket objects, so
 * the old generation fills with garbage at a steady rate, and the factor decides how much of
 * it RSS carries (bench/probe-scale.mjs, 60 s at 2,000 probes/s: 312 MB -> 183-191 MB, for
 * about one point of CPU; 25% caused GC storms).
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
