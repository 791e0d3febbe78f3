/** The shared NginxControl suite against a private nginx on this host. */
import { describe, expect, it } from 'vitest';
import { createLocalNginxControl, createNginxControl } from '../../src/nginx/control.js';
import { nginxConfig, runNginxControlSuite } from '../helpers/nginx-control-suite.js';
import { startNginx } from '../helpers/nginx-instance.js';

runNginxControlSuite('local nginx (SIGHUP by pid file)', async (upstreams) => {
  const n = await startNginx({ upstreams });
  return {
    control: createLocalNginxControl(n.config()),
    outputPath: n.outputPath,
    includedPath: n.outputPath,
    get: () => n.get(),
    settle: (reloads) => n.settle(reloads),
    stopNginx: () => n.stop(),
    close: () => n.stop(),
  };
});

describe('createNginxControl', () => {
  it('gives the local control for nginx.mode local, named by its main config', async () => {
    const n = await startNginx({ upstreams: 'upstream web { server 127.0.0.1:1; }\n' });
    try {
      const control = createNginxControl(n.config());
      expect(control.describe()).toBe(`local nginx (${n.configPath})`);
      await expect(control.validate()).resolves.toBeUndefined();
    } finally {
      await n.stop();
    }
  });

  it('refuses nginx.mode docker without a Docker client', () => {
    expect(() => createNginxControl(nginxConfig({ mode: 'docker', container: 'nginx' }))).toThrow(
      expect.objectContaining({ code: 'NGINX_DOCKER_REQUIRED' }),
    );
  });
});
