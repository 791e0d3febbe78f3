/**
 * The built CLI against what a hostile config or client can do to the daemon as a whole, with a
 * private nginx and real HTTP backends: a pattern in `expected_body` that backtracks forever on
 * the body a backend answers, and a flood of idle connections on the unauthenticated admin port
 * under a low file descriptor limit (the CLI runs under `prlimit --nofile`). Nothing of either
 * may stop /healthz, the probes of other apps or nginx updates, or count against a backend.
 */
import { readdir, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nginxSection, sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { serverInFile, startNginx, type NginxInstance } from '../helpers/nginx-instance.js';
import { listenHttp, type LoopbackServer } from '../helpers/probe-servers.js';
import { startSidecarProcess, type BackendJson, type SidecarProcess } from '../helpers/sidecar-process.js';
import { sampleEvery, waitFor } from '../helpers/wait.js';

const FD_LIMIT = 256;
const FAST_HEALTH = { initial_delay_seconds: 0, period_seconds: 0.5, timeout_seconds: 0.4, failure_threshold: 2, success_threshold: 1 };

let cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

/** An HTTP backend answering `body` (or what it returns then) to every request, closing each connection (a new one per probe). */
async function backend(body: string | (() => string)): Promise<LoopbackServer> {
  const s = await listenHttp((_req, res) => {
    res.setHeader('connection', 'close');
    res.end(typeof body === 'string' ? body : body());
  });
  cleanups.push(() => s.close());
  return s;
}

/** A private nginx and the CLI managing it with `apps`, the admin section and the wrapper given. */
async function daemon(
  apps: Record<string, unknown>,
  opts: { admin?: Record<string, unknown>; wrapper?: string[] } = {},
): Promise<{ sidecar: SidecarProcess; nginx: NginxInstance }> {
  const nginx = await startNginx({ upstreams: 'upstream web { server 127.0.0.1:1; }\n' });
  cleanups.push(() => nginx.stop());
  const adminPort = await freePort();
  const configPath = join(nginx.dir, 'sidecar.yaml');
  await writeFile(
    configPath,
    sidecarYaml({
      apps,
      nginx: nginxSection(nginx.dir, { coalesce_min_wait_seconds: 0.1, coalesce_max_wait_seconds: 0.5 }),
      admin: { listen: `127.0.0.1:${adminPort}`, ...opts.admin },
      store: { enabled: false },
    }),
  );
  cleanups.push(() => rm(configPath, { force: true }));
  const sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`, opts.wrapper ? { wrapper: opts.wrapper } : {});
  cleanups.push(() => sidecar.stop());
  return { sidecar, nginx };
}

const backendOf = async (sidecar: SidecarProcess, app: string) => ((await sidecar.backends(app)) as Array<BackendJson & { last_probe: { at: string; error_class: string | null } | null }>)[0];

/** GET /healthz on a new connection; its status and how long it took. */
async function healthz(sidecar: SidecarProcess): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${sidecar.adminUrl}/healthz`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(5000) });
  await res.text();
  return { status: res.status, ms: performance.now() - started };
}

