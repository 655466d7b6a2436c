// Every configuration option of Tessera with its default, its environment variable and its flag.
// Defaults point at the local stack that scripts/stack starts (docs/local-stack.md).

import type { IngestClock } from '../ingest-clock.ts';

/** Default values, one documented field per option. */
export const DEFAULTS = {
  /** Kafka bootstrap brokers, `host:port` list. Env TESSERA_KAFKA_BROKERS, flag --kafka-brokers. */
  kafkaBrokers: ['127.0.0.1:9092'] as readonly string[],
  /**
   * Connect to the brokers over TLS (a managed Kafka's SASL_SSL or SSL listener: Confluent Cloud,
   * MSK, Aiven). Server certificates are checked against the system CAs, or `kafkaTlsCaFile`.
   * docs/security.md. Env TESSERA_KAFKA_TLS.
   */
  kafkaTls: false,
  /** PEM file of the CA(s) the brokers' certificates are checked against, instead of the system CAs; empty: system CAs. Env TESSERA_KAFKA_TLS_CA_FILE. */
  kafkaTlsCaFile: '',
  /** PEM client certificate (mutual TLS, e.g. Aiven or MSK with TLS auth), with `kafkaTlsKeyFile`; empty: none. Env TESSERA_KAFKA_TLS_CERT_FILE. */
  kafkaTlsCertFile: '',
  /** PEM private key of `kafkaTlsCertFile` (unencrypted); empty: none. Env TESSERA_KAFKA_TLS_KEY_FILE. */
  kafkaTlsKeyFile: '',
  /**
   * SASL mechanism to authenticate with: `plain` (Confluent Cloud API keys; only over TLS),
   * `scram-sha-256` or `scram-sha-512` (MSK, Aiven, self-hosted), `oauthbearer` (an OAuth 2
   * token: the `kafkaSaslOauthbearer*` options); empty: no SASL. Env TESSERA_KAFKA_SASL_MECHANISM.
   */
  kafkaSaslMechanism: '' as '' | 'plain' | 'scram-sha-256' | 'scram-sha-512' | 'oauthbearer',
  /** SASL user name (Confluent Cloud: the API key). Env TESSERA_KAFKA_SASL_USERNAME. */
  kafkaSaslUsername: '',
  /** SASL password (secret: never printed); or `kafkaSaslPasswordFile`. Env TESSERA_KAFKA_SASL_PASSWORD. */
  kafkaSaslPassword: '',
  /**
   * File holding the SASL password (a mounted Secret; one trailing newline is ignored), read at
   * start; instead of `kafkaSaslPassword`. Env TESSERA_KAFKA_SASL_PASSWORD_FILE.
   */
  kafkaSaslPasswordFile: '',
  /**
   * OAUTHBEARER: the identity provider's OAuth 2 token endpoint, asked for a token with the client
   * credentials grant (client id and secret in HTTP basic auth, as Kafka's Java client does);
   * instead of `kafkaSaslOauthbearerTokenFile`. Env TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL.
   */
  kafkaSaslOauthbearerTokenEndpointUrl: '',
  /** OAUTHBEARER: the OAuth client id at the token endpoint. Env TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID. */
  kafkaSaslOauthbearerClientId: '',
  /** OAUTHBEARER: the OAuth client secret (secret: never printed); or `kafkaSaslOauthbearerClientSecretFile`. Env TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET. */
  kafkaSaslOauthbearerClientSecret: '',
  /**
   * OAUTHBEARER: file holding the client secret (a mounted Secret; one trailing newline is
   * ignored), read at start; instead of `kafkaSaslOauthbearerClientSecret`.
   * Env TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE.
   */
  kafkaSaslOauthbearerClientSecretFile: '',
  /** OAUTHBEARER: `scope` of the token request (space-separated); empty: none sent. Env TESSERA_KAFKA_SASL_OAUTHBEARER_SCOPE. */
  kafkaSaslOauthbearerScope: '',
  /** OAUTHBEARER: `audience` of the token request (Auth0, some Okta setups); empty: none sent. Env TESSERA_KAFKA_SASL_OAUTHBEARER_AUDIENCE. */
  kafkaSaslOauthbearerAudience: '',
  /**
   * OAUTHBEARER: SASL extensions sent with the token, `key=value` pairs separated by commas
   * (Confluent Cloud: `logicalCluster=lkc-...,identityPoolId=pool-...`); empty: none.
   * Env TESSERA_KAFKA_SASL_OAUTHBEARER_EXTENSIONS.
   */
  kafkaSaslOauthbearerExtensions: '',
  /**
   * OAUTHBEARER: file holding the token itself, re-read at every authentication (a sidecar or a
   * projected service-account token keeps it fresh); instead of the token endpoint.
   * Env TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE.
   */
  kafkaSaslOauthbearerTokenFile: '',
  /**
   * Redis holding the online state, `redis://[user:pass@]host:port[/db]` (`rediss://` for TLS), or
   * `unix:///path/to/redis.sock[?db=N&username=U&password=P]` for a Redis on the same host. Env TESSERA_REDIS_URL.
   */
  redisUrl: 'redis://127.0.0.1:6379',
  /**
   * Redis password (secret: never printed), for deployments that keep it in a Secret rather than in
   * TESSERA_REDIS_URL; takes precedence over a password in the URL. Empty: the URL's, if any.
   * Env TESSERA_REDIS_PASSWORD.
   */
  redisPassword: '',
  /**
   * PEM file of the CA(s) a `rediss://` server's certificate is checked against, instead of the
   * system CAs: a self-managed Redis or a Kubernetes operator's, signed by a private CA. Empty:
   * the system CAs. Env TESSERA_REDIS_TLS_CA_FILE.
   */
  redisTlsCaFile: '',
  /** PEM client certificate for a Redis that asks for one (`tls-auth-clients`), with `redisTlsKeyFile`; empty: none. Env TESSERA_REDIS_TLS_CERT_FILE. */
  redisTlsCertFile: '',
  /** PEM private key of `redisTlsCertFile` (unencrypted; its content is never printed); empty: none. Env TESSERA_REDIS_TLS_KEY_FILE. */
  redisTlsKeyFile: '',
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
  /**
   * Confluent schema registry for sources in the `avro-confluent` format (schemas fetched by id:
   * GET <url>/schemas/ids/<id>), and where the ingestor registers its update schemas when
   * `updatesFormat` is `avro`; empty: none. Env TESSERA_SCHEMA_REGISTRY_URL.
   */
  schemaRegistryUrl: '',
  /**
   * User name of a registry that needs basic auth (Confluent Cloud: the Schema Registry API key),
   * with `schemaRegistryPassword` or `schemaRegistryPasswordFile`; instead of credentials in the
   * URL. Env TESSERA_SCHEMA_REGISTRY_USERNAME.
   */
  schemaRegistryUsername: '',
  /** Registry basic-auth password (secret: never printed); or `schemaRegistryPasswordFile`. Env TESSERA_SCHEMA_REGISTRY_PASSWORD. */
  schemaRegistryPassword: '',
  /**
   * File holding the registry password (a mounted Secret; one trailing newline is ignored), read
   * at start; instead of `schemaRegistryPassword`. Env TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE.
   */
  schemaRegistryPasswordFile: '',
  /**
   * File holding a bearer token for a registry behind OAuth, read again at every request (a
   * sidecar or a projected token keeps it fresh); instead of basic auth. Env TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE.
   */
  schemaRegistryBearerTokenFile: '',
  /** Directory of `<id>.avsc` files for `avro-confluent` sources, consulted before the registry; empty: none. Env TESSERA_SCHEMA_DIR. */
  schemaDir: '',
  /** pino log level. Env TESSERA_LOG_LEVEL. */
  logLevel: 'info' as LogLevel,
  /** Port of services/server's HTTP API (0 = any free port). Env TESSERA_HTTP_PORT. */
  httpPort: 8080,
  /** Port of each service's /metrics endpoint (0 = any free port). Env TESSERA_METRICS_PORT. */
  metricsPort: 9400,
  /** Prefix put before every Kafka topic name, to share one cluster. Env TESSERA_TOPIC_PREFIX. */
  topicPrefix: '',
  /**
   * Bearer tokens the online API accepts, comma-separated (secret). The server refuses to start
   * without a token unless `devNoAuth` is set. Env TESSERA_AUTH_TOKEN.
   */
  authToken: '',
  /** File with more accepted bearer tokens, one per line (`#` comments); empty = none. Env TESSERA_AUTH_TOKENS_FILE. */
  authTokensFile: '',
  /** Serve the online API without auth: local development only, and only on a loopback address. Env TESSERA_DEV_NO_AUTH. */
  devNoAuth: false,
  /** Address every service's HTTP endpoints (API, health, metrics) listen on; 0.0.0.0 in containers. Env TESSERA_HTTP_HOST. */
  httpHost: '127.0.0.1',
  /** Most entity rows one /get-online-features request may ask for. Env TESSERA_SERVER_MAX_ENTITIES. */
  serverMaxEntities: 1000,
  /** Largest request body the server reads, in bytes (413 beyond). Env TESSERA_SERVER_BODY_LIMIT_BYTES. */
  serverBodyLimitBytes: 1_048_576,
  /**
   * How long a request may take to arrive whole (headers and body), ms; a slower client gets a 408
   * and its connection is closed. Env TESSERA_SERVER_REQUEST_TIMEOUT_MS.
   */
  serverRequestTimeoutMs: 30_000,
  /**
   * Serve POST /push (rows produced to the source topics through Kafka). false: a read-only server
   * that never connects to Kafka; /push answers 404. Env TESSERA_SERVER_PUSH.
   */
  serverPush: true,
  /**
   * Latency diagnostics for benchmarks: raw request and Redis times, event-loop lateness and GC
   * pauses, served at GET /debug/latency (behind auth). Env TESSERA_SERVER_LATENCY_PROBE.
   */
  serverLatencyProbe: false,
  /**
   * PEM certificate (chain) the server's API port serves HTTPS with, together with
   * `serverTlsKeyFile`; both or neither. Empty: plain HTTP (TLS ends at an ingress or mesh).
   * Env TESSERA_SERVER_TLS_CERT_FILE.
   */
  serverTlsCertFile: '',
  /** PEM private key of `serverTlsCertFile` (unencrypted; its content is never printed). Env TESSERA_SERVER_TLS_KEY_FILE. */
  serverTlsKeyFile: '',
  /**
   * How often every process compares its certificate, key and CA files (server, Kafka and Redis
   * TLS) with what it loaded, ms; a change still there at the next look is loaded for new
   * connections (docs/security.md, Certificate renewal). 0: only on SIGHUP. Env TESSERA_TLS_RELOAD_INTERVAL_MS.
   */
  tlsReloadIntervalMs: 5000,
  /** A Redis read slower than this fails the request with 503 instead of hanging. Env TESSERA_REDIS_TIMEOUT_MS. */
  redisTimeoutMs: 1000,
  /** Kafka consumer group of the ingestors (all replicas share it). Env TESSERA_INGESTOR_GROUP. */
  ingestorGroup: 'tessera-ingestor',
  /** Prefix of every Redis key Tessera writes (`<prefix>:{<view>:<entity>}`). Env TESSERA_REDIS_KEY_PREFIX. */
  redisKeyPrefix: 'tessera',
  /**
   * Clock the ingestor judges lateness by, besides each entity's own newest event: `record` (an
   * event older than its record's Kafka timestamp - allowed_lateness is late, so every writer of the
   * record judges it alike, and a backlog is not late for having waited), `wall` (older than the
   * ingestor's now - allowed_lateness) or `event` (the entity's newest event only: for replaying
   * history). On `record` and `wall` events more than 5 minutes ahead are refused. The server's
   * /push refuses the rows the ingestors would refuse by time, so it takes their value
   * (shared/ingest-clock.ts). Env TESSERA_INGEST_CLOCK.
   */
  ingestClock: 'record' as IngestClock,
  /** Consumer session timeout: a dead ingestor's partitions move after this. Env TESSERA_KAFKA_SESSION_TIMEOUT_MS. */
  kafkaSessionTimeoutMs: 30_000,
  /** Consumer heartbeat interval; must be under a third of the session timeout. Env TESSERA_KAFKA_HEARTBEAT_MS. */
  kafkaHeartbeatMs: 3_000,
  /**
   * How often the ingestor commits each partition's consumed offsets (0: after every batch). A
   * commit is a round trip to the group coordinator in every batch's path; committing less often
   * only means more redelivered records after a crash or rebalance, which the engine's offsets make
   * no-ops (dead letters and pushed vectors are at-least-once either way). Stop commits everything.
   * Env TESSERA_INGEST_COMMIT_INTERVAL_MS.
   */
  ingestCommitIntervalMs: 1_000,
  /** Also PUBLISH fresh feature vectors on Redis channel `<prefix>:updates:<view>`. Env TESSERA_PUBLISH_UPDATES. */
  publishUpdates: false,
  /**
   * Encoding of the vectors pushed to `features.updates` (and PUBLISHed): `json`, or `avro` (one
   * record schema per view, registered in the schema registry at TESSERA_SCHEMA_REGISTRY_URL under
   * `<topic>-tessera.updates.<view>`; values in the Confluent wire format). Env TESSERA_UPDATES_FORMAT.
   */
  updatesFormat: 'json' as 'json' | 'avro',
  /**
   * The ingestor produces each applied event's "features before this event" to `features.rows`,
   * from which the flusher writes the offline feature versions. false: no rows, and no
   * before-event reads (about a third less CPU per event); the offline store then holds the raw
   * event log only (no feature versions, latest/ or entity snapshots), and training sets come from
   * point-in-time retrieval over it (docs/offline-retrieval.md). Env TESSERA_TRAINING_ROWS.
   */
  trainingRows: true,
  /**
   * Offline store the flusher writes and `historical` reads (docs/offline-store.md):
   * `s3://<bucket>[/<prefix>]` on the S3 endpoint, or a local directory (`file:///abs/path` or a
   * path). Empty: `s3://<TESSERA_S3_BUCKET>` when an S3 endpoint is configured (TESSERA_S3_ENDPOINT
   * or its flag, as `scripts/stack env`, compose and k8s do), else the embedded local directory
   * `offline-store/`. Env TESSERA_OFFLINE_STORE, flag --offline-store.
   */
  offlineStore: '',
  /** Kafka consumer group of the flusher (one flusher per offline store). Env TESSERA_FLUSHER_GROUP. */
  flusherGroup: 'tessera-flusher',
  /** Time between two flushes to the offline store, ms (also flushed on SIGTERM and when the buffer is full). Env TESSERA_FLUSH_INTERVAL_MS. */
  flushIntervalMs: 300_000,
  /** Kafka records (raw events + feature rows) the flusher holds before it pauses consuming and flushes. Env TESSERA_FLUSH_MAX_BUFFERED_ROWS. */
  flushMaxBufferedRows: 500_000,
  /** Feature versions (and entity snapshots) kept per view; older ones are deleted. 0 = keep all. Env TESSERA_RETENTION_VERSIONS. */
  retentionVersions: 0,
  /** Write an entity snapshot of Redis state with every new version (docs/offline-store.md#restore). Env TESSERA_FLUSH_SNAPSHOTS. */
  flushSnapshots: true,
  /**
   * Bound of the ingestor's decoded-state cache per view, in units of about 260 bytes: each cached
   * entity counts its stored events and tiles, 2 for its state, and 4 per exact feature for the
   * before-event reader kept beside it (state-cache.ts entryWeight; the default holds about
   * 260 MB). A cached state skips the load round trip and the decode, and
   * its reader carries over to the next batch; the compare-and-set on its version refuses a copy
   * another writer made stale, and the cache is emptied at every rebalance. 0 turns it off.
   * Env TESSERA_STATE_CACHE_EVENTS.
   */
  stateCacheEvents: 1_000_000,
  /**
   * Redis is a Redis Cluster: the services open a cluster client seeded by `redisUrl` (one node,
   * no database number), and every script call touches one entity's key (one hash slot).
   * Off (one Redis server): the ingestor writes up to 128 entities' states per script call, which
   * costs a fraction of one call per entity in client CPU. Env TESSERA_REDIS_CLUSTER.
   */
  redisCluster: false,
};

