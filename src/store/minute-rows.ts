/**
 * The probe results of one open minute as the database thread keeps them until the minute is
 * rolled up: three columns of typed arrays (backend index, microseconds, error code), 9 bytes a
 * result, outside V8's heap. Aggregates are made when asked for, one backend at a time.
 *
 * Why not an aggregate per backend, updated as results come: its latency sketch is a Map of
 * ~40 buckets after a minute of 1 s probes (1 % buckets), ~2 KB a backend: 21 MB of live heap at
 * 10,000 backends (bench:scale's store thread went from 12 to 30 MB of heap within a minute,
 * the sidecar's largest single heap). The rows of that minute take 5.4 MB. Pure; no I/O.
 */
import { addSample, newAgg, type MinuteAgg } from './report.js';

const INITIAL_ROWS = 1024;

export interface MinuteRows {
  n: number;
  b: Uint32Array;
  us: Uint32Array;
  e: Uint8Array;
}

export function createMinuteRows(): MinuteRows {
  return { n: 0, b: new Uint32Array(INITIAL_ROWS), us: new Uint32Array(INITIAL_ROWS), e: new Uint8Array(INITIAL_ROWS) };
}

export function appendRow(rows: MinuteRows, b: number, us: number, e: number): void {
  if (rows.n === rows.b.length) grow(rows);
  const i = rows.n++;
  rows.b[i] = b;
  rows.us[i] = us;
  rows.e[i] = e;
}

/**
 * Each backend's aggregate, in backend index order, made as the caller iterates: only one
 * backend's sketch exists at a time, so rolling up a minute of 10,000 backends does not build
 * the 21 MB this module avoids. Rows are grouped by a counting sort (two arrays for the call).
 */
export function* aggsOf(rows: MinuteRows): Generator<[number, MinuteAgg]> {
  const { n, b, us, e } = rows;
  if (n === 0) return;
  let max = 0;
  for (let i = 0; i < n; i++) if (b[i]! > max) max = b[i]!;
  // start[k] .. start[k + 1]: where backend k's rows go in `order`.
  const start = new Uint32Array(max + 2);
  for (let i = 0; i < n; i++) start[b[i]! + 1]! += 1;
  for (let k = 1; k < start.length; k++) start[k]! += start[k - 1]!;
  const next = start.slice(0, max + 1);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[next[b[i]!]!++] = i;
  for (let k = 0; k <= max; k++) {
    if (start[k] === start[k + 1]) continue;
    const agg = newAgg();
    // In arrival order within the backend, as an aggregate updated row by row would have seen them.
    for (let j = start[k]!; j < start[k + 1]!; j++) addSample(agg, us[order[j]!]!, e[order[j]!]!);
    yield [k, agg];
  }
}

/** One backend's aggregate over these rows; null when it has none. */
export function aggOf(rows: MinuteRows, index: number): MinuteAgg | null {
  let agg: MinuteAgg | null = null;
  for (let i = 0; i < rows.n; i++) if (rows.b[i] === index) addSample((agg ??= newAgg()), rows.us[i]!, rows.e[i]!);
  return agg;
}

function grow(rows: MinuteRows): void {
  const size = rows.b.length * 2;
  const b = new Uint32Array(size);
  const us = new Uint32Array(size);
  const e = new Uint8Array(size);
  b.set(rows.b);
  us.set(rows.us);
  e.set(rows.e);
  rows.b = b;
  rows.us = us;
  rows.e = e;
}
