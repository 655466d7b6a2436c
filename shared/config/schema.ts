// zod schema that turns raw strings (from env or flags) into a typed Config, with the rules that
// span several options. Raw input: one optional string per option; undefined means "default".

import { z } from 'zod';
import { INGEST_CLOCKS } from '../ingest-clock.ts';
import { type ConfigKey, DEFAULTS, ENV_NAMES, LOG_LEVELS, type LogLevel } from './defaults.ts';
import { redactUrl } from './redact.ts';

const PORT_MAX = 65535;

const port = z
  .string()
  .regex(/^\d+$/, 'expected an integer port 0..65535')
  .transform(Number)
  .pipe(z.number().max(PORT_MAX, 'expected an integer port 0..65535'));

const hostPort = z.string().superRefine((s, ctx) => {
  // kafkajs splits a broker at its colons: [::1]:9092 became host "[" (an IPv6 literal cannot work).
  if (s.startsWith('['))
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `${s}: the Kafka client cannot reach an IPv6 literal; give a host name that resolves to it`,
    });
  else {
    const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
    if (m === null || !(Number(m[2]) > 0 && Number(m[2]) <= PORT_MAX))
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected host:port' });
  }
});

const brokers = z
  .string()
  .transform((s) => s.split(',').map((b) => b.trim()))
  .pipe(z.array(hostPort).min(1, 'expected at least one host:port'));

function urlWithProtocol(protocols: readonly string[]) {
  return z.string().refine(
    (s) => {
      try {
        return protocols.includes(new URL(s).protocol);
      } catch {
        return false;
      }
    },
    (s) => {
      const expected = `expected a URL starting with ${protocols.map((p) => p + '//').join(' or ')}`;
      // "redis://host:99999" has the right scheme: say why it is no URL (a port past 65535).
      return {
        message: protocols.some((p) => s.startsWith(`${p}//`))
          ? `${expected}; this one does not parse as a URL (check the host and that the port is 1-65535)`
          : expected,
      };
    },
  );
}

const millis = z
  .string()
  .regex(/^\d+$/, 'expected a whole number of milliseconds')
  .transform(Number)
  .pipe(z.number().min(100, 'expected at least 100 ms').max(3_600_000, 'expected at most 3600000 ms (1 h)'));

const bool = z
  .enum(['true', 'false', '1', '0'], { errorMap: () => ({ message: 'expected true or false (or 1 or 0)' }) })
  .transform((s) => s === 'true' || s === '1');

/** One of `values`, said so in the message (zod's own reads "Invalid enum value. Expected ..."). */
function oneOf<T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { errorMap: () => ({ message: `expected one of ${values.join(', ')}` }) });
}

/**
 * Where Redis is: ioredis took `redis://` without a host as localhost and a database that is not a
 * number (`/abc`, `?db=x`) as database 0, so a typo wrote the online state somewhere else.
 */
function redisUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined; // not a URL: reported by urlWithProtocol
  }
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    // It threw when the client was built, as a bare "URI malformed".
    return 'the user or password is not valid percent-encoding (write % as %25), or set the password in TESSERA_REDIS_PASSWORD';
  }
  if (url.protocol === 'unix:') {
    if (url.pathname === '' || url.pathname === '/') return 'expected unix:///path/to/redis.sock[?db=N]';
    const db = url.searchParams.get('db');
    return db === null || /^\d+$/.test(db) ? undefined : `expected db=<number> in the query, not db=${db}`;
  }
  if (url.hostname === '') return 'expected a host: redis://host:port[/db]';
  // Only the socket form reads a query (it has no path for the database): ?db=2 was ignored here,
  // and the state written to database 0.
  if (url.search !== '')
    return 'expected no query: the database goes after the host (redis://host:port/N), a password in the URL or TESSERA_REDIS_PASSWORD';
  const db = url.pathname.slice(1);
  return db === '' || /^\d+$/.test(db)
    ? undefined
    : `expected a database number after the host (redis://host:port/N), not /${db}`;
}