describe('a YAML expected_body pattern that backtracks forever on the body a backend answers', () => {
  it('keeps the admin port answering while a heavy pattern runs, probes of every app and nginx updates going', async () => {
    const hostile = await backend(`${'a'.repeat(40)}!`);
    // A second backend the pattern matches at once: with it the app is not in panic, so the
    // hostile backend's ejection shows in nginx.
    const matching = await backend('all good');
    // The heavy pattern matches this body, so whether a match finishes within its budget (healthy)
    // or not (a local error), the backend is never ejected. Short at first (a quick match), the
    // 4 KB body only once the admin port is being sampled: the heavy match then runs while it is.
    let heavyBody = 'ay';
    const heavy = await backend(() => heavyBody);
    const fine = await backend('{"status":"ok"}');
    const { sidecar, nginx } = await daemon({
      web: { backends: [`127.0.0.1:${fine.port}`], health: { ...FAST_HEALTH, expected_body: '/"status":\\s*"ok"/' } },
      hostile: { backends: [`127.0.0.1:${hostile.port}`, `127.0.0.1:${matching.port}`], health: { ...FAST_HEALTH, expected_body: '/^(\\w+\\s?)*$/' } },
      // Linear, accepted, but past the match budget on 4 KB (~650 ms a match measured here).
      heavy: { backends: [`127.0.0.1:${heavy.port}`], health: { ...FAST_HEALTH, expected_body: `/${'(?:a?a?a?a?){16}'.repeat(58)}y/` } },
    });

    // Every admin request is timed: one of them is always waiting but for the 100 ms pauses, so
    // a match on the event loop (~650 ms) would hold one back by more than 500 ms.
    const latencies: number[] = [];
    const timed = async <T>(call: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      const out = await call();
      latencies.push(performance.now() - started);
      return out;
    };
    const probesOfWeb = new Set<string>();
    const sampler = sampleEvery(100, async () => {
      expect((await timed(() => healthz(sidecar))).status).toBe(200);
      const web = await timed(() => backendOf(sidecar, 'web'));
      if (web?.last_probe) probesOfWeb.add(web.last_probe.at);
    });
    const heavyLines = () => sidecar.logs().filter((l) => l.app === 'heavy' && l.msg === 'probe failed for a local reason (not counted against the backend)');
    try {
      await waitFor(async () => (await backendOf(sidecar, 'heavy'))?.health === 'healthy' && latencies.length >= 4, { what: 'heavy backend healthy on its short body' });
      heavyBody = `${'a'.repeat(4095)}y`;
      // The pattern is judged, by its real answer: the hostile backend is ejected in nginx.
      await waitFor(async () => (await serverInFile(nginx.outputPath, hostile.port)) === 'down', { what: 'hostile backend down in nginx', timeoutMs: 20_000 });
      expect(await backendOf(sidecar, 'hostile')).toMatchObject({ health: 'unhealthy', last_probe: { error_class: 'unexpected_body' } });
      // The heavy pattern ran past its budget: the sidecar's problem, reported, not the backend's.
      await waitFor(() => heavyLines().length >= 1, { what: "the heavy app's local error logged" });
      expect(heavyLines()[0]!.error).toMatch(/took longer than 250 ms to match|is suspended/);
      const ready = await sidecar.api<{ reasons?: string[] }>('/readyz');
      expect(ready.body.reasons?.some((x) => x.includes('failed for a local reason'))).toBe(true);
      expect(await backendOf(sidecar, 'heavy')).toMatchObject({ breaker: 'closed', ejected: false });
      await waitFor(() => probesOfWeb.size >= 6 && latencies.length >= 60, { what: 'probes of web and admin samples', timeoutMs: 20_000 });
    } finally {
      await sampler.stop();
    }
    // Probes of the other apps queued behind the heavy match still gave their verdicts.
    expect(await sidecar.metric('orchestry_probes_total', { app: 'web', result: 'local_error' })).toBe(0);
    expect(await sidecar.metric('orchestry_probes_total', { app: 'hostile', result: 'local_error' })).toBe(0);
    expect(await backendOf(sidecar, 'web')).toMatchObject({ health: 'healthy', breaker: 'closed' });
    expect(await serverInFile(nginx.outputPath, fine.port)).toBe('up');
    const max = Math.max(...latencies);
    console.log(`admin requests while the heavy pattern ran: ${latencies.length}, slowest ${max.toFixed(1)} ms`);
    // Room for a loaded machine (167 ms seen), not for a match on the loop.
    expect(max).toBeLessThan(400);
  });
});

/** Opens `n` idle TCP connections to `port`, `batch` at a time; resolves once each connected or failed. */
async function flood(port: number, n: number, batch = 100): Promise<{ sockets: Socket[]; close(): void }> {
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, n - i) }, () => new Promise<void>((resolve) => {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => resolve());
        s.on('connect', () => resolve());
        sockets.push(s);
      })),
    );
  }
  return { sockets, close: () => sockets.forEach((s) => s.destroy()) };
}

const openFds = async (pid: number) => (await readdir(`/proc/${pid}/fd`)).length;

