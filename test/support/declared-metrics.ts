// The metrics the services declare (from their registries), and the small PromQL reading the
// deploy tests share (deploy-alerts, deploy-dashboard): what a series name resolves to, a
// selector's matchers, the text an aggregation applies to. Regex-level on purpose: the
// expressions are ours and simple.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { createFlusherMetrics } from '../../services/flusher/metrics.ts';
import { createIngestorMetrics } from '../../services/ingestor/metrics.ts';
import { createServerMetrics } from '../../services/server/metrics.ts';

export type Kind = 'Counter' | 'Gauge' | 'Histogram' | 'Summary';
export interface Metric {
  kind: Kind;
  labels: Set<string>;
}

function metricsFiles(): { service: string; text: string }[] {
  return readdirSync('services')
    .map((service) => ({ service, file: join('services', service, 'metrics.ts') }))
    .filter(({ file }) => existsSync(file))
    .map(({ service, file }) => ({ service, text: readFileSync(file, 'utf8') }));
}

/**
 * The metrics the services register (services/<name>/metrics.ts), read from their own registries:
 * a metric declared through a shared helper (tlsReloadMetrics) counts like any other.
 */
export function declaredMetrics(): Map<string, Metric> {
  const metrics = new Map<string, Metric>();
  for (const { registry } of [createIngestorMetrics(), createServerMetrics(), createFlusherMetrics()])
    for (const [name, metric] of registryMetrics(registry)) metrics.set(name, metric);
  return metrics;
}

/** The prefix each service gives Node's process metrics (`collectDefaultMetrics({ ..., prefix })`). */
export function processMetricPrefixes(): string[] {
  return metricsFiles().flatMap(({ text }) =>
    [...text.matchAll(/collectDefaultMetrics\(\{[^}]*prefix: '([a-z_]+)'/g)].map((m) => m[1]!),
  );
}

/**
 * Node's process metrics as this prom-client registers them under `prefix` (names, types and
 * labels from a registry, not a list: a prom-client upgrade that renames one shows up here).
 * Some are gauges named `_total` (nodejs_active_handles_total), so the kind is not the suffix's.
 */
export function processMetrics(prefix: string): Map<string, Metric> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  const metrics = registryMetrics(registry);
  registry.clear();
  return metrics;
}

/** Every metric of a registry: its kind (by class, not by name) and label names. */
function registryMetrics(registry: Registry): Map<string, Metric> {
  const metrics = new Map<string, Metric>();
  for (const metric of registry.getMetricsAsArray()) {
    const kind: Kind =
      metric instanceof Counter
        ? 'Counter'
        : metric instanceof Gauge
          ? 'Gauge'
          : metric instanceof Histogram
            ? 'Histogram'
            : metric instanceof Summary
              ? 'Summary'
              : (() => {
                  throw new Error(`${metric.name}: unknown metric type`);
                })();
    // labelNames is set on every prom-client metric, but not on its public type.
    const labels = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
    metrics.set(metric.name, { kind, labels: new Set(labels) });
  }
  return metrics;
}

/** The declared metric a series name belongs to, with the suffix a histogram adds (if any). */
export function resolveSeries(
  metrics: Map<string, Metric>,
  series: string,
): { name: string; metric: Metric; suffix: string } | undefined {
  const direct = metrics.get(series);
  if (direct) return { name: series, metric: direct, suffix: '' };
  const m = series.match(/^(.*)_(bucket|count|sum)$/);
  const base = m ? metrics.get(m[1]!) : undefined;
  return base ? { name: m![1]!, metric: base, suffix: m![2]! } : undefined;
}

/** The text inside the parenthesis that opens at `open`. */
export function group(text: string, open: number): string {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return text.slice(open + 1, i);
  }
  return text.slice(open + 1);
}

/** A selector's label matchers: [label, operator, value]. */
export function matchers(selector: string): [string, string, string][] {
  return [...selector.matchAll(/([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map((m) => [m[1]!, m[2]!, m[3]!]);
}

export function matches([, op, value]: [string, string, string], actual: string): boolean {
  const re = new RegExp(`^(?:${value})$`);
  return op === '='
    ? actual === value
    : op === '!='
      ? actual !== value
      : op === '=~'
        ? re.test(actual)
        : !re.test(actual);
}
