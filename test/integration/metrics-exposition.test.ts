/**
 * The metrics exposition as Prometheus reads it: with Node's and the process's default metrics
 * (read from /proc), and checked by promtool.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createMetrics, METRICS_IDENTITY_LABEL } from '../../src/observability/metrics.js';
import { busyExposition, find, parseSamples, value } from '../helpers/metrics-text.js';

/** Runs `promtool check metrics` on the text; the tool must exist (CI installs it). */
function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error) throw new Error(`promtool is required for this test (apt-get install prometheus): ${run.error.message}`);
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

describe('metrics exposition', () => {
  it('keeps instances apart and includes process and nodejs metrics by default', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.onConfigReload('success', Date.now());
    expect(value(await b.render(), 'orchestry_config_reloads_total', { result: 'success' })).toBe(0);
    const text = await a.render();
    expect(find(text, 'process_cpu_seconds_total')).toHaveLength(1);
    expect(find(text, 'nodejs_heap_size_used_bytes')).toHaveLength(1);
    expect(a.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('passes promtool check metrics, default metrics included', async () => {
    const result = promtoolCheck(await busyExposition(true));
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it('labels every series with the sidecar identity, default metrics included, and still passes promtool', async () => {
    const text = await busyExposition(true, 'node-1');
    const samples = parseSamples(text);
    expect(samples.filter((s) => s.name.startsWith('process_') || s.name.startsWith('nodejs_')).length).toBeGreaterThan(10);
    expect(samples.filter((s) => s.labels[METRICS_IDENTITY_LABEL] !== 'node-1').map((s) => s.name)).toEqual([]);
    expect(promtoolCheck(text)).toEqual({ status: 0, output: '' });
  });

  it('promtool rejects a badly named counter (the check is live)', () => {
    const result = promtoolCheck('# HELP bad_counter x\n# TYPE bad_counter counter\nbad_counter 1\n');
    expect(result.status).not.toBe(0);
    expect(result.output).toContain('_total');
  });
});