const redisUrl = urlWithProtocol(['redis:', 'rediss:', 'unix:']).superRefine((value, ctx) => {
  const problem = redisUrlProblem(value);
  if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
});

/**
 * s3://, file:// or a plain path. Any other scheme (gs://, S3://, s3a://) was taken for a relative
 * directory named after it: the flusher then wrote the offline store to the local disk.
 */
function offlineStoreProblem(value: string): string | undefined {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value)?.[1];
  if (scheme === undefined) return undefined;
  if (scheme === 's3')
    return /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(value)
      ? undefined
      : 'expected s3://<bucket>[/<prefix>] with an S3 bucket name (3-63 of a-z 0-9 . -)';
  if (scheme === 'file') {
    let host: string;
    try {
      host = new URL(value).hostname;
    } catch {
      return 'expected file:///<absolute path>';
    }
    return host === '' || host === 'localhost'
      ? undefined
      : `expected file:///<absolute path> (three slashes): ${host} would be read as a host and left out of the path`;
  }
  return `expected s3://<bucket>[/<prefix>], file:///<path> or a directory path; ${scheme}:// is not supported`;
}

// S3 bucket naming rules (3-63 chars, lower case, digits, dots, hyphens).
const bucket = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name (3-63 of a-z 0-9 . -)');

// Kafka topic names allow [a-zA-Z0-9._-]; the prefix leaves room for the base name (max 249).
const topicPrefix = z.string().regex(/^[a-zA-Z0-9._-]{0,100}$/, 'expected up to 100 of a-z A-Z 0-9 . _ -');

/** A whole number of `unit` up to `max`; `zero` says what 0 means when it is allowed (min 0). */
function count(unit: string, min: number, max: number, zero?: string) {
  return z
    .string()
    .regex(/^\d+$/, `expected a whole number of ${unit}${zero === undefined ? '' : ` (0 = ${zero})`}`)
    .transform(Number)
    .pipe(z.number().min(min, `expected at least ${min}`).max(max, `expected at most ${max} ${unit}`));
}

function wholeNumber(min: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/, `expected a whole number ${min}..${max}`)
    .transform(Number)
    .pipe(z.number().min(min, `expected at least ${min}`).max(max, `expected at most ${max}`));
}

/** Kafka's own spellings (SCRAM-SHA-512, PLAIN) are accepted as well as kafkajs' lower case. */
const saslMechanism = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(
    z.enum(['', 'plain', 'scram-sha-256', 'scram-sha-512', 'oauthbearer'], {
      errorMap: () => ({ message: 'expected plain, scram-sha-256, scram-sha-512 or oauthbearer' }),
    }),
  );

/**
 * SASL extensions as `key=value,key=value`, checked with Kafka's own rules (RFC 7628 §3.1): a key
 * is letters only and not `auth`; a value is printable ASCII without a comma (the separator here).
 */
const oauthExtensions = z.string().superRefine((value, ctx) => {
  if (value === '') return;
  for (const pair of value.split(',')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (
      eq < 0 ||
      !/^[A-Za-z]+$/.test(key) ||
      key === 'auth' ||
      !/^[\x21-\x2B\x2D-\x7E]+$/.test(pair.slice(eq + 1))
    )
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `"${pair}" is no extension: expected key=value pairs separated by commas (keys: letters only, not "auth"; values: printable ASCII, no spaces), e.g. logicalCluster=lkc-abc12,identityPoolId=pool-XyZ`,
      });
  }
});

function withDefault<T>(schema: z.ZodType<T, z.ZodTypeDef, string>, fallback: T) {
  return schema.optional().transform((v): T => (v === undefined ? fallback : v));
}

