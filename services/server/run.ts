// The online server process (started by main.ts, once kafkajs' fast paths are in place): config,
// auth, Redis, the /push producer, the HTTP app and the graceful stop.
import { dirname } from 'node:path';
import { Kafka, type Producer } from 'kafkajs';
import { pino } from 'pino';
import { startCertificateReload } from '../../shared/config/cert-reload.ts';
import { describeRedisError, kafkaOptions } from '../../shared/config/clients.ts';
import { loadConfig, printedUsage, renderConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { stopOnSignals } from '../../shared/graceful-stop.ts';
import { keyHashPartitioner } from '../../shared/kafka-partitioner.ts';
import { messageLimits } from '../../shared/kafka-topics.ts';
import { logFastPaths } from '../../shared/kafkajs-fast-paths.ts';
import { connectRedis } from '../../shared/state-store/redis-client.ts';
import { buildApp } from './app.ts';
import { createAuthenticator, loadTokens } from './auth.ts';
import { createLatencyProbe, createServerMetrics } from './metrics.ts';
import { Pusher } from './push.ts';
import { loadServerTls, type ServerTls } from './tls.ts';

async function main(): Promise<void> {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
  if (
    printedUsage(
      process.argv.slice(2),
      'npx tsx services/server/main.ts',
      "Runs the online feature server: POST /get-online-features (Feast's shape), POST /push, /health, /ready, /metrics, /openapi.json (docs/server.md). Needs a bearer token (TESSERA_AUTH_TOKEN) unless TESSERA_DEV_NO_AUTH=true.",
    )
  )
    return;
  const config = loadConfig({ argv: process.argv.slice(2) });
  const logger = pino({ level: config.logLevel, base: { service: 'server', pid: process.pid } });
  logger.info(`configuration:\n${renderConfig(config)}`);
  logFastPaths(logger);
  const authenticate = createAuthenticator(config, loadTokens(config));
  if (!authenticate) logger.warn('AUTH IS OFF (TESSERA_DEV_NO_AUTH=true): local development only');
  // Read before anything connects: a certificate or key that cannot be used stops the server here.
  // A renewed pair goes to the listening server (below) for the connections it accepts next.
  let https: { setSecureContext(options: ServerTls): void } | undefined;
  const tls = loadServerTls(config, (renewed) => https?.setSecureContext(renewed));
  const definitions = loadDefinitionsFile(config.definitions);
  logger.info({ file: definitions.file, hash: definitions.hash }, 'definitions loaded');

  // Fail fast instead of queueing while Redis is away: a lookup answers 503 at once, and the
  // client retries; a read that hangs past the timeout fails the same way.
  const redis = connectRedis(config, {
    enableOfflineQueue: false,
    commandTimeout: config.redisTimeoutMs,
    maxRetriesPerRequest: 0,
    // No auto-pipelining: StateReads sends the single lookups of one event-loop turn as one
    // command itself (a socket write per lookup was 15 % of the CPU), without the Pipeline object
    // auto-pipelining makes per flush, whose garbage doubled the scavenge pauses. (A Cluster
    // client auto-pipelines anyway: there a batch's keys go to their nodes one command each.)
    enableAutoPipelining: false,
  });
  let redisDown = false;
  redis.on('error', (error) => {
    if (!redisDown)
      logger.warn(
        { err: describeRedisError(error, config) },
        'redis connection error; lookups answer 503 until it is back',
      );
    redisDown = true;
  });
  redis.on('ready', () => {
    if (redisDown) logger.info('redis connection back');
    redisDown = false;
  });

  // Listen once Redis answers (or after 10 s anyway: /ready then says why lookups fail). Not
  // once(redis, 'ready'): that rejects at the first connection error, which ended the process.
  await Promise.race([
    new Promise((resolve) => redis.once('ready', resolve)),
    new Promise((resolve) => setTimeout(resolve, 10_000).unref()),
  ]);

  let producer: Producer | undefined;
  let pusher: Pusher | undefined;
  if (config.serverPush) {
    const kafka = new Kafka(kafkaOptions(config, `tessera-server-${process.pid}`, logger));
    producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: keyHashPartitioner });
    pusher = new Pusher(producer, config, definitions, dirname(definitions.file), {
      // A source topic's max.message.bytes, asked once a minute per topic by a short-lived admin.
      topicLimit: async (topic) => {
        const admin = kafka.admin();
        await admin.connect();
        try {
          return (await messageLimits(admin, [topic])).get(topic);
        } finally {
          await admin.disconnect();
        }
      },
      warn: (message, error) => logger.warn({ err: String(error) }, message),
    });
    // Kafka is only needed by /push: lookups must not wait for it or fail without it. A push
    // connects again if this fails.
    pusher
      .connect()
      .catch((error: unknown) =>
        logger.warn({ err: String(error) }, 'kafka not reachable yet; each /push tries to connect again'),
      );
  }

  const metrics = createServerMetrics({ processMetrics: true });
  const app = buildApp({
    definitions,
    redis,
    redisKeyPrefix: config.redisKeyPrefix,
    authenticate,
    metrics,
    logger,
    maxEntities: config.serverMaxEntities,
    bodyLimitBytes: config.serverBodyLimitBytes,
    requestTimeoutMs: config.serverRequestTimeoutMs,
    pusher,
    // Diagnostics only (docs/server.md, server-bench --server-probe): a few µs per lookup.
    ...(config.serverLatencyProbe ? { probe: createLatencyProbe() } : {}),
    ...(tls ? { tls } : {}),
  });
  const address = await app.listen({ host: config.httpHost, port: config.httpPort });
  // fastify made an https.Server when given `https` options.
  if (tls) https = app.server as unknown as { setSecureContext(options: ServerTls): void };
  const stopReloads = startCertificateReload({
    logger,
    intervalMs: config.tlsReloadIntervalMs,
    metrics: { expiry: metrics.tlsCertificateExpiry, reloads: metrics.tlsReloads },
  });

  stopOnSignals(logger, {
    stopping: 'stopping: finishing requests in flight',
    graceMs: 10_000,
    late: 'graceful stop took over 10 s; exiting',
    stop: async () => {
      stopReloads();
      await app.close(); // stops accepting, waits for requests in flight
      await producer?.disconnect().catch(() => {});
      redis.disconnect();
    },
  });
  // Printed for supervisors and tests that wait for it.
  console.log(`server listening on ${address}`);
}

main().catch((error: unknown) => {
  console.error(isTesseraError(error) ? `${error.code}: ${error.message}` : error);
  process.exit(1);
});
