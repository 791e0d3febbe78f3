import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import type { MergedSnapshot } from '../../src/discovery/aggregator.js';
import { createSidecarBus, type RoutingDecision } from '../../src/events/sidecar-events.js';
import { createHealthRegistry } from '../../src/health/registry.js';
import { backendId, type Backend, type ContainerRef } from '../../src/model.js';
import type { DesiredSetOptions } from '../../src/upstream/desired.js';
import { createRouter } from '../../src/upstream/router.js';
import type { DesiredSet, DesiredUpstream } from '../../src/upstream/types.js';
import type { AppConfig } from '../../src/config/types.js';
import { configOf } from '../helpers/fixtures.js';
import { createCoalescer, type Coalescer } from '../../src/nginx/coalescer.js';

const config = configOf({ apps: { web: { backends: ['127.0.0.1:8001', '127.0.0.1:8002'], health: { success_threshold: 1 } } } });
const web = config.apps[0]!;
const container = (id: string): ContainerRef => ({
  id, name: id, image: 'img', replica: null, state: 'running', dockerHealth: null, restartCount: 0, oomKilled: false, exitCode: null, startedAt: 0, labels: {},
});
const backend = (port: number, over: Partial<Backend> = {}): Backend => ({
  id: backendId('web', '127.0.0.1', port), app: 'web', host: '127.0.0.1', port, weight: 1, backup: false, health: web.health, source: 'file', ...over,
});

function rig(holds: DesiredSetOptions = {}, more: Partial<Parameters<typeof createRouter>[0]> = {}) {
  const clock = createManualClock(1000);
  const bus = createSidecarBus((_name, err) => {
    throw err;
  });
  const registry = createHealthRegistry({ clock, breaker: config.breaker, detection: config.failure_detection });
  const desired: Array<{ set: DesiredSet; urgent: boolean }> = [];
  const routings: RoutingDecision[] = [];
  bus.on('routing', (r) => routings.push(r));
  const held: Array<Array<{ app: string; reason: string }>> = [];
  bus.on('held', ({ apps }) => held.push(apps));
  const memory: Array<Record<string, unknown>> = [];
  const router = createRouter({
    clock, bus, registry, holds: () => holds, slowStart: () => true, leaveToNginx: () => [], onDesired: (set, urgent) => desired.push({ set, urgent }),
    onMemory: (m) => memory.push(m), ...more,
  });
  const discover = (backends: Backend[], awaiting: string[] = [], apps: AppConfig[] = [web]) => {
    registry.sync(backends);
    const merged: MergedSnapshot = { apps, backends, awaiting };
    router.setDiscovery(merged);
  };
  return { clock, bus, registry, router, desired, routings, discover, held, memory };
}

/** `web` as an app that accepts containers, and a label-only app `shop`. */
const webAccepting: AppConfig = { ...web, docker: { ...web.docker, accept_containers: true } };
const shop: AppConfig = { ...web, name: 'shop', backends: [], docker: { ...web.docker, accept_containers: true } };
const shopBackend = (port: number, over: Partial<Backend> = {}): Backend =>
  backend(port, { id: backendId('shop', '127.0.0.1', port), app: 'shop', source: 'docker', ...over });

const servers = (set: DesiredSet | undefined) => set?.upstreams[0]?.servers.map((s) => `${s.address}${s.down ? ' down' : ''}`);

