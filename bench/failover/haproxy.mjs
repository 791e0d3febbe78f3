// The HAProxy row of bench/failover.mjs (mode `haproxy`): HAProxy 2.6 in front of the same
// backends, with active checks `inter 1s fall 3 rise 2` (what the sidecar's tuned row imitates),
// the bench's read timeout as `timeout server`, and the retries most HAProxy configs carry
// (`retries 3`, `option redispatch`: a failed connect is retried on another server).
// The bench installs nothing: without /usr/sbin/haproxy the row says how to get it.
//
// HAProxy logs no per-attempt list as nginx's $upstream_addr, so its "out" comes from the
// backend's side (the last request that reached backend 1) and, for a killed backend (which
// records nothing), from the moment HAProxy declared it DOWN (the warning it prints in the
// foreground, timestamped as it arrives): after that it sends it no request.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { superviseChild } from './child.mjs';
import { answers } from './nginx.mjs';

/** Where the haproxy binary is expected, and how to get it. */
export const HAPROXY_BIN = process.env.BENCH_HAPROXY ?? '/usr/sbin/haproxy';
export const HAPROXY_MISSING = `HAProxy is not installed (${HAPROXY_BIN}); for this row: apt-get install -y haproxy (Debian 12: 2.6)`;

/** Whether the HAProxy row can run. */
export function haproxyAvailable() {
  return existsSync(HAPROXY_BIN);
}

function haproxyConfig(run, opts) {
  const servers = run.backends.map((a, i) => `    server b${i} ${a} check`).join('\n');
  return `global
    maxconn 4096
    stats socket ${join(run.dir, 'haproxy.sock')}
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server ${opts.readTimeoutSeconds}s
    retries 3
    option redispatch
backend web
    balance roundrobin
    option httpchk GET /health
    default-server inter 1s fall 3 rise 2
${servers}
frontend fe
    bind 127.0.0.1:${run.frontPort}
    default_backend web
`;
}

/**
 * Starts `haproxy -db -f cfg` as our child and waits until it answers. `attempts()` gives what
 * the bench knows of requests to each server: the server-state changes HAProxy printed
 * ({addr, start, end, status: 'DOWN' | 'UP'}); metrics.mjs adds the backends' own arrival times.
 */
export async function startHaproxy(run, opts) {
  const cfg = join(run.dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(run, opts));
  const child = spawn(HAPROXY_BIN, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events = [];
  let output = '';
  const onData = (d) => {
    const now = performance.timeOrigin + performance.now();
    output += d;
    for (const m of String(d).matchAll(/Server web\/b(\d) is (DOWN|UP)/g)) {
      events.push({ addr: run.backends[Number(m[1])], start: now, end: now, status: m[2] });
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const { running, stop } = superviseChild(child, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (!(await answers(run.frontPort))) {
    if (!running() || Date.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not start: ${output.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { stop, reloads: async () => 0, attempts: async () => events, stateEvents: true };
}
