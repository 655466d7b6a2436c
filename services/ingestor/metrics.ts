// Prometheus metrics of the ingestor (tessera_ingestor_<thing>_<unit>), on their own registry so
// tests can run several ingestors in one process.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { tlsReloadMetrics } from '../../shared/config/cert-reload.ts';

export function createIngestorMetrics(options: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  // The process's own (RSS, heap spaces, GC, event-loop lag), prefixed like the rest; off in tests
  // that run several in one process.
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'tessera_ingestor_' });
  const metrics = {
    registry,
    ...tlsReloadMetrics('tessera_ingestor_', registry),
    events: new Counter({
      name: 'tessera_ingestor_events_total',
      help: 'Source records by outcome: applied, duplicate (redelivery, no-op), dlq (invalid or late).',
      labelNames: ['view', 'outcome'] as const,
      registers: [registry],
    }),
    dlq: new Counter({
      name: 'tessera_ingestor_dlq_events_total',
      help: 'Records sent to the dead-letter topic, by reason.',
      labelNames: ['topic', 'reason'] as const,
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: 'tessera_ingestor_batch_duration_seconds',
      help: 'Time to process one Kafka batch: decode, Redis read/apply/write, produce, commit.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    eventToRedisSeconds: new Histogram({
      name: 'tessera_ingestor_event_to_redis_seconds',
      help: 'From the Kafka record timestamp (produce time) to its state being acknowledged by Redis.',
      // Fine up to half a second, where the benchmark's tails fall: a quantile is interpolated
      // within its bucket, so a wide one (0.1-0.25 s) said little about where the tail was.
      buckets: [
        0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.125,
        0.15, 0.175, 0.2, 0.225, 0.25, 0.3, 0.4, 0.5, 1, 2.5, 5, 10, 30, 60,
      ],
      registers: [registry],
    }),
    lag: new Gauge({
      name: 'tessera_ingestor_consumer_lag_messages',
      help: 'High watermark minus the next offset to process, per partition this process owns: as each fetch finds it, then after the batch (cleared at every rebalance).',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
    freshness: new Gauge({
      name: 'tessera_ingestor_newest_event_timestamp_seconds',
      help: 'Event time of the newest event applied per view (alert when now minus this grows).',
      labelNames: ['view'] as const,
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'tessera_ingestor_redis_errors_total',
      help: 'Batches that failed on Redis, or on anything else than Kafka (the batch is retried, nothing is committed).',
      registers: [registry],
    }),
    registryErrors: new Counter({
      name: 'tessera_ingestor_schema_registry_errors_total',
      help: 'Decode attempts that failed because the schema registry did not answer, or a schema file could not be read (the partitions pause and are fetched again, nothing is committed).',
      registers: [registry],
    }),
    kafkaErrors: new Counter({
      name: 'tessera_ingestor_kafka_errors_total',
      help: 'Batches that failed because Kafka did not take their training rows or dead letters (the batch comes back, nothing is committed).',
      registers: [registry],
    }),
    consumerCrashes: new Counter({
      name: 'tessera_ingestor_consumer_crashes_total',
      help: "Times the Kafka consumer crashed, by cause: kafka (brokers unreachable past its retries) or batch (a batch failed past kafkajs' retries for another reason: an undecodable state, a fault in a decoder; Redis outages are retried in place, schema registry outages pause the partitions); kafkajs restarts it, /ready says not ready until it has rejoined its group.",
      labelNames: ['cause'] as const,
      registers: [registry],
    }),
    oversized: new Counter({
      name: 'tessera_ingestor_oversized_records_total',
      help: "Training rows and feature vectors left out for being over their topic's max.message.bytes (a row is replaced by a no-row mark), per topic.",
      labelNames: ['topic'] as const,
      registers: [registry],
    }),
    pushErrors: new Counter({
      name: 'tessera_ingestor_push_errors_total',
      help: "Failed pushes of a source topic's feature updates, by stage: kafka (producing to the updates topic failed past the producer's retries) and publish (Redis PUBLISH failed), both retried in place with nothing committed meanwhile; encode (a vector its Avro schema could not hold, left out).",
      labelNames: ['topic', 'stage'] as const,
      registers: [registry],
    }),
    conflicts: new Counter({
      name: 'tessera_ingestor_state_conflicts_total',
      help: 'Compare-and-set conflicts on entity state (another writer won; the ingestor re-applies).',
      registers: [registry],
    }),
    capped: new Counter({
      name: 'tessera_ingestor_entity_cap_dropped_events_total',
      help: 'Raw events dropped from a state because an entity exceeded max_events_per_entity (tiled features keep those older than the read floor).',
      labelNames: ['view'] as const,
      registers: [registry],
    }),
    stageSeconds: new Counter({
      name: 'tessera_ingestor_stage_seconds_total',
      help: 'Time spent per batch stage (decode, load, apply, rows, save, dlq, updates, commit), summed over batches; concurrent batches overlap.',
      labelNames: ['stage'] as const,
      registers: [registry],
    }),
    stateLoads: new Counter({
      name: 'tessera_ingestor_state_loads_total',
      help: 'Entity states a batch needed, by where they came from: cache (version checked, not fetched) or redis (fetched and decoded).',
      labelNames: ['view', 'source'] as const,
      registers: [registry],
    }),
    stateWrites: new Counter({
      name: 'tessera_ingestor_state_writes_total',
      help: 'Entity state writes by kind: delta (the applied events appended as a delta record) or full (the whole state rewritten, folding the records in).',
      labelNames: ['view', 'kind'] as const,
      registers: [registry],
    }),
    stateCacheEvents: new Gauge({
      name: 'tessera_ingestor_state_cache_events',
      help: 'Weight held by the decoded-state cache, in units of ~260 bytes: stored events and tiles plus a share per state and per kept reader (bounded by TESSERA_STATE_CACHE_EVENTS).',
      labelNames: ['view'] as const,
      registers: [registry],
    }),
  };
  return metrics;
}

export type IngestorMetrics = ReturnType<typeof createIngestorMetrics>;
