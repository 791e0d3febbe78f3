import { describe, expect, it } from 'vitest';
import type Dockerode from 'dockerode';
import { createManualClock } from '../../src/clock.js';
import {
  cpuLimitOf,
  createDockerStatsSampler,
  sampleOf,
  type RawStats,
  type StatsSample,
} from '../../src/discovery/docker-stats.js';

/** A one-shot stats answer of dockerd 20.10 (cgroup v1) for a container with 0.5 CPU and 128 MiB. */
const REAL: RawStats = {
  cpu_stats: {
    cpu_usage: { total_usage: 172208563, percpu_usage: [105282002, 66926561] },
    system_cpu_usage: 18888500000000,
    online_cpus: 2,
  },
  precpu_stats: {
    cpu_usage: { total_usage: 145005919, percpu_usage: [103542504, 41463415] },
    system_cpu_usage: 18886560000000,
    online_cpus: 2,
  },
  memory_stats: {
    usage: 76992512,
    limit: 134217728,
    stats: { cache: 67395584, inactive_file: 48205824, total_inactive_file: 48205824, total_rss: 8380416 },
  },
};
/** What dockerd answers for a container that is not running. */
const STOPPED: RawStats = { cpu_stats: { cpu_usage: { total_usage: 0 } }, precpu_stats: { cpu_usage: { total_usage: 0 } }, memory_stats: {} };

describe('Docker stats parsing', () => {
  it('reads the CPU limit from NanoCpus, CpuQuota/CpuPeriod or the cpuset, whichever is smallest', () => {
    expect(cpuLimitOf({ NanoCpus: 500_000_000 })).toBe(0.5);
    expect(cpuLimitOf({ CpuQuota: 150_000, CpuPeriod: 100_000 })).toBe(1.5);
    expect(cpuLimitOf({ CpuQuota: 50_000, CpuPeriod: 0 })).toBe(0.5);
    expect(cpuLimitOf({ CpusetCpus: '0-1,3' })).toBe(3);
    expect(cpuLimitOf({ NanoCpus: 2_000_000_000, CpusetCpus: '1' })).toBe(1);
    expect(cpuLimitOf({ NanoCpus: 0, CpuQuota: -1, CpusetCpus: '' })).toBeNull();
  });

  it('computes CPU as a percent of the container limit from precpu, and memory without inactive file pages', () => {
    const out = sampleOf(REAL, null, 0.5, 5000)!;
    // 27202644 ns of 1.94e9 ns host time on 2 CPUs = 0.028 CPUs = 5.6% of half a CPU.
    expect(out.sample.cpuPercent).toBeCloseTo(5.6088, 3);
    expect(out.sample).toMatchObject({ at: 5000, memoryBytes: 76992512 - 48205824, memoryLimitBytes: 134217728 });
    expect(out.sample.memoryPercent).toBeCloseTo(21.448, 2);
    expect(out.cpu).toEqual({ totalNs: 172208563, systemNs: 18888500000000, onlineCpus: 2 });
  });

  it('computes CPU as a percent of all online CPUs without a limit', () => {
    expect(sampleOf(REAL, null, null, 0)!.sample.cpuPercent).toBeCloseTo(1.4022, 3);
  });

  it('computes CPU from the previous reading when precpu is empty, and gives none for the first', () => {
    const noPre: RawStats = { ...REAL, precpu_stats: { cpu_usage: { total_usage: 0 } } };
    expect(sampleOf(noPre, null, 0.5, 0)!.sample.cpuPercent).toBeNull();
    const previous = { totalNs: 145005919, systemNs: 18886560000000, onlineCpus: 2 };
    expect(sampleOf(noPre, previous, 0.5, 0)!.sample.cpuPercent).toBeCloseTo(5.6088, 3);
  });

  it('gives no sample for a container that is not running', () => {
    expect(sampleOf(STOPPED, null, null, 0)).toBeNull();
  });
});

