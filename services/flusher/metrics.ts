// Prometheus metrics of the flusher (tessera_flusher_<thing>_<unit>), on their own registry.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { tlsReloadMetrics } from '../../shared/config/cert-reload.ts';

export function createFlusherMetrics(options: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  // The process's own (RSS, heap spaces, GC, event-loop lag), prefixed like the rest; off in tests
  // that run several in one process.
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'tessera_flusher_' });
  return {
    registry,
    ...tlsReloadMetrics('tessera_flusher_', registry),
    lastSuccess: new Gauge({
      name: 'tessera_flusher_last_success_timestamp_seconds',
      help: 'Unix time of the last successful flush (alert when now minus this exceeds a few intervals).',
      registers: [registry],
    }),
    flushSeconds: new Histogram({
      name: 'tessera_flusher_flush_duration_seconds',
      help: 'Duration of one successful flush: parquet encoding, uploads, state, commit.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    rows: new Counter({
      name: 'tessera_flusher_rows_written_total',
      help: 'Training rows written to features.parquet, per view.',
      labelNames: ['view'] as const,
      registers: [registry],
    }),
    duplicates: new Counter({
      name: 'tessera_flusher_duplicate_rows_total',
      help: 'Rows dropped because a row of the same source offset was already written (at-least-once redelivery).',
      labelNames: ['view'] as const,
      registers: [registry],
    }),
    rawEvents: new Counter({
      name: 'tessera_flusher_raw_events_written_total',
      help: 'Source events written to the raw event log, per source.',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    invalid: new Counter({
      name: 'tessera_flusher_skipped_records_total',
      help: 'Records not written: undecodable source events (they are in the DLQ) or malformed rows, by topic:reason.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'tessera_flusher_flush_errors_total',
      help: 'Failed flush attempts (each is retried with backoff; nothing is committed before success).',
      registers: [registry],
    }),
    consumed: new Counter({
      name: 'tessera_flusher_consumed_records_total',
      help: 'Kafka records added to the buffer, per topic.',
      labelNames: ['topic'] as const,
      registers: [registry],
    }),
    buffered: new Gauge({
      name: 'tessera_flusher_buffered_records',
      help: 'Records held in memory waiting for the next flush (bounded by TESSERA_FLUSH_MAX_BUFFERED_ROWS plus one fetch).',
      registers: [registry],
    }),
    paused: new Gauge({
      name: 'tessera_flusher_consumer_paused',
      help: '1 while consumption is paused (buffer full, store unavailable, or redoing an interrupted flush).',
      registers: [registry],
    }),
    snapshotFailures: new Counter({
      name: 'tessera_flusher_snapshot_failures_total',
      help: 'Entity snapshots not written (Redis unreachable, a scan or upload failed), per view; the flush itself goes on and its version has no snapshot.',
      labelNames: ['view'] as const,
      registers: [registry],
    }),
    snapshotStatesLeftOut: new Counter({
      name: 'tessera_flusher_snapshot_states_left_out_total',
      help: 'States an entity snapshot left out because they do not decode under the running definitions (another layout, or corrupt: services/keys counts them), per view; a restore from that snapshot does not bring them back.',
      labelNames: ['view'] as const,
      registers: [registry],
    }),
    lastSnapshot: new Gauge({
      name: 'tessera_flusher_last_snapshot_timestamp_seconds',
      help: 'Unix time of the last entity snapshot written, per view (one is taken with each new version: a view without new rows takes none).',
      labelNames: ['view'] as const,
      registers: [registry],
    }),
    consumerCrashes: new Counter({
      name: 'tessera_flusher_consumer_crashes_total',
      help: 'Times the Kafka consumer crashed; kafkajs restarts it (nothing is consumed meanwhile) and /ready says not ready until it has rejoined its group.',
      registers: [registry],
    }),
    lag: new Gauge({
      name: 'tessera_flusher_consumer_lag_messages',
      help: 'High watermark minus the next offset to buffer, per partition, at the last batch.',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
  };
}

export type FlusherMetrics = ReturnType<typeof createFlusherMetrics>;
