// Client options for kafkajs, ioredis, the S3 SDK and the schema registry derived from Config, so
// every service and test talks to Kafka/Redis/S3/the registry the same way. Builds options and
// connects nothing; it only reads the Kafka TLS and password files the config names
// (kafka-security.ts), the registry's password file, and Redis' TLS files, which stay watched for
// renewals (cert-reload.ts).

import { dirname } from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { RedisOptions } from 'ioredis';
import { type KafkaConfig, type LogEntry, logLevel } from 'kafkajs';
import type { Logger } from 'pino';
import type { DecoderOptions } from '../codecs/decode.ts';
import type { RegistryEndpoint } from '../codecs/schema-registry.ts';
import { watchTlsFiles } from './cert-reload.ts';
import { kafkaSecurityOptions, refusedLoginHint, tlsFailureHint } from './kafka-security.ts';
import type { Config } from './schema.ts';
import { pemFiles, readSecretFile } from './tls-files.ts';

/**
 * With a logger, kafkajs' own lines go through it (kafkaLogCreator); without, to the console. TLS
 * and SASL as configured: every kafkajs client of Tessera is built from these options.
 */
export function kafkaOptions(config: Config, clientId: string, logger?: Logger): KafkaConfig {
  return {
    clientId,
    brokers: [...config.kafkaBrokers],
    ...kafkaSecurityOptions(config, logger),
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    ...(logger ? { logCreator: () => kafkaLogCreator(logger) } : {}),
  };
}

/**
 * Broker answers kafkajs retries by itself, which it nevertheless logs as ERROR (`[Connection]
 * Response ...`): a coordinator still loading after a broker start, a leader election, a group
 * rebalancing. If the retries run out, the error reaches Tessera's code, which reports it; until
 * then they are debug lines. kafkajs' messages for COORDINATOR_LOAD_IN_PROGRESS,
 * COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, LEADER_NOT_AVAILABLE, NOT_LEADER_FOR_PARTITION and
 * REBALANCE_IN_PROGRESS.
 */
const RETRIED_RESPONSES = new Set([
  "The coordinator is loading and hence can't process requests for this group",
  'The coordinator is not available',
  'This is not the correct coordinator',
  'There is no leader for this topic-partition as we are in the middle of a leadership election',
  'This server is not the leader for that topic-partition',
  'The group is rebalancing, so a rejoin is needed',
]);

/**
 * kafkajs log entries as the service's own pino lines (one format per process), with kafkajs'
 * namespace and fields. Retried broker answers (above) and the warning that bounded retries weaken
 * idempotence (bounded on purpose: a dead broker fails loudly instead of hanging) go to debug.
 */
export function kafkaLogCreator(logger: Logger): (entry: LogEntry) => void {
  const kafkaLogger = logger.child({ component: 'kafkajs' });
  return ({ namespace, level, log }) => {
    const { message, timestamp: _timestamp, logger: _logger, ...fields } = log;
    const quiet =
      (typeof fields.error === 'string' && RETRIED_RESPONSES.has(fields.error)) ||
      message.startsWith('Limiting retries for the idempotent producer');
    const method =
      quiet || level >= logLevel.DEBUG
        ? 'debug'
        : level === logLevel.INFO
          ? 'info'
          : level === logLevel.WARN
            ? 'warn'
            : 'error';
    const hint = level <= logLevel.ERROR ? securityHint(namespace, message, fields.error) : undefined;
    kafkaLogger[method]({ namespace, ...fields, ...(hint ? { hint } : {}) }, message);
  };
}

/**
 * A refused login or an untrusted certificate fails alike at every retry, and kafkajs' message
 * names neither setting that decides it: the line gets a hint that does.
 */
function securityHint(namespace: string, message: string, error: unknown): string | undefined {
  const text = `${message} ${typeof error === 'string' ? error : ''}`;
  if (namespace.startsWith('SaslAuthenticator') || /SASL .*authentication failed/i.test(text))
    return refusedLoginHint(`${namespace} ${text}`);
  return tlsFailureHint(text);
}

/**
 * ioredis options from TESSERA_REDIS_URL; TESSERA_REDIS_PASSWORD, when set, replaces the URL's
 * password. With `rediss://`, the TLS files (a private CA, a client certificate) are read here, so
 * every service fails at start on a file it cannot use.
 */
export function redisOptions(config: Config): RedisOptions {
  const options = urlRedisOptions(config.redisUrl);
  if (options.tls) options.tls = redisTls(config);
  return config.redisPassword === '' ? options : { ...options, password: config.redisPassword };
}

/**
 * Node's TLS options for Redis. Without a CA file: the system CAs, which a self-managed Redis or an
 * operator's (signed by a private CA) is not signed by, so every handshake failed.
 *
 * One object, renewed in place (cert-reload.ts): ioredis keeps the `tls` object it was given
 * (a Cluster hands the same one to each node's client) and copies it into `tls.connect`'s options
 * at every connection (ioredis 6, built/connectors/StandaloneConnector.js), so a reconnect after a
 * renewal shows the new certificate and trusts the new CA; open connections keep theirs.
 */
function redisTls(config: Config): NonNullable<RedisOptions['tls']> {
  const tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  Object.assign(
    tls,
    watchTlsFiles(
      'redis_client',
      pemFiles({
        ca: ['redisTlsCaFile', config.redisTlsCaFile],
        cert: ['redisTlsCertFile', config.redisTlsCertFile],
        key: ['redisTlsKeyFile', config.redisTlsKeyFile],
      }),
      (pems) => Object.assign(tls, pems),
    ),
  );
  return tls;
}

