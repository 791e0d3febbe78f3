/**
 * The mark a DNS-mode sidecar leaves beside nginx's upstream file when nginx is answered (real
 * files, a manual clock): written at the first answer, renewed at most every MARK_EVERY_MS, and
 * at the first answer from 200 ms after a reload whatever the last one's age.
 */
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/clock.js';
import { MARK_EVERY_MS, answeredMarkerPath, createAnsweredMarker, lastAnsweredAt } from '../../src/nginx/dns/answered-marker.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function rig() {
  const dir = await mkdtemp(join(tmpdir(), 'orchestry-marker-'));
  dirs.push(dir);
  const output = join(dir, 'orchestry-upstreams.conf');
  const clock = createManualClock(1_000_000);
  // The file's time is the write's real time: set it back each time to tell writes apart.
  const written = async () => {
    const at = lastAnsweredAt(output);
    if (at !== null) await utimes(answeredMarkerPath(output), 1, 1);
    return at !== null && at > 1000;
  };
  return { output, clock, marker: createAnsweredMarker(output, () => clock.now()), written };
}

describe("DNS mode's mark of nginx answered", () => {
  it('is a hidden file beside the upstream file, absent until nginx is answered', async () => {
    const r = await rig();
    expect(answeredMarkerPath(r.output)).toBe(join(r.output, '..', '.orchestry-upstreams.conf.dns-answered'));
    expect(lastAnsweredAt(r.output)).toBeNull();
    r.marker.mark();
    expect(lastAnsweredAt(r.output)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('is renewed at most every MARK_EVERY_MS, and by the first answer from 200 ms after a reload', async () => {
    const r = await rig();
    r.marker.mark();
    expect(await r.written()).toBe(true);
    r.clock.advance(MARK_EVERY_MS - 1);
    r.marker.mark();
    expect(await r.written()).toBe(false);
    r.clock.advance(1);
    r.marker.mark();
    expect(await r.written()).toBe(true);

    r.clock.advance(1000);
    r.marker.reloaded();
    r.clock.advance(199);
    r.marker.mark(); // in the reload's instant: could be an old worker's
    expect(await r.written()).toBe(false);
    r.clock.advance(1);
    r.marker.mark();
    expect(await r.written()).toBe(true);
  });

  it('costs nothing but the mark when the directory cannot be written', () => {
    const marker = createAnsweredMarker('/proc/orchestry-no-such-dir/upstreams.conf');
    expect(() => marker.mark()).not.toThrow();
    expect(lastAnsweredAt('/proc/orchestry-no-such-dir/upstreams.conf')).toBeNull();
  });
});
