// A summary of a V8 heap snapshot (`node --heapsnapshot-signal=SIGUSR2` writes one): self size
// and count by constructor, closures by function name, and the objects that retain most (by a
// dominator tree, as DevTools' "Retained Size"), each with the chain of objects that holds it.
//
//   node --max-old-space-size=8000 bench/scale/heap-snapshot.mjs FILE.heapsnapshot [BACKENDS] [--json]
//
// BACKENDS (the fleet size) adds a "per backend" column: a constructor counted about N or 2N
// times is most likely one (or two) per backend.
//
// The file is scanned as bytes into typed arrays rather than JSON.parse'd: a large fleet's
// snapshot is bigger than V8's longest string.
import { readFileSync } from 'node:fs';

const SELF = new URL(import.meta.url).pathname;

if (process.argv[1] === SELF) {
  const summary = summarizeHeapSnapshot(process.argv[2], Number(process.argv[3] ?? 0) || 0);
  console.log(process.argv.includes('--json') ? JSON.stringify(summary) : formatHeapSummary(summary));
}

/** Reads FILE: {meta, nodes (Float64Array), edges (Float64Array), strings}. */
export function readSnapshot(file) {
  const buf = readFileSync(file);
  const find = (label, from = 0) => {
    const at = buf.indexOf(label, from);
    if (at < 0) throw new Error(`${file}: no ${label} section`);
    return at + label.length;
  };
  const metaStart = find('"snapshot":');
  const nodesAt = find('"nodes":[', metaStart);
  const meta = JSON.parse(buf.toString('utf8', metaStart, buf.lastIndexOf(',', buf.indexOf('"nodes":[', metaStart)))).meta;
  const [nodes, afterNodes] = numbers(buf, nodesAt);
  const [edges] = numbers(buf, find('"edges":[', afterNodes));
  const stringsAt = find('"strings":[') - 1;
  const strings = JSON.parse(buf.toString('utf8', stringsAt, buf.lastIndexOf(']') + 1));
  return { meta, nodes, edges, strings };
}

/** The numbers of a JSON array of non-negative integers starting at `at`, and where it ended. */
function numbers(buf, at) {
  let out = new Float64Array(1 << 20);
  let n = 0;
  let cur = 0;
  let inNum = false;
  let i = at;
  for (; i < buf.length; i++) {
    const c = buf[i];
    if (c >= 48 && c <= 57) {
      cur = cur * 10 + (c - 48);
      inNum = true;
      continue;
    }
    if (inNum) {
      if (n === out.length) {
        const bigger = new Float64Array(out.length * 2);
        bigger.set(out);
        out = bigger;
      }
      out[n++] = cur;
      cur = 0;
      inNum = false;
    }
    if (c === 93) break; // ]
  }
  return [out.subarray(0, n), i];
}

