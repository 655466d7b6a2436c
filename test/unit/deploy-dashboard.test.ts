// Keeps deploy/grafana/tessera.json true to the metrics the services declare, as
// deploy-alerts.test.ts does for the alert rules: every query names a declared series with the
// suffix its type has, reads counters and histograms through rate()/increase() and gauges never so,
// selects and groups by labels the metric has, and uses only template variables the dashboard
// defines; every declared metric is on a panel or listed below with the reason it is not; a panel
// that names an alert draws that alert's threshold. Each check is a function returning its
// problems, so the tests can show it catches a broken panel. PromQL itself is promtool's:
// test/integration/promtool.test.ts (promtool comes with scripts/stack install).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { createFlusherMetrics } from '../../services/flusher/metrics.ts';
import { createIngestorMetrics } from '../../services/ingestor/metrics.ts';
import { createServerMetrics } from '../../services/server/metrics.ts';
import {
  allPanels,
  type Dashboard,
  loadDashboard,
  queries,
  withQuery as withQueryOf,
} from '../support/dashboard.ts';
import {
  declaredMetrics,
  group,
  type Metric,
  matchers,
  processMetricPrefixes,
  processMetrics,
  resolveSeries,
} from '../support/declared-metrics.ts';

const dashboard = loadDashboard();
/** The dashboard with `change` applied to a copy of one panel's first query. */
const withQuery = (change: (expr: string) => string, title: string) => withQueryOf(dashboard, change, title);

const declared = declaredMetrics();
const prefixes = processMetricPrefixes();
/** Everything a service's /metrics serves: its own metrics and Node's, under its prefix. */
const known = new Map<string, Metric>(declared);
for (const prefix of prefixes) for (const [name, m] of processMetrics(prefix)) known.set(name, m);
/** Labels Prometheus adds to every scraped series (deploy/prometheus/prometheus.yml, compose). */
const TARGET_LABELS = new Set(['instance', 'job', 'service']);
/** Grafana's own variables. */
const BUILTIN = /^__(rate_interval|interval|interval_ms|range|range_s|dashboard|from|to)$/;

/**
 * Declared metrics on no panel, and why. Kept short: a metric nobody looks at is a metric to
 * drop, and a new one lands on a panel or here, never silently nowhere.
 */
const LEFT_OUT: Record<string, string> = {};
/** Node's process metrics (per service prefix) on no panel, and why. */
const LEFT_OUT_PROCESS: Record<string, string> = {
  process_cpu_user_seconds_total: 'the CPU panel shows user plus system (process_cpu_seconds_total)',
  process_cpu_system_seconds_total: 'the CPU panel shows user plus system (process_cpu_seconds_total)',
  process_virtual_memory_bytes: 'V8 reserves address space it never touches: resident memory is what counts',
  process_heap_bytes: "the C heap; the V8 heap (heap used) is where Tessera's memory goes",
  nodejs_eventloop_lag_seconds: 'an instant sample; the p99 panel shows the tail over the scrape interval',
  nodejs_eventloop_lag_min_seconds: 'the same distribution as the p99 panel',
  nodejs_eventloop_lag_max_seconds: 'the same distribution as the p99 panel',
  nodejs_eventloop_lag_mean_seconds: 'the same distribution as the p99 panel',
  nodejs_eventloop_lag_stddev_seconds: 'the same distribution as the p99 panel',
  nodejs_eventloop_lag_p50_seconds: 'the same distribution as the p99 panel',
  nodejs_eventloop_lag_p90_seconds: 'the same distribution as the p99 panel',
  nodejs_active_resources: 'libuv internals; a leak of sockets shows in open file descriptors',
  nodejs_active_resources_total: 'libuv internals; a leak of sockets shows in open file descriptors',
  nodejs_active_handles: 'libuv internals; a leak of sockets shows in open file descriptors',
  nodejs_active_handles_total: 'libuv internals; a leak of sockets shows in open file descriptors',
  nodejs_active_requests: 'libuv internals; a leak of sockets shows in open file descriptors',
  nodejs_active_requests_total: 'libuv internals; a leak of sockets shows in open file descriptors',
  nodejs_heap_size_total_bytes: 'follows heap used, which is the one that grows',
  nodejs_external_memory_bytes: 'Buffers outside the V8 heap: part of resident memory, shown',
  nodejs_heap_space_size_total_bytes: 'per-space detail for a heap investigation, not for a glance',
  nodejs_heap_space_size_used_bytes: 'per-space detail for a heap investigation, not for a glance',
  nodejs_heap_space_size_available_bytes: 'per-space detail for a heap investigation, not for a glance',
  nodejs_version_info: 'a constant; the Node version is in the image',
};

