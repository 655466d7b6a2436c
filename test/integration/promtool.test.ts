// What promtool (Prometheus' own checker, built by scripts/stack install) says of the monitoring
// files: the alert rules parse and pass their unit tests (deploy/prometheus/alerts-test.yml), the
// scrape configs (Kubernetes', and docker compose's inline one) are valid, and every query of the Grafana dashboard parses and shows data
// over the series the three services' registries serve (a misspelt label value or a filter
// nothing matches shows as a panel without data). The dashboard's other checks, which need no
// promtool: test/unit/deploy-dashboard.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram } from 'prom-client';
import { parse, stringify } from 'yaml';
import { createFlusherMetrics } from '../../services/flusher/metrics.ts';
import { createIngestorMetrics } from '../../services/ingestor/metrics.ts';
import { createServerMetrics } from '../../services/server/metrics.ts';
import { type Dashboard, loadDashboard, queries, withQuery } from '../support/dashboard.ts';

const dashboard = loadDashboard();

/** promtool from scripts/stack env (PROMTOOL); scripts/stack install builds it. */
function requirePromtool(): string {
  const tool = process.env.PROMTOOL;
  assert.ok(
    tool && spawnSync(tool, ['--version'], { encoding: 'utf8' }).status === 0,
    `PROMTOOL (${tool ?? 'unset'}) does not run: scripts/stack install builds promtool, and eval "$(scripts/stack env)" sets PROMTOOL`,
  );
  return tool;
}
const promtool = requirePromtool();

/**
 * A query as Grafana sends it with everything selected: variables as .*, $__rate_interval as two
 * scrape intervals of the tests below; label_values() is Grafana's, not PromQL: its selector.
 */
function grafanaExpanded(expr: string): string {
  return (expr.match(/^label_values\((.*),\s*[a-z_]+\s*\)$/)?.[1] ?? expr)
    .replaceAll('$__rate_interval', '2m')
    .replace(/\$\{?[A-Za-z0-9_]+\}?/g, '.*');
}

