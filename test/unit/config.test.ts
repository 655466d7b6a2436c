import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kafkaOptions, redisOptions, s3Options, topicName } from '../../shared/config/clients.ts';
import {
  CONFIG_KEYS,
  DEFAULTS,
  ENV_NAMES,
  flagName,
  loadConfig,
  parseFlags,
  redactConfig,
  renderConfig,
} from '../../shared/config/index.ts';
import { isTesseraError } from '../../shared/errors.ts';

function load(env: Record<string, string> = {}, argv: string[] = []) {
  return loadConfig({ env, argv });
}

function configError(fn: () => unknown): { message: string; invalid: unknown } {
  try {
    fn();
  } catch (e) {
    assert.ok(isTesseraError(e, 'CONFIG_INVALID'), `expected CONFIG_INVALID, got ${String(e)}`);
    assert.equal(e.retriable, false);
    return { message: e.message, invalid: e.context.invalid };
  }
  assert.fail('expected a CONFIG_INVALID error');
}

describe('config', () => {
  it('defaults to the local stack when nothing is set', () => {
    const c = load();
    assert.deepEqual(c.kafkaBrokers, ['127.0.0.1:9092']);
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
    assert.equal(c.s3Endpoint, 'http://127.0.0.1:8333');
    assert.equal(c.s3Region, 'us-east-1');
    assert.equal(c.s3Bucket, 'tessera-offline');
    assert.equal(c.s3ForcePathStyle, true);
    assert.equal(c.definitions, 'definitions/fraud.yaml');
    assert.equal(c.logLevel, 'info');
    assert.equal(c.httpPort, 8080);
    assert.equal(c.metricsPort, 9400);
    assert.equal(c.topicPrefix, '');
    assert.deepEqual(Object.keys(c).sort(), Object.keys(DEFAULTS).sort());
  });

  it('reads every option from its TESSERA_* variable', () => {
    const c = load({
      TESSERA_KAFKA_BROKERS: 'k1:9092, k2:9093',
      TESSERA_REDIS_URL: 'redis://:pw@r:6380/2',
      TESSERA_S3_ENDPOINT: 'http://localhost:9000',
      TESSERA_S3_REGION: 'eu-west-1',
      TESSERA_S3_ACCESS_KEY_ID: 'AK',
      TESSERA_S3_SECRET_ACCESS_KEY: 'SK',
      TESSERA_S3_BUCKET: 'my.bucket-1',
      TESSERA_S3_FORCE_PATH_STYLE: 'false',
      TESSERA_DEFINITIONS: 'defs/x.yaml',
      TESSERA_LOG_LEVEL: 'debug',
      TESSERA_HTTP_PORT: '18080',
      TESSERA_METRICS_PORT: '19400',
      TESSERA_TOPIC_PREFIX: 'dev.',
      TESSERA_AUTH_TOKEN: 'tok',
    });
    assert.deepEqual(c.kafkaBrokers, ['k1:9092', 'k2:9093']);
    assert.equal(c.redisUrl, 'redis://:pw@r:6380/2');
    assert.equal(c.s3Bucket, 'my.bucket-1');
    assert.equal(c.s3ForcePathStyle, false);
    assert.equal(c.httpPort, 18080);
    assert.equal(c.metricsPort, 19400);
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.topicPrefix, 'dev.');
    assert.equal(c.authToken, 'tok');
  });

  it('lets a flag override the environment variable', () => {
    const c = load({ TESSERA_KAFKA_BROKERS: 'env:1' }, ['--kafka-brokers=flag:2', '--http-port', '81']);
    assert.deepEqual(c.kafkaBrokers, ['flag:2']);
    assert.equal(c.httpPort, 81);
  });

  it('treats an empty variable as unset', () => {
    assert.equal(load({ TESSERA_HTTP_PORT: '' }).httpPort, 8080);
  });

  it('derives each flag from its variable name', () => {
    assert.equal(flagName('kafkaBrokers'), '--kafka-brokers');
    assert.equal(flagName('s3SecretAccessKey'), '--s3-secret-access-key');
    for (const key of CONFIG_KEYS) assert.match(ENV_NAMES[key], /^TESSERA_[A-Z0-9_]+$/);
  });

  it('names the variable when a port is not a number', () => {
    const e = configError(() => load({ TESSERA_HTTP_PORT: 'eighty' }));
    assert.match(e.message, /TESSERA_HTTP_PORT = "eighty": expected an integer port/);
    assert.deepEqual(e.invalid, ['TESSERA_HTTP_PORT']);
  });

  it('names the flag when the bad value came from a flag', () => {
    const e = configError(() => load({}, ['--metrics-port=70000']));
    assert.match(e.message, /--metrics-port = "70000"/);
  });

  it('reports every bad variable at once', () => {
    const e = configError(() =>
      load({ TESSERA_KAFKA_BROKERS: 'nohost', TESSERA_REDIS_URL: 'http://x', TESSERA_LOG_LEVEL: 'loud' }),
    );
    assert.deepEqual(e.invalid, ['TESSERA_KAFKA_BROKERS', 'TESSERA_REDIS_URL', 'TESSERA_LOG_LEVEL']);
    assert.match(e.message, /TESSERA_KAFKA_BROKERS = "nohost": expected host:port/);
    assert.match(
      e.message,
      /TESSERA_REDIS_URL = "http:\/\/x": expected a URL starting with redis:\/\/ or rediss:\/\//,
    );
  });

  it('checks the ingestor options: schema registry URL, commit interval, state cache bound', () => {
    const e = configError(() =>
      load({
        TESSERA_SCHEMA_REGISTRY_URL: 'ftp://registry',
        TESSERA_INGEST_COMMIT_INTERVAL_MS: '90000',
        TESSERA_STATE_CACHE_EVENTS: 'lots',
      }),
    );
    assert.deepEqual(e.invalid, [
      'TESSERA_SCHEMA_REGISTRY_URL',
      'TESSERA_INGEST_COMMIT_INTERVAL_MS',
      'TESSERA_STATE_CACHE_EVENTS',
    ]);
    assert.match(e.message, /expected a URL starting with http:\/\/ or https:\/\//);
    assert.match(e.message, /expected at most 60000 milliseconds/);
    assert.match(e.message, /expected a whole number of events \(0 = no cache\)/);
    const ok = load({
      TESSERA_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:8081',
      TESSERA_INGEST_COMMIT_INTERVAL_MS: '0',
    });
    assert.equal(ok.schemaRegistryUrl, 'http://127.0.0.1:8081');
    assert.equal(ok.ingestCommitIntervalMs, 0);
    assert.equal(load().stateCacheEvents, 1_000_000);
  });

  it('takes Avro feature updates only with a schema registry to register their schemas in', () => {
    assert.equal(load().updatesFormat, 'json');
    const e = configError(() => load({ TESSERA_UPDATES_FORMAT: 'avro' }));
    assert.deepEqual(e.invalid, ['TESSERA_UPDATES_FORMAT']);
    assert.match(e.message, /set TESSERA_SCHEMA_REGISTRY_URL/);
    assert.deepEqual(configError(() => load({ TESSERA_UPDATES_FORMAT: 'protobuf' })).invalid, [
      'TESSERA_UPDATES_FORMAT',
    ]);
    const ok = load({ TESSERA_UPDATES_FORMAT: 'avro', TESSERA_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:8081' });
    assert.equal(ok.updatesFormat, 'avro');
  });

  it('takes a Redis Cluster as one node over TCP, without a database number', () => {
    for (const url of ['unix:///tmp/redis.sock', 'redis://127.0.0.1:7001/2']) {
      const e = configError(() => load({ TESSERA_REDIS_CLUSTER: 'true', TESSERA_REDIS_URL: url }));
      assert.deepEqual(e.invalid, ['TESSERA_REDIS_URL'], url);
      assert.match(e.message, /one node of the cluster over TCP/);
    }
    for (const url of ['redis://127.0.0.1:7001', 'rediss://u:p@127.0.0.1:7001/0', 'redis://127.0.0.1:7001/'])
      assert.equal(load({ TESSERA_REDIS_CLUSTER: 'true', TESSERA_REDIS_URL: url }).redisCluster, true, url);
    assert.equal(
      load({ TESSERA_REDIS_URL: 'redis://127.0.0.1:6379/2' }).redisUrl,
      'redis://127.0.0.1:6379/2',
    );
  });

  it('rejects bucket names S3 would reject', () => {
    const e = configError(() => load({ TESSERA_S3_BUCKET: 'Upper_Case' }));
    assert.deepEqual(e.invalid, ['TESSERA_S3_BUCKET']);
  });

  it('rejects a topic prefix Kafka would reject', () => {
    const e = configError(() => load({ TESSERA_TOPIC_PREFIX: 'a/b' }));
    assert.deepEqual(e.invalid, ['TESSERA_TOPIC_PREFIX']);
  });

  it('takes an empty flag as unset, as an empty variable', () => {
    // --offline-store= took the S3 guess at the default endpoint that an empty variable avoids.
    assert.equal(
      load({ TESSERA_OFFLINE_STORE: '' }).offlineStore,
      load({}, ['--offline-store=']).offlineStore,
    );
  });

  it('takes the same port for the HTTP API and metrics: no process listens on both', () => {
    // The server serves /metrics on its API port; the ingestor and flusher open only the metrics
    // port. One configuration for every service (a ConfigMap) may set both to 8080.
    const c = load({ TESSERA_HTTP_PORT: '8080', TESSERA_METRICS_PORT: '8080' });
    assert.deepEqual([c.httpPort, c.metricsPort], [8080, 8080]);
  });

  it('keeps passwords out of what it prints, URLs that do not parse included', () => {
    const leaks: Record<string, string>[] = [
      { TESSERA_REDIS_URL: 'redis://:hunter2@redis.example:99999' },
      { TESSERA_SCHEMA_REGISTRY_URL: 'https://key:hunter2@sr.example:70000' },
      { TESSERA_S3_ENDPOINT: 'https://AKIA:hunter2@s3.example.com' },
      {
        TESSERA_KAFKA_SASL_MECHANISM: 'oauthbearer',
        TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'ftp://cid:hunter2@idp.example/token',
        TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID: 'cid',
        TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: 's',
      },
    ];
    for (const env of leaks) {
      const e = configError(() => load(env));
      assert.ok(!e.message.includes('hunter2'), e.message);
      assert.match(e.message, /<redacted>@/);
    }
    // A token endpoint with user:pass@ cannot work (fetch refuses it): refused, pointing at the settings.
    const oauth = configError(() =>
      load({
        TESSERA_KAFKA_SASL_MECHANISM: 'oauthbearer',
        TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'https://cid:hunter2@idp.example/token',
        TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID: 'cid',
        TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: 's',
      }),
    );
    assert.match(
      oauth.message,
      /must not carry user:password@: set them as TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID/,
    );
    assert.ok(!oauth.message.includes('hunter2'), oauth.message);
  });

  it('refuses Redis URLs it would read otherwise than written: a query, bad percent-encoding', () => {
    // ?db=2 was ignored (database 0 written); a % not followed by hex threw "URI malformed" later.
    assert.match(
      configError(() => load({ TESSERA_REDIS_URL: 'redis://127.0.0.1:6379?db=2' })).message,
      /expected no query: the database goes after the host/,
    );
    assert.match(
      configError(() => load({ TESSERA_REDIS_URL: 'redis://:p%ss@127.0.0.1:6379' })).message,
      /not valid percent-encoding \(write % as %25\)/,
    );
    assert.equal(
      load({ TESSERA_REDIS_URL: 'redis://:p%25ss@127.0.0.1:6379/2' }).redisUrl,
      'redis://:p%25ss@127.0.0.1:6379/2',
    );
  });

  it('refuses an IPv6 literal broker, which the Kafka client cannot reach, and unbrackets a Redis one', () => {
    assert.match(
      configError(() => load({ TESSERA_KAFKA_BROKERS: '[::1]:9092' })).message,
      /cannot reach an IPv6 literal/,
    );
    const options = redisOptions(load({ TESSERA_REDIS_URL: 'redis://[::1]:6379' }));
    assert.equal(options.host, '::1');
  });

  it('refuses the local-stack S3 secret against an https endpoint, without echoing it', () => {
    const e = configError(() => load({ TESSERA_S3_ENDPOINT: 'https://s3.eu-west-1.amazonaws.com' }));
    assert.match(e.message, /TESSERA_S3_SECRET_ACCESS_KEY \(default\): is the local-stack default/);
    assert.ok(!e.message.includes(DEFAULTS.s3SecretAccessKey));
    const ok = load({
      TESSERA_S3_ENDPOINT: 'https://s3.amazonaws.com',
      TESSERA_S3_SECRET_ACCESS_KEY: 'real',
    });
    assert.equal(ok.s3SecretAccessKey, 'real');
  });

  it('never puts a secret value in an error message', () => {
    const e = configError(() => load({ TESSERA_S3_SECRET_ACCESS_KEY: 'hunter2', TESSERA_S3_ENDPOINT: 'x' }));
    assert.ok(!e.message.includes('hunter2'));
  });

  it('rejects unknown flags and lists the known ones', () => {
    const e = configError(() => parseFlags(['--kafka-broker=x']));
    assert.match(e.message, /unknown flag --kafka-broker; known flags: .*--kafka-brokers/);
  });

  it('rejects a flag without a value', () => {
    const e = configError(() => parseFlags(['--http-port']));
    assert.match(e.message, /flag --http-port needs a value/);
  });

  it('ignores positional arguments', () => {
    assert.deepEqual(parseFlags(['serve', '--log-level=warn']), { logLevel: 'warn' });
  });

  it('renders without secrets or URL passwords', () => {
    const c = load({
      TESSERA_S3_SECRET_ACCESS_KEY: 'sk-123',
      TESSERA_AUTH_TOKEN: 'tok-456',
      TESSERA_REDIS_URL: 'redis://user:pw-789@r:6379',
    });
    const text = renderConfig(c);
    for (const secret of ['sk-123', 'tok-456', 'pw-789'])
      assert.ok(!text.includes(secret), `leaked ${secret}`);
    assert.match(text, /^TESSERA_S3_SECRET_ACCESS_KEY = <redacted>$/m);
    assert.match(text, /^TESSERA_REDIS_URL = redis:\/\/user:<redacted>@r:6379$/m);
    assert.match(text, /^TESSERA_KAFKA_BROKERS = 127\.0\.0\.1:9092$/m);
    assert.equal(text.split('\n').length, CONFIG_KEYS.length);
    assert.equal(redactConfig(load()).authToken, '');
  });

  it('builds client options from the config', () => {
    const c = load({ TESSERA_REDIS_URL: 'redis://u:p%40ss@h:6390/3', TESSERA_TOPIC_PREFIX: 'ci.' });
    const r = redisOptions(c);
    assert.equal(r.host, 'h');
    assert.equal(r.port, 6390);
    assert.equal(r.db, 3);
    assert.equal(r.password, 'p@ss');
    const s = s3Options(c);
    assert.equal(s.forcePathStyle, true);
    assert.equal(s.endpoint, 'http://127.0.0.1:8333');
    assert.deepEqual(kafkaOptions(c, 'x').brokers, ['127.0.0.1:9092']);
    assert.equal(topicName(c, 'transactions'), 'ci.transactions');
  });

  it('reads a Redis Unix socket URL, credentials in the query, and redacts its password', () => {
    const c = load({
      TESSERA_REDIS_URL: 'unix:///run/redis/redis%20x.sock?db=2&username=u&password=s%26cret',
    });
    const r = redisOptions(c);
    assert.equal(r.path, '/run/redis/redis x.sock');
    assert.equal(r.host, undefined);
    assert.equal(r.db, 2);
    assert.equal(r.username, 'u');
    assert.equal(r.password, 's&cret');
    assert.doesNotMatch(renderConfig(c), /cret/);
    assert.match(
      renderConfig(c),
      /^TESSERA_REDIS_URL = unix:\/\/\/run\/redis\/redis%20x\.sock\?db=2&username=u&password=<redacted>$/m,
    );
    const bare = redisOptions(load({ TESSERA_REDIS_URL: 'unix:///tmp/r.sock' }));
    assert.deepEqual([bare.path, bare.db, bare.password], ['/tmp/r.sock', 0, undefined]);
    const userinfo = redisOptions(load({ TESSERA_REDIS_URL: 'unix://:p%40ss@localhost/tmp/r.sock' }));
    assert.deepEqual([userinfo.path, userinfo.password, userinfo.host], ['/tmp/r.sock', 'p@ss', undefined]);
  });
});

describe('offline store default', () => {
  it('is the S3 bucket when an S3 endpoint is configured, else the embedded local directory', () => {
    assert.equal(loadConfig({ env: {}, argv: [] }).offlineStore, 'offline-store');
    assert.equal(
      loadConfig({ env: { TESSERA_S3_ENDPOINT: 'http://127.0.0.1:8333' }, argv: [] }).offlineStore,
      '',
    );
    assert.equal(loadConfig({ env: {}, argv: ['--s3-endpoint=http://127.0.0.1:9000'] }).offlineStore, '');
    assert.equal(loadConfig({ env: { TESSERA_OFFLINE_STORE: '/data/x' }, argv: [] }).offlineStore, '/data/x');
  });
});

describe('config values that used to pass', () => {
  it('refuses a Redis URL whose database is not a number or that has no host (ioredis took them as database 0 on localhost)', () => {
    for (const [url, pattern] of [
      [
        'redis://127.0.0.1:6379/abc',
        /TESSERA_REDIS_URL = "redis:\/\/127\.0\.0\.1:6379\/abc": expected a database number/,
      ],
      ['redis://', /TESSERA_REDIS_URL = "redis:\/\/": expected a host/],
      ['unix:///tmp/redis.sock?db=two', /expected db=<number> in the query, not db=two/],
      ['unix://', /expected unix:\/\/\/path\/to\/redis\.sock/],
    ] as const) {
      const { message, invalid } = configError(() => load({ TESSERA_REDIS_URL: url }));
      assert.match(message, pattern);
      assert.deepEqual(invalid, ['TESSERA_REDIS_URL']);
    }
    assert.match(
      configError(() => load({ TESSERA_REDIS_URL: 'redis://127.0.0.1:99999' })).message,
      /does not parse as a URL \(check the host and that the port is 1-65535\)/,
    );
    assert.equal(
      load({ TESSERA_REDIS_URL: 'redis://127.0.0.1:6379/2' }).redisUrl,
      'redis://127.0.0.1:6379/2',
    );
    assert.equal(load({ TESSERA_REDIS_URL: 'unix:///tmp/r.sock?db=3' }).redisUrl, 'unix:///tmp/r.sock?db=3');
  });

  it('refuses an offline store in a scheme it would have read as a local directory', () => {
    for (const uri of [
      'gs://tessera',
      'S3://tessera-offline',
      's3a://tessera-offline',
      'http://127.0.0.1:8333/b',
    ])
      assert.match(
        configError(() => load({ TESSERA_OFFLINE_STORE: uri })).message,
        /TESSERA_OFFLINE_STORE = .*: expected s3:\/\/<bucket>\[\/<prefix>\], file:\/\/\/<path> or a directory path; .* is not supported/,
      );
    assert.match(
      configError(() => load({ TESSERA_OFFLINE_STORE: 'file://data/offline' })).message,
      /expected file:\/\/\/<absolute path> \(three slashes\): data would be read as a host/,
    );
    for (const ok of [
      'file:///data/offline',
      'file://localhost/data/offline',
      'offline-store',
      '/data/x',
      's3://b-1/p',
    ])
      assert.equal(load({ TESSERA_OFFLINE_STORE: ok }).offlineStore, ok);
  });

  it('says what a boolean or an enumerated option takes, in words', () => {
    for (const value of ['yes', 'TRUE', 'on'])
      assert.match(
        configError(() => load({ TESSERA_DEV_NO_AUTH: value })).message,
        new RegExp(`TESSERA_DEV_NO_AUTH = "${value}": expected true or false \\(or 1 or 0\\)$`),
      );
    assert.match(
      configError(() => load({ TESSERA_LOG_LEVEL: 'verbose' })).message,
      /TESSERA_LOG_LEVEL = "verbose": expected one of fatal, error, warn, info, debug, trace, silent$/,
    );
    assert.match(
      configError(() => load({ TESSERA_INGEST_CLOCK: 'kafka' })).message,
      /TESSERA_INGEST_CLOCK = "kafka": expected one of record, wall, event$/,
    );
  });
});
