#!/usr/bin/env node
// Swarm benchmark (issue 13): how fast nginx, driven by the sidecar, follows a Swarm task that
// fails, on a private two-node swarm of dockerd processes (test/helpers/swarm.ts: a manager and a
// worker on loopback), a service of the test app (3 tasks, host networking, 127.0.0.1:<port of
// its slot>), a private nginx 1.22 in front and the built CLI with `docker.swarm: true` on the
// manager's socket (test/helpers/swarm-stack.ts, the harness of the Swarm e2e tests, imported
// as TypeScript through bench/swarm/ts-hooks.mjs). Default health settings (a probe every 2 s,
// timeout 1 s, 3 failures out, 2 successes in) and Swarm refresh (1 s).
//
// Faults, each on a stack of its own, BENCH_RUNS times, one task at a time in turn over the slots:
//   kill       SIGKILL of the task's container (on the worker and the manager in turn). The image's
//              HEALTHCHECK is on (1 s interval): Swarm starts a replacement in the slot at once
//              (restart delay 0) and reports it running once its health check passes. Recovery off.
//   unhealthy  a task on the manager (the node whose Engine the sidecar drives) keeps running
//              but its /health answers 503 (POST /control/fail); no Docker
//              HEALTHCHECK, so Swarm sees nothing wrong; recovery on: the sidecar removes the
//              task's container and Swarm replaces it (docs/docker.md "Recovery of Swarm tasks").
// Measured from the fault, with a closed-loop client (one request at a time through nginx, no
// pause) and nginx's upstream file read every 10 ms:
//   out        the task's server line leaves nginx's file (or is marked down);
//   routed     the replacement task answers a request through nginx;
//   failed     client requests that failed between the fault and `routed`.
// Prints each run, then median and max per figure.
//
//   npm run bench:swarm                                   # builds, then both faults, 5 runs each
//   BENCH_FAULTS=kill BENCH_RUNS=3 npm run bench:swarm
//
// Env: BENCH_FAULTS (kill,unhealthy), BENCH_RUNS (5), BENCH_JSON (a file for every run's figures).
// Needs what the Swarm integration tests need: dockerd, the test images on the shared engine,
// nginx (/usr/sbin/nginx). Run it under the integration lock on shared machines:
//   flock /tmp/orchestry-it.lock npm run bench:swarm
import { writeFileSync } from 'node:fs';
import { register } from 'node:module';

register('./swarm/ts-hooks.mjs', import.meta.url);
const { killTask, runningTasks } = await import('../test/helpers/swarm-services.ts');
const { startSwarmStack } = await import('../test/helpers/swarm-stack.ts');
const { sampleEvery, waitFor } = await import('../test/helpers/wait.ts');

const list = (name, fallback) => (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
const FAULTS = list('BENCH_FAULTS', 'kill,unhealthy');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const REPLICAS = 3;
const SERVICE = 'bench-web';

/** The stack each fault runs on. */
const STACKS = {
  kill: { service: { name: SERVICE, replicas: REPLICAS }, sidecar: { logging: { level: 'warn' } } },
  unhealthy: {
    // No Docker HEALTHCHECK (Swarm would replace the task itself); budgets wide enough for every run.
    service: { name: SERVICE, replicas: REPLICAS, healthcheck: false },
    sidecar: {
      logging: { level: 'warn' },
      docker: { startup_grace_seconds: 1 },
      recovery: { mode: 'on', max_restarts: 100, budget_per_app: 1000, backoff_min_seconds: 0, backoff_max_seconds: 0 },
    },
  },
};

const taskName = (t) => `${SERVICE}.${t.Slot}.${t.ID}`;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Whether nginx's file routes to the port; null when the file could not be read (a sample lost,
 * not a verdict: one run saw ENOENT once while the sidecar replaced the file).
 */
const routedNow = (stack, port) => stack.routed(port).catch(() => null);

