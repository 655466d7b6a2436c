// The flusher process (started by main.ts, once kafkajs' fast paths are in place): config, logger,
// store, Redis and Kafka clients, the flusher, the ops endpoints and the graceful stop.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Kafka } from 'kafkajs';
import { pino } from 'pino';
import { startCertificateReload } from '../../shared/config/cert-reload.ts';
import { describeRedisError, kafkaOptions } from '../../shared/config/clients.ts';
import { loadConfig, printedUsage, renderConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { stopOnSignals } from '../../shared/graceful-stop.ts';
import { logFastPaths } from '../../shared/kafkajs-fast-paths.ts';
import { openConfiguredStore } from '../../shared/offline/configured-store.ts';
// The ops endpoint is the same for every service; it lives with the ingestor that came first.
import { startOpsServer } from '../../shared/ops-server.ts';
import { connectRedis, STATE_WRITER_OPTIONS } from '../../shared/state-store/redis-client.ts';
import { createFlusher } from './flusher.ts';
import { createFlusherMetrics } from './metrics.ts';

/** Package version plus the git commit when run from a checkout (recorded in metadata.json). */
function codeVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 2000,
    })
      .toString()
      .trim();
    return `${pkg.version}+${sha}`;
  } catch {
    return pkg.version;
  }
}

async function main(): Promise<void> {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
  if (
    printedUsage(
      process.argv.slice(2),
      'npx tsx services/flusher/main.ts',
      'Runs the flusher: training rows and raw events to the offline store as parquet versions, latest/ and entity snapshots. One per store (docs/offline-store.md).',
    )
  )
    return;
  const config = loadConfig({ argv: process.argv.slice(2) });
  const logger = pino({ level: config.logLevel, base: { service: 'flusher', pid: process.pid } });
  logger.info(`configuration:\n${renderConfig(config)}`);
  logFastPaths(logger);
  const definitions = loadDefinitionsFile(config.definitions);
  const store = openConfiguredStore(config);
  const metrics = createFlusherMetrics({ processMetrics: true });
  const redis = connectRedis(config, STATE_WRITER_OPTIONS);
  redis.on('error', (error) =>
    logger.warn({ err: describeRedisError(error, config) }, 'redis connection error'),
  );
  const kafka = new Kafka(kafkaOptions(config, `tessera-flusher-${process.pid}`, logger));
  let stopForFailure: ((reason: string) => void) | undefined;
  const flusher = createFlusher({
    config,
    definitions,
    kafka,
    redis,
    store,
    logger,
    metrics,
    codeVersion: codeVersion(),
    onFatal: (error) => {
      logger.error(
        { err: error.message },
        'the kafka consumer crashed and will not be restarted: stopping with exit code 1 so a supervisor restarts the flusher (what is buffered is flushed first if it can be)',
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
    readiness: () => flusher.readiness(),
  });
  logger.info({ port: ops.port, store: store.location }, 'health/ready/metrics listening');

  stopForFailure = stopOnSignals(logger, {
    stopping: 'stopping: flushing what is buffered, committing, leaving the group',
    graceMs: 60_000,
    late: 'graceful stop took over 60 s; exiting (the next start redoes the flush)',
    stop: async () => {
      await flusher.stop();
      redis.disconnect();
      ops.server.close();
    },
  });
  await flusher.start();
  console.log(`flusher ready (metrics on ${config.httpHost}:${ops.port})`);
}

main().catch((error: unknown) => {
  console.error(isTesseraError(error) ? `${error.code}: ${error.message}` : error);
  process.exit(1);
});
