import { LineCounter, parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import { locatePath, pathSegments } from '../../src/config/locate.js';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const TEXT = `apps:
  web:
    backends:
      - 127.0.0.1:8001
      - { address: "127.0.0.1:8002", wieght: 2 }
    health: { perod_seconds: 5, timeout_seconds: 10 }
  "odd key": {}
admin:
  listen: "9180"
`;

function locate(path: string, at?: 'key' | 'value') {
  const counter = new LineCounter();
  const doc = parseDocument(TEXT, { lineCounter: counter });
  return locatePath(doc, counter, path, at);
}

function thrown(text: string): ConfigError {
  try {
    parseConfigText(text, '/etc/orchestry/sidecar.yaml', {});
  } catch (err) {
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config error positions', () => {
  it('reads the paths validation writes', () => {
    expect(pathSegments('apps.web.backends[1].wieght')).toEqual(['apps', 'web', 'backends', 1, 'wieght']);
    expect(pathSegments('apps["odd key"].health')).toEqual(['apps', 'odd key', 'health']);
    expect(pathSegments('')).toEqual([]);
    expect(pathSegments('a..b')).toBeUndefined();
  });

  it('finds a value, an unknown key and a list item by line and column', () => {
    expect(locate('admin.listen')).toEqual({ line: 9, column: 11 });
    expect(locate('apps.web.backends[1].wieght', 'key')).toEqual({ line: 5, column: 38 });
    expect(locate('apps.web.backends[0]')).toEqual({ line: 4, column: 9 });
    expect(locate('apps.web.health.timeout_seconds')).toEqual({ line: 6, column: 50 });
    expect(locate('apps["odd key"]', 'key')).toEqual({ line: 7, column: 3 });
  });

  it('falls back to the deepest node written for a path the file does not have', () => {
    expect(locate('apps.web.upstream.keepalive')).toEqual({ line: 3, column: 5 });
    expect(locate('logging.level')).toBeUndefined();
  });

  it('puts file:line:column before each issue and suggests the key meant', () => {
    const err = thrown(TEXT);
    const lines = err.message.split('\n');
    expect(lines[0]).toBe('invalid configuration in /etc/orchestry/sidecar.yaml:');
    expect(lines).toContain('  /etc/orchestry/sidecar.yaml:5:38: apps.web.backends[1].wieght: unknown key (did you mean "weight"?)');
    expect(lines).toContain('  /etc/orchestry/sidecar.yaml:6:15: apps.web.health.perod_seconds: unknown key (did you mean "period_seconds"?)');
    expect(err.issues).toContainEqual(expect.objectContaining({ path: 'admin.listen', line: 9, column: 11 }));
  });

  it('says what to write for a port given without a host', () => {
    const err = thrown('apps: { web: {} }\nadmin: { listen: "9180" }\n');
    expect(err.issues).toEqual([
      {
        path: 'admin.listen',
        line: 2,
        column: 18,
        message: 'expected host:port, e.g. "127.0.0.1:9180" (loopback only) or "0.0.0.0:9180" (every interface) (got "9180": a port alone)',
      },
    ]);
    expect(thrown('apps: { web: {} }\nadmin: { listen: 9180 }\n').issues[0]?.message).toMatch(/^expected host:port/);
  });

  it('refuses two apps whose names differ only in case, as nginx would', () => {
    const err = thrown('apps:\n  web: { backends: ["127.0.0.1:8001"] }\n  WEB: { backends: ["127.0.0.1:8002"] }\n');
    expect(err.issues).toEqual([
      { path: 'apps.WEB', line: 3, column: 8, message: 'is the same upstream name as apps.web to nginx, which ignores case' },
    ]);
  });
});
