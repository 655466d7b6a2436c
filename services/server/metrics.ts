// Prometheus metrics of the online server (tessera_server_<thing>_<unit>), on their own registry so
// tests can run several servers in one process.
import {
  constants,
  monitorEventLoopDelay,
  type PerformanceEntry,
  PerformanceObserver,
} from 'node:perf_hooks';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { tlsReloadMetrics } from '../../shared/config/cert-reload.ts';

export function createServerMetrics(options: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'tessera_server_' });
  return {
    registry,
    ...tlsReloadMetrics('tessera_server_', registry),
    requestSeconds: new Histogram({
      name: 'tessera_server_request_duration_seconds',
      help: 'Time from request received to response sent, by route and HTTP status.',
      labelNames: ['route', 'status'] as const,
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1],
      registers: [registry],
    }),
    entitiesPerRequest: new Histogram({
      name: 'tessera_server_entities_per_request',
      help: 'Entity rows asked for by one /get-online-features request.',
      buckets: [1, 2, 5, 10, 50, 100, 500, 1000],
      registers: [registry],
    }),
    featureAgeSeconds: new Histogram({
      name: 'tessera_server_feature_age_seconds',
      help: "Served freshness: read time minus the entity's newest event time, per view, for found entities.",
      labelNames: ['view'] as const,
      buckets: [0.05, 0.25, 1, 5, 30, 60, 300, 3600, 86_400, 604_800],
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'tessera_server_redis_errors_total',
      help: "Lookups that failed on Redis: it did not answer (answered 503), or it refused the read, e.g. WRONGTYPE for another application's key under the prefix (answered 500).",
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'tessera_server_auth_failures_total',
      help: 'Requests refused with 401 (missing or wrong bearer token).',
      registers: [registry],
    }),
    clampedReads: new Counter({
      name: 'tessera_server_clamped_reads_total',
      help: "Reads at 'now' moved up to the oldest time the state answers exactly (event times ahead of this server's clock).",
      registers: [registry],
    }),
    decodedReads: new Counter({
      name: 'tessera_server_decoded_reads_total',
      help: 'Found entities read by decoding their state (the view has a feature the byte reader does not cover, or the bytes hold something it leaves to the decoder) instead of straight from its bytes and delta records.',
      registers: [registry],
    }),
    pushedRows: new Counter({
      name: 'tessera_server_pushed_rows_total',
      help: 'Rows accepted by /push and produced to their source topic.',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
  };
}

export type ServerMetrics = ReturnType<typeof createServerMetrics>;

/** Quantiles of one probe series, milliseconds. */
export interface ProbeQuantiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** Garbage collections of one kind since the last reset: how many, their summed and longest pause. */
export interface ProbeGc {
  count: number;
  totalMs: number;
  maxMs: number;
}

export interface ProbeSnapshot {
  /** /get-online-features as the server sees it: the 'request' event to the response's 'finish'. */
  request: ProbeQuantiles;
  /** The Redis read of a lookup, from sending the command to its promise continuing. */
  redis: ProbeQuantiles;
  /** Lateness of a 10 ms timer past its due time: how long a ready socket could have waited for the event loop. */
  loopDelay: { p50: number; p99: number; max: number };
  gc: { minor: ProbeGc; major: ProbeGc; other: ProbeGc };
  /** CPU the server used since the last reset (user + system, ms). */
  cpuMs: number;
  seconds: number;
}

/** Raw samples kept before a probe holds a uniform random subset instead (8 MiB). */
const MAX_SAMPLES = 1 << 20;

/**
 * Float samples between resets: all of them up to MAX_SAMPLES, then a uniform random subset of that
 * size (reservoir sampling), so a probe left on does not grow without bound. `max` stays exact.
 */
class Samples {
  private data = new Float64Array(1 << 16);
  private kept = 0;
  private seen = 0;
  private max = 0;

  add(x: number): void {
    this.seen++;
    if (x > this.max) this.max = x;
    if (this.kept < MAX_SAMPLES) {
      if (this.kept === this.data.length) {
        const bigger = new Float64Array(this.data.length * 2);
        bigger.set(this.data);
        this.data = bigger;
      }
      this.data[this.kept++] = x;
      return;
    }
    const slot = Math.floor(Math.random() * this.seen);
    if (slot < MAX_SAMPLES) this.data[slot] = x;
  }

  quantiles(): ProbeQuantiles {
    const n = this.kept;
    const sorted = this.data.slice(0, n).sort();
    const at = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(q * n))]!);
    return { count: this.seen, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: this.max };
  }

  reset(): void {
    this.kept = 0;
    this.seen = 0;
    this.max = 0;
  }
}

/**
 * Opt-in diagnostics for latency work (TESSERA_SERVER_LATENCY_PROBE=true, GET /debug/latency): raw
 * per-request times, Redis reads, event-loop lateness and GC pauses, so a benchmark can tell the
 * server's share of a client-observed tail from the load generator's. Raw samples because the
 * request histogram's buckets (0.5, 1, 2, 5 ms) cannot resolve a 2 ms p99 goal.
 */
export function createLatencyProbe() {
  const request = new Samples();
  const redis = new Samples();
  // The histogram records whole intervals between the timer's wake-ups: minus the period, lateness.
  const period = 10;
  const late = (ns: number) => Math.max(0, ns / 1e6 - period);
  const loop = monitorEventLoopDelay({ resolution: period });
  loop.enable();
  const emptyGc = (): ProbeGc => ({ count: 0, totalMs: 0, maxMs: 0 });
  let gc = { minor: emptyGc(), major: emptyGc(), other: emptyGc() };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // Node 16+ puts the GC kind in entry.detail; typed as the base PerformanceEntry here.
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      const into =
        kind === constants.NODE_PERFORMANCE_GC_MINOR
          ? gc.minor
          : kind === constants.NODE_PERFORMANCE_GC_MAJOR
            ? gc.major
            : gc.other;
      into.count++;
      into.totalMs += entry.duration;
      into.maxMs = Math.max(into.maxMs, entry.duration);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  let since = performance.now();
  let cpu = process.cpuUsage();
  return {
    request: (ms: number) => request.add(ms),
    redis: (ms: number) => redis.add(ms),
    snapshot(reset: boolean): ProbeSnapshot {
      const used = process.cpuUsage(cpu);
      const out: ProbeSnapshot = {
        request: request.quantiles(),
        redis: redis.quantiles(),
        loopDelay: { p50: late(loop.percentile(50)), p99: late(loop.percentile(99)), max: late(loop.max) },
        gc,
        cpuMs: (used.user + used.system) / 1000,
        seconds: (performance.now() - since) / 1000,
      };
      if (reset) {
        request.reset();
        redis.reset();
        loop.reset();
        gc = { minor: emptyGc(), major: emptyGc(), other: emptyGc() };
        since = performance.now();
        cpu = process.cpuUsage();
      }
      return out;
    },
    stop(): void {
      loop.disable();
      observer.disconnect();
    },
  };
}

export type LatencyProbe = ReturnType<typeof createLatencyProbe>;
