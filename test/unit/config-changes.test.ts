import { describe, expect, it } from 'vitest';
import { nginxTargetChanges, restartOnlyChanges } from '../../src/config/changes.js';
import { configOf } from '../helpers/fixtures.js';

const base = { apps: { web: { backends: ['127.0.0.1:8001'] } } };

describe('settings a reload cannot take', () => {
  it('lists none when only live settings changed', () => {
    const prev = configOf(base);
    const next = configOf({ ...base, breaker: { failure_threshold: 9 }, nginx: { coalesce_min_wait_seconds: 0.5 }, logging: { level: 'debug' } });
    expect(restartOnlyChanges(prev, next)).toEqual([]);
  });

  it('names each setting that needs a restart', () => {
    const prev = configOf(base);
    const next = configOf({
      ...base,
      admin: { listen: '127.0.0.1:9999' },
      store: { enabled: false },
      docker: { enabled: true },
      probes: { max_concurrency: 7 },
      logging: { format: 'text' },
    });
    const lines = restartOnlyChanges(prev, next);
    expect(lines).toHaveLength(5);
    expect(lines).toContain('logging.format changes take effect after a restart (now text)');
    expect(lines[0]).toContain('admin.listen');
    expect(lines[0]).toContain('127.0.0.1:9999');
    expect(lines.join('\n')).toMatch(/store changes.*\n.*docker\.enabled.*\n.*logging\.format.*\n.*probes\.max_concurrency/);
  });

  it('docker.swarm needs a restart between off and on, not between true and auto', () => {
    const off = configOf({ ...base, docker: { enabled: true } });
    const on = configOf({ ...base, docker: { enabled: true, swarm: true } });
    const auto = configOf({ ...base, docker: { enabled: true, swarm: 'auto' } });
    expect(restartOnlyChanges(off, on)).toEqual(['docker.swarm changes between false and true or auto take effect after a restart']);
    expect(restartOnlyChanges(on, auto)).toEqual([]);
  });
});

describe('nginx files and targets a reload changes', () => {
  it('says each applies now, and that the old generated file is left where it was', () => {
    const prev = configOf({ ...base, nginx: { output_path: '/etc/nginx/conf.d/a.conf' } });
    const next = configOf({ ...base, nginx: { output_path: '/etc/nginx/up/b.conf', pid_path: '/run/nginx.pid' } });
    expect(nginxTargetChanges(prev, next)).toEqual([
      'nginx.output_path changed from /etc/nginx/conf.d/a.conf to /etc/nginx/up/b.conf: applied now (written, tested with nginx -t, nginx reloaded); ' +
        '/etc/nginx/conf.d/a.conf is left as it was and no longer updated: remove it (and any include of it) once nginx no longer reads it',
      'nginx.pid_path changed from null to /run/nginx.pid: applied now (written, tested with nginx -t, nginx reloaded)',
    ]);
  });

  it('says nothing when no file or target changed', () => {
    const prev = configOf(base);
    expect(nginxTargetChanges(prev, configOf({ ...base, nginx: { coalesce_min_wait_seconds: 0.5 } }))).toEqual([]);
  });
});