/** A `{__name__=~"..."}` selector's metrics (the instance variable lists every service's). */
function byName(selector: string): string[] {
  const m = matchers(selector).find(([label]) => label === '__name__');
  if (!m) return [];
  const re = new RegExp(`^(?:${m[2]})$`);
  return [...known.keys()].filter((name) => (m[1] === '=' ? name === m[2] : re.test(name)));
}

function checkSeries(d: Dashboard): string[] {
  const problems: string[] = [];
  for (const { where, expr, variable } of queries(d)) {
    const names = [...expr.matchAll(/\b(tessera_[a-z0-9_]+)/g)];
    const nameless = [...expr.matchAll(/(?<![a-z0-9_])\{([^}]*__name__[^}]*)\}/g)];
    if (names.length === 0 && nameless.length === 0) problems.push(`${where}: names no tessera_ metric`);
    for (const [, selector] of nameless)
      if (byName(selector!).length === 0) problems.push(`${where}: {${selector}} matches no declared metric`);
    for (const m of names) {
      const found = resolveSeries(known, m[1]!);
      if (!found) {
        problems.push(`${where}: ${m[1]} is declared by no service`);
        continue;
      }
      const { metric, suffix } = found;
      if (metric.kind === 'Histogram' && suffix === '')
        problems.push(`${where}: ${m[1]} needs _bucket/_count/_sum`);
      if (metric.kind !== 'Histogram' && suffix !== '')
        problems.push(`${where}: ${m[1]}: a ${metric.kind} has no _${suffix} series`);
      // The function applied to this series: the nearest name before it and its "(".
      const before = expr.slice(0, m.index);
      const fn = before.match(/([a-z_]+)\($/)?.[1];
      const counterLike = metric.kind === 'Counter' || suffix !== '';
      if (fn === 'rate' || fn === 'increase' || fn === 'irate') {
        if (!counterLike) problems.push(`${where}: ${fn}() of the ${metric.kind} ${m[1]}`);
      } else if (fn === 'deriv' || fn === 'delta') {
        if (metric.kind !== 'Gauge') problems.push(`${where}: ${fn}() of the ${metric.kind} ${m[1]}`);
      } else if (counterLike && !variable) {
        // A counter's raw value is its count since the process started: meaningless on a graph.
        problems.push(`${where}: ${m[1]} (${metric.kind}) read without rate() or increase()`);
      }
      if (suffix === 'bucket') {
        const quantile = /histogram_quantile\([^,]*,\s*sum by \(([^)]*)\)\s*\(rate\($/.exec(before);
        if (!quantile)
          problems.push(`${where}: ${m[1]} outside histogram_quantile(q, sum by (le) (rate(...)))`);
        else if (!quantile[1]!.split(',').some((l) => l.trim() === 'le'))
          problems.push(`${where}: histogram_quantile over ${m[1]} without le in its by ()`);
      }
    }
  }
  return problems;
}

/** A label is a series' if the metric declares it, it is a histogram bucket's le, or Prometheus adds it. */
function hasLabel(series: string, label: string): boolean {
  const found = resolveSeries(known, series);
  if (!found) return true; // reported by checkSeries
  return (
    found.metric.labels.has(label) ||
    TARGET_LABELS.has(label) ||
    (found.suffix === 'bucket' && label === 'le')
  );
}

function checkLabels(d: Dashboard): string[] {
  const problems: string[] = [];
  const targets = allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => ({ p, t })));
  for (const { where, expr } of queries(d)) {
    for (const m of expr.matchAll(/\b(tessera_[a-z0-9_]+)\{([^}]*)\}/g))
      for (const [label] of matchers(m[2]!))
        if (!hasLabel(m[1]!, label)) problems.push(`${where}: ${m[1]} has no label ${label}`);
    for (const m of expr.matchAll(/(?<![a-z0-9_])\{([^}]*__name__[^}]*)\}/g))
      for (const [label] of matchers(m[1]!))
        for (const series of label === '__name__' ? [] : byName(m[1]!))
          if (!hasLabel(series, label)) problems.push(`${where}: ${series} has no label ${label}`);
    // label_values(<selector>, label): the label the variable lists.
    const listed = expr.match(/label_values\((.*),\s*([a-z_]+)\s*\)$/);
    if (listed)
      for (const series of [...(listed[1]!.match(/\btessera_[a-z0-9_]+/g) ?? []), ...byName(listed[1]!)])
        if (!hasLabel(series, listed[2]!)) problems.push(`${where}: ${series} has no label ${listed[2]}`);
    // `by (...)`: every tessera_ series under it carries those labels.
    for (const m of expr.matchAll(/\bby\s*\(([^)]*)\)\s*/g)) {
      const labels = m[1]!
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean);
      for (const series of group(expr, m.index! + m[0].length).match(/\btessera_[a-z0-9_]+/g) ?? [])
        for (const label of labels)
          if (!hasLabel(series, label))
            problems.push(`${where}: by (${label}) over ${series}, which has no such label`);
    }
  }
  // {{label}} in a legend: the expression keeps it (an aggregation's by (), or the series' own).
  for (const { p, t } of targets) {
    const kept = new Set(
      [...t.expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim())),
    );
    const aggregated = /\b(sum|max|min|avg|count)\b/.test(t.expr);
    const series = t.expr.match(/\btessera_[a-z0-9_]+/)?.[0];
    for (const [, label] of (t.legendFormat ?? '').matchAll(/\{\{\s*([a-zA-Z_]+)\s*\}\}/g)) {
      const ok = aggregated ? kept.has(label!) : series !== undefined && hasLabel(series, label!);
      if (!ok)
        problems.push(`${p.title} ${t.refId}: its legend names {{${label}}}, which the expression drops`);
    }
  }
  return problems;
}

