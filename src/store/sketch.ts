/**
 * A mergeable latency sketch (DDSketch-style log buckets) and the compact varint codec the store
 * uses for it and for per-error-class counts. Pure; no I/O.
 *
 * Bucket k holds values in (γ^(k-1), γ^k] milliseconds with γ = (1+α)/(1-α), and a quantile
 * read from a bucket is 2γ^k/(γ+1): within α (relative) of every value in that bucket. So a
 * nearest-rank percentile read from the sketch is within α of the exact nearest-rank percentile
 * of the values it was fed, however many sketches were merged.
 */

/** Relative accuracy of every percentile read from a sketch: 1 %. */
export const SKETCH_RELATIVE_ACCURACY = 0.01;

const GAMMA = (1 + SKETCH_RELATIVE_ACCURACY) / (1 - SKETCH_RELATIVE_ACCURACY);
const LN_GAMMA = Math.log(GAMMA);

/** Bucket key → count. Also used for error-class code → count. */
export type Counts = Map<number, number>;

/**
 * The sketch key of a latency in whole microseconds (the unit the store keeps). 0 µs is
 * counted as 1 µs: an absolute error of 1 µs, which no report can show.
 */
export function sketchKey(us: number): number {
  return Math.ceil(Math.log(Math.max(1, us) / 1000) / LN_GAMMA);
}

/** The value a bucket stands for, milliseconds. */
function sketchValue(key: number): number {
  return (2 * Math.pow(GAMMA, key)) / (GAMMA + 1);
}

export function addCount(counts: Counts, key: number, n = 1): void {
  counts.set(key, (counts.get(key) ?? 0) + n);
}

export function mergeCounts(into: Counts, from: Counts): void {
  for (const [k, n] of from) addCount(into, k, n);
}

/**
 * Nearest-rank quantile (rank ⌈q·n⌉) of a sketch, in milliseconds; null when empty. Same rank
 * rule as the raw report, so the two agree within SKETCH_RELATIVE_ACCURACY.
 */
export function sketchQuantile(sketch: Counts, q: number): number | null {
  let total = 0;
  for (const n of sketch.values()) total += n;
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  const keys = [...sketch.keys()].sort((a, b) => a - b);
  let seen = 0;
  for (const k of keys) {
    seen += sketch.get(k)!;
    if (seen >= rank) return sketchValue(k);
  }
  return sketchValue(keys[keys.length - 1]!);
}

/**
 * Encodes counts as varints in key order: for each key, (zigzag(first key) or key delta) × 2,
 * plus 1 when its count is not 1, followed then by count - 2. Most buckets of a minute hold one
 * probe, so a bucket is usually one byte: a minute of 30 probes takes 25-35 bytes.
 */
export function encodeCounts(counts: Counts): Uint8Array {
  const keys = [...counts.keys()].sort((a, b) => a - b);
  const out: number[] = [];
  let prev = 0;
  keys.forEach((k, i) => {
    const n = counts.get(k)!;
    const step = i === 0 ? (k >= 0 ? k * 2 : -k * 2 - 1) : k - prev;
    pushVarint(out, step * 2 + (n === 1 ? 0 : 1));
    if (n !== 1) pushVarint(out, n - 2);
    prev = k;
  });
  return Uint8Array.from(out);
}

export function decodeCounts(bytes: Uint8Array | null, into: Counts = new Map()): Counts {
  if (!bytes) return into;
  let pos = 0;
  let key = 0;
  let first = true;
  const read = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = bytes[pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
  };
  while (pos < bytes.length) {
    const v = read();
    const step = Math.floor(v / 2);
    key = first ? (step % 2 === 0 ? step / 2 : -(step + 1) / 2) : key + step;
    first = false;
    addCount(into, key, v % 2 === 0 ? 1 : read() + 2);
  }
  return into;
}

function pushVarint(out: number[], value: number): void {
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}
