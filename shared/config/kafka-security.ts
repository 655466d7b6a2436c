// kafkajs' `ssl` and `sasl` options from the Kafka TLS and SASL settings: reads the PEM files
// (tls-files.ts, as for Redis; watched for renewals, cert-reload.ts) and the password file they
// name, so a wrong path or a wrong file is a start-up error that names its variable instead of a
// connection that fails five retries later.
// OAUTHBEARER tokens come from oauth-token.ts. Secrets never enter a message.
import type { KafkaConfig, Mechanism, SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import { TesseraError } from '../errors.ts';
import { watchTlsFiles } from './cert-reload.ts';
import { type ConfigKey, DEFAULTS, ENV_NAMES } from './defaults.ts';
import { oauthBearerMechanism, oauthBearerProvider, parseExtensions } from './oauth-token.ts';
import type { Config } from './schema.ts';
import { type PemSet, pemFiles, readConfiguredFile, readSecretFile } from './tls-files.ts';

/** The OAUTHBEARER options may be left out when the mechanism is another. */
type SecurityConfig = Pick<
  Config,
  | 'kafkaTls'
  | 'kafkaTlsCaFile'
  | 'kafkaTlsCertFile'
  | 'kafkaTlsKeyFile'
  | 'kafkaSaslMechanism'
  | 'kafkaSaslUsername'
  | 'kafkaSaslPassword'
  | 'kafkaSaslPasswordFile'
> &
  Partial<OauthConfig>;

type OauthConfig = Pick<
  Config,
  | 'kafkaSaslOauthbearerTokenEndpointUrl'
  | 'kafkaSaslOauthbearerClientId'
  | 'kafkaSaslOauthbearerClientSecret'
  | 'kafkaSaslOauthbearerClientSecretFile'
  | 'kafkaSaslOauthbearerScope'
  | 'kafkaSaslOauthbearerAudience'
  | 'kafkaSaslOauthbearerExtensions'
  | 'kafkaSaslOauthbearerTokenFile'
>;

/**
 * `ssl` and `sasl` for kafkajs (none of either when both are off). Throws CONFIG_INVALID. The
 * logger gets OAUTHBEARER's warnings (a token refresh that failed while the old token still works).
 */
export function kafkaSecurityOptions(
  config: SecurityConfig,
  logger?: Logger,
): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  return {
    ...(config.kafkaTls ? { ssl: tlsOptions(config) } : {}),
    ...(config.kafkaSaslMechanism === '' ? {} : { sasl: saslOptions(config, logger) }),
  };
}

/**
 * What to check when a login was refused, for log lines and the producer CLI's error: kafkajs'
 * own message names no setting.
 */
export function refusedLoginHint(message: string): string {
  if (/OAUTHBEARER/i.test(message))
    return 'the OAuth login was refused: check TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL, _CLIENT_ID and _CLIENT_SECRET (or _CLIENT_SECRET_FILE), or TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE; if the broker refused the token, its audience, issuer or signing key is not what the listener expects (its sasl.oauthbearer.expected.audience, expected.issuer, jwks.endpoint.url), or it has expired';
  return 'the broker refused the login: check TESSERA_KAFKA_SASL_USERNAME, TESSERA_KAFKA_SASL_PASSWORD (or TESSERA_KAFKA_SASL_PASSWORD_FILE) and TESSERA_KAFKA_SASL_MECHANISM (one the listener offers)';
}

/**
 * What to check when a Kafka connection's TLS handshake failed (for log lines and the producer
 * CLI's error), or undefined when `text` is no such failure.
 */
export function tlsFailureHint(text: string): string | undefined {
  if (/certificate|self[- ]signed|unable to verify|wrong version number/i.test(text))
    return 'TLS failed: check TESSERA_KAFKA_TLS_CA_FILE (the CA that signed the brokers\' certificates; unset: the system CAs) and the client certificate, if the listener requires one; "wrong version number": TESSERA_KAFKA_TLS is on but the listener is plaintext';
  return undefined;
}