function checkVariables(d: Dashboard): string[] {
  const problems: string[] = [];
  const defined = new Map(d.templating.list.map((v) => [v.name, v]));
  const ds = d.templating.list.find((v) => v.type === 'datasource');
  if (ds?.query !== 'prometheus') problems.push('no Prometheus datasource variable');
  const used = new Set<string>();
  const texts = [
    ...queries(d).map((q) => ({ where: q.where, text: q.expr })),
    ...allPanels(d).map((p) => ({ where: p.title, text: JSON.stringify([p.datasource, p.targets]) })),
    ...d.templating.list.map((v) => ({
      where: `variable ${v.name}`,
      text: JSON.stringify(v.datasource ?? ''),
    })),
  ];
  for (const { where, text } of texts)
    for (const m of text.matchAll(/\$(?:\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|([A-Za-z0-9_]+))/g)) {
      const name = (m[1] ?? m[2])!;
      if (BUILTIN.test(name)) continue;
      if (!defined.has(name)) problems.push(`${where}: $${name} is no template variable`);
      used.add(name);
    }
  for (const name of defined.keys())
    if (!used.has(name)) problems.push(`variable ${name} is used by no panel`);
  // A multi-value or All variable expands to a regex (a|b, .*): only =~ and !~ take it.
  for (const { where, expr } of queries(d))
    for (const [label, op, value] of matchers(expr))
      for (const [, name] of value.matchAll(/\$\{?([A-Za-z0-9_]+)/g)) {
        const v = defined.get(name!);
        if ((v?.multi || v?.includeAll) && op !== '=~' && op !== '!~')
          problems.push(`${where}: ${label}${op}"${value}" needs =~ for the multi-value $${name}`);
      }
  // Every panel and query reads the chosen data source, so the dashboard imports anywhere.
  for (const p of allPanels(d)) {
    if (p.type === 'row') continue;
    for (const source of [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]) {
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not JavaScript's
      if (source?.uid !== '${datasource}') problems.push(`${p.title}: data source ${JSON.stringify(source)}`);
    }
  }
  return problems;
}

function checkCoverage(d: Dashboard): string[] {
  const problems: string[] = [];
  const text = allPanels(d)
    .flatMap((p) => (p.targets ?? []).map((t) => t.expr))
    .join('\n');
  const onPanel = (name: string) => new RegExp(`\\b${name}(_bucket|_count|_sum)?\\b`).test(text);
  for (const name of declared.keys())
    if (!onPanel(name) && !LEFT_OUT[name]) problems.push(`${name} is on no panel and not in LEFT_OUT`);
  for (const name of Object.keys(LEFT_OUT)) {
    if (!declared.has(name)) problems.push(`LEFT_OUT names ${name}, which no service declares`);
    else if (onPanel(name)) problems.push(`LEFT_OUT names ${name}, which is on a panel`);
  }
  for (const prefix of prefixes) {
    for (const name of processMetrics(prefix).keys()) {
      const bare = name.slice(prefix.length);
      if (!onPanel(name) && !LEFT_OUT_PROCESS[bare])
        problems.push(`${name} is on no panel and not in LEFT_OUT_PROCESS`);
    }
    for (const bare of Object.keys(LEFT_OUT_PROCESS))
      if (!known.has(prefix + bare))
        problems.push(`LEFT_OUT_PROCESS names ${bare}, which prom-client does not register`);
      else if (onPanel(prefix + bare))
        problems.push(`LEFT_OUT_PROCESS names ${prefix}${bare}, which is on a panel`);
  }
  return problems;
}

function checkLayout(d: Dashboard): string[] {
  const problems: string[] = [];
  const ids = new Set<number>();
  const titles = new Set<string>();
  const cells = new Map<string, string>();
  for (const p of allPanels(d)) {
    if (!Number.isInteger(p.id) || ids.has(p.id)) problems.push(`${p.title}: id ${p.id} is not unique`);
    ids.add(p.id);
    const { x, y, w, h } = p.gridPos;
    if (x < 0 || w < 1 || x + w > 24) problems.push(`${p.title}: off the 24-column grid`);
    for (let i = x; i < x + w; i++)
      for (let j = y; j < y + h; j++) {
        const other = cells.get(`${i},${j}`);
        if (other) problems.push(`${p.title} overlaps ${other}`);
        cells.set(`${i},${j}`, p.title);
      }
    if (p.type === 'row') continue;
    // Titles name the panels in this test's messages, and in people's.
    if (titles.has(p.title)) problems.push(`${p.title}: two panels of that title`);
    titles.add(p.title);
    if ((p.description ?? '').length < 40) problems.push(`${p.title}: no description saying what it means`);
    if (!p.fieldConfig?.defaults?.unit) problems.push(`${p.title}: no unit`);
    if ((p.targets ?? []).length === 0) problems.push(`${p.title}: no query`);
  }
  return [...new Set(problems)];
}

interface Rule {
  alert: string;
  expr: string;
}
const alerts = new Map(
  (parse(readFileSync('deploy/prometheus/alerts.yml', 'utf8')) as { groups: { rules: Rule[] }[] }).groups
    .flatMap((g) => g.rules)
    .map((r) => [r.alert, r.expr]),
);

/** A panel that names alerts draws a threshold one of them pages on (increase > 0: one event). */
function checkThresholds(d: Dashboard): string[] {
  const problems: string[] = [];
  for (const p of allPanels(d)) {
    const named = [...new Set(p.description?.match(/\bTessera[A-Z][A-Za-z]+\b/g) ?? [])];
    for (const name of named)
      if (!alerts.has(name)) problems.push(`${p.title}: names ${name}, which is no alert`);
    const steps = (p.fieldConfig?.defaults?.thresholds?.steps ?? []).flatMap((s) =>
      s.value === null ? [] : [s.value],
    );
    if (named.length === 0 || steps.length === 0) continue;
    const limits = named.flatMap((name) =>
      [...(alerts.get(name) ?? '').matchAll(/>\s*([0-9.e+]+)/g)].map((m) => Number(m[1])),
    );
    for (const step of steps)
      if (!limits.some((limit) => limit === step || (limit === 0 && step === 1)))
        problems.push(
          `${p.title}: threshold ${step} is none of ${named.join(', ')}'s (${limits.join(', ')})`,
        );
  }
  return problems;
}

describe('deploy/grafana/tessera.json', () => {
  it('is a dashboard of a current Grafana that reads a chosen Prometheus', () => {
    // 42 is the last classic (v1) schema; Grafana 11 wrote 39.
    assert.ok(
      dashboard.schemaVersion >= 39 && dashboard.schemaVersion <= 42,
      `schemaVersion ${dashboard.schemaVersion}`,
    );
    assert.equal(dashboard.uid, 'tessera');
    // An id belongs to one Grafana's database: importing one elsewhere overwrites another dashboard.
    assert.ok(dashboard.id === undefined || dashboard.id === null);
    assert.ok(allPanels(dashboard).filter((p) => p.type === 'row').length >= 4, 'grouped in rows');
  });

  it('gives each panel a unique id, a place on the grid, a unit and a description', () => {
    assert.deepEqual(checkLayout(dashboard), []);
  });

  it('names only declared series, with the suffixes their types have, counters only through rate or increase', () => {
    assert.ok(queries(dashboard).length >= 40, `queries found: ${queries(dashboard).length}`);
    assert.deepEqual(checkSeries(dashboard), []);
  });

  it('selects, groups by and shows only labels the metrics have', () => {
    assert.deepEqual(checkLabels(dashboard), []);
  });

  it('uses only template variables it defines, each as its kind allows', () => {
    assert.deepEqual(checkVariables(dashboard), []);
  });

  it('reads the declarations as the services register them', () => {
    // The source parsing above against the registries the services build (process metrics off).
    const registered = new Map<string, { kind: string; labels: string[] }>();
    for (const { registry } of [createIngestorMetrics(), createServerMetrics(), createFlusherMetrics()])
      for (const metric of registry.getMetricsAsArray()) {
        const labels = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
        registered.set(metric.name, { kind: metric.constructor.name, labels: [...labels].sort() });
      }
    const parsed = new Map(
      [...declared].map(([name, m]) => [name, { kind: m.kind as string, labels: [...m.labels].sort() }]),
    );
    assert.deepEqual(parsed, registered);
  });

  it('shows every metric the services declare, or says why not', () => {
    assert.ok(declared.size >= 20 && prefixes.length === 3, `${declared.size} metrics, prefixes ${prefixes}`);
    assert.deepEqual(checkCoverage(dashboard), []);
  });

  it('draws the thresholds of the alerts its panels name', () => {
    assert.deepEqual(checkThresholds(dashboard), []);
  });

  it('catches a panel naming an undeclared metric or label, or rating a gauge', () => {
    const renamed = withQuery(
      (e) => e.replace('tessera_ingestor_events_total', 'tessera_ingestor_event_total'),
      'Events per second by outcome',
    );
    assert.ok(
      checkSeries(renamed).some((p) => /tessera_ingestor_event_total is declared by no service/.test(p)),
    );
    const label = withQuery(
      (e) => e.replace('sum by (view, outcome)', 'sum by (view, result)'),
      'Events per second by outcome',
    );
    assert.ok(checkLabels(label).some((p) => /by \(result\) over tessera_ingestor_events_total/.test(p)));
    const selected = withQuery(
      (e) => e.replace('{view=~"$view"}', '{feature_view=~"$view"}'),
      'Events per second by outcome',
    );
    assert.ok(checkLabels(selected).some((p) => /has no label feature_view/.test(p)));
    const gauge = withQuery(
      (e) =>
        e
          .replace('tessera_ingestor_consumer_lag_messages{', 'rate(tessera_ingestor_consumer_lag_messages{')
          .replace('})', '}[5m]))'),
      'Consumer lag per topic',
    );
    assert.ok(
      checkSeries(gauge).some((p) => /rate\(\) of the Gauge tessera_ingestor_consumer_lag_messages/.test(p)),
    );
    const variable = withQuery((e) => e.replace('$view', '$views'), 'Events per second by outcome');
    assert.ok(checkVariables(variable).some((p) => /\$views is no template variable/.test(p)));
  });

  it('catches a declared metric that no panel shows and no list leaves out', () => {
    const copy = structuredClone(dashboard);
    for (const p of allPanels(copy))
      p.targets = p.targets?.filter((t) => !t.expr.includes('tessera_server_auth_failures_total'));
    assert.ok(
      checkCoverage(copy).includes('tessera_server_auth_failures_total is on no panel and not in LEFT_OUT'),
    );
  });
});