/** One fault on one task: the figures of the run. */
async function runOnce(stack, fault, run) {
  const { swarm, web, nginx } = stack;
  const tasks = await runningTasks(swarm, web.id, REPLICAS);
  // Every task routed and answering before the fault: the state users are in.
  await waitFor(async () => (await Promise.all(tasks.map((t) => routedNow(stack, web.port(t.Slot))))).every((r) => r === true), { what: 'every task routed', timeoutMs: 30_000 });
  // A sidecar removes the containers of its own node's tasks only (it has that Engine's socket):
  // the unhealthy task is one on the manager, where the sidecar runs.
  const candidates = fault === 'unhealthy' ? tasks.filter((t) => swarm.node(t.NodeID).role === 'manager') : tasks;
  const victim = candidates.find((t) => t.Slot === (run % REPLICAS) + 1) ?? candidates[run % candidates.length];
  const port = web.port(victim.Slot);
  const node = swarm.node(victim.NodeID).role;
  const seen = [];
  const load = sampleEvery(0, async () => {
    const res = await nginx.get('/').catch(() => ({ status: 0, body: '' }));
    seen.push({ at: Date.now(), body: res.body, ok: res.status === 200 });
  });
  const files = [];
  const watch = sampleEvery(10, async () => {
    const routed = await routedNow(stack, port);
    if (routed !== null) files.push({ at: Date.now(), routed });
  });
  await waitFor(() => seen.some((s) => s.body === taskName(victim)), { what: 'the task answering through nginx', timeoutMs: 30_000 });
  const t0 = Date.now();
  if (fault === 'kill') await killTask(swarm, victim);
  else if ((await fetch(`http://127.0.0.1:${port}/control/fail`, { method: 'POST' })).status !== 200) throw new Error('/control/fail refused');
  const replacement = await waitFor(
    async () => (await runningTasks(swarm, web.id, REPLICAS, 60_000)).find((t) => t.Slot === victim.Slot && t.ID !== victim.ID),
    { what: 'a replacement task running', timeoutMs: 60_000, intervalMs: 50 },
  );
  const routedAt = await waitFor(() => seen.find((s) => s.at > t0 && s.body === taskName(replacement))?.at, { what: 'the replacement answering through nginx', timeoutMs: 60_000 });
  await load.stop();
  await watch.stop();
  const outAt = files.find((f) => f.at > t0 && !f.routed)?.at ?? null;
  const during = seen.filter((s) => s.at > t0 && s.at <= routedAt);
  return { fault, run, node, outMs: outAt === null ? null : outAt - t0, routedMs: routedAt - t0, requests: during.length, failed: during.filter((s) => !s.ok).length };
}

const all = [];
// A stray rejection must not end the process before the swarm's daemons are stopped.
process.on('unhandledRejection', (err) => console.error('unhandled rejection:', err));
for (const fault of FAULTS) {
  if (!STACKS[fault]) throw new Error(`BENCH_FAULTS: unknown fault ${fault} (kill, unhealthy)`);
  const stack = await startSwarmStack({ app: `bench-${fault}`, ...STACKS[fault] });
  try {
    for (let run = 0; run < RUNS; run++) {
      const r = await runOnce(stack, fault, run);
      all.push(r);
      console.log(`${fault} #${run + 1} (task on the ${r.node}): out of nginx's file ${r.outMs === null ? 'never' : `${r.outMs} ms`}, replacement routed ${r.routedMs} ms, ${r.failed} of ${r.requests} requests failed`);
    }
  } finally {
    await stack.stop();
  }
}

console.log('\nfault      runs  out median/max (ms)  replacement routed median/max (ms)  failed requests median/max');
for (const fault of FAULTS) {
  const rs = all.filter((r) => r.fault === fault);
  const outs = rs.map((r) => r.outMs).filter((x) => x !== null);
  const cell = (xs) => `${median(xs)} / ${Math.max(...xs)}`;
  console.log(
    `${fault.padEnd(10)} ${String(rs.length).padStart(4)}  ${cell(outs).padEnd(19)}  ${cell(rs.map((r) => r.routedMs)).padEnd(34)}  ${cell(rs.map((r) => r.failed))}` +
      (outs.length < rs.length ? `  (${rs.length - outs.length} run(s) never left the file)` : ''),
  );
}
if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, `${JSON.stringify(all, null, 2)}\n`);
