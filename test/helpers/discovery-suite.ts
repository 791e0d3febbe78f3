/**
 * One behaviour suite run against every DiscoverySource implementation (the config source, the
 * Docker source against the real Engine). Each implementation supplies a harness: the source,
 * what its first snapshot must show, and how to make a change it must report.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DiscoverySource } from '../../src/discovery/types.js';
import type { Snapshot } from '../../src/model.js';
import { waitFor } from './wait.js';

export interface DiscoveryHarness {
  source: DiscoverySource;
  /** Whether a snapshot lists everything that existed before start. */
  initial(snapshot: Snapshot): boolean;
  /**
   * Makes one change the source must report. Resolves to a check that a snapshot shows the
   * change and still everything `initial` expects (a full snapshot, not a delta).
   */
  change(): Promise<(snapshot: Snapshot) => boolean>;
  /**
   * Another source of the same kind watching the same things, left running: once it reports a
   * change, a source that was still running would have reported it too.
   */
  witness(): DiscoverySource;
  /** Stops the source and the witness if still running and removes what the harness made. */
  close(): Promise<void>;
}

export function discoverySourceSuite(name: string, makeHarness: () => Promise<DiscoveryHarness>): void {
  describe(`${name} (shared discovery source suite)`, () => {
    let harness: DiscoveryHarness | null = null;
    const open = async () => {
      harness = await makeHarness();
      const snapshots: Snapshot[] = [];
      return { h: harness, snapshots, record: (s: Snapshot) => void snapshots.push(s) };
    };
    afterEach(async () => {
      await harness?.close();
      harness = null;
    });

    it('emits a full snapshot under its own name by the time start resolves', async () => {
      const { h, snapshots, record } = await open();
      await h.source.start(record);
      expect(snapshots.length).toBeGreaterThan(0);
      const first = snapshots[0] as Snapshot;
      expect(first.source).toBe(h.source.name);
      expect(first.backends.every((b) => b.source === h.source.name)).toBe(true);
      expect(h.initial(first)).toBe(true);
    });

    it('emits a new full snapshot after a change', async () => {
      const { h, snapshots, record } = await open();
      await h.source.start(record);
      const before = snapshots.length;
      const shows = await h.change();
      await waitFor(() => snapshots.slice(before).some(shows), { what: `${name} snapshot showing the change` });
      const latest = snapshots[snapshots.length - 1] as Snapshot;
      expect(h.initial(latest)).toBe(true);
    });

    it('emits nothing once stop() has resolved', async () => {
      const { h, snapshots, record } = await open();
      await h.source.start(record);
      await h.source.stop();
      const witnessed: Snapshot[] = [];
      await h.witness().start((s) => void witnessed.push(s));
      const before = snapshots.length;
      const shows = await h.change();
      await waitFor(() => witnessed.some(shows), { what: `a running ${name} reporting the change` });
      expect(snapshots.length).toBe(before);
    });
  });
}
