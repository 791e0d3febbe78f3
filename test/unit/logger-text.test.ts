import { describe, expect, it } from 'vitest';
import { createSidecarBus } from '../../src/events/sidecar-events.js';
import { createLogger, formatTextLine, roundForPeople } from '../../src/observability/logger.js';
import { subscribeLogger } from '../../src/observability/subscribers.js';
import type { DesiredSet } from '../../src/upstream/types.js';

function capture(format: 'json' | 'text') {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', format, destination: { write: (line: string) => void lines.push(line) } });
  return { log, lines };
}

const web = (down: boolean): DesiredSet => ({
  upstreams: [
    {
      name: 'web', panic: false, keepalive: 32, balance: 'round_robin',
      servers: [{ address: '10.0.0.1:80', weight: 1, backup: false, down, container: 'web-1' }, { address: '10.0.0.2:80', weight: 1, backup: false, down: false }],
    },
  ],
});

describe('log lines for people', () => {
  it('rounds numbers as a person reads them', () => {
    expect([12.3456, 0.012345, 1234.56, 7, 2.5, -0.33333].map(roundForPeople)).toEqual([12.3, 0.0123, 1235, 7, 2.5, -0.333]);
  });

  it('writes time, level, message, then flattened fields, quoting what needs it', () => {
    const line = formatTextLine(
      JSON.stringify({ level: 'info', time: '2025-01-02T03:04:05.678Z', pid: 1, hostname: 'h', name: 'orchestry-sidecar', msg: 'nginx upstreams updated', durationMs: 12.3456, reloaded: true, timings: { render: 0.83745 }, changes: ['web: ejected 10.0.0.1:80'], note: '' }),
    );
    expect(line).toBe('2025-01-02T03:04:05.678Z INFO  nginx upstreams updated durationMs=12.3 reloaded=true timings.render=0.837 changes="web: ejected 10.0.0.1:80" note=""\n');
  });

  it('passes a line that is not JSON through', () => {
    expect(formatTextLine('plain')).toBe('plain\n');
  });

  it('logging.format text makes the logger write text lines, json stays JSON', () => {
    const text = capture('text');
    text.log.warn({ app: 'web' }, 'panic over');
    expect(text.lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z WARN  panic over app=web\n$/);
    const json = capture('json');
    json.log.warn({ app: 'web' }, 'panic over');
    expect(JSON.parse(json.lines[0]!)).toMatchObject({ level: 'warn', app: 'web', msg: 'panic over' });
  });

  it('"nginx upstreams updated" says what changed since the last update, with rounded timings', () => {
    const { log, lines } = capture('json');
    const bus = createSidecarBus(() => undefined);
    subscribeLogger(bus, log);
    bus.emit('apply', { result: 'applied', durationMs: 20.4, reloaded: true, timings: { render: 1.23456 }, set: web(false) });
    bus.emit('apply', { result: 'failed', stage: 'validate', error: 'x', durationMs: 5, reloaded: false, set: web(true) });
    bus.emit('apply', { result: 'applied', durationMs: 30.6, reloaded: true, set: web(true) });
    const updates = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'nginx upstreams updated');
    expect(updates[0]).toMatchObject({ durationMs: 20, timings: { render: 1.2 }, changes: ['web: upstream added; servers 10.0.0.1:80 (web-1), 10.0.0.2:80'] });
    // Against what nginx last took: the failed update in between changed nothing there.
    expect(updates[1]).toMatchObject({ durationMs: 31, changes: ['web: ejected 10.0.0.1:80 (web-1)'] });
  });
});
