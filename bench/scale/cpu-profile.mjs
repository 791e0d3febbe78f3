// Summaries of a V8 CPU profile (`node --cpu-prof`) over time windows of the run: where the
// sidecar's CPU went during start-up, the steady state, a mass failure and the recovery.
//
//   node bench/scale/cpu-profile.mjs FILE.cpuprofile [WINDOWS.json] [--json]
//
// WINDOWS.json: [{name, from, to}] in monotonic ms (CLOCK_MONOTONIC, the profile's own clock:
// its µs timestamps / 1000), with an optional `transitions` count (work per transition).
// Without it the whole profile is one window.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const SELF = new URL(import.meta.url).pathname;

if (process.argv[1] === SELF) {
  const profile = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const windows = process.argv[3] && process.argv[3] !== '--json' ? JSON.parse(readFileSync(process.argv[3], 'utf8')) : [{ name: 'all', from: 0, to: Infinity }];
  const summary = summarizeProfile(profile, windows);
  if (process.argv.includes('--json')) console.log(JSON.stringify(summary));
  else for (const w of summary) console.log(formatWindow(w));
}

/** Where a function lives: GC, the VM, node internals, a package, or a file of the sidecar's dist/. */
export function categoryOf(frame) {
  const { functionName: fn, url } = frame;
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return '(program: VM, native)';
  if (fn === '(idle)') return '(idle)';
  if (fn === '(root)') return '(root)';
  if (!url) return '(native/builtin)';
  const pkgs = [...url.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)];
  if (pkgs.length) return pkgs.at(-1)[1];
  const dist = /\/dist\/(.+)\.js$/.exec(url);
  if (dist) return `sidecar ${dist[1].includes('/') ? dist[1].slice(0, dist[1].indexOf('/')) : dist[1]}`;
  if (url.startsWith('node:')) return url.startsWith('node:internal/') ? `node ${url.slice(14).split('/')[0]}` : url;
  return basename(url);
}

function keyOf(frame) {
  const where = frame.url ? `${frame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${frame.lineNumber + 1}` : '';
  return `${frame.functionName || '(anonymous)'} ${where}`.trim();
}

/**
 * Per window: wall ms, busy ms (not idle), and per category and per function the self and
 * inclusive (on the stack) ms; `perTransition` when the window has a transition count.
 */
export function summarizeProfile(profile, windows, top = 25) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Distinct functions on each node's stack (recursion counted once), memoised per node.
  const keys = new Map();
  const keyIds = new Map();
  const stackOf = (id) => {
    let s = keys.get(id);
    if (s) return s;
    const node = byId.get(id);
    const k = keyOf(node.callFrame);
    if (!keyIds.has(k)) keyIds.set(k, { key: k, category: categoryOf(node.callFrame) });
    const up = parent.has(id) ? stackOf(parent.get(id)) : [];
    s = up.includes(k) ? up : [...up, k];
    keys.set(id, s);
    return s;
  };
  // Sample times (monotonic ms) and durations (the gap to the next sample).
  const times = new Float64Array(profile.samples.length);
  let t = profile.startTime;
  profile.timeDeltas.forEach((d, i) => {
    t += d;
    times[i] = t / 1000;
  });
  const dur = (i) => (i + 1 < times.length ? times[i + 1] - times[i] : 1);
  return windows.map((w) => {
    const self = new Map();
    const incl = new Map();
    const cats = new Map();
    let wall = 0;
    let idle = 0;
    for (let i = 0; i < times.length; i++) {
      if (times[i] < w.from || times[i] >= w.to) continue;
      const ms = dur(i);
      wall += ms;
      const node = byId.get(profile.samples[i]);
      const k = keyOf(node.callFrame);
      const cat = categoryOf(node.callFrame);
      if (cat === '(idle)') {
        idle += ms;
        continue;
      }
      self.set(k, (self.get(k) ?? 0) + ms);
      cats.set(cat, (cats.get(cat) ?? 0) + ms);
      for (const s of stackOf(profile.samples[i])) incl.set(s, (incl.get(s) ?? 0) + ms);
    }
    const busy = wall - idle;
    const rank = (m) =>
      [...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([key, ms]) => ({ key, category: keyIds.get(key)?.category ?? key, ms: Math.round(ms), pct: pct(ms, busy) }));
    return {
      name: w.name,
      wallMs: Math.round(wall),
      busyMs: Math.round(busy),
      transitions: w.transitions ?? null,
      categories: rank(cats).map(({ key, ms, pct: p }) => ({ category: key, ms, pct: p })),
      self: rank(self),
      inclusive: rank(new Map([...incl].filter(([k]) => !k.startsWith('(root)')))),
      // Every function's inclusive ms, for comparing the work per transition between sizes.
      inclusiveAll: Object.fromEntries([...incl].filter(([, ms]) => ms >= 5).map(([k, ms]) => [k, Math.round(ms)])),
    };
  });
}

function pct(part, whole) {
  return whole > 0 ? Math.round((part / whole) * 1000) / 10 : 0;
}

/** The window as text: categories, then the top functions by self and by inclusive time. */
export function formatWindow(w) {
  const lines = [
    `${w.name}: ${(w.wallMs / 1000).toFixed(1)} s of profile, ${(w.busyMs / 1000).toFixed(1)} s busy (${pct(w.busyMs, w.wallMs)} %)` +
      (w.transitions ? `, ${w.transitions} transitions (${(w.busyMs / w.transitions).toFixed(2)} ms busy each)` : ''),
    `  by category (self time, % of busy): ${w.categories.slice(0, 14).map((c) => `${c.category} ${c.pct}`).join(', ')}`,
    '  top self:',
    ...w.self.slice(0, 15).map((f) => `    ${String(f.pct).padStart(5)} % ${String(f.ms).padStart(7)} ms  ${f.key}`),
    '  top inclusive (on the stack):',
    ...w.inclusive.slice(0, 25).map((f) => `    ${String(f.pct).padStart(5)} % ${String(f.ms).padStart(7)} ms  ${f.key}`),
  ];
  return lines.join('\n');
}

/**
 * Work per transition in the same window of two runs (a smaller and a larger fleet): the
 * functions whose inclusive ms per transition grew most, with the growth factor; a function
 * whose cost per transition grows like the fleet (factor ≈ size ratio) makes a burst O(N²).
 */
export function perTransitionGrowth(small, large, min = 0.02) {
  if (!small?.transitions || !large?.transitions) return [];
  const rows = [];
  for (const [key, ms] of Object.entries(large.inclusiveAll)) {
    const perLarge = ms / large.transitions;
    const perSmall = (small.inclusiveAll[key] ?? 0) / small.transitions;
    if (perLarge < min) continue;
    rows.push({ key, perSmallMs: round3(perSmall), perLargeMs: round3(perLarge), growth: perSmall > 0 ? Math.round((perLarge / perSmall) * 10) / 10 : null, pctOfLarge: pct(ms, large.busyMs) });
  }
  return rows.sort((a, b) => b.perLargeMs - a.perLargeMs);
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}
