// Keeps deploy/prometheus/alerts.yml true to the metrics the services declare: each metric is used
// as its type allows (rate/increase on counters and histogram series, never on gauges), every label
// an alert selects, groups by or names in its text is one the metric has, and the serving error
// ratio counts the API routes only. (promtool checks the syntax and runs alerts-test.yml; CI has
// no promtool, so these are the checks that run there.)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { declaredMetrics, group, matchers, matches, resolveSeries } from '../support/declared-metrics.ts';

interface Rule {
  alert: string;
  expr: string;
  annotations?: Record<string, string>;
}
const rules = (
  parse(readFileSync('deploy/prometheus/alerts.yml', 'utf8')) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);
const metrics = declaredMetrics();

/** The declared metric a series name belongs to, with the suffix a histogram adds (if any). */
const resolve = (series: string) => resolveSeries(metrics, series);

describe('deploy/prometheus/alerts.yml against the declared metrics', () => {
  it('reads each metric as its type allows', () => {
    assert.ok(metrics.size >= 20, `declared metrics found: ${metrics.size}`);
    for (const [name, metric] of metrics)
      assert.equal(name.endsWith('_total'), metric.kind === 'Counter', `${name} is a ${metric.kind}`);
    for (const rule of rules)
      for (const m of rule.expr.matchAll(/\b(tessera_[a-z0-9_]+)/g)) {
        const found = resolve(m[1]!);
        assert.ok(found, `${rule.alert}: ${m[1]} is declared by no service`);
        const { metric, suffix } = found;
        if (metric.kind === 'Histogram')
          assert.ok(suffix !== '', `${rule.alert}: ${m[1]} needs _bucket/_count/_sum`);
        else assert.equal(suffix, '', `${rule.alert}: ${m[1]}: a ${metric.kind} has no ${suffix} series`);
        // The function applied to this series: the nearest name before it and its "(".
        const before = rule.expr.slice(0, m.index);
        const fn = before.match(/([a-z_]+)\($/)?.[1];
        const counterLike = metric.kind === 'Counter' || suffix !== '';
        if (fn === 'rate' || fn === 'increase' || fn === 'irate')
          assert.ok(counterLike, `${rule.alert}: ${fn}() of the ${metric.kind} ${m[1]}`);
        if (fn === 'deriv' || fn === 'delta')
          assert.equal(metric.kind, 'Gauge', `${rule.alert}: ${fn}() of the ${metric.kind} ${m[1]}`);
        if (/histogram_quantile\([^,]*,\s*sum by \(([^)]*)\)\s*\(rate\($/.test(before))
          assert.equal(suffix, 'bucket');
      }
  });

  it('selects, groups by and names only labels the metrics have', () => {
    for (const rule of rules) {
      const expr = rule.expr;
      for (const m of expr.matchAll(/\b(tessera_[a-z0-9_]+)\{([^}]*)\}/g)) {
        const { metric, suffix } = resolve(m[1]!)!;
        for (const [label] of matchers(m[2]!))
          assert.ok(
            metric.labels.has(label) || (suffix === 'bucket' && label === 'le'),
            `${rule.alert}: ${m[1]} has no label ${label}`,
          );
      }
      // `by (...)` and `on (...)`: every tessera_ metric under it carries those labels.
      const kept = new Set<string>();
      for (const m of expr.matchAll(/\b(by|on)\s*\(([^)]*)\)\s*/g)) {
        const labels = m[2]!
          .split(',')
          .map((l) => l.trim())
          .filter(Boolean);
        const scope = m[1] === 'by' ? group(expr, m.index! + m[0].length) : expr;
        for (const series of scope.match(/\btessera_[a-z0-9_]+/g) ?? []) {
          const { metric, suffix } = resolve(series)!;
          for (const label of labels)
            assert.ok(
              metric.labels.has(label) || (suffix === 'bucket' && label === 'le'),
              `${rule.alert}: ${m[1]} (${label}) over ${series}, which has no such label`,
            );
        }
        if (m[1] === 'by') for (const l of labels) kept.add(l);
      }
      // {{ $labels.x }} in the text: x must survive the expression (kept by its aggregation).
      const text = Object.values(rule.annotations ?? {}).join(' ');
      for (const [, label] of text.matchAll(/\$labels\.([a-z_]+)/g)) {
        const aggregated = /\b(sum|max|min|avg|count)\b/.test(expr);
        const series = expr.match(/\btessera_[a-z0-9_]+/)?.[0];
        const ok = aggregated
          ? kept.has(label!)
          : series !== undefined && resolve(series)!.metric.labels.has(label!);
        assert.ok(ok, `${rule.alert}: its text names $labels.${label}, which the expression drops`);
      }
    }
  });

  it('counts only the API routes in the serving error ratio, not probes and scrapes', () => {
    const rule = rules.find((r) => r.alert === 'TesseraServingErrors');
    assert.ok(rule, 'TesseraServingErrors exists');
    const selectors = [...rule.expr.matchAll(/tessera_server_request_duration_seconds_count(\{[^}]*\})?/g)];
    assert.ok(selectors.length >= 2, 'numerator and denominator');
    for (const [selector, labels] of selectors) {
      const route = matchers(labels ?? '').filter(([label]) => label === 'route');
      assert.ok(route.length > 0, `${selector} selects no route: /ready and /metrics count as requests`);
      for (const path of ['/health', '/ready', '/metrics', 'unmatched'])
        assert.ok(!route.every((m) => matches(m, path)), `${selector} counts ${path}`);
      for (const path of ['/get-online-features', '/push'])
        assert.ok(
          route.every((m) => matches(m, path)),
          `${selector} leaves out ${path}`,
        );
    }
  });

  it('has promtool tests that name only alerts of alerts.yml', () => {
    const tests = parse(readFileSync('deploy/prometheus/alerts-test.yml', 'utf8')) as {
      rule_files: string[];
      tests: { alert_rule_test?: { alertname: string }[] }[];
    };
    assert.deepEqual(tests.rule_files, ['alerts.yml']);
    const names = new Set(rules.map((r) => r.alert));
    for (const t of tests.tests)
      for (const a of t.alert_rule_test ?? [])
        assert.ok(names.has(a.alertname), `${a.alertname} is no alert`);
  });
});
