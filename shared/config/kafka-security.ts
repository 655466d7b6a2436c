// kafkajs' `ssl` and `sasl` options from the Kafka TLS and SASL settings: reads the PEM files
// (tls-files.ts, as for Redis; watched for renewals, cert-reload.ts) and the password file they
// name, so a wrong path or a wrong file is a start-up error that names its variable instead of a
// connection that fails five retries later.
// Secrets never enter a message.
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import { TesseraError } from '../errors.ts';
import { watchTlsFiles } from './cert-reload.ts';
import { type ConfigKey, ENV_NAMES } from './defaults.ts';
import type { Config } from './schema.ts';
import { type PemSet, pemFiles, readConfiguredFile } from './tls-files.ts';

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
>;

/** `ssl` and `sasl` for kafkajs (none of either when both are off). Throws CONFIG_INVALID. */
export function kafkaSecurityOptions(config: SecurityConfig): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  return {
    ...(config.kafkaTls ? { ssl: tlsOptions(config) } : {}),
    ...(config.kafkaSaslMechanism === '' ? {} : { sasl: saslOptions(config) }),
  };
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

function saslOptions(config: SecurityConfig): SASLOptions {
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
      return { mechanism: 'scram-sha-512', username, password };
  }
}

/** A Secret mounted as a file ends in a newline more often than not; the password does not. */
function passwordFile(path: string): string {
  const password = readConfiguredFile('kafkaSaslPasswordFile', path)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (password === '')
    throw invalid('kafkaSaslPasswordFile', `${path} is empty; it should hold the SASL password`);
  return password;
}

function invalid(key: ConfigKey, message: string): TesseraError {
  return new TesseraError('CONFIG_INVALID', `${ENV_NAMES[key]}: ${message}`, {
    context: { invalid: [ENV_NAMES[key]] },
  });
}
