import { describe, expect, it } from 'vitest';
import { createIssues, duration, parseDuration, type DurationRule } from '../../src/config/check.js';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { configKeys } from '../../src/config/reference.js';
import { parseConfig } from '../../src/config/schema.js';
import { formatIssue } from '../../src/errors.js';
import { schemaErrors } from '../helpers/json-schema-lite.js';

const NOT_A_DURATION = 'must be a duration such as 500ms, 2s or 1m, or a number of seconds';

/** The value `duration(rule)` makes of `value`, or the one issue it reports. */
function check(value: unknown, rule: DurationRule = { min: 0, max: 86_400 }): number | string {
  const { issues, report } = createIssues();
  const out = duration(rule)(value, 'x', report);
  if (issues.length > 0) {
    expect(out).toBeUndefined();
    expect(issues).toHaveLength(1);
    return issues[0]!.message;
  }
  return out as number;
}

function issues(raw: unknown): string[] {
  const result = parseConfig(raw);
  return result.ok ? [] : result.issues.map(formatIssue);
}

describe('parseDuration', () => {
  it('reads every unit as seconds', () => {
    expect(parseDuration('500ms')).toBe(0.5);
    expect(parseDuration('2s')).toBe(2);
    expect(parseDuration('2m')).toBe(120);
    expect(parseDuration('1h')).toBe(3600);
  });

  it('reads fractions, rounding once so that 100ms is exactly 0.1 s', () => {
    expect(parseDuration('1.5s')).toBe(1.5);
    expect(parseDuration('.5s')).toBe(0.5);
    expect(parseDuration('0.25m')).toBe(15);
    expect(parseDuration('1.5h')).toBe(5400);
    expect(parseDuration('100ms')).toBe(0.1);
    expect(parseDuration('300ms')).toBe(0.3);
    expect(parseDuration('1ms')).toBe(0.001);
    expect(parseDuration('0.5ms')).toBe(0.0005);
    expect(parseDuration('007s')).toBe(7);
  });

  it('reads zero in any unit', () => {
    for (const text of ['0ms', '0s', '0m', '0h', '0.0s']) expect(parseDuration(text), text).toBe(0);
  });

  it('converts into the unit a key is named for', () => {
    expect(parseDuration('2s', 'milliseconds')).toBe(2000);
    expect(parseDuration('250ms', 'milliseconds')).toBe(250);
    expect(parseDuration('90s', 'minutes')).toBe(1.5);
    expect(parseDuration('2h', 'minutes')).toBe(120);
    expect(parseDuration('30m', 'hours')).toBe(0.5);
    expect(parseDuration('36h', 'days')).toBe(1.5);
    expect(parseDuration('720h', 'days')).toBe(30);
  });

  it.each([
    ['a bare number', '2'],
    ['a bare zero', '0'],
    ['an empty string', ''],
    ['a unit alone', 's'],
    ['a spelt-out unit', '2sec'],
    ['a space before the unit', '2 s'],
    ['a leading space', ' 2s'],
    ['a trailing space', '2s '],
    ['a trailing newline', '2s\n'],
    ['an upper-case unit', '2S'],
    ['an upper-case M (month? mega?)', '1M'],
    ['an upper-case MS', '500MS'],
    ['an upper-case H', '1H'],
    ['a day unit', '1d'],
    ['a microsecond unit', '500us'],
    ['a negative duration', '-1s'],
    ['a plus sign', '+1s'],
    ['an exponent', '1e3ms'],
    ['a comma as decimal point', '1,5s'],
    ['a dot without digits after it', '1.s'],
    ['two dots', '1.5.5s'],
    ['two units', '1m30s'],
    ['hexadecimal', '0x10s'],
    ['Infinity', 'Infinitys'],
    ['NaN', 'NaNs'],
    ['non-ASCII digits', '２s'],
  ])('rejects %s', (_, text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('the duration check', () => {
  it('takes numbers as before: seconds, with the same messages', () => {
    expect(check(2)).toBe(2);
    expect(check(0.25)).toBe(0.25);
    expect(check(0)).toBe(0);
    expect(check(-1)).toBe('must be between 0 and 86400 (got -1)');
    expect(check(86_401)).toBe('must be between 0 and 86400 (got 86401)');
    expect(check(Infinity)).toBe('must be a finite number (got Infinity)');
    expect(check(Number.NaN)).toBe('must be a number (got NaN)');
  });

  it('takes strings with a unit, checked against the same bounds', () => {
    expect(check('500ms')).toBe(0.5);
    expect(check('1.5s')).toBe(1.5);
    expect(check('2m')).toBe(120);
    expect(check('1h')).toBe(3600);
    expect(check('0s')).toBe(0);
    expect(check('24h')).toBe(86_400);
    expect(check('25h')).toBe('must be between 0 and 86400 (got "25h")');
    expect(check('50ms', { min: 0.1, max: 10 })).toBe('must be between 0.1 and 10 (got "50ms")');
    expect(check('100ms', { min: 0.1, max: 10 })).toBe(0.1);
    expect(check('0s', { above: 0, max: 10 })).toBe('must be greater than 0 (got "0s")');
    expect(check(0, { above: 0, max: 10 })).toBe('must be greater than 0 (got 0)');
  });

  it('rejects a huge duration by its bound, however many digits it has', () => {
    expect(check('99999999999h')).toBe('must be between 0 and 86400 (got "99999999999h")');
    const digits = `1${'0'.repeat(400)}s`;
    expect(check(digits)).toBe(`must be between 0 and 86400 (got "${digits.slice(0, 77)}...")`);
  });

  it('names the path and the value of anything that is no duration', () => {
    for (const value of ['2 sec', '2', '-1s', ' 2s', '2S', '', true, null, [], { s: 2 }]) {
      const { issues: found, report } = createIssues();
      duration({ min: 0, max: 60 })(value, 'apps.web.health.timeout_seconds', report);
      expect(found.map(formatIssue), String(value)).toEqual([
        `apps.web.health.timeout_seconds: ${NOT_A_DURATION} (got ${JSON.stringify(value)})`,
      ]);
    }
  });

  it('gives examples and the unit of a key named for another unit', () => {
    expect(check('soon', { unit: 'minutes', above: 0, max: 1440 })).toBe(
      'must be a duration such as 30s, 10m or 2h, or a number of minutes (got "soon")',
    );
    expect(check('90s', { unit: 'minutes', above: 0, max: 1440 })).toBe(1.5);
    expect(check('2s', { unit: 'milliseconds', above: 0, max: 86_400_000 })).toBe(2000);
    expect(check('48h', { unit: 'days', above: 0, max: 3660 })).toBe(2);
  });

  it('keeps a whole-seconds rule for both forms', () => {
    const rule: DurationRule = { int: true, min: 0, max: 3600 };
    expect(check('2s', rule)).toBe(2);
    expect(check('2000ms', rule)).toBe(2);
    expect(check('1m', rule)).toBe(60);
    expect(check('1500ms', rule)).toBe('must be a whole number of seconds (got "1500ms")');
    expect(check(1.5, rule)).toBe('must be an integer (got 1.5)');
  });
});

describe('durations in the configuration', () => {
  const UNIT_KEY = /_(seconds|minutes|hours|days|ms)$/;
  const keys = configKeys().filter((k) => UNIT_KEY.test(k.key));

  it('every key named for a unit is a duration', () => {
    expect(keys.length).toBeGreaterThan(25);
    expect(keys.filter((k) => !k.type.startsWith('duration')).map((k) => k.key)).toEqual([]);
  });

  it("accepts every duration key's default written with a unit, and reads it as the same number", () => {
    const asText = (key: string, value: number): string => {
      const unit = UNIT_KEY.exec(key)![1];
      if (unit === 'seconds') return `${value * 1000}ms`;
      if (unit === 'minutes') return `${value}m`;
      if (unit === 'hours') return `${value * 60}m`;
      if (unit === 'days') return `${value * 24}h`;
      return `${value}ms`;
    };
    const doc: Record<string, unknown> = {
      apps: { web: {} },
      alerting: { receivers: { ops: { type: 'webhook', url: 'http://a.example/' } }, routes: [{ receivers: ['ops'] }] },
    };
    const set = (path: string, value: unknown) => {
      const parts = path.replace('apps.<name>', 'apps.web').replace('receivers.<name>', 'receivers.ops').split('.');
      let at = doc;
      for (const part of parts.slice(0, -1)) at = (at[part] ??= {}) as Record<string, unknown>;
      at[parts.at(-1)!] = value;
    };
    // A null default (a mode-dependent value) has no number to write with a unit.
    for (const k of keys) if (k.default !== null) set(k.key, asText(k.key, k.default as number));
    const plain = parseConfig({ apps: { web: {} }, alerting: doc.alerting });
    const texts = parseConfig(doc);
    expect(texts.ok ? [] : texts.issues.map(formatIssue)).toEqual([]);
    expect(texts.ok && plain.ok && texts.config).toEqual(plain.ok && plain.config);
  });

  it('reads YAML durations with units into numbers of the key unit', () => {
    const result = parseConfig({
      defaults: { health: { timeout_seconds: '250ms', period_seconds: '1s' } },
      apps: { web: { health: { initial_delay_seconds: '1m' } } },
      failure_detection: { max_response_time_ms: '2s', failure_rate_window_minutes: '90s' },
      store: { raw_retention_hours: '30m', rollup_retention_days: '36h' },
      recovery: { stop_timeout_seconds: '1m' },
    });
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    const { config } = result;
    expect(config.apps[0]!.health).toMatchObject({ timeout_seconds: 0.25, period_seconds: 1, initial_delay_seconds: 60 });
    expect(config.failure_detection).toMatchObject({ max_response_time_ms: 2000, failure_rate_window_minutes: 1.5 });
    expect(config.store).toMatchObject({ raw_retention_hours: 0.5, rollup_retention_days: 1.5 });
    expect(config.recovery.stop_timeout_seconds).toBe(60);
  });

  it('accepts health timeouts down to 100 ms, and a period above them', () => {
    expect(issues({ apps: { web: { health: { timeout_seconds: '100ms', period_seconds: '150ms' } } } })).toEqual([]);
    expect(issues({ apps: { web: { health: { timeout_seconds: 0.1, period_seconds: 0.2 } } } })).toEqual([]);
    expect(issues({ apps: { web: { health: { timeout_seconds: '99ms', period_seconds: '1s' } } } })).toEqual([
      'apps.web.health.timeout_seconds: must be between 0.1 and 86400 (got "99ms")',
    ]);
    expect(issues({ apps: { web: { health: { timeout_seconds: '100ms', period_seconds: '100ms' } } } })).toEqual([
      'apps.web.health.period_seconds: must be greater than 0.1 (got "100ms")',
    ]);
  });

  it('compares timeout with period after reading their units', () => {
    expect(issues({ apps: { web: { health: { timeout_seconds: '2s', period_seconds: '1500ms' } } } })).toEqual([
      'apps.web.health.timeout_seconds: must be less than period_seconds (got 2 >= 1.5)',
    ]);
  });

  it('reports a bad duration with its path and value', () => {
    expect(issues({ apps: { web: { health: { timeout_seconds: '2 sec' } } } })).toEqual([
      `apps.web.health.timeout_seconds: ${NOT_A_DURATION} (got "2 sec")`,
    ]);
    expect(issues({ apps: { web: {} }, recovery: { stop_timeout_seconds: '2.5s' } })).toEqual([
      'recovery.stop_timeout_seconds: must be a whole number of seconds (got "2.5s")',
    ]);
  });
});

describe('durations in the JSON Schema', () => {
  const schema = configJsonSchema();
  const withHealth = (health: Record<string, unknown>) => ({ apps: { web: { health } } });

  it('accepts a number or a string with a unit', () => {
    for (const value of [1, 0.5, '500ms', '1.5s', '2m', '1h', '.5s']) {
      expect(schemaErrors(schema, withHealth({ timeout_seconds: value })), String(value)).toEqual([]);
    }
    expect(schemaErrors(schema, { apps: { web: {} }, failure_detection: { max_response_time_ms: '2s' } })).toEqual([]);
  });

  it('rejects the strings validation rejects', () => {
    for (const value of ['2 sec', '2', '2S', '-1s', ' 2s', '1m30s', true]) {
      expect(schemaErrors(schema, withHealth({ timeout_seconds: value })), String(value)).not.toEqual([]);
      expect(issues(withHealth({ timeout_seconds: value })), String(value)).not.toEqual([]);
    }
  });

  it('gives the number form its bounds', () => {
    expect(schemaErrors(schema, withHealth({ timeout_seconds: 0.05 }))).not.toEqual([]);
    expect(schemaErrors(schema, withHealth({ period_seconds: 0.1 }))).not.toEqual([]);
  });
});
