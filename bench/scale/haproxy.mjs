// The HAProxy phase of bench/scale.mjs: HAProxy 2.6 checking the same backends once per second
// (`option httpchk GET /health`, `inter 1s fall 3 rise 2`, the backends grouped into the same
// apps as the sidecar's), measured the same way: CPU and RSS over the steady window, and the
// time until it declares the failing half DOWN (and back UP), from its own messages.
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { superviseChild } from '../failover/child.mjs';
import { answers, freePort } from '../failover/nginx.mjs';
import { HAPROXY_BIN } from '../failover/haproxy.mjs';
import { appOf } from './sidecar.mjs';

function haproxyConfig({ dir, ports, appSize, frontPort }) {
  const sections = [];
  for (let start = 0; start < ports.length; start += appSize) {
    const servers = ports.slice(start, start + appSize).map((p, k) => `    server b${start + k} 127.0.0.1:${p} check`);
    sections.push(`backend ${appOf(start, appSize)}\n    option httpchk GET /health\n    default-server inter 1s fall 3 rise 2\n${servers.join('\n')}`);
  }
  return `global
    maxconn 1000
    stats socket ${join(dir, 'haproxy.sock')}
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
${sections.join('\n')}
frontend fe
    bind 127.0.0.1:${frontPort}
    default_backend a0
`;
}

/**
 * Starts `haproxy -db -f cfg` and waits until its frontend answers. `state` holds, per global
 * backend index, the time of its last DOWN and UP message ({down: Map, up: Map}); `startedAt`,
 * `answeredAt` (epoch ms).
 */
export async function startHaproxy({ dir, ports, appSize }) {
  const frontPort = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig({ dir, ports, appSize, frontPort }));
  const startedAt = Date.now();
  const child = spawn(HAPROXY_BIN, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  const state = { down: new Map(), up: new Map(), output: '' };
  let partial = '';
  const onData = (d) => {
    const now = Date.now();
    const lines = (partial + d).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      const m = /Server a\d+\/b(\d+) is (DOWN|UP)/.exec(line);
      if (m) (m[2] === 'DOWN' ? state.down : state.up).set(Number(m[1]), now);
      else if (state.output.length < 4000) state.output += `${line}\n`;
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const { running, stop } = superviseChild(child, 'SIGTERM');
  const deadline = Date.now() + 60_000;
  while (!(await answers(frontPort))) {
    if (!running() || Date.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not start: ${state.output.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid, startedAt, answeredAt: Date.now(), state, stop };
}

/**
 * One HAProxy phase over `backends` (started for this size): warm-up, steady window, then the
 * failing half fails at once and recovers. Returns the phase's figures.
 */
export async function haproxyPhase({ backends, appSize, failing, opts, makeDir, sleep, steadyWindow, memory }) {
  const dir = makeDir('orchestry-bench-scale-haproxy-');
  await backends.reset();
  const hp = await startHaproxy({ dir, ports: backends.ports, appSize });
  try {
    await sleep(opts.warmupSeconds * 1000);
    const [steady, server] = await Promise.all([steadyWindow([hp.pid], opts.steadySeconds), steadyWindow(backends.pids, opts.steadySeconds)]);
    const serverStats = await backends.stats();
    const tFail = await backends.setMode(failing, opts.failMode);
    const isDown = (i) => (hp.state.down.get(i) ?? 0) >= tFail;
    const allDownAt = await waitAll(failing, isDown, hp.state.down, opts.failTimeoutSeconds);
    await sleep(opts.failHoldSeconds * 1000);
    const tRecover = await backends.setMode(failing, 'ok');
    const allUpAt = await waitAll(failing, (i) => (hp.state.up.get(i) ?? 0) >= tRecover, hp.state.up, opts.failTimeoutSeconds);
    const failingSet = new Set(failing);
    const falseDown = [...hp.state.down.keys()].filter((i) => !failingSet.has(i));
    return {
      pid: hp.pid,
      startMs: hp.answeredAt - hp.startedAt,
      steady,
      peakRssMb: memory(hp.pid)?.hwm ?? null,
      server: { ...server, requests: serverStats.requests, newConnections: serverStats.connections },
      failure: {
        allDownMs: allDownAt === null ? null : allDownAt - tFail,
        down: failing.filter(isDown).length,
        allUpMs: allUpAt === null ? null : allUpAt - tRecover,
      },
      falseEjections: falseDown.length,
    };
  } finally {
    await hp.stop();
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/** Until every index passes `done` (times in `times`): the latest of their times, or null at the timeout. */
async function waitAll(indexes, done, times, timeoutSeconds) {
  const deadline = Date.now() + timeoutSeconds * 1000;
  while (Date.now() < deadline) {
    if (indexes.every(done)) return Math.max(...indexes.map((i) => times.get(i)));
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}