describe(`a flood of idle admin connections under a limit of ${FD_LIMIT} file descriptors`, () => {
  const wrapper = ['prlimit', `--nofile=${FD_LIMIT}:${FD_LIMIT}`, '--'];

  it('keeps healthy backends routed, /healthz answering, nginx updates applying and admin connections at the cap', async () => {
    const one = await backend('ok');
    const two = await backend('ok');
    const { sidecar, nginx } = await daemon(
      { web: { backends: [`127.0.0.1:${one.port}`, `127.0.0.1:${two.port}`], health: { ...FAST_HEALTH, path: '/health' } } },
      { admin: { max_connections: 50 }, wrapper },
    );
    await waitFor(async () => (await sidecar.backends('web')).every((b) => b.health === 'healthy'), { what: 'backends healthy' });
    const adminPort = Number(new URL(sidecar.adminUrl).port);

    // Descriptors are read from /proc through the whole flood, not through the admin port.
    let peakFds = 0;
    const fds = sampleEvery(20, async () => {
      peakFds = Math.max(peakFds, await openFds(sidecar.child.pid!));
    });
    const held = await flood(adminPort, 1500);
    cleanups.push(async () => held.close());
    // While the flood's connections are held idle (a connection that has not sent its request yet
    // is idle too, so during the burst itself any new one may be evicted), every client gets in.
    const states: string[] = [];
    let peakConnections = 0;
    const sampler = sampleEvery(100, async () => {
      expect((await healthz(sidecar)).status).toBe(200);
      const b = (await sidecar.backends('web')).find((x) => x.address.endsWith(`:${one.port}`));
      states.push(`${b?.health}/${b?.breaker}/${b?.ejected}`);
      peakConnections = Math.max(peakConnections, await sidecar.metric('orchestry_admin_connections'));
    });
    try {
      // An nginx update with the flood held: the second backend goes away and is marked down.
      await two.close();
      await waitFor(async () => (await serverInFile(nginx.outputPath, two.port)) === 'down', { what: 'second backend down in nginx', timeoutMs: 20_000 });
      await waitFor(() => states.length >= 20, { what: 'samples during the flood' });
    } finally {
      await sampler.stop();
      await fds.stop();
    }
    expect(new Set(states)).toEqual(new Set(['healthy/closed/false']));
    expect(await serverInFile(nginx.outputPath, one.port)).toBe('up');
    expect(peakConnections).toBeLessThanOrEqual(50);
    expect(peakFds).toBeLessThan(FD_LIMIT);
    expect(await sidecar.metric('orchestry_admin_connections_dropped_total', { reason: 'evicted' })).toBeGreaterThan(1000);
    expect(await sidecar.metric('orchestry_probes_total', { result: 'local_error' })).toBe(0);
  });

  it('counts probes that fail for want of file descriptors against no backend, and says so in readiness', async () => {
    const one = await backend('ok');
    // No cap worth the name: the flood takes every descriptor and probes fail with EMFILE.
    const { sidecar } = await daemon(
      { web: { backends: [`127.0.0.1:${one.port}`], health: { ...FAST_HEALTH, path: '/health' } } },
      // Timeouts long enough that the flood holds its descriptors while probes run.
      { admin: { max_connections: 100_000, idle_timeout_seconds: 600, request_timeout_seconds: 600 }, wrapper },
    );
    await waitFor(async () => (await backendOf(sidecar, 'web'))?.health === 'healthy', { what: 'backend healthy' });
    // The admin port answers before start-up is done: a flood then fails the first nginx update
    // too (EMFILE writing the file), another reason in readiness than the one this is about.
    await waitFor(() => sidecar.logs().some((l) => l.msg === 'orchestry-sidecar started'), { what: 'start-up done' });
    const adminPort = Number(new URL(sidecar.adminUrl).port);
    const held = await flood(adminPort, FD_LIMIT * 2);
    cleanups.push(async () => held.close());
    const localLines = () => sidecar.logs().filter((l) => l.msg === 'probe failed for a local reason (not counted against the backend)');
    // The admin port cannot answer now; the log (stdout, open before the flood) can.
    // Two lines: the first local error, and one LOCAL_ERROR_LOG_EVERY_MS later with those in between.
    await waitFor(() => localLines().length >= 2, { what: 'local probe errors logged', timeoutMs: 30_000 });
    held.close();
    await waitFor(async () => (await healthz(sidecar)).status === 200, { what: '/healthz after the flood' });

    expect(localLines()[0]).toMatchObject({ app: 'web', error: expect.stringContaining('EMFILE') });
    expect(await sidecar.metric('orchestry_probes_total', { result: 'local_error' })).toBeGreaterThan(2);
    expect(await sidecar.metric('orchestry_transitions_total', { kind: 'breaker', to: 'open' })).toBe(0);
    expect(await backendOf(sidecar, 'web')).toMatchObject({ health: 'healthy', breaker: 'closed', ejected: false });
    const ready = await sidecar.api<{ ready: boolean; reasons: string[] }>('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.reasons).toEqual([expect.stringMatching(/probes since .* failed for a local reason and were not counted against backends \(last: web\/127\.0\.0\.1:\d+: .*EMFILE/)]);
  });
});
