// Prometheus metrics of the online server (tessera_server_<thing>_<unit>), on their own registry so
// tests can run several servers in one process.
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export function createServerMetrics(options: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'tessera_server_' });
  return {
    registry,
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
      help: 'Lookups that failed because Redis did not answer (answered 503).',
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
      help: 'Found entities read by decoding their state (it holds delta records, or the view has a feature the byte reader does not cover) instead of straight from its bytes.',
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
