// The ingestor process (started by main.ts, once kafkajs' fast paths are in place): config, logger,
// Redis and Kafka clients, the consumer, the ops endpoints and the graceful stop.
import { Kafka } from 'kafkajs';
import { pino } from 'pino';
import { startCertificateReload } from '../../shared/config/cert-reload.ts';
import { describeRedisError, kafkaOptions } from '../../shared/config/clients.ts';
import { loadConfig, printedUsage, renderConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { stopOnSignals } from '../../shared/graceful-stop.ts';
import { logFastPaths } from '../../shared/kafkajs-fast-paths.ts';
import { startOpsServer } from '../../shared/ops-server.ts';
import { connectRedis, STATE_WRITER_OPTIONS } from '../../shared/state-store/redis-client.ts';
import { createIngestor } from './ingestor.ts';
import { createIngestorMetrics } from './metrics.ts';

async function main(): Promise<void> {
  // kafkajs warns about its v2 partitioner change on every producer; ours is keyed by entity.
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
  if (
    printedUsage(
      process.argv.slice(2),
      'npx tsx services/ingestor/main.ts',
      'Runs one ingestor: Kafka sources -> the engine -> Redis, dead letters, feature updates and training rows. Run several to share the partitions (docs/ingestor.md).',
    )
  )
    return;
  const config = loadConfig({ argv: process.argv.slice(2) });
  const logger = pino({ level: config.logLevel, base: { service: 'ingestor', pid: process.pid } });
  logger.info(`configuration:\n${renderConfig(config)}`);
  logFastPaths(logger);
  const definitions = loadDefinitionsFile(config.definitions);
  logger.info(
    { file: definitions.file, hash: definitions.hash, views: definitions.views.map((v) => v.name) },
    'definitions loaded',
  );

  const metrics = createIngestorMetrics({ processMetrics: true });
  const redis = connectRedis(config, STATE_WRITER_OPTIONS);
  redis.on('error', (error) =>
    logger.warn({ err: describeRedisError(error, config) }, 'redis connection error'),
  );
  const kafka = new Kafka(kafkaOptions(config, `tessera-ingestor-${process.pid}`, logger));
  let stopForFailure: ((reason: string) => void) | undefined;
  const ingestor = createIngestor({
    config,
    definitions,
    kafka,
    redis,
    logger,
    metrics,
    onFatal: (error) => {
      logger.error(
        { err: error.message },
        'the kafka consumer crashed and will not be restarted: stopping with exit code 1 so a supervisor restarts the ingestor (uncommitted records come back)',
      );
      stopForFailure?.('kafka consumer crashed for good');
    },
  });
  // Renewed Kafka and Redis client certificates for the next connections (docs/security.md).
  startCertificateReload({
    logger,
    intervalMs: config.tlsReloadIntervalMs,
    metrics: { expiry: metrics.tlsCertificateExpiry, reloads: metrics.tlsReloads },
  });
  const ops = await startOpsServer({
    host: config.httpHost,
    port: config.metricsPort,
    registry: metrics.registry,
    readiness: () => ingestor.readiness(),
  });
  logger.info({ port: ops.port }, 'health/ready/metrics listening');

  stopForFailure = stopOnSignals(logger, {
    stopping: 'stopping: finishing the current batch, committing, leaving the group',
    graceMs: 30_000,
    late: 'graceful stop took over 30 s; exiting',
    stop: async () => {
      await ingestor.stop();
      redis.disconnect();
      ops.server.close();
    },
  });
  await ingestor.start();
  // Printed for supervisors and tests that wait for it.
  console.log(`ingestor ready (metrics on ${config.httpHost}:${ops.port})`);
}

main().catch((error: unknown) => {
  console.error(isTesseraError(error) ? `${error.code}: ${error.message}` : error);
  process.exit(1);
});
