// The tables bench/scale.mjs prints: per size, HAProxy's row beside the sidecar's.
import { formatWindow } from './cpu-profile.mjs';
import { formatHeapSummary } from './heap-snapshot.mjs';

const f = (x, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toFixed(digits));
const s = (ms) => (ms === null || ms === undefined ? 'never' : `${(ms / 1000).toFixed(1)} s`);

/** One line as a phase ends. */
export function phaseLine(size, name, r) {
  if (r.skipped) return `${size} ${name}: skipped (${r.skipped})`;
  if (r.error) return `${size} ${name}: FAILED: ${r.error}`;
  if (name === 'haproxy') {
    return `${size} haproxy: cpu ${f(r.steady.cpuPercent, 1)} %, rss ${f(r.steady.rssMeanMb)} MB (peak ${f(r.peakRssMb)}), ` +
      `half DOWN after ${s(r.failure.allDownMs)}, UP after ${s(r.failure.allUpMs)}, false DOWN ${r.falseEjections}; ` +
      `backends' cpu ${f(r.server.cpuPercent, 1)} %, ${r.server.newConnections} new connections`;
  }
  return `${size} ${name}: cpu ${f(r.steady.cpuPercent, 1)} % (${threads(r.steady.threadsPercent)}), rss ${f(r.steady.rssMeanMb)} MB (peak ${f(r.peakRssMb)}), ` +
    `ready ${s(r.readyMs)}, settled ${s(r.startup.settledMs)} (${f(r.startup.cpuSecondsToSettle, 1)} cpu-s, ${r.startup.reloads} reloads), ` +
    `false ejections ${r.falseEjections.backends}; half down in file after ${s(r.failure.fileAllDownMs)} ` +
    `(last ejection +${s(r.failure.lastEjectionToFileMs)}), ${r.failure.reloads} reloads; /healthz max ${f(r.healthz.all.max)} ms; ` +
    `backends' cpu ${f(r.steady.server.cpuPercent, 1)} %, ${r.steady.server.newConnections} new connections`;
}

function threads(t) {
  return Object.entries(t ?? {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([name, pct]) => `${name} ${pct}`)
    .join(', ');
}

/** The tables over every size measured. */
export function tables(sizes) {
  const out = [];
  out.push('\nSteady state (CPU % of one core over the window; RSS mean over the window, MB):');
  out.push('| backends | HAProxy 2.6 CPU / RSS | sidecar (store on) CPU / RSS | sidecar (store off) CPU / RSS | ratio CPU / RSS (store on) |');
  out.push('|---|---|---|---|---|');
  for (const { size, phases: p } of sizes) {
    const cell = (r) => (r?.steady ? `${f(r.steady.cpuPercent, 1)} % / ${f(r.steady.rssMeanMb)} MB` : '–');
    const ratio = p.haproxy?.steady && p['store-on']?.steady
      ? `${f(p['store-on'].steady.cpuPercent / p.haproxy.steady.cpuPercent, 1)}× / ${f(p['store-on'].steady.rssMeanMb / p.haproxy.steady.rssMeanMb, 0)}×`
      : '–';
    out.push(`| ${size.toLocaleString('en')} | ${cell(p.haproxy)} | ${cell(p['store-on'])} | ${cell(p['store-off'])} | ${ratio} |`);
  }
  out.push('\nStart-up and mass failure (sidecar phases; HAProxy: time to declare the half DOWN):');
  out.push('| backends | phase | ready | settled | CPU s to settle | peak RSS | /healthz p99 / max start-up | /healthz p99 / max failure | false ejections | half down in file | last ejection → file | reloads (burst) | HAProxy half DOWN |');
  out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { size, phases: p } of sizes) {
    for (const name of ['store-on', 'store-off', 'profile']) {
      const r = p[name];
      if (!r?.startup) continue;
      const hz = (w) => (w ? `${f(w.p99)} / ${f(w.max)} ms` : '–');
      out.push(
        `| ${size.toLocaleString('en')} | ${name} | ${s(r.readyMs)} | ${s(r.startup.settledMs)} | ${f(r.startup.cpuSecondsToSettle, 1)} | ${f(r.peakRssMb)} MB | ` +
          `${hz(r.healthz.startup)} | ${hz(r.healthz.failure)} | ${r.falseEjections.backends} | ${s(r.failure.fileAllDownMs)} | ` +
          `${s(r.failure.lastEjectionToFileMs)} | ${r.failure.reloads} | ${p.haproxy?.failure ? s(p.haproxy.failure.allDownMs) : '–'} |`,
      );
    }
  }
  out.push('\nMemory inside the sidecar (store on, from its /metrics) and its endpoints:');
  out.push('| backends | heap used / total | external | new space | old space | /metrics ms (3 scrapes) / MB | /api/v1/apps ms / MB | /api/v1/apps/a0 |');
  out.push('|---|---|---|---|---|---|---|---|');
  for (const { size, phases: p } of sizes) {
    const r = p['store-on'];
    if (!r?.endpoints) continue;
    const n = r.endpoints.nodejs;
    const e = r.endpoints;
    out.push(
      `| ${size.toLocaleString('en')} | ${f(n.heapUsedMb)} / ${f(n.heapTotalMb)} MB | ${f(n.externalMb)} MB | ${f(n.heapSpacesTotalMb.new)} MB | ${f(n.heapSpacesTotalMb.old)} MB | ` +
        `${e.metrics.ms.join(', ')} / ${f(e.metrics.mb, 1)} | ${e.apps.ms} / ${f(e.apps.mb, 1)} | ${e.oneApp.ms} ms, ${e.oneApp.kb} KB |`,
    );
  }
  return out.join('\n');
}

/** The profiling phase's findings as text. */
export function profileText(size, r) {
  const out = [`\n=== profile at ${size.toLocaleString('en')} backends ===`];
  if (r.inside && !r.inside.error) {
    const mu = r.inside.memoryUsage;
    const mb = (x) => (x / 1048576).toFixed(1);
    out.push(`process.memoryUsage(): rss ${mb(mu.rss)}, heapTotal ${mb(mu.heapTotal)}, heapUsed ${mb(mu.heapUsed)}, external ${mb(mu.external)}, arrayBuffers ${mb(mu.arrayBuffers)} MB`);
    out.push(`heap spaces (size/used MB): ${Object.entries(r.inside.heapSpaces).map(([k, v]) => `${k} ${mb(v.size)}/${mb(v.used)}`).join(', ')}`);
    const pk = Object.entries(r.inside.packages).sort((a, b) => b[1] - a[1]);
    out.push(`CommonJS files loaded: ${r.inside.commonjsFiles}: ${pk.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  } else if (r.inside) out.push(`inspector: ${r.inside.error}`);
  if (r.heap?.byConstructor) out.push(`heap snapshot (${r.heap.fileMb} MB file, ${r.heap.writeSeconds} s to write):\n${formatHeapSummary(r.heap)}`);
  if (r.cpuProfile?.windows) for (const w of r.cpuProfile.windows) out.push(formatWindow(w));
  else if (r.cpuProfile) out.push(`cpu profile: ${r.cpuProfile.error}`);
  return out.join('\n');
}
