import { describe, expect, it } from 'vitest';
import { restartOnlyChanges } from '../../src/config/changes.js';
import { instanceId } from '../../src/config/instance.js';
import { parseConfigText } from '../../src/config/load.js';
import { configKeys } from '../../src/config/reference.js';
import { parseConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { createMetrics, METRICS_IDENTITY_LABEL } from '../../src/observability/metrics.js';
import { configOf } from '../helpers/fixtures.js';
import { busyExposition, parseSamples } from '../helpers/metrics-text.js';

const WEB = { apps: { web: { backends: ['127.0.0.1:8001'] } } };

function issuesOf(raw: unknown): string[] {
  const result = parseConfig(raw);
  return result.ok ? [] : result.issues.map((i) => `${i.path}: ${i.message}`);
}

describe('instance: the sidecar identity', () => {
  it('is a top-level key that takes a label-safe name and defaults to null (the host name)', () => {
    expect(configOf(WEB).instance).toBeNull();
    expect(configOf({ ...WEB, instance: 'node-1' }).instance).toBe('node-1');
    expect(configOf({ ...WEB, instance: 'edge.eu-west:2' }).instance).toBe('edge.eu-west:2');
    expect(configKeys()[0]).toMatchObject({ key: 'instance', default: null });
  });

  it('rejects a value that is not label-safe, naming the field and the value', () => {
    for (const bad of ['', 'has space', '-leading', 'a/b', 'x'.repeat(65), 'ünïcode', 7]) {
      const issues = issuesOf({ ...WEB, instance: bad });
      expect(issues, String(bad)).toHaveLength(1);
      expect(issues[0]).toMatch(/^instance: must start with a letter or digit .* \(got .+\)$/);
      expect(issues[0]).toContain(JSON.stringify(bad).slice(0, 20));
    }
  });

  it('one bad instance does not hide the other issues', () => {
    const issues = issuesOf({ instance: 'a b', apps: { web: { backends: ['127.0.0.1:8001'] } }, admin: { listen: 'nope' } });
    expect(issues.map((i) => i.split(':')[0])).toEqual(['instance', 'admin.listen']);
  });

  it('is overridden by ORCHESTRY_INSTANCE, validated like the file and named when bad', () => {
    const text = 'instance: from-file\napps:\n  web:\n    backends: ["127.0.0.1:8001"]\n';
    expect(parseConfigText(text, '/x/sidecar.yaml', {}).instance).toBe('from-file');
    expect(parseConfigText(text, '/x/sidecar.yaml', { ORCHESTRY_INSTANCE: 'node-2' }).instance).toBe('node-2');
    expect(parseConfigText(text, '/x/sidecar.yaml', { ORCHESTRY_INSTANCE: '' }).instance).toBe('from-file');
    let error: unknown;
    try {
      parseConfigText(text, '/x/sidecar.yaml', { ORCHESTRY_INSTANCE: 'no good' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain('instance: must start with a letter or digit');
    expect((error as ConfigError).message).toContain('"no good"');
    expect((error as ConfigError).message).toContain('(from ORCHESTRY_INSTANCE)');
  });

  it('instanceId() is the configured name, else the host name made label-safe', () => {
    expect(instanceId({ instance: 'node-1' }, 'host-a')).toBe('node-1');
    expect(instanceId({ instance: null }, 'host-a.example.com')).toBe('host-a.example.com');
    expect(instanceId({ instance: null }, 'Weird Host/1')).toBe('Weird-Host-1');
    expect(instanceId({ instance: null }, '--x')).toBe('x');
    expect(instanceId({ instance: null }, '')).toBe('sidecar');
    expect(instanceId({ instance: null }, 'h'.repeat(100))).toHaveLength(64);
  });

  it('a changed instance is reported as taking effect after a restart', () => {
    const prev = configOf(WEB);
    expect(restartOnlyChanges(prev, configOf({ ...WEB, instance: 'n2' }))).toContain('instance changes take effect after a restart (now n2)');
    expect(restartOnlyChanges(prev, configOf(WEB))).toEqual([]);
  });
});

describe('metrics carry the identity', () => {
  it(`labels every series with ${METRICS_IDENTITY_LABEL}`, async () => {
    expect(createMetrics({ collectDefault: false, instance: 'node-1' }).instance).toBe('node-1');
    const samples = parseSamples(await busyExposition(false, 'node-1'));
    expect(samples.length).toBeGreaterThan(50);
    expect(samples.filter((s) => s.labels[METRICS_IDENTITY_LABEL] !== 'node-1').map((s) => s.name)).toEqual([]);
  });

  it('names the label so that Prometheus does not rename it on scrape', () => {
    expect(METRICS_IDENTITY_LABEL).not.toBe('instance');
    expect(METRICS_IDENTITY_LABEL).not.toBe('job');
    expect(METRICS_IDENTITY_LABEL).toMatch(/^[a-zA-Z_][a-zA-Z0-9_]*$/);
  });
});
