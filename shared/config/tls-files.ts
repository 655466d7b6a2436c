// PEM files named by the configuration (certificates, keys, CAs), read at start with errors that
// name the option, so a wrong mount fails the service at once instead of as a refused handshake.
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { TesseraError } from '../errors.ts';
import { type ConfigKey, ENV_NAMES } from './defaults.ts';

/**
 * A file an option names (a PEM file, a password file): its bytes, or CONFIG_INVALID naming the
 * variable and the path, never the content.
 */
export function readConfiguredFile(key: ConfigKey, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code ?? String(cause);
    throw new TesseraError(
      'CONFIG_INVALID',
      `${ENV_NAMES[key]} = ${path}: cannot read it (${reason}); check the path, and that this process may read the file (a mounted Secret?)`,
      {
        cause,
        context: { invalid: [ENV_NAMES[key]] },
      },
    );
  }
}

/**
 * The file's bytes. Throws CONFIG_INVALID naming the variable and the path when the file cannot be
 * read or holds no PEM block. A key's content never reaches a message: only its path does.
 */
export function readPemFile(key: ConfigKey, path: string): Buffer {
  const bytes = readConfiguredFile(key, path);
  if (!bytes.includes('-----BEGIN '))
    throw new TesseraError(
      'CONFIG_INVALID',
      `${ENV_NAMES[key]} = ${path}: not a PEM file (no "-----BEGIN" line); convert it, e.g. \`openssl x509 -inform der -in <file> -out <file>.pem\``,
      { context: { invalid: [ENV_NAMES[key]] } },
    );
  return bytes;
}

/**
 * `options` once Node accepts them: what it would refuse at the first connection or listen (a key
 * that is not the certificate's, a CA file that holds a key) is refused now, naming the variables
 * `keys` (OpenSSL's reason holds no key material).
 */
export function checkedTlsOptions<T extends SecureContextOptions>(options: T, keys: readonly ConfigKey[]): T {
  try {
    createSecureContext(options);
  } catch (error) {
    const names = keys.map((k) => ENV_NAMES[k]);
    throw new TesseraError(
      'CONFIG_INVALID',
      `${names.join(', ')}: not usable together (${(error as Error).message}); check that the key belongs to the certificate and that each file holds what its variable says`,
      { context: { invalid: names } },
    );
  }
  return options;
}
