/**
 * dashboards/orchestry-sidecar.json queries only what the sidecar exports: every PromQL
 * expression (panel targets and template variables) parses (`promtool check rules`), and every
 * metric it names is a series of a real createMetrics() exposition that has seen one of
 * everything. Histograms are queried through their _bucket/_sum/_count series.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { METRICS_IDENTITY_LABEL } from '../../src/observability/metrics.js';
import { busyExposition, parseSamples } from '../helpers/metrics-text.js';

const DASHBOARD = fileURLToPath(new URL('../../dashboards/orchestry-sidecar.json', import.meta.url));

interface Panel {
  type: string;
  title: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}
interface Dashboard {
  schemaVersion: number;
  __inputs: Array<{ name: string; pluginId: string }>;
  panels: Panel[];
  templating: { list: Array<{ name: string; query: string | { query: string } }> };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

/** Every panel, rows' collapsed children included. */
const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);

/** [where, PromQL] of every panel target. */
const targetExprs = allPanels(dashboard.panels).flatMap((p) =>
  (p.targets ?? []).map((t) => [`panel "${p.title}"`, t.expr ?? ''] as const),
);
/** [where, query] of every template variable (`label_values(selector, label)`). */
const variableQueries = dashboard.templating.list.map(
  (v) => [`variable $${v.name}`, typeof v.query === 'string' ? v.query : v.query.query] as const,
);

/** Grafana's variables replaced by values of the same kind, so the text is plain PromQL. */
const substitute = (expr: string) =>
  expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '1m').replace(/\$\{?\w+\}?/g, '.*');

const KEYWORDS = new Set([
  'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right',
]);

/**
 * The metric names an expression selects: identifiers left once strings, label matchers, ranges,
 * grouping clauses and numbers are removed, that are neither function calls nor keywords.
 * Enough for the dashboard's expressions (which promtool has parsed), not a PromQL parser.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    // Numbers and durations (0.95, 1e-3, 5m, 1h30m): any token that starts with a digit.
    .replace(/(?<![\w:])\d[\w.]*/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const rest = bare.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** The selector of `label_values(selector, label)`, the only variable query form used. */
function variableSelector(query: string): string {
  const m = /^label_values\((.+),\s*\w+\)$/.exec(query.trim());
  if (!m) throw new Error(`unsupported variable query: ${query}`);
  return m[1]!;
}

/** Series names of an exposition from metrics that have seen one of everything. */
async function exportedSeries(): Promise<Set<string>> {
  return new Set(parseSamples(await busyExposition(false)).map((s) => s.name));
}