/** Node's codes for a server certificate the client could not verify. */
const UNVERIFIED_CERT =
  /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_SIGNATURE_FAILURE)$/;

/**
 * A Redis connection error as a log line's text, saying what to do when TLS refused it: ioredis
 * retries such a connection forever, so this line is all an operator sees of it.
 */
export function describeRedisError(
  error: Error,
  config: Pick<Config, 'redisUrl' | 'redisTlsCertFile'>,
): string {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (UNVERIFIED_CERT.test(code))
    return `${error.message} (${code}): the Redis server's certificate is not signed by a CA this client trusts; set TESSERA_REDIS_TLS_CA_FILE to its CA's PEM file`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'CERT_HAS_EXPIRED')
    return `${error.message} (${code}): the Redis server's certificate does not fit the host in TESSERA_REDIS_URL or has expired`;
  // A Redis that wants a client certificate (tls-auth-clients yes) and got none ends the
  // connection after the handshake: with TLS 1.3 the client sees the alert, or only the reset.
  if (
    config.redisUrl.startsWith('rediss:') &&
    config.redisTlsCertFile === '' &&
    (/certificate required|alert number 116/i.test(error.message) || code === 'ECONNRESET')
  )
    return `${error.message}: if the Redis server asks for client certificates (tls-auth-clients), set TESSERA_REDIS_TLS_CERT_FILE and TESSERA_REDIS_TLS_KEY_FILE`;
  return error.message;
}

function urlRedisOptions(redisUrl: string): RedisOptions {
  const url = new URL(redisUrl);
  const common = { connectTimeout: 3000, maxRetriesPerRequest: 3 };
  if (url.protocol === 'unix:') {
    // `unix:///path/to/redis.sock[?db=N&username=U&password=P]`: a Redis on the same host over its
    // Unix socket (the local stack opens one: docs/local-stack.md). A URL cannot carry credentials
    // without a host, so they go in the query, as redis-py reads them (or in `unix://u:p@localhost/…`).
    const q = url.searchParams;
    const db = Number(q.get('db') ?? '0');
    return {
      path: decodeURIComponent(url.pathname),
      ...credentials(
        q.get('username') ?? decodeURIComponent(url.username),
        q.get('password') ?? decodeURIComponent(url.password),
      ),
      db: Number.isInteger(db) ? db : 0,
      ...common,
    };
  }
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return {
    // An IPv6 literal without its brackets: ioredis looked up the name "[::1]".
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 6379 : Number(url.port),
    ...credentials(decodeURIComponent(url.username), decodeURIComponent(url.password)),
    db: Number.isInteger(db) ? db : 0,
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    ...common,
  };
}

function credentials(username: string, password: string): { username?: string; password?: string } {
  return { ...(username === '' ? {} : { username }), ...(password === '' ? {} : { password }) };
}

export function s3Options(config: Config): S3ClientConfig {
  return {
    endpoint: config.s3Endpoint,
    region: config.s3Region,
    forcePathStyle: config.s3ForcePathStyle,
    credentials: { accessKeyId: config.s3AccessKeyId, secretAccessKey: config.s3SecretAccessKey },
    // Newer SDKs add CRC checksums and aws-chunked trailers by default; S3-compatible servers
    // (S3Proxy included) do not all accept them, so only send them when an API requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  };
}

/** Full Kafka topic name for a base name, with the configured prefix. */
export function topicName(config: Config, base: string): string {
  return config.topicPrefix + base;
}

/**
 * How a service's decoders find schemas: Avro schema paths relative to the definitions file, and
 * for `avro-confluent` sources the configured schema directory and registry (directory first).
 */
export function decoderOptions(
  config: Config,
  definitionsFile: string,
): Pick<DecoderOptions, 'definitionsDir' | 'schemaDir' | 'schemaRegistryUrl' | 'schemaRegistryAuth'> {
  const registry = schemaRegistryEndpoint(config);
  return {
    definitionsDir: dirname(definitionsFile),
    ...(config.schemaDir === '' ? {} : { schemaDir: config.schemaDir }),
    ...(registry === undefined ? {} : { schemaRegistryUrl: registry.url }),
    ...(registry?.auth === undefined ? {} : { schemaRegistryAuth: registry.auth }),
  };
}

/**
 * The schema registry every service talks to (decoders, the ingestor's update schemas, the
 * server's /push, the producer CLI), with its login when that is not in the URL; undefined when
 * none is configured. The password file is read here and the token file checked here, so a wrong
 * path is a start-up error naming its variable; the token file is read again at each request.
 */
export function schemaRegistryEndpoint(config: Config): RegistryEndpoint | undefined {
  if (config.schemaRegistryUrl === '') return undefined;
  const url = config.schemaRegistryUrl;
  if (config.schemaRegistryBearerTokenFile !== '') {
    const path = config.schemaRegistryBearerTokenFile;
    readSecretFile('schemaRegistryBearerTokenFile', path, 'the bearer token');
    return { url, auth: { kind: 'bearer-file', path } };
  }
  if (config.schemaRegistryUsername === '') return { url };
  const password =
    config.schemaRegistryPasswordFile === ''
      ? config.schemaRegistryPassword
      : readSecretFile(
          'schemaRegistryPasswordFile',
          config.schemaRegistryPasswordFile,
          'the registry password',
        );
  return { url, auth: { kind: 'basic', username: config.schemaRegistryUsername, password } };
}
