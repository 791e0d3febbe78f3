/**
 * "Did you mean": the known word closest to a mistyped one, for unknown config keys and unknown
 * command-line options alike. Pure.
 */

/**
 * The candidate `word` most likely meant, or undefined when none is close: within an edit distance
 * of a third of its length (at least 2; a swap of neighbours counts as one edit), or, for words of
 * four letters or more, one containing the other (`threshold` -> `failure_threshold`). Case is
 * ignored; ties go to the candidate listed first.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  const limit = Math.max(2, Math.floor(w.length / 3));
  let best: { candidate: string; score: number } | undefined;
  for (const candidate of candidates) {
    const c = candidate.toLowerCase();
    if (c === w) return candidate;
    const distance = editDistance(w, c, limit);
    // A containment is a weaker match than any edit within the limit.
    const score = distance <= limit ? distance : w.length >= 4 && (c.includes(w) || w.includes(c)) ? limit + 1 : Infinity;
    if (score < (best?.score ?? Infinity)) best = { candidate, score };
  }
  return best?.candidate;
}

/** ` (did you mean "x"?)` for a mistyped word, or '' when nothing is close. */
export function didYouMean(word: string, candidates: Iterable<string>, quote: (s: string) => string = (s) => `"${s}"`): string {
  const match = closest(word, candidates);
  return match === undefined ? '' : ` (did you mean ${quote(match)}?)`;
}

/**
 * Optimal string alignment distance (Levenshtein plus swaps of neighbours); anything above
 * `limit` comes back as `limit + 1`, so long unrelated words cost little.
 */
export function editDistance(a: string, b: string, limit = Infinity): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev2: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      row.push(d);
      if (d < rowMin) rowMin = d;
    }
    if (rowMin > limit) return limit + 1;
    prev2 = prev;
    prev = row;
  }
  return Math.min(prev[b.length]!, limit + 1);
}
