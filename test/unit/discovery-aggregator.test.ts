import { describe, expect, it } from 'vitest';
import type { AppConfig } from '../../src/config/types.js';
import { createDiscoveryAggregator, mergeSnapshots, type MergedSnapshot } from '../../src/discovery/aggregator.js';
import { backendId, type Backend, type Snapshot } from '../../src/model.js';
import { configOf } from '../helpers/fixtures.js';

const app = (name: string, keepalive = 32): AppConfig => configOf({ apps: { [name]: { upstream: { keepalive } } } }).apps[0]!;
const health = app('web').health;
const backend = (source: string, appName: string, port: number, weight = 1): Backend => ({
  id: backendId(appName, '127.0.0.1', port),
  app: appName,
  host: '127.0.0.1',
  port,
  weight,
  backup: false,
  health,
  source,
});

describe('merging discovery snapshots', () => {
  it('takes an app name or backend id that two sources report from the higher-ranked source', () => {
    const latest = new Map<string, Snapshot>([
      ['docker', { source: 'docker', apps: [app('web', 8), app('shop')], backends: [backend('docker', 'web', 1, 5), backend('docker', 'shop', 2)] }],
      ['file', { source: 'file', apps: [app('web', 32)], backends: [backend('file', 'web', 1, 1)] }],
    ]);
    const merged = mergeSnapshots(latest, ['file', 'docker']);
    expect(merged.apps.map((a) => [a.name, a.upstream.keepalive])).toEqual([['web', 32], ['shop', 32]]);
    expect(merged.backends.map((b) => [b.id, b.source, b.weight])).toEqual([
      ['web/127.0.0.1:1', 'file', 1],
      ['shop/127.0.0.1:2', 'docker', 1],
    ]);
  });
});

describe('the discovery aggregator', () => {
  const rig = (required: string[]) => {
    const out: MergedSnapshot[] = [];
    const agg = createDiscoveryAggregator({ order: ['file', 'docker'], required, onSnapshot: (m) => out.push(m) });
    return { agg, out };
  };

  it('says which required sources have not answered yet, until they have', () => {
    const { agg, out } = rig(['docker']);
    agg.push({ source: 'file', apps: [app('web')], backends: [backend('file', 'web', 1)] });
    expect(out.at(-1)?.awaiting).toEqual(['docker']);
    agg.push({ source: 'docker', backends: [] });
    expect(out.at(-1)?.awaiting).toEqual([]);
    expect(agg.current()).toBe(out.at(-1));
  });

  it('passes on a merge only when it differs from the last one', () => {
    const { agg, out } = rig([]);
    const file: Snapshot = { source: 'file', apps: [app('web')], backends: [backend('file', 'web', 1)] };
    agg.push(file);
    agg.push({ ...file, backends: [...file.backends] });
    // The same address from Docker changes nothing: the file's backend wins.
    agg.push({ source: 'docker', backends: [backend('docker', 'web', 1, 9)] });
    expect(out).toHaveLength(1);
    agg.push({ source: 'docker', backends: [backend('docker', 'web', 2)] });
    expect(out).toHaveLength(2);
    expect(out[1]?.backends.map((b) => b.id)).toEqual(['web/127.0.0.1:1', 'web/127.0.0.1:2']);
  });

  it('refuses a snapshot from a source it was not told about', () => {
    const { agg } = rig([]);
    expect(() => agg.push({ source: 'consul', backends: [] })).toThrow(/consul/);
  });
});