/** A stand-in for the few Dockerode calls the sampler makes, answering when the test says so. */
function fakeDocker(opts: { gone?: Set<string>; failing?: Set<string> } = {}) {
  const pending: Array<{ id: string; answer: () => void }> = [];
  const requests: string[] = [];
  const docker = {
    getContainer(id: string) {
      return {
        inspect: async () => {
          if (opts.gone?.has(id)) throw Object.assign(new Error('no such container'), { statusCode: 404 });
          return { HostConfig: { NanoCpus: 1_000_000_000 } };
        },
        stats: () =>
          new Promise((resolve, reject) => {
            requests.push(id);
            pending.push({
              id,
              answer: () =>
                opts.failing?.has(id) ? reject(Object.assign(new Error('engine busy'), { statusCode: 500 })) : resolve(REAL),
            });
          }),
      } as unknown as Dockerode.Container;
    },
  };
  return { docker, pending, requests };
}

/** Lets resolved promises run their callbacks (no time passes). */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('Docker stats sampler', () => {
  it('spreads new containers over one interval and samples each again an interval after its last start', async () => {
    const clock = createManualClock(0);
    const { docker, pending, requests } = fakeDocker();
    const samples: Array<[string, StatsSample]> = [];
    const sampler = createDockerStatsSampler({ docker, clock, intervalMs: 1000, onSample: (id, s) => samples.push([id, s]) });
    sampler.setContainers(['a', 'b', 'c', 'd']);
    await settle();
    expect(requests).toEqual(['a']);
    clock.advance(250);
    await settle();
    clock.advance(250);
    await settle();
    expect(requests).toEqual(['a', 'b', 'c']);
    for (const p of pending.splice(0)) p.answer();
    await settle();
    expect(samples.map(([id]) => id)).toEqual(['a', 'b', 'c']);
    expect(samples[0]![1]).toMatchObject({ at: 500, memoryBytes: 76992512 - 48205824 });
    clock.advance(250);
    await settle();
    expect(requests).toEqual(['a', 'b', 'c', 'd']);
    clock.advance(250);
    await settle();
    expect(requests).toEqual(['a', 'b', 'c', 'd', 'a']);
    sampler.stop();
  });

  it('keeps at most maxInFlight requests open', async () => {
    const clock = createManualClock(0);
    const { docker, pending, requests } = fakeDocker();
    const sampler = createDockerStatsSampler({ docker, clock, intervalMs: 100, maxInFlight: 2, onSample: () => {} });
    sampler.setContainers(['a', 'b', 'c', 'd']);
    await settle();
    clock.advance(100);
    await settle();
    expect(requests).toEqual(['a', 'b']);
    pending.shift()!.answer();
    await settle();
    expect(requests).toEqual(['a', 'b', 'c']);
    sampler.stop();
  });

  it('drops a container that is gone and reports other errors, trying again next interval', async () => {
    const clock = createManualClock(0);
    const { docker, pending, requests } = fakeDocker({ gone: new Set(['gone']), failing: new Set(['flaky']) });
    const errors: string[] = [];
    const sampler = createDockerStatsSampler({ docker, clock, intervalMs: 1000, onSample: () => {}, onError: (id) => errors.push(id) });
    sampler.setContainers(['gone', 'flaky']);
    await settle();
    clock.advance(500);
    await settle();
    pending.shift()!.answer();
    await settle();
    expect(errors).toEqual(['flaky']);
    clock.advance(2000);
    await settle();
    expect(requests).toEqual(['flaky', 'flaky']);
    sampler.stop();
  });

  it('stops sampling containers no longer given, and everything after stop()', async () => {
    const clock = createManualClock(0);
    const { docker, pending, requests } = fakeDocker();
    const samples: string[] = [];
    const sampler = createDockerStatsSampler({ docker, clock, intervalMs: 1000, onSample: (id) => samples.push(id) });
    sampler.setContainers(['a']);
    await settle();
    sampler.setContainers([]);
    pending.shift()!.answer();
    await settle();
    clock.advance(5000);
    await settle();
    expect(requests).toEqual(['a']);
    expect(samples).toEqual([]);
    sampler.setContainers(['b']);
    await settle();
    sampler.stop();
    pending.shift()!.answer();
    clock.advance(5000);
    await settle();
    expect(samples).toEqual([]);
    expect(clock.pendingTimers()).toBe(0);
  });
});