/** The summary: totals, by constructor, closures by name, top retainers. */
export function summarizeHeapSnapshot(file, backends = 0, top = 30) {
  const { meta, nodes, edges, strings } = readSnapshot(file);
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const types = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const [tOff, nOff, sOff, ecOff] = ['type', 'name', 'self_size', 'edge_count'].map((f) => meta.node_fields.indexOf(f));
  const [etOff, enOff, toOff] = ['type', 'name_or_index', 'to_node'].map((f) => meta.edge_fields.indexOf(f));
  const count = nodes.length / nf;
  const firstEdge = new Uint32Array(count + 1);
  for (let i = 0; i < count; i++) firstEdge[i + 1] = firstEdge[i] + nodes[i * nf + ecOff] * ef;
  const typeOf = (i) => types[nodes[i * nf + tOff]];
  const nameOf = (i) => strings[nodes[i * nf + nOff]];
  const selfOf = (i) => nodes[i * nf + sOff];
  const classOf = (i) => {
    const t = typeOf(i);
    if (t === 'object' || t === 'native') return nameOf(i);
    if (t === 'closure') return '(closure)';
    if (t === 'string' || t === 'concatenated string' || t === 'sliced string') return '(string)';
    if (t === 'code') return '(compiled code)';
    if (t === 'array') return `(array) ${nameOf(i)}`.trim();
    if (t === 'hidden' || t === 'object shape') return `(system) ${nameOf(i)}`.trim();
    return `(${t})`;
  };

  // Constructors and closures by self size.
  const byClass = new Map();
  const closures = new Map();
  let total = 0;
  for (let i = 0; i < count; i++) {
    const size = selfOf(i);
    total += size;
    add(byClass, classOf(i), size);
    if (typeOf(i) === 'closure') add(closures, nameOf(i) || '(anonymous)', size);
  }

  const graph = { count, nodes, nf, edges, ef, firstEdge, etOff, toOff, edgeTypes, selfOf };
  const { idom, retained, order, n, preds, predCount, depth } = dominators(graph);
  const classRetained = retainedByClass({ count, idom, retained, order, n, classOf });
  for (const [name, v] of byClass) v.retained = classRetained.get(name) ?? 0;
  const edgeName = (e) => {
    const type = edgeTypes[edges[e + etOff]];
    const v = edges[e + enOff];
    return type === 'element' || type === 'hidden' ? `[${v}]` : String(strings[v]);
  };
  const edgeFrom = (u, v) => {
    for (let e = firstEdge[u]; e < firstEdge[u + 1]; e += ef) if (edges[e + toOff] / nf === v) return edgeName(e);
    return '?';
  };
  const label = (i) => {
    const t = typeOf(i);
    const name = nameOf(i).replace(/\s+/g, ' ');
    return t === 'object' || t === 'native' ? name : `(${t}) ${name.length > 60 ? `${name.slice(0, 60)}…` : name}`;
  };
  // The shortest retaining path (fewest steps from the root), as DevTools' Retainers panel shows first.
  const retainedBy = (i) => {
    const chain = [];
    for (let v = i, k = 0; k < 8; k++) {
      let best = -1;
      for (let p = predCount[v]; p < predCount[v + 1]; p++) if (best < 0 || depth[preds[p]] < depth[best]) best = preds[p];
      if (best < 0 || typeOf(best) === 'synthetic') break;
      chain.push(`${edgeFrom(best, v)} of ${label(best)}`);
      v = best;
    }
    return chain;
  };
  const candidates = [];
  for (let i = 1; i < count; i++) if (typeOf(i) !== 'synthetic' && retained[i] >= total * 0.01) candidates.push(i);
  candidates.sort((a, b) => retained[b] - retained[a]);
  const retainers = candidates.slice(0, top).map((i) => ({ object: label(i), retainedMb: mb(retained[i]), selfMb: mb(selfOf(i)), heldBy: retainedBy(i) }));

  const rows = (m) =>
    [...m]
      .sort((a, b) => b[1].size - a[1].size)
      .slice(0, top)
      .map(([name, v]) => ({ name, count: v.count, selfMb: mb(v.size), retainedMb: v.retained === undefined ? null : mb(v.retained), perBackend: backends ? Math.round((v.count / backends) * 100) / 100 : null }));
  return { nodes: count, totalMb: mb(total), byConstructor: rows(byClass), closures: rows(closures), retainers };
}

function add(map, key, size) {
  const v = map.get(key);
  if (v) {
    v.count++;
    v.size += size;
  } else map.set(key, { count: 1, size });
}

function mb(bytes) {
  return Math.round((bytes / 1048576) * 100) / 100;
}

/**
 * Immediate dominators (Cooper, Harvey and Kennedy's iterative algorithm over a reverse
 * post-order from the root, node 0) and retained sizes. Weak edges do not retain.
 */