describe('the router', () => {
  it('while Docker is awaited, writes an app that takes no containers at once (issue 11 item 7)', () => {
    const r = rig();
    r.discover([backend(8001), backend(8002)], ['docker']);
    expect(r.desired).toHaveLength(1);
    expect(servers(r.desired[0]?.set)).toEqual(['127.0.0.1:8001', '127.0.0.1:8002']);
  });

  it('while Docker is awaited, hands nothing to nginx when an app that takes containers has no last upstream', () => {
    const r = rig();
    r.discover([backend(8001)], ['docker'], [webAccepting]);
    expect(r.routings).toHaveLength(1);
    expect(r.desired).toHaveLength(0);
    r.discover([backend(8001), backend(8002)], [], [webAccepting]);
    expect(r.desired).toHaveLength(1);
    expect(servers(r.desired[0]?.set)).toEqual(['127.0.0.1:8001', '127.0.0.1:8002']);
  });

  it('while Docker is awaited, the last upstreams saved before a restart stand in for the apps made of containers, label-only ones too', () => {
    const saved = (name: string, port: number): DesiredUpstream =>
      ({ name, servers: [{ address: `127.0.0.1:${port}`, weight: 1, backup: false, down: false }], panic: false, failover: false, keepalive: 32, balance: 'round_robin' });
    const restored = new Map([['web', saved('web', 8005)], ['shop', saved('shop', 9005)]]);
    const r = rig({}, { restored });
    const other = { ...web, name: 'static', backends: [] };
    r.discover([backend(8001), backend(7001, { id: backendId('static', '127.0.0.1', 7001), app: 'static' })], ['docker'], [webAccepting, other]);
    expect(r.desired.at(-1)?.set.upstreams.map((u) => [u.name, u.servers.map((x) => x.address)])).toEqual([
      ['web', ['127.0.0.1:8005']],
      ['static', ['127.0.0.1:7001']],
      ['shop', ['127.0.0.1:9005']],
    ]);
    // Once Docker has answered, what it says is written.
    r.discover([backend(8001), shopBackend(9001)], [], [webAccepting, other, shop]);
    expect(r.desired.at(-1)?.set.upstreams.map((u) => [u.name, u.servers.map((x) => x.address)])).toEqual([
      ['web', ['127.0.0.1:8001']],
      ['static', []],
      ['shop', ['127.0.0.1:9001']],
    ]);
    expect(Object.keys(r.memory.at(-1) ?? {})).toEqual(['web', 'shop']);
  });

  it('holds an app nginx would refuse at its last good upstream while the others keep updating (issue 11 item 6)', () => {
    const r = rig();
    const apps = [web, shop];
    r.discover([backend(8001), shopBackend(9001), shopBackend(9002, { backup: true })], [], apps);
    expect(r.held).toEqual([]);
    // The primary of shop goes: only its backup would be left, which nginx refuses.
    r.discover([backend(8001), backend(8002), shopBackend(9002, { backup: true })], [], apps);
    const set = r.desired.at(-1)?.set;
    expect(set?.upstreams.map((u) => [u.name, u.servers.map((x) => x.address)])).toEqual([
      ['web', ['127.0.0.1:8001', '127.0.0.1:8002']],
      ['shop', ['127.0.0.1:9001', '127.0.0.1:9002']],
    ]);
    expect(r.held.at(-1)).toEqual([{ app: 'shop', reason: 'every server is a backup; nginx needs at least one that is not' }]);
    expect(r.router.held()).toEqual(r.held.at(-1));
    r.discover([backend(8001), shopBackend(9003)], [], apps);
    expect(servers(r.desired.at(-1)?.set)).toEqual(['127.0.0.1:8001']);
    expect(r.desired.at(-1)?.set.upstreams[1]?.servers.map((x) => x.address)).toEqual(['127.0.0.1:9003']);
    expect(r.held.at(-1)).toEqual([]);
  });

  it('never writes two upstreams nginx would read as one: the later is left out and reported', () => {
    const r = rig();
    const upper: AppConfig = { ...web, name: 'WEB', backends: [] };
    r.discover([backend(8001)], [], [web, upper]);
    expect(r.desired.at(-1)?.set.upstreams.map((u) => u.name)).toEqual(['web']);
    expect(r.held.at(-1)).toEqual([{ app: 'WEB', reason: 'nginx reads it as the same upstream as "web"' }]);
  });

  it('recomputes once for a burst of transitions, after the burst, and not at all for first verdicts', async () => {
    const r = rig();
    r.discover([backend(8001), backend(8002)]);
    const before = r.routings.length;
    r.bus.emit('transition', { kind: 'health', backendId: backend(8001).id, app: 'web', from: 'unknown', to: 'healthy', at: 1000, reason: 'first verdict' });
    r.clock.advance(100);
    expect(r.routings).toHaveLength(before);
    for (let i = 0; i < 50; i++) {
      r.bus.emit('transition', { kind: 'breaker', backendId: backend(8001).id, app: 'web', from: 'closed', to: 'open', at: 1000, reason: 'test' });
      r.clock.advance(0.1);
    }
    expect(r.routings).toHaveLength(before);
    r.clock.advance(10);
    expect(r.routings).toHaveLength(before + 1);
  });

  it('asks nginx to be told at once when a backend is draining', () => {
    const r = rig();
    r.discover([backend(8001), backend(8002, { draining: true })]);
    expect(r.desired.at(-1)?.urgent).toBe(true);
    expect(servers(r.desired.at(-1)?.set)).toEqual(['127.0.0.1:8001', '127.0.0.1:8002 down']);
  });

  it("applies recovery's drains and weights where weights are decided, not in discovery's backends", () => {
    const r = rig({ drainedContainerIds: new Set(['c2']), weightFactors: new Map([[backend(8001).id, 0.5]]) });
    const b2 = backend(8002, { container: container('c2') });
    r.discover([backend(8001), backend(8003), b2]);
    expect(servers(r.desired.at(-1)?.set)).toEqual(['127.0.0.1:8001', '127.0.0.1:8002 down', '127.0.0.1:8003']);
    expect(r.desired.at(-1)?.set.upstreams[0]?.servers.map((s) => s.weight)).toEqual([1, 2, 2]);
    expect(r.registry.view(b2.id)?.draining).toBe(false);
  });

  it('publishes a panic when it begins and when it ends', () => {
    const r = rig();
    const edges: string[] = [];
    r.bus.on('condition', (c) => edges.push(`${c.kind} ${c.app} ${c.active}`));
    r.discover([backend(8001, { draining: true })]);
    r.discover([backend(8001)]);
    expect(edges).toEqual(['panic web true', 'panic web false']);
    expect(r.router.conditions().panic.size).toBe(0);
  });

  it('looks again every second while a readmitted backend ramps up, and stops once it is at full weight', () => {
    const r = rig();
    const b = backend(8002);
    r.discover([backend(8001), b]);
    r.registry.eject(b.id, 'test');
    r.clock.advance(config.breaker.recovery_timeout_seconds * 1000);
    const passed = r.registry.record({ backendId: b.id, app: 'web', checkType: 'http', healthy: true, responseTimeMs: 1, statusCode: 200, body: 'ok', errorClass: null, error: null, startedAt: 0, finishedAt: 0, attempts: 1 });
    expect(passed.transitions.map((t) => t.to)).toEqual(['healthy', 'half_open']);
    r.router.refresh();
    expect(r.desired.at(-1)?.set.upstreams[0]?.servers.map((s) => s.weight)).toEqual([10, 1]);
    const before = r.routings.length;
    r.clock.advance(5000);
    expect(r.routings.length).toBeGreaterThan(before);
    expect(r.desired.at(-1)?.set.upstreams[0]?.servers.map((s) => s.weight)).toEqual([2, 1]);
    r.clock.advance(config.breaker.slow_start_seconds * 1000);
    r.registry.tick(b.id);
    r.clock.advance(1000);
    const settled = r.routings.length;
    r.clock.advance(10_000);
    expect(r.routings.length).toBe(settled);
    expect(r.desired.at(-1)?.set.upstreams[0]?.servers.map((s) => s.weight)).toEqual([1, 1]);
  });

  it("ramps readmitted backends per app: in DNS mode, an app rendered with its servers listed gets full weight at once, as in reload mode", () => {
    const api: AppConfig = { ...web, name: 'api', backends: [] };
    const apiBackend = (port: number): Backend => backend(port, { id: backendId('api', '127.0.0.1', port), app: 'api' });
    const r = rig({}, { slowStart: (app) => app === 'web', leaveToNginx: () => ['refused'] });
    const readmitted = [backend(8002), apiBackend(9002)];
    r.discover([backend(8001), readmitted[0]!, apiBackend(9001), readmitted[1]!], [], [web, api]);
    for (const b of readmitted) r.registry.eject(b.id, 'test');
    r.clock.advance(config.breaker.recovery_timeout_seconds * 1000);
    for (const b of readmitted) {
      r.registry.record({ backendId: b.id, app: b.app, checkType: 'http', healthy: true, responseTimeMs: 1, statusCode: 200, body: 'ok', errorClass: null, error: null, startedAt: 0, finishedAt: 0, attempts: 1 });
    }
    r.router.refresh();
    const weights = (app: string) => r.desired.at(-1)?.set.upstreams.find((u) => u.name === app)?.servers.map((s) => s.weight);
    expect(weights('web')).toEqual([10, 1]);
    expect(weights('api')).toEqual([1, 1]);
  });
});