/** The offline store when neither TESSERA_OFFLINE_STORE nor an S3 endpoint is configured. */
export const LOCAL_OFFLINE_STORE = 'offline-store';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type ConfigKey = keyof typeof DEFAULTS;

/** Environment variable of each option. The flag is derived: TESSERA_HTTP_PORT -> --http-port. */
export const ENV_NAMES: Readonly<Record<ConfigKey, string>> = {
  kafkaBrokers: 'TESSERA_KAFKA_BROKERS',
  kafkaTls: 'TESSERA_KAFKA_TLS',
  kafkaTlsCaFile: 'TESSERA_KAFKA_TLS_CA_FILE',
  kafkaTlsCertFile: 'TESSERA_KAFKA_TLS_CERT_FILE',
  kafkaTlsKeyFile: 'TESSERA_KAFKA_TLS_KEY_FILE',
  kafkaSaslMechanism: 'TESSERA_KAFKA_SASL_MECHANISM',
  kafkaSaslUsername: 'TESSERA_KAFKA_SASL_USERNAME',
  kafkaSaslPassword: 'TESSERA_KAFKA_SASL_PASSWORD',
  kafkaSaslPasswordFile: 'TESSERA_KAFKA_SASL_PASSWORD_FILE',
  kafkaSaslOauthbearerTokenEndpointUrl: 'TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL',
  kafkaSaslOauthbearerClientId: 'TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID',
  kafkaSaslOauthbearerClientSecret: 'TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET',
  kafkaSaslOauthbearerClientSecretFile: 'TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE',
  kafkaSaslOauthbearerScope: 'TESSERA_KAFKA_SASL_OAUTHBEARER_SCOPE',
  kafkaSaslOauthbearerAudience: 'TESSERA_KAFKA_SASL_OAUTHBEARER_AUDIENCE',
  kafkaSaslOauthbearerExtensions: 'TESSERA_KAFKA_SASL_OAUTHBEARER_EXTENSIONS',
  kafkaSaslOauthbearerTokenFile: 'TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE',
  redisUrl: 'TESSERA_REDIS_URL',
  redisPassword: 'TESSERA_REDIS_PASSWORD',
  redisTlsCaFile: 'TESSERA_REDIS_TLS_CA_FILE',
  redisTlsCertFile: 'TESSERA_REDIS_TLS_CERT_FILE',
  redisTlsKeyFile: 'TESSERA_REDIS_TLS_KEY_FILE',
  s3Endpoint: 'TESSERA_S3_ENDPOINT',
  s3Region: 'TESSERA_S3_REGION',
  s3AccessKeyId: 'TESSERA_S3_ACCESS_KEY_ID',
  s3SecretAccessKey: 'TESSERA_S3_SECRET_ACCESS_KEY',
  s3Bucket: 'TESSERA_S3_BUCKET',
  s3ForcePathStyle: 'TESSERA_S3_FORCE_PATH_STYLE',
  definitions: 'TESSERA_DEFINITIONS',
  schemaRegistryUrl: 'TESSERA_SCHEMA_REGISTRY_URL',
  schemaRegistryUsername: 'TESSERA_SCHEMA_REGISTRY_USERNAME',
  schemaRegistryPassword: 'TESSERA_SCHEMA_REGISTRY_PASSWORD',
  schemaRegistryPasswordFile: 'TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE',
  schemaRegistryBearerTokenFile: 'TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE',
  schemaDir: 'TESSERA_SCHEMA_DIR',
  logLevel: 'TESSERA_LOG_LEVEL',
  httpPort: 'TESSERA_HTTP_PORT',
  metricsPort: 'TESSERA_METRICS_PORT',
  topicPrefix: 'TESSERA_TOPIC_PREFIX',
  authToken: 'TESSERA_AUTH_TOKEN',
  authTokensFile: 'TESSERA_AUTH_TOKENS_FILE',
  devNoAuth: 'TESSERA_DEV_NO_AUTH',
  httpHost: 'TESSERA_HTTP_HOST',
  serverMaxEntities: 'TESSERA_SERVER_MAX_ENTITIES',
  serverBodyLimitBytes: 'TESSERA_SERVER_BODY_LIMIT_BYTES',
  serverRequestTimeoutMs: 'TESSERA_SERVER_REQUEST_TIMEOUT_MS',
  serverPush: 'TESSERA_SERVER_PUSH',
  serverLatencyProbe: 'TESSERA_SERVER_LATENCY_PROBE',
  serverTlsCertFile: 'TESSERA_SERVER_TLS_CERT_FILE',
  serverTlsKeyFile: 'TESSERA_SERVER_TLS_KEY_FILE',
  tlsReloadIntervalMs: 'TESSERA_TLS_RELOAD_INTERVAL_MS',
  redisTimeoutMs: 'TESSERA_REDIS_TIMEOUT_MS',
  ingestorGroup: 'TESSERA_INGESTOR_GROUP',
  redisKeyPrefix: 'TESSERA_REDIS_KEY_PREFIX',
  ingestClock: 'TESSERA_INGEST_CLOCK',
  publishUpdates: 'TESSERA_PUBLISH_UPDATES',
  updatesFormat: 'TESSERA_UPDATES_FORMAT',
  trainingRows: 'TESSERA_TRAINING_ROWS',
  offlineStore: 'TESSERA_OFFLINE_STORE',
  flusherGroup: 'TESSERA_FLUSHER_GROUP',
  flushIntervalMs: 'TESSERA_FLUSH_INTERVAL_MS',
  flushMaxBufferedRows: 'TESSERA_FLUSH_MAX_BUFFERED_ROWS',
  retentionVersions: 'TESSERA_RETENTION_VERSIONS',
  flushSnapshots: 'TESSERA_FLUSH_SNAPSHOTS',
  kafkaSessionTimeoutMs: 'TESSERA_KAFKA_SESSION_TIMEOUT_MS',
  kafkaHeartbeatMs: 'TESSERA_KAFKA_HEARTBEAT_MS',
  ingestCommitIntervalMs: 'TESSERA_INGEST_COMMIT_INTERVAL_MS',
  stateCacheEvents: 'TESSERA_STATE_CACHE_EVENTS',
  redisCluster: 'TESSERA_REDIS_CLUSTER',
};

/** Options whose values are never printed or put in error messages. */
export const SECRET_KEYS: ReadonlySet<ConfigKey> = new Set<ConfigKey>([
  's3SecretAccessKey',
  'authToken',
  'redisPassword',
  'kafkaSaslPassword',
  'kafkaSaslOauthbearerClientSecret',
  'schemaRegistryPassword',
]);

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