export const configSchema = z
  .object({
    kafkaBrokers: withDefault(brokers, DEFAULTS.kafkaBrokers),
    kafkaTls: withDefault(bool, DEFAULTS.kafkaTls),
    kafkaTlsCaFile: withDefault(z.string(), DEFAULTS.kafkaTlsCaFile),
    kafkaTlsCertFile: withDefault(z.string(), DEFAULTS.kafkaTlsCertFile),
    kafkaTlsKeyFile: withDefault(z.string(), DEFAULTS.kafkaTlsKeyFile),
    kafkaSaslMechanism: withDefault<typeof DEFAULTS.kafkaSaslMechanism>(
      saslMechanism,
      DEFAULTS.kafkaSaslMechanism,
    ),
    kafkaSaslUsername: withDefault(z.string(), DEFAULTS.kafkaSaslUsername),
    kafkaSaslPassword: withDefault(z.string(), DEFAULTS.kafkaSaslPassword),
    kafkaSaslPasswordFile: withDefault(z.string(), DEFAULTS.kafkaSaslPasswordFile),
    kafkaSaslOauthbearerTokenEndpointUrl: withDefault(
      z.string(),
      DEFAULTS.kafkaSaslOauthbearerTokenEndpointUrl,
    ),
    kafkaSaslOauthbearerClientId: withDefault(z.string(), DEFAULTS.kafkaSaslOauthbearerClientId),
    kafkaSaslOauthbearerClientSecret: withDefault(z.string(), DEFAULTS.kafkaSaslOauthbearerClientSecret),
    kafkaSaslOauthbearerClientSecretFile: withDefault(
      z.string(),
      DEFAULTS.kafkaSaslOauthbearerClientSecretFile,
    ),
    kafkaSaslOauthbearerScope: withDefault(z.string(), DEFAULTS.kafkaSaslOauthbearerScope),
    kafkaSaslOauthbearerAudience: withDefault(z.string(), DEFAULTS.kafkaSaslOauthbearerAudience),
    kafkaSaslOauthbearerExtensions: withDefault(oauthExtensions, DEFAULTS.kafkaSaslOauthbearerExtensions),
    kafkaSaslOauthbearerTokenFile: withDefault(z.string(), DEFAULTS.kafkaSaslOauthbearerTokenFile),
    redisUrl: withDefault(redisUrl, DEFAULTS.redisUrl),
    redisPassword: withDefault(z.string(), DEFAULTS.redisPassword),
    redisTlsCaFile: withDefault(z.string(), DEFAULTS.redisTlsCaFile),
    redisTlsCertFile: withDefault(z.string(), DEFAULTS.redisTlsCertFile),
    redisTlsKeyFile: withDefault(z.string(), DEFAULTS.redisTlsKeyFile),
    s3Endpoint: withDefault(urlWithProtocol(['http:', 'https:']), DEFAULTS.s3Endpoint),
    s3Region: withDefault(
      z.string().regex(/^[a-z0-9-]+$/, 'expected a region like us-east-1'),
      DEFAULTS.s3Region,
    ),
    s3AccessKeyId: withDefault(z.string(), DEFAULTS.s3AccessKeyId),
    s3SecretAccessKey: withDefault(z.string(), DEFAULTS.s3SecretAccessKey),
    s3Bucket: withDefault(bucket, DEFAULTS.s3Bucket),
    s3ForcePathStyle: withDefault(bool, DEFAULTS.s3ForcePathStyle),
    definitions: withDefault(z.string(), DEFAULTS.definitions),
    schemaRegistryUrl: withDefault(
      z.literal('').or(urlWithProtocol(['http:', 'https:'])),
      DEFAULTS.schemaRegistryUrl,
    ),
    schemaRegistryUsername: withDefault(z.string(), DEFAULTS.schemaRegistryUsername),
    schemaRegistryPassword: withDefault(z.string(), DEFAULTS.schemaRegistryPassword),
    schemaRegistryPasswordFile: withDefault(z.string(), DEFAULTS.schemaRegistryPasswordFile),
    schemaRegistryBearerTokenFile: withDefault(z.string(), DEFAULTS.schemaRegistryBearerTokenFile),
    schemaDir: withDefault(z.string(), DEFAULTS.schemaDir),
    logLevel: withDefault(oneOf(LOG_LEVELS), DEFAULTS.logLevel as LogLevel),
    httpPort: withDefault(port, DEFAULTS.httpPort),
    metricsPort: withDefault(port, DEFAULTS.metricsPort),
    topicPrefix: withDefault(topicPrefix, DEFAULTS.topicPrefix),
    authToken: withDefault(z.string(), DEFAULTS.authToken),
    authTokensFile: withDefault(z.string(), DEFAULTS.authTokensFile),
    devNoAuth: withDefault(bool, DEFAULTS.devNoAuth),
    httpHost: withDefault(
      z.string().regex(/^[A-Za-z0-9.:-]{1,253}$/, 'expected a host name or IP address'),
      DEFAULTS.httpHost,
    ),
    serverMaxEntities: withDefault(wholeNumber(1, 100_000), DEFAULTS.serverMaxEntities),
    serverBodyLimitBytes: withDefault(wholeNumber(1024, 256 * 1024 * 1024), DEFAULTS.serverBodyLimitBytes),
    serverRequestTimeoutMs: withDefault(wholeNumber(100, 600_000), DEFAULTS.serverRequestTimeoutMs),
    serverLatencyProbe: withDefault(bool, DEFAULTS.serverLatencyProbe),
    serverTlsCertFile: withDefault(z.string(), DEFAULTS.serverTlsCertFile),
    serverTlsKeyFile: withDefault(z.string(), DEFAULTS.serverTlsKeyFile),
    tlsReloadIntervalMs: withDefault(wholeNumber(0, 3_600_000), DEFAULTS.tlsReloadIntervalMs),
    serverPush: withDefault(bool, DEFAULTS.serverPush),
    redisTimeoutMs: withDefault(wholeNumber(10, 60_000), DEFAULTS.redisTimeoutMs),
    ingestorGroup: withDefault(
      z.string().regex(/^[a-zA-Z0-9._-]{1,200}$/, 'expected a group id of a-z A-Z 0-9 . _ -'),
      DEFAULTS.ingestorGroup,
    ),
    redisKeyPrefix: withDefault(
      z.string().regex(/^[a-zA-Z0-9._-]{1,100}$/, 'expected up to 100 of a-z A-Z 0-9 . _ -'),
      DEFAULTS.redisKeyPrefix,
    ),
    ingestClock: withDefault(oneOf(INGEST_CLOCKS), DEFAULTS.ingestClock),
    publishUpdates: withDefault(bool, DEFAULTS.publishUpdates),
    updatesFormat: withDefault(oneOf(['json', 'avro'] as const), DEFAULTS.updatesFormat),
    trainingRows: withDefault(bool, DEFAULTS.trainingRows),
    offlineStore: withDefault(
      z.string().superRefine((value, ctx) => {
        const problem = offlineStoreProblem(value);
        if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
      }),
      DEFAULTS.offlineStore,
    ),
    flusherGroup: withDefault(
      z.string().regex(/^[a-zA-Z0-9._-]{1,200}$/, 'expected a group id of a-z A-Z 0-9 . _ -'),
      DEFAULTS.flusherGroup,
    ),
    flushIntervalMs: withDefault(millis, DEFAULTS.flushIntervalMs),
    flushMaxBufferedRows: withDefault(count('records', 100, 50_000_000), DEFAULTS.flushMaxBufferedRows),
    retentionVersions: withDefault(
      count('versions', 0, Number.MAX_SAFE_INTEGER, 'keep all'),
      DEFAULTS.retentionVersions,
    ),
    flushSnapshots: withDefault(bool, DEFAULTS.flushSnapshots),
    kafkaSessionTimeoutMs: withDefault(millis, DEFAULTS.kafkaSessionTimeoutMs),
    kafkaHeartbeatMs: withDefault(millis, DEFAULTS.kafkaHeartbeatMs),
    // Up to a minute: what a crash redelivers grows with it.
    ingestCommitIntervalMs: withDefault(
      count('milliseconds', 0, 60_000, 'commit after every fetch'),
      DEFAULTS.ingestCommitIntervalMs,
    ),
    // At most about 10 GB of decoded states.
    stateCacheEvents: withDefault(count('events', 0, 100_000_000, 'no cache'), DEFAULTS.stateCacheEvents),
    redisCluster: withDefault(bool, DEFAULTS.redisCluster),
  })
  .superRefine((c, ctx) => {
    for (const problem of kafkaSecurityProblems(c)) ctx.addIssue({ code: z.ZodIssueCode.custom, ...problem });
    for (const problem of registryLoginProblems(c)) ctx.addIssue({ code: z.ZodIssueCode.custom, ...problem });
    if (c.kafkaHeartbeatMs * 3 > c.kafkaSessionTimeoutMs) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['kafkaHeartbeatMs'],
        message: `must be at most a third of the session timeout (${c.kafkaSessionTimeoutMs} ms), or the group drops live members`,
      });
    }
    if (c.updatesFormat === 'avro' && c.schemaRegistryUrl === '') {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['updatesFormat'],
        message:
          'avro registers the update schemas in a schema registry: set TESSERA_SCHEMA_REGISTRY_URL (or use json)',
      });
    }
    if (
      c.redisCluster &&
      (c.redisUrl.startsWith('unix:') || !/^rediss?:\/\/[^/]*(\/0?)?$/.test(c.redisUrl))
    ) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['redisUrl'],
        message:
          'with TESSERA_REDIS_CLUSTER the URL names one node of the cluster over TCP (redis://host:port; the client discovers the others), without a database number: a cluster has only database 0',
      });
    }
    // A certificate without its key (or the reverse) is half a TLS setup: refused rather than
    // served as plain HTTP, or connected without the client certificate Redis or Kafka asks for.
    for (const [cert, key, what] of [
      ['serverTlsCertFile', 'serverTlsKeyFile', 'HTTPS'],
      ['redisTlsCertFile', 'redisTlsKeyFile', 'a Redis client certificate'],
      ['kafkaTlsCertFile', 'kafkaTlsKeyFile', 'a Kafka client certificate'],
    ] as const) {
      if ((c[cert] === '') !== (c[key] === '')) {
        const [given, missing] = c[cert] === '' ? [key, cert] : [cert, key];
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: [missing],
          message: `is needed with ${ENV_NAMES[given]}: ${what} takes both the certificate and its key (or neither)`,
        });
      }
    }
    // TLS files with a plain redis:// URL would be ignored: the connection would go unencrypted.
    if (!c.redisUrl.startsWith('rediss:'))
      for (const key of ['redisTlsCaFile', 'redisTlsCertFile', 'redisTlsKeyFile'] as const)
        if (c[key] !== '')
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: [key],
            message: 'is for a TLS connection: TESSERA_REDIS_URL must start with rediss://',
          });
    // No rule ties the two ports: no process listens on both (the server serves /metrics on its
    // API port; the ingestor and the flusher open only the metrics port).
    // The local stack's well-known credentials must never be sent to a real S3. Real S3 services
    // are reached over https; the local stack and compose network use plain http.
    if (c.s3Endpoint.startsWith('https:') && c.s3SecretAccessKey === DEFAULTS.s3SecretAccessKey) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['s3SecretAccessKey'],
        message: `is the local-stack default but the S3 endpoint ${redactUrl(c.s3Endpoint)} is a real (https) one; set real credentials`,
      });
    }
  });

