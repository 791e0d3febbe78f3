// The printed table of bench/failover.mjs, and the targets for the sidecar rows
// (issue 10, "Targets"): DNS mode 0 client failures in every fault and no reload after start;
// reload mode no more client failures than nginx alone in kill, 500 and restart; both: a dead
// backend tried no later than 2.5 s after the fault, hang stall <= the read timeout, 500s out
// <= 1 s, slow out <= 3 s, restarted back <= 1.5 s and at full share within 10 s.

const secs = (ms) => (ms === null ? '-' : ms === Infinity ? 'never' : `${(ms / 1000).toFixed(1)} s`);
const count = (n) => (n === null ? '-' : Math.round(n).toLocaleString('en-US'));

/** The targets the median of `result` misses (sidecar rows), [] when none; null for other rows. */
export function targetMisses(result, all, opts) {
  if (result.kind !== 'sidecar') return null;
  const m = result.median;
  const misses = [];
  const { fault } = result;
  // A restart of the sidecar itself must be invisible to clients and to nginx, in either mode.
  if (fault === 'sidecar') return [...(m.fail > 0 ? ['fail > 0'] : []), ...(m.reloads > 0 ? ['reloads > 0'] : [])];
  if (result.mode === 'dns') {
    if (m.fail > 0) misses.push('fail > 0');
    if (m.reloads > 0) misses.push('reloads > 0');
  } else if (['kill', '500', 'restart'].includes(fault)) {
    const alone = all.find((r) => r.kind === 'alone' && r.fault === fault);
    if (alone && m.fail > alone.median.fail) misses.push(`fail > alone (${count(alone.median.fail)})`);
  }
  if ((fault === 'kill' || fault === 'restart') && (m.out > 2500 || m.late > 0)) misses.push('tried > 2.5 s after death');
  if (fault === 'hang' && m.stall > opts.readTimeoutSeconds * 1000) misses.push(`stall > ${opts.readTimeoutSeconds} s`);
  if (fault === '500' && m.out > 1000) misses.push('out > 1 s');
  if (fault === 'slow' && m.out > 3000) misses.push('out > 3 s');
  if (fault === 'restart' && m.back > 1500) misses.push('back > 1.5 s');
  if (fault === 'restart' && m.full > 10_000) misses.push('full share > 10 s');
  return misses;
}

/** One line per row and fault: the medians, then the targets missed. */
export function printTable(results, opts) {
  const header = ['row', 'fault', 'fail', 'out', 'late', 'stall', 'max', 'back', 'full', 'reloads', 'req/s', 'targets'];
  const table = [header];
  for (const r of results) {
    const m = r.median;
    const misses = targetMisses(r, results, opts);
    table.push([
      r.row,
      r.fault,
      count(m.fail),
      secs(m.out),
      count(m.late),
      secs(m.stall),
      secs(m.max),
      secs(m.back),
      secs(m.full),
      count(m.reloads),
      count(m.rps),
      misses === null ? '' : misses.length ? `miss: ${misses.join(', ')}` : 'met',
    ]);
  }
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  console.log(`\nmedians of ${opts.runs} run(s):`);
  for (const row of table) console.log(row.map((c, i) => (i < 2 || i === row.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd());
}

/** The same table in Markdown (docs/benchmarks.md), one line per row and fault. */
export function markdownTable(results, opts) {
  const lines = ['| row | fault | fail | out | late | stall | max | back | full | reloads | req/s | targets |', '|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of results) {
    const m = r.median;
    const misses = targetMisses(r, results, opts);
    const blankUnlessRestart = (ms) => (r.fault === 'restart' ? secs(ms) : '');
    const cells = [r.row, r.fault, count(m.fail), secs(m.out), count(m.late), secs(m.stall), secs(m.max), blankUnlessRestart(m.back), blankUnlessRestart(m.full), count(m.reloads), count(m.rps)];
    cells.push(misses === null ? '' : misses.length ? misses.join(', ') : 'met');
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
