/**
 * The shared applier suite (test/helpers/applier-suite.ts) against both ways of telling nginx:
 * render-and-reload on Debian's nginx 1.22, and DNS mode (SRV answers) on nginx >= 1.27.3.
 */
import { createRenderReloadApplier } from '../../src/nginx/applier.js';
import { createNginxControl } from '../../src/nginx/control.js';
import { createDnsApplier } from '../../src/nginx/dns-applier.js';
import { createDnsServer } from '../../src/nginx/dns/server.js';
import { createRenderer } from '../../src/nginx/render.js';
import { applierSuite } from '../helpers/applier-suite.js';
import { currentNginx } from '../helpers/nginx-current.js';
import { startNginx } from '../helpers/nginx-instance.js';

const EMPTY = '# nothing yet\n';

applierSuite({
  name: 'render-reload applier, nginx 1.22',
  async start() {
    const nginx = await startNginx({ upstreams: 'upstream web { server 127.0.0.1:9 down; }\n' });
    const renderer = createRenderer({ templatePath: null });
    await renderer.load();
    const config = nginx.config();
    const applier = createRenderReloadApplier({ nginx: config, renderer, control: createNginxControl(config) });
    return { nginx, applier, stop: () => nginx.stop() };
  },
});

applierSuite({
  name: 'DNS applier, nginx >= 1.27.3',
  async start() {
    const { binary } = await currentNginx();
    const server = createDnsServer({ host: '127.0.0.1', port: 0 });
    const bound = await server.start();
    const nginx = await startNginx({ upstreams: `${EMPTY}upstream web { server 127.0.0.1:9 down; }\n`, binary });
    const renderer = createRenderer({ templatePath: null });
    await renderer.load();
    const config = nginx.config();
    const applier = createDnsApplier({
      nginx: config,
      renderer,
      control: createNginxControl(config),
      server,
      resolver: `127.0.0.1:${bound.port}`,
      zone: 'orchestry.internal',
      service: '_http._tcp',
    });
    return {
      nginx,
      applier,
      async stop() {
        await nginx.stop();
        await server.stop();
      },
    };
  },
});