function dominators({ count, nodes, nf, edges, ef, firstEdge, etOff, toOff, edgeTypes, selfOf }) {
  const weak = edgeTypes.indexOf('weak');
  const shortcut = edgeTypes.indexOf('shortcut');
  // As DevTools: weak edges do not retain; shortcut edges only from the root (they mark the globals).
  const strong = (e, from) => edges[e + etOff] !== weak && (edges[e + etOff] !== shortcut || from === 0);
  // Post-order by an iterative depth-first search.
  const post = new Int32Array(count).fill(-1);
  const order = new Uint32Array(count);
  const stack = new Uint32Array(count);
  const cursor = new Uint32Array(count);
  const seen = new Uint8Array(count);
  let sp = 0;
  let n = 0;
  stack[sp++] = 0;
  seen[0] = 1;
  cursor[0] = firstEdge[0];
  while (sp > 0) {
    const v = stack[sp - 1];
    let pushed = false;
    while (cursor[v] < firstEdge[v + 1]) {
      const e = cursor[v];
      cursor[v] += ef;
      if (!strong(e, v)) continue;
      const w = edges[e + toOff] / nf;
      if (seen[w]) continue;
      seen[w] = 1;
      cursor[w] = firstEdge[w];
      stack[sp++] = w;
      pushed = true;
      break;
    }
    if (!pushed) {
      sp--;
      post[v] = n;
      order[n++] = v;
    }
  }
  // Predecessors (strong edges between reachable nodes), in CSR form.
  const predCount = new Uint32Array(count + 1);
  for (let v = 0; v < count; v++) {
    if (post[v] < 0) continue;
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e += ef) if (strong(e, v) && post[edges[e + toOff] / nf] >= 0) predCount[edges[e + toOff] / nf + 1]++;
  }
  for (let i = 0; i < count; i++) predCount[i + 1] += predCount[i];
  const preds = new Uint32Array(predCount[count]);
  const fill = predCount.slice(0, count);
  for (let v = 0; v < count; v++) {
    if (post[v] < 0) continue;
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e += ef) {
      const w = edges[e + toOff] / nf;
      if (strong(e, v) && post[w] >= 0) preds[fill[w]++] = v;
    }
  }
  // Steps from the root by a breadth-first search (the shortest retaining path's length).
  const depth = new Uint32Array(count).fill(0xffffffff);
  const queue = new Uint32Array(n);
  let head = 0;
  let tail = 0;
  queue[tail++] = 0;
  depth[0] = 0;
  while (head < tail) {
    const v = queue[head++];
    for (let e = firstEdge[v]; e < firstEdge[v + 1]; e += ef) {
      const w = edges[e + toOff] / nf;
      if (strong(e, v) && depth[w] === 0xffffffff) {
        depth[w] = depth[v] + 1;
        queue[tail++] = w;
      }
    }
  }
  const idom = new Int32Array(count).fill(-1);
  idom[0] = 0;
  const intersect = (a, b) => {
    while (a !== b) {
      while (post[a] < post[b]) a = idom[a];
      while (post[b] < post[a]) b = idom[b];
    }
    return a;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (let k = n - 2; k >= 0; k--) {
      const v = order[k];
      let d = -1;
      for (let p = predCount[v]; p < predCount[v + 1]; p++) {
        const u = preds[p];
        if (idom[u] < 0) continue;
        d = d < 0 ? u : intersect(u, d);
      }
      if (d >= 0 && idom[v] !== d) {
        idom[v] = d;
        changed = true;
      }
    }
  }
  const retained = new Float64Array(count);
  for (let k = 0; k < n; k++) retained[order[k]] += selfOf(order[k]);
  for (let k = 0; k < n - 1; k++) {
    const v = order[k];
    if (idom[v] >= 0 && idom[v] !== v) retained[idom[v]] += retained[v];
  }
  return { idom, retained, order, n, preds, predCount, depth };
}

/**
 * Retained size per class as DevTools' Summary counts it: an object's retained size counts for
 * its class unless an object of the same class dominates it (no double counting of nested ones).
 * One depth-first walk over the dominator tree with a per-class count of open ancestors.
 */
function retainedByClass({ count, idom, retained, order, n, classOf }) {
  const classIds = new Map();
  const classOfNode = new Uint32Array(count);
  for (let k = 0; k < n; k++) {
    const c = classOf(order[k]);
    if (!classIds.has(c)) classIds.set(c, classIds.size);
    classOfNode[order[k]] = classIds.get(c);
  }
  const childCount = new Uint32Array(count + 1);
  for (let k = 0; k < n; k++) if (order[k] !== 0 && idom[order[k]] >= 0) childCount[idom[order[k]] + 1]++;
  for (let i = 0; i < count; i++) childCount[i + 1] += childCount[i];
  const children = new Uint32Array(childCount[count]);
  const fill = childCount.slice(0, count);
  for (let k = 0; k < n; k++) if (order[k] !== 0 && idom[order[k]] >= 0) children[fill[idom[order[k]]]++] = order[k];
  const open = new Uint32Array(classIds.size);
  const sums = new Float64Array(classIds.size);
  const stack = [0];
  const exiting = new Uint8Array(count);
  while (stack.length) {
    const v = stack.pop();
    const c = classOfNode[v];
    if (exiting[v]) {
      open[c]--;
      continue;
    }
    if (open[c] === 0 && v !== 0) sums[c] += retained[v];
    open[c]++;
    exiting[v] = 1;
    stack.push(v);
    for (let p = childCount[v]; p < childCount[v + 1]; p++) stack.push(children[p]);
  }
  return new Map([...classIds].map(([name, id]) => [name, sums[id]]));
}

/** The summary as text. */
export function formatHeapSummary(s) {
  const table = (rows) =>
    rows.map(
      (r) =>
        `    ${String(r.selfMb).padStart(8)} MB ${r.retainedMb === null ? '' : `(retained ${r.retainedMb}) `}${String(r.count).padStart(9)}` +
        `${r.perBackend !== null ? ` (${r.perBackend}/backend)` : ''}  ${r.name}`,
    );
  return [
    `heap snapshot: ${s.nodes} objects, ${s.totalMb} MB (self sizes)`,
    '  by constructor (self size, retained size, count):',
    ...table(s.byConstructor),
    '  closures by function name:',
    ...table(s.closures.slice(0, 15)),
    '  objects retaining most (retained MB, self MB; shortest retaining path, nearest first):',
    ...s.retainers.map((r) => `    ${String(r.retainedMb).padStart(8)} MB (${r.selfMb})  ${r.object}  <- ${r.heldBy.join(' <- ')}`),
  ].join('\n');
}