/**
 * Kafka TLS and SASL options that cannot work together (the files themselves are read, and
 * checked, by kafkaOptions). Each names the option to set, so a half-configured managed Kafka
 * fails at start rather than as a connection that hangs in retries.
 */
function kafkaSecurityProblems(c: {
  kafkaTls: boolean;
  kafkaTlsCaFile: string;
  kafkaTlsCertFile: string;
  kafkaTlsKeyFile: string;
  kafkaSaslMechanism: string;
  kafkaSaslUsername: string;
  kafkaSaslPassword: string;
  kafkaSaslPasswordFile: string;
  kafkaSaslOauthbearerTokenEndpointUrl: string;
  kafkaSaslOauthbearerClientId: string;
  kafkaSaslOauthbearerClientSecret: string;
  kafkaSaslOauthbearerClientSecretFile: string;
  kafkaSaslOauthbearerScope: string;
  kafkaSaslOauthbearerAudience: string;
  kafkaSaslOauthbearerExtensions: string;
  kafkaSaslOauthbearerTokenFile: string;
}): { path: ConfigKey[]; message: string }[] {
  const out: { path: ConfigKey[]; message: string }[] = [];
  const mechanism = c.kafkaSaslMechanism;
  const passwordKeys = ['kafkaSaslUsername', 'kafkaSaslPassword', 'kafkaSaslPasswordFile'] as const;
  const oauthSet = OAUTHBEARER_KEYS.filter((k) => c[k] !== '');
  if (mechanism === '') {
    if (passwordKeys.some((k) => c[k] !== ''))
      out.push({
        path: ['kafkaSaslMechanism'],
        message:
          'SASL credentials are set but no mechanism: set TESSERA_KAFKA_SASL_MECHANISM to the one the listener offers (plain, scram-sha-256 or scram-sha-512)',
      });
    if (oauthSet.length > 0)
      out.push({
        path: ['kafkaSaslMechanism'],
        message: `OAUTHBEARER options are set (${names(oauthSet)}) but no mechanism: set TESSERA_KAFKA_SASL_MECHANISM=oauthbearer, or unset them`,
      });
  } else if (mechanism === 'oauthbearer') {
    out.push(...oauthbearerProblems(c));
    const set = passwordKeys.filter((k) => c[k] !== '');
    if (set.length > 0)
      out.push({
        path: [set[0]!],
        message: `${set.length > 1 ? `and ${names(set.slice(1))} are` : 'is'} for plain and scram: with TESSERA_KAFKA_SASL_MECHANISM=oauthbearer the login is a token, so unset ${set.length > 1 ? 'them' : 'it'}`,
      });
  } else {
    if (c.kafkaSaslUsername === '')
      out.push({
        path: ['kafkaSaslUsername'],
        message: `is needed with TESSERA_KAFKA_SASL_MECHANISM=${mechanism}: set the SASL user name (Confluent Cloud: the API key)`,
      });
    if (c.kafkaSaslPassword === '' && c.kafkaSaslPasswordFile === '')
      out.push({
        path: ['kafkaSaslPassword'],
        message: `is needed with TESSERA_KAFKA_SASL_MECHANISM=${mechanism}: set it, or TESSERA_KAFKA_SASL_PASSWORD_FILE to a file holding it`,
      });
    // PLAIN sends the password as it is: over a plaintext connection anyone on the path reads it.
    if (mechanism === 'plain' && !c.kafkaTls)
      out.push({
        path: ['kafkaSaslMechanism'],
        message:
          'plain sends the password in clear text: set TESSERA_KAFKA_TLS=true (a SASL_SSL listener), or use scram-sha-256/512',
      });
    if (oauthSet.length > 0)
      out.push({
        path: [oauthSet[0]!],
        message: `${names(oauthSet)} ${oauthSet.length > 1 ? 'are' : 'is'} for TESSERA_KAFKA_SASL_MECHANISM=oauthbearer, not ${mechanism}: unset ${oauthSet.length > 1 ? 'them' : 'it'}, or change the mechanism`,
      });
  }
  if (c.kafkaSaslPassword !== '' && c.kafkaSaslPasswordFile !== '')
    out.push({
      path: ['kafkaSaslPasswordFile'],
      message: 'and TESSERA_KAFKA_SASL_PASSWORD are both set: set one of them',
    });
  if (!c.kafkaTls) {
    const files = (['kafkaTlsCaFile', 'kafkaTlsCertFile', 'kafkaTlsKeyFile'] as const).filter(
      (k) => c[k] !== '',
    );
    if (files.length > 0)
      out.push({
        path: ['kafkaTls'],
        message: `is off, but TLS files are set (${files.map((k) => ENV_NAMES[k]).join(', ')}): set TESSERA_KAFKA_TLS=true, or unset them`,
      });
  }
  return out;
}

