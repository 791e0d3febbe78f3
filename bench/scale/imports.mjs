// What loading each dependency costs before the sidecar does anything: a fresh process per
// module (the sidecar's node flags, plus --expose-gc), heap and RSS after a full GC before and
// after `import()`, and how many CommonJS files came with it. dist/main.js is every module the
// daemon loads.
import { execFileSync } from 'node:child_process';

const MODULES = ['dockerode', 'undici', 'prom-client', 'pino', 'handlebars', 'chokidar', 'yaml', '../../dist/main.js'];

const MEASURE = `
const before = measure();
await import(process.argv[1]);
const after = measure();
console.log(JSON.stringify({ heapMb: after.heap - before.heap, rssMb: after.rss - before.rss, externalMb: after.external - before.external,
  files: Object.keys(process.getBuiltinModule('module')._cache).length }));
function measure() {
  for (let i = 0; i < 3; i++) globalThis.gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / 1048576, rss: m.rss / 1048576, external: m.external / 1048576 };
}`;

/** [{module, heapMb, rssMb, externalMb, files}] with the given node flags. */
export function importCosts(flags) {
  const here = new URL('.', import.meta.url);
  return MODULES.map((m) => {
    const target = m.startsWith('.') ? new URL(m, here).href : import.meta.resolve(m);
    const out = execFileSync(process.execPath, [...flags, '--expose-gc', '--input-type=module', '-e', MEASURE, target], { encoding: 'utf8' });
    const r = JSON.parse(out);
    const round = (x) => Math.round(x * 10) / 10;
    return { module: m.replace('../../', ''), heapMb: round(r.heapMb), rssMb: round(r.rssMb), externalMb: round(r.externalMb), files: r.files };
  });
}