describe('the router: work in proportion to what changed', () => {
  it('recomputes only the app a transition belongs to (and the apps it backs up), not the fleet', async () => {
    const raw: Record<string, unknown> = {};
    for (let a = 0; a < 50; a++) {
      raw[`app${a}`] = { backends: Array.from({ length: 20 }, (_, i) => `127.0.0.1:${10_000 + a * 100 + i}`), ...(a === 8 ? { upstream: { backup_app: 'app7' } } : {}) };
    }
    const cfg = configOf({ apps: raw });
    const clock = createManualClock(0);
    const bus = createSidecarBus((_n, err) => {
      throw err;
    });
    const registry = createHealthRegistry({ clock, breaker: cfg.breaker, detection: cfg.failure_detection });
    const asked: string[] = [];
    const counting = { ...registry, viewsOf: (app: string) => (asked.push(app), registry.viewsOf(app)), views: () => (asked.push('*'), registry.views()) };
    const router = createRouter({ clock, bus, registry: counting, holds: () => ({}), slowStart: () => true, leaveToNginx: () => [], onDesired: () => {} });
    const backends = cfg.apps.flatMap((a) => a.backends.map((b) => ({ id: backendId(a.name, b.host, b.port), app: a.name, host: b.host, port: b.port, weight: 1, backup: false, health: a.health, source: 'file' })));
    registry.sync(backends);
    router.setDiscovery({ apps: cfg.apps, backends, awaiting: [] });
    asked.length = 0;
    bus.emit('transition', { kind: 'health', backendId: backends[7 * 20]!.id, app: 'app7', from: 'unknown', to: 'unhealthy', at: 0, reason: 'x' });
    clock.advance(10);
    expect(asked).not.toContain('*');
    expect(new Set(asked)).toEqual(new Set(['app7', 'app8']));
  });

  it('gives nginx one update for a mass failure however large, its transitions streaming in over 1.5 s (issue 12)', async () => {
    let nginx: Coalescer<DesiredSet> | undefined;
    const r = rig({}, { onDesired: (set) => nginx!.push(set) });
    const applied: DesiredSet[] = [];
    // The nginx sync's coalescing with the default waits (coalesce_min/max_wait_seconds 0.1 / 2).
    nginx = createCoalescer({ clock: r.clock, minWaitMs: 100, maxWaitMs: 2000, run: async (set) => void applied.push(set) });
    const fleet = Array.from({ length: 4000 }, (_, i) => backend(10_000 + i));
    r.discover(fleet);
    await nginx.flush();
    applied.length = 0;
    for (let i = 0; i < 2000; i++) {
      r.clock.advance(0.75);
      for (const t of r.registry.eject(fleet[i * 2]!.id, 'probe timeouts')) r.bus.emit('transition', t);
    }
    r.clock.advance(5000);
    await nginx.flush();
    expect(applied).toHaveLength(1);
    expect(applied[0]!.upstreams[0]!.servers.filter((s) => s.down)).toHaveLength(2000);
  });

  /** A router whose registry takes `costMs` of the clock per app's views, as at thousands of backends; `n` backends of web. */
  function costlyRouter(costMs: number, n: number) {
    const clock = createManualClock(1000);
    const bus = createSidecarBus((_name, err) => {
      throw err;
    });
    const real = createHealthRegistry({ clock, breaker: config.breaker, detection: config.failure_detection });
    const registry = { ...real, viewsOf: (app: string) => (clock.set(clock.now() + costMs), real.viewsOf(app)) };
    const recomputes: number[] = [];
    const router = createRouter({ clock, bus, registry, holds: () => ({}), slowStart: () => false, leaveToNginx: () => [], onDesired: () => recomputes.push(clock.now()) });
    const fleet = Array.from({ length: n }, (_, i) => backend(10_000 + i));
    real.sync(fleet);
    router.setDiscovery({ apps: [web], backends: fleet, awaiting: [] });
    recomputes.length = 0;
    /** Ejects the first `count` backends, one every 2 ms; the gaps between recomputes. */
    const stream = (count: number) => {
      for (let i = 0; i < count; i++) {
        clock.advance(2);
        for (const t of real.eject(fleet[i]!.id, 'probe timeouts')) bus.emit('transition', t);
      }
      clock.advance(1000);
      router.stop();
      return recomputes.slice(1).map((at, i) => at - recomputes[i]!);
    };
    return { recomputes, stream };
  }

  it('spaces recomputes by what they cost, so a stream of transitions over thousands of backends leaves the event loop room (issue 12)', () => {
    const r = costlyRouter(15, 1000);
    const gaps = r.stream(500);
    // Each recompute is followed by at least 3 times its cost (45 ms) before the next, not 10 ms.
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(45);
    expect(r.recomputes.length).toBeLessThanOrEqual(25);
  });

  it('never spaces recomputes beyond 50 ms, below nginx coalescing quiet time, so a stream is still applied once', () => {
    const gaps = costlyRouter(40, 200).stream(200);
    // 40 ms of work, then at most 50 ms of waiting: no gap of the 100 ms nginx takes as the end of a burst.
    expect(Math.max(...gaps)).toBeLessThanOrEqual(40 + 50 + 2);
  });
});
