/**
 * One behaviour suite for every NginxControl implementation (local nginx, nginx in a
 * container): each test file supplies a harness around a real nginx proxying `/` to upstream
 * `web`, whose generated file includes that upstream.
 */
import { writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import type { NginxConfig } from '../../src/config/types.js';
import type { NginxControl } from '../../src/nginx/control.js';
import { backendsForSuite } from './backend-server.js';

export interface NginxControlHarness {
  control: NginxControl;
  /** The generated upstreams file, on this side. */
  outputPath: string;
  /** The same file as nginx names it in its messages (another path inside a container). */
  includedPath: string;
  /** GET / through nginx; `body` is the backend's name. */
  get(): Promise<{ status: number; body: string }>;
  /** Waits until `reloads` reloads completed (old workers gone). */
  settle(reloads: number): Promise<void>;
  /** Stops nginx; the control keeps pointing at it. */
  stopNginx(): Promise<void>;
  /** Stops nginx and removes everything the harness made. */
  close(): Promise<void>;
}

/** The `nginx` section parsed from `raw`, every other field defaulted. */
export function nginxConfig(raw: Record<string, unknown>): NginxConfig {
  const parsed = parseConfig({ nginx: raw, apps: { web: { backends: [] } } });
  if (!parsed.ok) throw new Error(`bad test config: ${JSON.stringify(parsed.issues)}`);
  return parsed.config.nginx;
}

/** `upstream web` routing to `address`. */
export const upstreamFile = (address: string) => `upstream web {\n    server ${address};\n}\n`;

/** Registers the shared tests; `start` runs nginx with `upstreams` as the generated file. */
export function runNginxControlSuite(name: string, start: (upstreams: string) => Promise<NginxControlHarness>): void {
  describe(`NginxControl: ${name}`, () => {
    const backends = backendsForSuite('a', 'b');
    let h: NginxControlHarness | null = null;
    const begin = async () => {
      h = await start(upstreamFile(backends.a.address));
      return h;
    };

    afterEach(async () => {
      await h?.close();
      h = null;
    });

    it('validates a valid configuration', async () => {
      const n = await begin();
      await expect(n.control.validate()).resolves.toBeUndefined();
    });

    it("fails validation with nginx's own error, naming the broken included file", async () => {
      const n = await begin();
      await writeFile(n.outputPath, `upstream web {\n    bogus_directive on;\n    server ${backends.a.address};\n}\n`);

      const err = await n.control.validate().then(() => null, (e: unknown) => e);

      expect(err).toMatchObject({ name: 'SidecarError', code: 'NGINX_FAILED' });
      expect((err as Error).message).toContain(`[emerg] unknown directive "bogus_directive" in ${n.includedPath}:2`);
      expect((err as Error).message).not.toContain('test failed');
    });

    it('reloads: a changed upstream file takes effect and requests reach the new backend', async () => {
      const n = await begin();
      expect((await n.get()).body).toBe('a');
      await writeFile(n.outputPath, upstreamFile(backends.b.address));

      await n.control.validate();
      await n.control.reload();

      await n.settle(1);
      expect(await n.get()).toEqual({ status: 200, body: 'b' });
    });

    it('fails to reload a stopped nginx with NGINX_NOT_RUNNING', async () => {
      const n = await begin();
      await n.stopNginx();
      await expect(n.control.reload()).rejects.toMatchObject({
        code: 'NGINX_NOT_RUNNING',
        message: expect.stringMatching(/^nginx is not running: /),
      });
    });
  });
}
