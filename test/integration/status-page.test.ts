/**
 * The status page in a real headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core): first against the built CLI with a private nginx and real loopback backends,
 * then against an in-process admin server fed hostile and awkward data (markup in names, very
 * long errors, panic, a sidecar that goes away).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminServer, type AdminServer } from '../../src/observability/admin-server.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { startBackend, type TestBackend } from '../helpers/backend-server.js';
import { nginxConf, nginxPaths, nginxSection, sidecarYaml } from '../helpers/fixtures.js';
import { freePort } from '../helpers/free-port.js';
import { launchNginx, makeNginxDir } from '../helpers/nginx-instance.js';
import { startSidecarProcess, type SidecarProcess } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const DEFAULT_TEMPLATE = fileURLToPath(new URL('../../templates/upstreams.conf.hbs', import.meta.url));
const SCREENSHOT = fileURLToPath(new URL('../../docs/status-page.png', import.meta.url));
/** The page polls every 2 s; an ejection takes failure_threshold × period. */
const PAGE_UPDATE_MS = 20_000;

let browserDir: string;
let browser: BrowserContext;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the status page test needs the Debian package (apt-get install -y chromium)`);
  }
  browserDir = await mkdtemp(join(tmpdir(), 'orchestry-chromium-'));
  browser = await chromium.launchPersistentContext(browserDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  if (browserDir) await rm(browserDir, { recursive: true, force: true });
});

/** Opens the page and collects everything that went wrong in it (script errors, CSP violations). */
async function openPage(url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().includes('Failed to load resource')) problems.push(`console: ${msg.text()}`);
  });
  await page.goto(url);
  return { page, problems };
}

/** Trimmed text of the first match, or '' when there is none yet. */
async function text(page: Page, selector: string): Promise<string> {
  const loc = page.locator(selector).first();
  return (await loc.count()) ? ((await loc.textContent()) ?? '').trim() : '';
}

/** Waits until the first match of `selector` has exactly `expected` as its text. */
async function waitForText(page: Page, selector: string, expected: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => (await text(page, selector)) === expected, { timeoutMs, intervalMs: 100, what: `${selector} to read ${JSON.stringify(expected)}` });
}

const row = (app: string, address: string) => `[data-app="${app}"] tr[data-backend="${address}"]`;

describe('status page against a running sidecar', () => {
  let dir: string;
  let nginx: { stop(): Promise<void> } | undefined;
  let sidecar: SidecarProcess | undefined;
  let web: TestBackend[] = [];
  let api: TestBackend[] = [];
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    dir = await makeNginxDir();
    web = await Promise.all(['web-1', 'web-2', 'web-3'].map((n) => startBackend(n)));
    api = await Promise.all(['api-1', 'api-2'].map((n) => startBackend(n)));
    const nginxPort = await freePort();
    const adminPort = await freePort();
    const configPath = join(dir, 'sidecar.yaml');
    const templatePath = join(dir, 'upstreams.conf.hbs');
    const { outputPath } = nginxPaths(dir);
    await copyFile(DEFAULT_TEMPLATE, templatePath);
    const health = { initial_delay_seconds: 0, period_seconds: 2, timeout_seconds: 1 };
    await writeFile(
      configPath,
      sidecarYaml({
        instance: 'edge-1',
        apps: {
          web: { backends: web.map((b) => b.address), health: { path: '/health', ...health, failure_threshold: 2, success_threshold: 1 } },
          api: { backends: api.map((b) => b.address), health: { protocol: 'TCP', ...health } },
        },
        nginx: nginxSection(dir, { template_path: templatePath, coalesce_min_wait_seconds: 0.1, coalesce_max_wait_seconds: 1 }),
        admin: { listen: `127.0.0.1:${adminPort}` },
      }),
    );
    await writeFile(
      nginxPaths(dir).configPath,
      nginxConf({ dir, http: [`server { listen 127.0.0.1:${nginxPort} default_server; location / { proxy_pass http://web; } }`] }),
    );
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'render', '--config', configPath]);
    await writeFile(outputPath, stdout);
    nginx = await launchNginx({ dir, probePort: nginxPort });
    sidecar = await startSidecarProcess(configPath, `http://127.0.0.1:${adminPort}`);
    await waitFor(
      async () => {
        const { body } = await sidecar!.api<{ apps: Array<{ backends: Array<{ health: string }> }> }>('/api/v1/apps');
        return body.apps.every((a) => a.backends.every((b) => b.health === 'healthy'));
      },
      { what: 'all backends healthy' },
    );
    ({ page, problems } = await openPage(`${sidecar.adminUrl}/`));
  });

  afterAll(async () => {
    await page?.close();
    await sidecar?.stop();
    await nginx?.stop();
    for (const b of [...web, ...api]) await b.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('shows every app and backend with its routing, health, breaker and last probe', async () => {
    await waitForText(page, '[data-app="web"] .routed-count', '3/3 routed');
    await waitForText(page, '[data-app="api"] .routed-count', '2/2 routed');
    expect(await page.locator('[data-app="web"] tr[data-backend]').count()).toBe(3);
    expect(await page.locator('[data-app="api"] tr[data-backend]').count()).toBe(2);
    for (const [app, backends] of [['web', web], ['api', api]] as const) {
      for (const b of backends) {
        expect(await text(page, `${row(app, b.address)} .routing .pill`)).toBe('routed');
        expect(await text(page, `${row(app, b.address)} .health .pill`)).toBe('healthy');
        expect(await text(page, `${row(app, b.address)} .breaker .pill`)).toBe('closed');
        expect(await text(page, `${row(app, b.address)} .probe`)).toMatch(/\d+\.\d ms/);
      }
    }
    expect(await text(page, `${row('web', web[0]!.address)} .probe`)).toContain('HTTP 200');
    expect(await text(page, '[data-app="api"] .card-head')).toContain('TCP');
    expect(await text(page, '#updated')).toMatch(/^live/);
    expect(await page.locator('#banner').isHidden()).toBe(true);
    // The feed was loaded with the sidecar's history: every backend's first verdict.
    const feed = await text(page, '#events');
    for (const b of web) expect(feed).toContain(`web/${b.address}`);
    expect(feed).toContain('health unknown -> healthy');
    expect(problems).toEqual([]);
  });

  it('says which sidecar it is: its instance in the header and the title, as in the API and on every metric', async () => {
    await waitForText(page, '#instance', 'edge-1');
    expect(await page.title()).toBe('orchestry-sidecar status: edge-1');
    expect((await sidecar!.api<{ instance: string }>('/api/v1/apps')).body.instance).toBe('edge-1');
    const metrics = (await sidecar!.api<string>('/metrics')).body;
    const series = metrics.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(series.length).toBeGreaterThan(50);
    expect(series.filter((l) => !l.includes('sidecar="edge-1"'))).toEqual([]);
    expect(problems).toEqual([]);
  });

    it('updates by itself when a backend fails its health check: ejected, and a transition in the feed', async () => {
    // A marker in the page's window survives only if the page is never reloaded.
    await page.evaluate('window.__notReloaded = true');
    const failing = web[1]!;
    const failingRow = row('web', failing.address);
    failing.setMode('fail');

    await waitForText(page, `${failingRow} .health .pill`, 'unhealthy', PAGE_UPDATE_MS);
    await waitForText(page, `${failingRow} .routing .pill`, 'ejected', PAGE_UPDATE_MS);
    await waitForText(page, '[data-app="web"] .routed-count', '2/3 routed');
    expect(await text(page, `${failingRow} .probe`)).toContain('HTTP 503');
    expect(await text(page, `${failingRow} .detail`)).toContain('health check failed');
    expect(await text(page, `${row('web', web[0]!.address)} .routing .pill`)).toBe('routed');

    const transition = page.locator('#events li[data-kind="transition"]', { hasText: `web/${failing.address}` }).filter({ hasText: 'healthy -> unhealthy' });
    await waitFor(async () => (await transition.count()) === 1, { timeoutMs: PAGE_UPDATE_MS, what: 'the transition in the feed' });
    expect(await page.evaluate('window.__notReloaded')).toBe(true);
    expect(await text(page, '.summary')).toContain('1 ejected');
    expect(problems).toEqual([]);

    // The picture once the flash of the changed row has faded (a finished CSS animation leaves
    // document.getAnimations()).
    await waitFor(async () => (await page.evaluate('document.getAnimations().length')) === 0, {
      intervalMs: 100,
      what: 'the row flash to fade',
    });
    await mkdir(join(SCREENSHOT, '..'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
  });
});

describe('status page with hostile and awkward data', () => {
  const HOSTILE = '<img src=x onerror="window.__pwned=1">';
  const LONG_ERROR = `orchestry.port: must be an integer from 1 to 65535, got "${'9'.repeat(300)}"`;
  let admin: AdminServer;
  let port: number;
  let page: Page;
  let problems: string[];

  const apps = {
    apps: [
      {
        name: HOSTILE,
        panic: true,
        protocol: 'HTTP',
        backends: [
          {
            id: `${HOSTILE}/127.0.0.1:1`,
            address: '127.0.0.1:1',
            weight: 1,
            backup: false,
            health: 'unhealthy',
            breaker: 'half_open',
            ejected: true,
            since: new Date().toISOString(),
            draining: false,
            container: { id: 'abcdef012345', name: `${HOSTILE}<script>window.__pwned=2</script>`, image: 'demo', state: 'restarting', docker_health: 'unhealthy', restart_count: 7, replica: 2 },
            consecutive_failures: 4,
            consecutive_successes: 0,
            last_probe: { healthy: false, at: new Date().toISOString(), response_time_ms: 1000, status_code: null, error_class: 'timeout', error: 'x'.repeat(400) },
            last_failure: { type: 'health_check_timeout', severity: 'high', message: `no answer ${'y'.repeat(400)}`, consecutive: 4, total_in_window: 4, at: new Date().toISOString() },
          },
        ],
      },
    ],
    rejected_containers: [{ id: 'fedcba987654', name: `bad-${HOSTILE}`, errors: [LONG_ERROR, 'orchestry.app: required'] }],
    state_store: { state: 'degraded', path: '/data/s.db', error: `/data/s.db: file is not a database ${HOSTILE}` },
    swarm_lease: { name: 'orchestry-lease-n1', node: 'n1', holder: `web-2:41${HOSTILE}`, term: 3, expires_at: new Date(Date.now() + 15_000).toISOString(), held: false, instance: 'web-1:40' },
  };

  async function serve(): Promise<void> {
    admin = createAdminServer({
      listen: `127.0.0.1:${port}`,
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ collectDefault: false }),
      getApps: () => apps,
      getApp: () => undefined,
      readiness: () => ({ ready: false, reasons: [`Docker Engine unreachable ${HOSTILE}`] }),
      getEvents: () => [
        { seq: 1, at: new Date().toISOString(), kind: 'recovery', app: HOSTILE, backend: null, message: `restart failed ${HOSTILE}`, data: { ok: false, error: LONG_ERROR } },
      ],
    });
    ({ port } = await admin.start());
  }

  beforeAll(async () => {
    port = 0;
    await serve();
    ({ page, problems } = await openPage(`http://127.0.0.1:${port}/status`));
    await waitFor(async () => (await page.locator('section.app').count()) === 1, { what: 'the app card' });
  });

  afterAll(async () => {
    await page?.close();
    await admin?.close();
  });

  it('shows markup from labels and names as text and never runs it', async () => {
    expect(await text(page, 'section.app h2')).toBe(HOSTILE);
    expect(await text(page, 'section.app .container')).toContain('<script>window.__pwned=2</script>');
    expect(await text(page, '#events')).toContain(`restart failed ${HOSTILE}`);
    expect(await text(page, '#notready')).toContain(`Docker Engine unreachable ${HOSTILE}`);
    expect(await page.locator('main img, main script, .banner img').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(problems).toEqual([]);
  });

  it('shows panic, rejected containers with every error, and long texts without breaking the layout', async () => {
    expect(await text(page, 'section.app .card-head')).toContain('panic: every backend ejected, routing to all');
    expect(await text(page, 'section.app .routed-count')).toBe('1/1 routed');
    expect(await text(page, 'section.app tr[data-backend] .routing .pill')).toBe('panic');
    expect(await text(page, 'section.app tr[data-backend] .breaker .pill')).toBe('half-open');
    const rejected = page.locator('section.rejected li');
    expect(await rejected.allTextContents()).toEqual([LONG_ERROR, 'orchestry.app: required']);
    const store = page.locator('#summary .stat', { hasText: 'state store' });
    expect(await store.textContent()).toBe('degraded state store (history and restart state are not being kept)');
    expect(await store.getAttribute('title')).toBe(`/data/s.db: file is not a database ${HOSTILE}`);
    // Nothing wider than the 1280 px window: long words wrap inside their cells, and long texts
    // stop after a few lines (the full text is the tooltip) instead of stretching the row.
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(1280);
    expect((await page.locator('section.app tr[data-backend]').boundingBox())!.height).toBeLessThan(250);
    expect(await page.locator('section.app tr[data-backend] .detail .clamp').getAttribute('title')).toBe(apps.apps[0]!.backends[0]!.last_failure.message);
  });

  it('says which sidecar holds the Swarm lease, and that it is not this one', async () => {
    const lease = page.locator('#swarm-lease');
    const shown = (await lease.textContent())!;
    expect(shown.startsWith(`web-2:41${HOSTILE} holds the Swarm lease until `)).toBe(true);
    expect(shown.endsWith(' (not this sidecar)')).toBe(true);
    expect(await lease.getAttribute('title')).toBe('orchestry-lease-n1 (node n1), term 3; this sidecar is web-1:40');
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
  });

  it('shows a "sidecar unreachable, retrying" banner while the API is down, and recovers by itself', async () => {
    expect(await page.locator('#banner').isHidden()).toBe(true);
    await admin.close();
    await waitFor(async () => (await text(page, '#banner')).startsWith('Sidecar unreachable'), { what: 'the unreachable banner' });
    expect(await text(page, '#banner')).toContain('retrying every 2 s');
    // The last known state stays on screen.
    expect(await text(page, 'section.app h2')).toBe(HOSTILE);

    await serve();
    await waitFor(() => page.locator('#banner').isHidden(), { what: 'the banner to go away' });
    expect(await text(page, '#updated')).toMatch(/^live/);
  });
});

describe('status page at thousands of backends', () => {
  const APPS = 20;
  const PER_APP = 200;
  let admin: AdminServer;
  let page: Page;
  let problems: string[];
  const requested: string[] = [];

  const backendOf = (a: number, i: number) => {
    const out = i % 10 === 0;
    return {
      id: `shop-${a}/10.0.${a}.${i}:80`,
      address: `10.0.${a}.${i}:80`,
      weight: 1,
      backup: false,
      health: out ? 'unhealthy' : 'healthy',
      breaker: out ? 'open' : 'closed',
      ejected: out,
      since: new Date().toISOString(),
      draining: false,
      container: null,
      consecutive_failures: out ? 3 : 0,
      consecutive_successes: out ? 0 : 5,
      last_probe: { healthy: !out, at: new Date().toISOString(), response_time_ms: 1.5, status_code: out ? 503 : 200, error_class: out ? 'unexpected_status' : null, error: null },
      last_failure: null,
    };
  };
  const full = Array.from({ length: APPS }, (_, a) => ({
    name: `shop-${a}`,
    panic: false,
    protocol: 'HTTP',
    backends: Array.from({ length: PER_APP }, (_, i) => backendOf(a, i)),
  }));
  const summary = (app: (typeof full)[number]) => ({
    name: app.name,
    panic: app.panic,
    protocol: app.protocol,
    counts: { backends: PER_APP, routed: PER_APP * 0.9, ejected: PER_APP / 10, draining: 0, healthy: PER_APP * 0.9, unhealthy: PER_APP / 10, unknown: 0, breaker_open: PER_APP / 10 },
  });

  beforeAll(async () => {
    admin = createAdminServer({
      listen: '127.0.0.1:0',
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ collectDefault: false }),
      getApps: (q) => {
        requested.push(q.summary ? 'summary' : 'full');
        return { apps: q.summary ? full.map(summary) : full, rejected_containers: [], state_store: { state: 'disabled' } };
      },
      getApp: (name) => {
        requested.push(name);
        return full.find((a) => a.name === name);
      },
      readiness: () => ({ ready: true, reasons: [] }),
      getEvents: () => [],
    });
    const { port } = await admin.start();
    ({ page, problems } = await openPage(`http://127.0.0.1:${port}/status`));
    await waitFor(async () => (await page.locator('section.app').count()) === APPS, { what: 'the app cards' });
  });

  afterAll(async () => {
    await page?.close();
    await admin?.close();
  });

  it('shows each app collapsed to its counts, and asks the API only for counts', async () => {
    expect(await page.locator('section.app.collapsed').count()).toBe(APPS);
    expect(await page.locator('tr[data-backend]').count()).toBe(0);
    expect(await text(page, '[data-app="shop-3"] .routed-count')).toBe(`${PER_APP * 0.9}/${PER_APP} routed`);
    expect(await text(page, '[data-app="shop-3"] .card-head')).toContain(`${PER_APP / 10} ejected`);
    expect(await text(page, '#summary')).toContain(`${APPS * PER_APP * 0.9}/${APPS * PER_APP} backends routed`);
    expect(requested).not.toContain('full');
    expect(problems).toEqual([]);
  });

  it('expands an app on click, with every backend of it, and keeps it expanded across polls', async () => {
    await page.locator('[data-app="shop-7"] .card-head').click();
    await waitFor(async () => (await page.locator('[data-app="shop-7"] tr[data-backend]').count()) === PER_APP, { what: 'shop-7 rows' });
    expect(await page.locator('[data-app="shop-7"] .card-head').getAttribute('aria-expanded')).toBe('true');
    expect(await page.locator('tr[data-backend]').count()).toBe(PER_APP);
    expect(await text(page, `${row('shop-7', '10.0.7.10:80')} .routing .pill`)).toBe('ejected');
    // The next polls fetch that app's backends (and only that app's), and it stays expanded.
    const asked = requested.length;
    await waitFor(() => requested.slice(asked).filter((r) => r === 'shop-7').length >= 2, { what: 'two more polls' });
    expect(new Set(requested.slice(asked))).toEqual(new Set(['summary', 'shop-7']));
    expect(await page.locator('[data-app="shop-7"] tr[data-backend]').count()).toBe(PER_APP);
    await page.locator('[data-app="shop-7"] .card-head').press('Enter');
    await waitFor(async () => (await page.locator('tr[data-backend]').count()) === 0, { what: 'shop-7 collapsed again' });
    await page.locator('[data-app="shop-7"] .card-head').click();
    await waitFor(async () => (await page.locator('[data-app="shop-7"] tr[data-backend]').count()) === PER_APP, { what: 'shop-7 expanded again' });
  });

  it('filters apps by name and the rows of expanded apps by address, at once, and says when nothing matches', async () => {
    const filter = page.locator('#filter');
    await filter.fill('shop-1');
    // shop-1 and shop-10 .. shop-19.
    expect(await page.locator('section.app').count()).toBe(11);
    await filter.fill('10.0.7.12');
    expect(await page.locator('section.app').count()).toBe(1);
    expect(await page.locator('tr[data-backend]').allTextContents()).toHaveLength(11); // .12 and .120 .. .129
    expect(await page.locator(row('shop-7', '10.0.7.12:80')).count()).toBe(1);
    await filter.fill('no-such-thing');
    expect(await page.locator('section.app').count()).toBe(0);
    expect(await text(page, '.no-match')).toBe('No app or shown backend matches “no-such-thing”.');
    // The filter holds across polls.
    const asked = requested.length;
    await waitFor(() => requested.length > asked + 1, { what: 'another poll' });
    expect(await page.locator('section.app').count()).toBe(0);
    await filter.fill('');
    expect(await page.locator('section.app').count()).toBe(APPS);
    expect(problems).toEqual([]);
  });
});
