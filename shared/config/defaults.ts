// Every configuration option of Tessera with its default, its environment variable and its flag.
// Defaults point at the local stack that scripts/stack starts (docs/local-stack.md).

/** Default values, one documented field per option. */
export const DEFAULTS = {
  /** Kafka bootstrap brokers, `host:port` list. Env TESSERA_KAFKA_BROKERS, flag --kafka-brokers. */
  kafkaBrokers: ['127.0.0.1:9092'] as readonly string[],
  /** Redis holding the online state, `redis://[user:pass@]host:port[/db]`. Env TESSERA_REDIS_URL. */
  redisUrl: 'redis://127.0.0.1:6379',
  /** S3 API endpoint of the offline store; empty-string-free URL. Env TESSERA_S3_ENDPOINT. */
  s3Endpoint: 'http://127.0.0.1:8333',
  /** S3 region (S3Proxy accepts any). Env TESSERA_S3_REGION. */
  s3Region: 'us-east-1',
  /** S3 access key id; the local stack's S3Proxy identity. Env TESSERA_S3_ACCESS_KEY_ID. */
  s3AccessKeyId: 'tessera-local',
  /** S3 secret key (secret: never printed); the local S3Proxy credential. Env TESSERA_S3_SECRET_ACCESS_KEY. */
  s3SecretAccessKey: 'tessera-local-secret',
  /** Bucket of the offline store. Env TESSERA_S3_BUCKET. */
  s3Bucket: 'tessera-offline',
  /** Path-style S3 URLs (`endpoint/bucket/key`): needed by S3Proxy and most local servers. Env TESSERA_S3_FORCE_PATH_STYLE. */
  s3ForcePathStyle: true,
  /** Feature definitions file, relative to the working directory. Env TESSERA_DEFINITIONS. */
  definitions: 'definitions/fraud.yaml',
  /** pino log level. Env TESSERA_LOG_LEVEL. */
  logLevel: 'info' as LogLevel,
  /** Port of services/server's HTTP API (0 = any free port). Env TESSERA_HTTP_PORT. */
  httpPort: 8080,
  /** Port of each service's /metrics endpoint (0 = any free port). Env TESSERA_METRICS_PORT. */
  metricsPort: 9400,
  /** Prefix put before every Kafka topic name, to share one cluster. Env TESSERA_TOPIC_PREFIX. */
  topicPrefix: '',
  /** Bearer token the online API requires; empty = no auth (local dev only). Secret. Env TESSERA_AUTH_TOKEN. */
  authToken: '',
  /** Kafka consumer group of the ingestors (all replicas share it). Env TESSERA_INGESTOR_GROUP. */
  ingestorGroup: 'tessera-ingestor',
  /** Prefix of every Redis key Tessera writes (`<prefix>:{<view>:<entity>}`). Env TESSERA_REDIS_KEY_PREFIX. */
  redisKeyPrefix: 'tessera',
  /**
   * Clock the ingestor judges lateness by: `wall` (an event older than now - allowed_lateness is
   * late; events more than 5 minutes in the future are refused) or `event` (only each entity's own
   * newest event time counts: for replaying history). Env TESSERA_INGEST_CLOCK.
   */
  ingestClock: 'wall' as 'wall' | 'event',
  /** Consumer session timeout: a dead ingestor's partitions move after this. Env TESSERA_KAFKA_SESSION_TIMEOUT_MS. */
  kafkaSessionTimeoutMs: 30_000,
  /** Consumer heartbeat interval; must be under a third of the session timeout. Env TESSERA_KAFKA_HEARTBEAT_MS. */
  kafkaHeartbeatMs: 3_000,
  /** Also PUBLISH fresh feature vectors on Redis channel `<prefix>:updates:<view>`. Env TESSERA_PUBLISH_UPDATES. */
  publishUpdates: false,
};

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type ConfigKey = keyof typeof DEFAULTS;

/** Environment variable of each option. The flag is derived: TESSERA_HTTP_PORT -> --http-port. */
export const ENV_NAMES: Readonly<Record<ConfigKey, string>> = {
  kafkaBrokers: 'TESSERA_KAFKA_BROKERS',
  redisUrl: 'TESSERA_REDIS_URL',
  s3Endpoint: 'TESSERA_S3_ENDPOINT',
  s3Region: 'TESSERA_S3_REGION',
  s3AccessKeyId: 'TESSERA_S3_ACCESS_KEY_ID',
  s3SecretAccessKey: 'TESSERA_S3_SECRET_ACCESS_KEY',
  s3Bucket: 'TESSERA_S3_BUCKET',
  s3ForcePathStyle: 'TESSERA_S3_FORCE_PATH_STYLE',
  definitions: 'TESSERA_DEFINITIONS',
  logLevel: 'TESSERA_LOG_LEVEL',
  httpPort: 'TESSERA_HTTP_PORT',
  metricsPort: 'TESSERA_METRICS_PORT',
  topicPrefix: 'TESSERA_TOPIC_PREFIX',
  authToken: 'TESSERA_AUTH_TOKEN',
  ingestorGroup: 'TESSERA_INGESTOR_GROUP',
  redisKeyPrefix: 'TESSERA_REDIS_KEY_PREFIX',
  ingestClock: 'TESSERA_INGEST_CLOCK',
  publishUpdates: 'TESSERA_PUBLISH_UPDATES',
  kafkaSessionTimeoutMs: 'TESSERA_KAFKA_SESSION_TIMEOUT_MS',
  kafkaHeartbeatMs: 'TESSERA_KAFKA_HEARTBEAT_MS',
};

/** Options whose values are never printed or put in error messages. */
export const SECRET_KEYS: ReadonlySet<ConfigKey> = new Set<ConfigKey>(['s3SecretAccessKey', 'authToken']);

export const CONFIG_KEYS = Object.keys(ENV_NAMES) as ConfigKey[];

export function flagName(key: ConfigKey): string {
  return (
    '--' +
    ENV_NAMES[key]
      .replace(/^TESSERA_/, '')
      .toLowerCase()
      .replaceAll('_', '-')
  );
}