const OAUTHBEARER_KEYS = [
  'kafkaSaslOauthbearerTokenEndpointUrl',
  'kafkaSaslOauthbearerClientId',
  'kafkaSaslOauthbearerClientSecret',
  'kafkaSaslOauthbearerClientSecretFile',
  'kafkaSaslOauthbearerScope',
  'kafkaSaslOauthbearerAudience',
  'kafkaSaslOauthbearerExtensions',
  'kafkaSaslOauthbearerTokenFile',
] as const;

function names(keys: readonly ConfigKey[]): string {
  return keys.map((k) => ENV_NAMES[k]).join(', ');
}

/**
 * OAUTHBEARER takes its token from exactly one place: the token endpoint (with a client id and one
 * secret) or a token file. A bearer token is as good as a password until it expires, so like
 * PLAIN it only goes over TLS, and the client secret only to an https endpoint (or loopback).
 */
function oauthbearerProblems(
  c: Record<(typeof OAUTHBEARER_KEYS)[number], string> & { kafkaTls: boolean },
): { path: ConfigKey[]; message: string }[] {
  const out: { path: ConfigKey[]; message: string }[] = [];
  const endpoint = c.kafkaSaslOauthbearerTokenEndpointUrl;
  if (!c.kafkaTls)
    out.push({
      path: ['kafkaSaslMechanism'],
      message:
        'oauthbearer sends the token in clear text, and anyone who reads it can log in until it expires: set TESSERA_KAFKA_TLS=true (a SASL_SSL listener)',
    });
  if (c.kafkaSaslOauthbearerTokenFile !== '') {
    if (endpoint !== '')
      out.push({
        path: ['kafkaSaslOauthbearerTokenFile'],
        message:
          'and TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL are both set: the token comes from one of them, so unset the other',
      });
    const clientKeys = (
      [
        'kafkaSaslOauthbearerClientId',
        'kafkaSaslOauthbearerClientSecret',
        'kafkaSaslOauthbearerClientSecretFile',
        'kafkaSaslOauthbearerScope',
        'kafkaSaslOauthbearerAudience',
      ] as const
    ).filter((k) => c[k] !== '');
    if (endpoint === '' && clientKeys.length > 0)
      out.push({
        path: [clientKeys[0]!],
        message: `${names(clientKeys)} ${clientKeys.length > 1 ? 'are' : 'is'} for the token endpoint, but the token comes from TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: unset ${clientKeys.length > 1 ? 'them' : 'it'}, or set TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL instead of the file`,
      });
    return out;
  }
  if (endpoint === '') {
    out.push({
      path: ['kafkaSaslOauthbearerTokenEndpointUrl'],
      message:
        "is needed with TESSERA_KAFKA_SASL_MECHANISM=oauthbearer: set it to the identity provider's token endpoint (with TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID and _CLIENT_SECRET), or set TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE to a file holding the token",
    });
    return out;
  }
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:'))
    out.push({
      path: ['kafkaSaslOauthbearerTokenEndpointUrl'],
      message: `"${redactUrl(endpoint)}" is not an http(s) URL: set the token endpoint, e.g. https://keycloak.example.com/realms/kafka/protocol/openid-connect/token`,
    });
  else if (url.username !== '' || url.password !== '')
    // fetch refuses a URL with credentials, at every token request: the client's id and secret
    // go in their own settings, sent as the token request's basic auth.
    out.push({
      path: ['kafkaSaslOauthbearerTokenEndpointUrl'],
      message:
        'must not carry user:password@: set them as TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID and _CLIENT_SECRET',
    });
  else if (url.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname))
    out.push({
      path: ['kafkaSaslOauthbearerTokenEndpointUrl'],
      message: `would send the client secret in clear text to ${url.host}: use the endpoint's https:// URL (plain http only to a loopback address)`,
    });
  if (c.kafkaSaslOauthbearerClientId === '')
    out.push({
      path: ['kafkaSaslOauthbearerClientId'],
      message: 'is needed with TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: set the OAuth client id',
    });
  if (c.kafkaSaslOauthbearerClientSecret === '' && c.kafkaSaslOauthbearerClientSecretFile === '')
    out.push({
      path: ['kafkaSaslOauthbearerClientSecret'],
      message:
        'is needed with TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: set it, or TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE to a file holding it',
    });
  if (c.kafkaSaslOauthbearerClientSecret !== '' && c.kafkaSaslOauthbearerClientSecretFile !== '')
    out.push({
      path: ['kafkaSaslOauthbearerClientSecretFile'],
      message: 'and TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET are both set: set one of them',
    });
  return out;
}