/**
 * One object, renewed in place (cert-reload.ts): kafkajs hands its `ssl` object down to every
 * connection and copies it into `tls.connect`'s options at each connect (kafkajs 2,
 * src/network/socketFactory.js), so a connection opened after a renewal (a new broker, a
 * reconnect) shows the new certificate and trusts the new CA; open connections keep theirs.
 */
function tlsOptions(config: SecurityConfig): KafkaConfig['ssl'] {
  const files = pemFiles({
    ca: ['kafkaTlsCaFile', config.kafkaTlsCaFile],
    cert: ['kafkaTlsCertFile', config.kafkaTlsCertFile],
    key: ['kafkaTlsKeyFile', config.kafkaTlsKeyFile],
  });
  // No file: true, the system CAs (a managed Kafka's public certificates).
  if (!files.ca && !files.cert && !files.key) return true;
  const ssl: { ca?: string[]; cert?: string; key?: string } = {};
  // kafkajs passes no passphrase: loadPemSet refuses an encrypted key.
  const asStrings = (pems: PemSet) =>
    Object.assign(ssl, {
      ...(pems.ca ? { ca: [pems.ca.toString('utf8')] } : {}),
      ...(pems.cert && pems.key ? { cert: pems.cert.toString('utf8'), key: pems.key.toString('utf8') } : {}),
    });
  asStrings(watchTlsFiles('kafka_client', files, asStrings));
  return ssl;
}

function saslOptions(config: SecurityConfig, logger?: Logger): SASLOptions | Mechanism {
  if (config.kafkaSaslMechanism === 'oauthbearer') return oauthOptions(config, logger);
  const password =
    config.kafkaSaslPasswordFile === ''
      ? config.kafkaSaslPassword
      : passwordFile(config.kafkaSaslPasswordFile);
  const username = config.kafkaSaslUsername;
  switch (config.kafkaSaslMechanism) {
    case 'plain':
      return { mechanism: 'plain', username, password };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', username, password };
    default:
      // scram-sha-512 (oauthbearer returned above)
      return { mechanism: 'scram-sha-512', username, password };
  }
}

/**
 * The token endpoint's client secret, or the token file, is read here: a wrong path is a start-up
 * error. The token file is read again at every authentication (oauth-token.ts).
 */
function oauthOptions(partial: SecurityConfig, logger?: Logger): Mechanism {
  // Unset options are their defaults (empty).
  const config: OauthConfig = { ...DEFAULTS, ...partial };
  const extensions = parseExtensions(config.kafkaSaslOauthbearerExtensions);
  const options = { extensions, ...(logger ? { logger } : {}) };
  if (config.kafkaSaslOauthbearerTokenFile !== '') {
    const path = config.kafkaSaslOauthbearerTokenFile;
    if (readConfiguredFile('kafkaSaslOauthbearerTokenFile', path).toString('utf8').trim() === '')
      throw invalid('kafkaSaslOauthbearerTokenFile', `${path} is empty; it should hold the OAuth token`);
    return oauthBearerMechanism(oauthBearerProvider({ kind: 'file', path }, options));
  }
  const clientSecret =
    config.kafkaSaslOauthbearerClientSecretFile === ''
      ? config.kafkaSaslOauthbearerClientSecret
      : readSecretFile(
          'kafkaSaslOauthbearerClientSecretFile',
          config.kafkaSaslOauthbearerClientSecretFile,
          'the OAuth client secret',
        );
  const source = {
    kind: 'endpoint' as const,
    url: config.kafkaSaslOauthbearerTokenEndpointUrl,
    clientId: config.kafkaSaslOauthbearerClientId,
    clientSecret,
    scope: config.kafkaSaslOauthbearerScope,
    audience: config.kafkaSaslOauthbearerAudience,
  };
  return oauthBearerMechanism(oauthBearerProvider(source, options));
}

function passwordFile(path: string): string {
  return readSecretFile('kafkaSaslPasswordFile', path, 'the SASL password');
}

function invalid(key: ConfigKey, message: string): TesseraError {
  return new TesseraError('CONFIG_INVALID', `${ENV_NAMES[key]}: ${message}`, {
    context: { invalid: [ENV_NAMES[key]] },
  });
}