describe('Grafana dashboard', () => {
  it('is a schemaVersion 39 dashboard whose panels query ${DS_PROMETHEUS}', () => {
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', pluginId: 'prometheus' })]);
    const raw = readFileSync(DASHBOARD, 'utf8');
    expect(raw).not.toMatch(/"uid":\s*"(?!\$\{DS_PROMETHEUS\}|-- Grafana --|orchestry-sidecar")/);
    expect(targetExprs.length).toBeGreaterThan(10);
    for (const [where, expr] of targetExprs) expect(expr, where).not.toBe('');
  });

  it('has only PromQL that Prometheus parses', () => {
    const dir = mkdtempSync(join(tmpdir(), 'orchestry-dashboard-'));
    try {
      const exprs = [...targetExprs.map(([, e]) => e), ...variableQueries.map(([, q]) => variableSelector(q))];
      // One recording rule per expression: `promtool check rules` runs Prometheus's own parser.
      const rules = exprs.map((e, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(substitute(e))}`);
      writeFileSync(join(dir, 'rules.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      const run = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' });
      if (run.error) throw new Error(`promtool is required for this test (apt-get install prometheus): ${run.error.message}`);
      expect(`${run.stdout}${run.stderr}`).toContain(`SUCCESS: ${exprs.length} rules found`);
      expect(run.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('queries only series the sidecar exports', async () => {
    const exported = await exportedSeries();
    const used = new Map<string, string>();
    for (const [where, expr] of targetExprs) for (const n of metricNames(expr)) used.set(n, where);
    for (const [where, query] of variableQueries) for (const n of metricNames(variableSelector(query))) used.set(n, where);
    const unknown = [...used].filter(([n]) => !exported.has(n)).map(([n, where]) => `${n} (${where})`);
    expect(unknown).toEqual([]);
    // The views the dashboard exists for.
    for (const name of [
      'orchestry_backend_up',
      'orchestry_backends',
      'orchestry_ejected_backends',
      'orchestry_breaker_state',
      'orchestry_probe_duration_seconds_bucket',
      'orchestry_transitions_total',
      'orchestry_nginx_reloads_total',
      'orchestry_nginx_reload_duration_seconds_bucket',
      'orchestry_recovery_actions_total',
      'orchestry_upstream_panic',
      'orchestry_degraded',
      'orchestry_docker_connected',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
  });

  it('aggregates several sidecars: a variable over their identity label filters every series, and the views that matter are per sidecar', async () => {
    const label = METRICS_IDENTITY_LABEL;
    const variable = dashboard.templating.list.find((v) => v.name === label);
    expect(variable, `a $${label} variable`).toBeDefined();
    const query = typeof variable!.query === 'string' ? variable!.query : variable!.query.query;
    expect(query).toMatch(new RegExp(`^label_values\\(\\w+, ${label}\\)$`));
    // The label it lists is on what the sidecar exports.
    const identified = parseSamples(await busyExposition(false, 'node-1'));
    expect(identified.filter((s) => s.labels[label] !== 'node-1')).toEqual([]);
    // Every selector of every panel and of the app variable carries the matcher: no metric is
    // named without it (a selector without it would mix every sidecar in).
    const matcher = `${label}=~"$${label}"`;
    const queries = [...targetExprs, ...variableQueries.filter(([where]) => where !== `variable $${label}`).map(([w, q]) => [w, variableSelector(q)] as const)];
    for (const [where, expr] of queries) {
      const selectors = [...expr.matchAll(/[a-zA-Z_:][\w:]*\{([^}]*)\}/g)];
      expect(selectors.length, where).toBeGreaterThan(0);
      for (const s of selectors) expect(s[1], `${where}: ${s[0]}`).toContain(matcher);
      expect(metricNames(expr.replace(/[a-zA-Z_:][\w:]*\{[^}]*\}/g, ' ')), `${where}: a metric without a selector`).toEqual([]);
    }
    expect(JSON.stringify(dashboard)).not.toContain('$instance');
    // Each sidecar probes every backend and drives its own nginx: these are shown per sidecar
    // (a sum over sidecars would count each backend once per sidecar); recovery says who acted.
    const bySidecar = new RegExp(`\\bby \\([^)]*\\b${label}\\b`);
    for (const title of ['Backends routed', 'Backends up per app', 'Ejected backends', 'Ejections and recoveries', 'nginx reloads', 'Recovery actions']) {
      const panel = allPanels(dashboard.panels).find((p) => p.title === title);
      expect(panel, title).toBeDefined();
      expect((panel!.targets ?? []).some((t) => bySidecar.test(t.expr ?? '')), title).toBe(true);
    }
  });

  it('extracts metric names from PromQL, skipping functions, labels, ranges and grouping', () => {
    expect(
      metricNames('histogram_quantile(0.95, sum by (le, app) (rate(a_bucket{app=~"x|y", le!="1e3"}[5m])))'),
    ).toEqual(['a_bucket']);
    expect(metricNames('sum(up_a{b="c"}) / on (app) group_left sum(b_total) > bool 1e-3')).toEqual(['up_a', 'b_total']);
    expect(metricNames('max by (app) (x offset 1h30m) unless y')).toEqual(['x', 'y']);
  });
});
