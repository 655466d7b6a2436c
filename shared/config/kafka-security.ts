// kafkajs' `ssl` and `sasl` options from the Kafka TLS and SASL settings: reads the PEM files
// (tls-files.ts, as for Redis) and the password file they name, so a wrong path or a wrong file is
// a start-up error that names its variable instead of a connection that fails five retries later.
// Secrets never enter a message.
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import { TesseraError } from '../errors.ts';
import { type ConfigKey, ENV_NAMES } from './defaults.ts';
import type { Config } from './schema.ts';
import { checkedTlsOptions, readConfiguredFile, readPemFile } from './tls-files.ts';

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

function tlsOptions(config: SecurityConfig): KafkaConfig['ssl'] {
  const files = (['kafkaTlsCaFile', 'kafkaTlsCertFile', 'kafkaTlsKeyFile'] as const).filter(
    (k) => config[k] !== '',
  );
  // No file: true, the system CAs (a managed Kafka's public certificates).
  if (files.length === 0) return true;
  const read = (key: (typeof files)[number]) =>
    config[key] === '' ? undefined : readPemFile(key, config[key]).toString('utf8');
  const ca = read('kafkaTlsCaFile');
  const cert = read('kafkaTlsCertFile');
  const key = read('kafkaTlsKeyFile');
  // kafkajs passes no passphrase: an encrypted key would fail every handshake.
  if (key?.includes('ENCRYPTED'))
    throw invalid(
      'kafkaTlsKeyFile',
      `${config.kafkaTlsKeyFile} holds an encrypted private key; give it unencrypted (mounted from a Secret), e.g. \`openssl pkey -in key.pem -out plain-key.pem\``,
    );
  return checkedTlsOptions({ ...(ca ? { ca: [ca] } : {}), ...(cert && key ? { cert, key } : {}) }, files);
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