const REGISTRY_LOGIN_KEYS = [
  'schemaRegistryUsername',
  'schemaRegistryPassword',
  'schemaRegistryPasswordFile',
  'schemaRegistryBearerTokenFile',
] as const;

/** Whether a registry URL carries a login (user:pass@); its value is never put in a message. */
function urlHasCredentials(value: string): boolean {
  try {
    const url = new URL(value);
    return url.username !== '' || url.password !== '';
  } catch {
    return false;
  }
}

/**
 * The schema registry takes its login one way: basic auth in the URL (user:pass@), basic auth from
 * the user name and one of the password and its file, or a bearer token file. Half a login, or
 * two, is refused at start rather than answered 401 at the first unseen schema id. The messages
 * are put on the login's variables, never on the URL (whose value would be shown).
 */
function registryLoginProblems(
  c: Record<(typeof REGISTRY_LOGIN_KEYS)[number] | 'schemaRegistryUrl', string>,
): { path: ConfigKey[]; message: string }[] {
  const out: { path: ConfigKey[]; message: string }[] = [];
  const set = REGISTRY_LOGIN_KEYS.filter((k) => c[k] !== '');
  if (set.length === 0) return out;
  const are = (keys: readonly ConfigKey[]) => (keys.length > 1 ? 'are' : 'is');
  if (c.schemaRegistryUrl === '') {
    out.push({
      path: [set[0]!],
      message: `${set.length > 1 ? `and ${names(set.slice(1))} are` : 'is'} set but TESSERA_SCHEMA_REGISTRY_URL is not: set the registry's URL, or unset ${set.length > 1 ? 'them' : 'it'}`,
    });
    return out;
  }
  if (urlHasCredentials(c.schemaRegistryUrl)) {
    out.push({
      path: [set[0]!],
      message: `${set.length > 1 ? `and ${names(set.slice(1))} are` : 'is'} set, and TESSERA_SCHEMA_REGISTRY_URL holds credentials (user:pass@) as well: give the login one way, so remove the credentials from the URL or unset ${set.length > 1 ? 'these' : 'it'}`,
    });
    return out;
  }
  const basicKeys = set.filter((k) => k !== 'schemaRegistryBearerTokenFile');
  if (c.schemaRegistryBearerTokenFile !== '' && basicKeys.length > 0) {
    out.push({
      path: ['schemaRegistryBearerTokenFile'],
      message: `and ${names(basicKeys)} ${are(basicKeys)} set: the registry takes one login, a bearer token or basic auth, so unset one of them`,
    });
    return out;
  }
  if (c.schemaRegistryPassword !== '' && c.schemaRegistryPasswordFile !== '')
    out.push({
      path: ['schemaRegistryPasswordFile'],
      message: 'and TESSERA_SCHEMA_REGISTRY_PASSWORD are both set: set one of them',
    });
  if (
    c.schemaRegistryUsername !== '' &&
    c.schemaRegistryPassword === '' &&
    c.schemaRegistryPasswordFile === ''
  )
    out.push({
      path: ['schemaRegistryPassword'],
      message:
        'is needed with TESSERA_SCHEMA_REGISTRY_USERNAME: set it, or TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE to a file holding it (Confluent Cloud: the Schema Registry API secret)',
    });
  if (
    c.schemaRegistryUsername === '' &&
    (c.schemaRegistryPassword !== '' || c.schemaRegistryPasswordFile !== '')
  )
    out.push({
      path: ['schemaRegistryUsername'],
      message: `is needed with ${c.schemaRegistryPassword !== '' ? 'TESSERA_SCHEMA_REGISTRY_PASSWORD' : 'TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE'}: set the basic-auth user name (Confluent Cloud: the Schema Registry API key)`,
    });
  return out;
}

export type Config = z.output<typeof configSchema>;
export type RawConfig = Partial<Record<ConfigKey, string>>;