/** `promtool check rules` over every query as a recording rule: its output if it fails. */
function promtoolProblems(tool: string, d: Dashboard): string | undefined {
  const rules = queries(d).map(({ expr }, i) => ({
    record: `tessera_dashboard:query_${i}`,
    expr: grafanaExpanded(expr),
  }));
  const dir = mkdtempSync(join(tmpdir(), 'tessera-dashboard-'));
  try {
    const file = join(dir, 'dashboard-rules.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    const run = spawnSync(tool, ['check', 'rules', file], { encoding: 'utf8' });
    return run.status === 0 ? undefined : `${run.stdout}${run.stderr}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What the three services' /metrics would serve once each series has been touched: every metric,
 * Node's included, with one sample per label (values the dashboard's filters select), as promtool
 * input series over 20 minutes (counters and histogram series growing, gauges flat).
 */
async function servedSeries(): Promise<{ series: string; values: string }[]> {
  const chosen: Record<string, string> = { route: '/get-online-features', status: '503', outcome: 'dlq' };
  const growing = new Set<string>();
  const out: { series: string; values: string }[] = [];
  for (const create of [createIngestorMetrics, createServerMetrics, createFlusherMetrics]) {
    const { registry } = create({ processMetrics: true });
    for (const metric of registry.getMetricsAsArray()) {
      const names = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
      const labels = Object.fromEntries(names.map((l) => [l, chosen[l] ?? `${l}-1`]));
      if (metric instanceof Counter) {
        growing.add(metric.name);
        if (names.length > 0) metric.inc(labels, 1);
      } else if (metric instanceof Histogram) {
        for (const suffix of ['bucket', 'count', 'sum']) growing.add(`${metric.name}_${suffix}`);
        metric.observe(labels, 0.01);
      } else if (metric instanceof Gauge) metric.set(labels, 1);
    }
    for (const line of (await registry.metrics()).split('\n')) {
      const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/);
      if (!m) continue;
      const value = Number.isFinite(Number(m[3])) ? Number(m[3]) : 0;
      const labels = [m[2], 'instance="test:9400"', 'job="tessera"'].filter(Boolean).join(',');
      out.push({
        series: `${m[1]}{${labels}}`,
        values: growing.has(m[1]!) ? `0+${value}x20` : `${value}x20`,
      });
    }
    registry.clear();
  }
  return out;
}

/**
 * Each query as an alert on its absence, evaluated by promtool over `series`: the titles of the
 * panels whose query would show no data.
 */
function emptyPanels(tool: string, d: Dashboard, series: { series: string; values: string }[]): string {
  const rules = queries(d).map(({ where, expr }, i) => ({
    alert: `Query${i}`,
    expr: `absent(${grafanaExpanded(expr)})`,
    annotations: { panel: where },
  }));
  const dir = mkdtempSync(join(tmpdir(), 'tessera-dashboard-'));
  try {
    writeFileSync(join(dir, 'rules.yml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
    const tests = {
      rule_files: ['rules.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: series,
          alert_rule_test: rules.map((r) => ({ eval_time: '15m', alertname: r.alert, exp_alerts: [] })),
        },
      ],
    };
    writeFileSync(join(dir, 'test.yml'), stringify(tests));
    const run = spawnSync(tool, ['test', 'rules', join(dir, 'test.yml')], { encoding: 'utf8' });
    return run.status === 0
      ? ''
      : [...`${run.stdout}${run.stderr}`.matchAll(/panel="([^"]*)"/g)].map((m) => m[1]).join(', ') ||
          `${run.stdout}${run.stderr}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('deploy/grafana/tessera.json with promtool', () => {
  it('has queries promtool parses', () => {
    assert.equal(promtoolProblems(promtool, dashboard), undefined);
    // And it would say so: one query missing its closing parenthesis.
    const broken = withQuery(dashboard, (e) => e.slice(0, -1), 'Events per second by outcome');
    assert.match(promtoolProblems(promtool, broken) ?? '', /parse error|unclosed|expected/i);
  });

  it('shows data on every panel from the series the services serve', async () => {
    const series = await servedSeries();
    assert.equal(emptyPanels(promtool, dashboard, series), '');
    // And it would say so: a route no request takes, a histogram the server does not serve.
    const misrouted = withQuery(
      dashboard,
      (e) => e.replace('route=~"/get-online-features|/push"', 'route="/get-features"'),
      'Latency by route',
    );
    assert.match(emptyPanels(promtool, misrouted, series), /Latency by route A/);
    const unserved = series.filter((s) => !s.series.startsWith('tessera_server_entities_per_request'));
    assert.match(emptyPanels(promtool, dashboard, unserved), /Entities per request A/);
  });
});

describe('deploy/prometheus with promtool', () => {
  const run = (...args: string[]) => spawnSync(promtool, args, { encoding: 'utf8' });

  it('has alert rules that parse and pass their unit tests', () => {
    const check = run('check', 'rules', 'deploy/prometheus/alerts.yml');
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    const tests = run('test', 'rules', 'deploy/prometheus/alerts-test.yml');
    assert.equal(tests.status, 0, `${tests.stdout}${tests.stderr}`);
  });

  it('has valid scrape configs, for Kubernetes and for docker compose', () => {
    const check = run('check', 'config', 'deploy/prometheus/prometheus.yml');
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    // The compose profile's config is inline in docker-compose.yml, beside the same alerts.yml.
    const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as {
      configs: Record<string, { content: string }>;
    };
    const dir = mkdtempSync(join(tmpdir(), 'tessera-prometheus-'));
    try {
      writeFileSync(join(dir, 'prometheus.yml'), compose.configs['prometheus-compose']!.content);
      copyFileSync('deploy/prometheus/alerts.yml', join(dir, 'alerts.yml'));
      const inline = run('check', 'config', join(dir, 'prometheus.yml'));
      assert.equal(inline.status, 0, `${inline.stdout}${inline.stderr}`);
      assert.match(inline.stdout, /SUCCESS: \d+ rules found/, 'the alert rules are read too');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
