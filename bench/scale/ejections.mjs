// False ejections: backends the sidecar ejected (health -> unhealthy, or breaker -> open) although
// the bench had not made them fail in the window that decides an ejection, checked against the
// backend server's own record of the probes it answered in that window.

/**
 * Judges `ejections` ({port, at, kind, reason}) of one stage of a run. `failing` is the set of
 * backend indexes made to fail during `failedFrom`..`failedTo` (epoch ms; null when they did not
 * fail in this stage); `windowMs` how far back an ejection's evidence reaches (failure_threshold
 * periods, the timeout and a margin). Asks `backends.answers` what the server answered.
 */
export async function judgeEjections({ ejections, indexOf, failing, failedFrom, failedTo, windowMs, backends }) {
  const suspects = ejections.filter((e) => {
    const i = indexOf(e.port);
    const failedInWindow = failedFrom !== null && failing.has(i) && e.at >= failedFrom && e.at - windowMs <= failedTo;
    return !failedInWindow;
  });
  const answers = suspects.length
    ? await backends.answers(suspects.map((e) => ({ index: indexOf(e.port), from: e.at - windowMs, to: e.at })))
    : [];
  const reasons = new Map();
  let answeredEvery = 0;
  let noProbe = 0;
  let notCovered = 0;
  let answersFailed = 0;
  suspects.forEach((e, k) => {
    const a = answers[k];
    const reason = String(e.reason ?? '').replace(/\d+/g, 'N');
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    if (!a.covered) notCovered++;
    else if (a.failed > 0) answersFailed++;
    else if (a.count === 0) noProbe++;
    else answeredEvery++;
  });
  return {
    events: suspects.length,
    backends: new Set(suspects.map((e) => e.port)).size,
    // The server answered 200 to every probe that reached it in the window...
    answeredEvery,
    // ...or no probe reached it at all in the window (the sidecar did not send one).
    noProbe,
    answersFailed,
    notCovered,
    reasons: [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([reason, n]) => ({ reason, n })),
    examples: suspects.slice(0, 3).map((e, k) => ({ ...e, server: answers[k] })),
  };
}

/** Adds up the judgements of several stages. */
export function addJudgements(parts) {
  const total = { events: 0, backends: 0, answeredEvery: 0, noProbe: 0, answersFailed: 0, notCovered: 0 };
  for (const p of parts) for (const k of Object.keys(total)) total[k] += p[k];
  return total;
}
