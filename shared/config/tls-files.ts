// PEM files named by the configuration (certificates, keys, CAs), read at start with errors that
// name the option, so a wrong mount fails the service at once instead of as a refused handshake;
// the same reading and checks serve a renewal (cert-reload.ts).
import { createHash } from 'node:crypto';
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
    throw readError(key, path, cause);
  }
}

/**
 * A secret an option's file holds (a password, a client secret: a mounted Secret), without the
 * trailing newline such a file ends in more often than not. CONFIG_INVALID, naming the variable
 * and the path, when it cannot be read or is empty; `what` says what it should hold.
 */
export function readSecretFile(key: ConfigKey, path: string, what: string): string {
  const secret = readConfiguredFile(key, path)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (secret === '')
    throw new TesseraError('CONFIG_INVALID', `${ENV_NAMES[key]}: ${path} is empty; it should hold ${what}`, {
      context: { invalid: [ENV_NAMES[key]] },
    });
  return secret;
}

function readError(key: ConfigKey, path: string, cause: unknown): TesseraError {
  const reason = (cause as NodeJS.ErrnoException).code ?? String(cause);
  return new TesseraError(
    'CONFIG_INVALID',
    `${ENV_NAMES[key]} = ${path}: cannot read it (${reason}); check the path, and that this process may read the file (a mounted Secret?)`,
    {
      cause,
      context: { invalid: [ENV_NAMES[key]] },
    },
  );
}

/**
 * A PEM file's bytes, or CONFIG_INVALID naming the variable and the path when it holds no PEM
 * block. A key's content never reaches a message: only its path does.
 */
function checkedPem(key: ConfigKey, path: string, bytes: Buffer): Buffer {
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

/** One use's TLS files (a CA, a certificate and its key), each named by its option; unset: left out. */
export interface PemFiles {
  ca?: { key: ConfigKey; path: string };
  cert?: { key: ConfigKey; path: string };
  key?: { key: ConfigKey; path: string };
}

/** The files' PEM bytes, checked together. */
export interface PemSet {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * The files of `files` that are set (empty paths left out), so a caller lists its three options
 * once: `pemFiles({ ca: ['redisTlsCaFile', config.redisTlsCaFile], ... })`.
 */
export function pemFiles(named: { [K in keyof PemFiles]: [ConfigKey, string] }): PemFiles {
  const files: PemFiles = {};
  for (const role of ['ca', 'cert', 'key'] as const) {
    const entry = named[role];
    if (entry && entry[1] !== '') files[role] = { key: entry[0], path: entry[1] };
  }
  return files;
}

/**
 * Reads the files once each and checks them as Node would at a handshake: each PEM, the key not
 * encrypted (no service passes a passphrase), certificate and key belonging together, the CA a
 * certificate. `fingerprint` is a digest of the bytes read (unreadable files included), so a
 * later read tells whether anything changed. Throws CONFIG_INVALID naming the variables.
 */
export function loadPemSet(
  files: PemFiles,
  /** Told the digest of the bytes read, before they are checked (and maybe refused). */
  onRead?: (fingerprint: string) => void,
): { pems: PemSet; fingerprint: string } {
  const { fingerprint, read } = readPemFiles(files);
  onRead?.(fingerprint);
  const pems: PemSet = {};
  for (const role of ['ca', 'cert', 'key'] as const) {
    const file = files[role];
    if (!file) continue;
    const got = read.get(role)!;
    if (got.error !== undefined) throw readError(file.key, file.path, got.error);
    pems[role] = checkedPem(file.key, file.path, got.bytes!);
  }
  if (files.key && pems.key?.includes('ENCRYPTED'))
    throw new TesseraError(
      'CONFIG_INVALID',
      `${ENV_NAMES[files.key.key]}: ${files.key.path} holds an encrypted private key; give it unencrypted (mounted from a Secret), e.g. \`openssl pkey -in key.pem -out plain-key.pem\``,
      { context: { invalid: [ENV_NAMES[files.key.key]] } },
    );
  const keys = (['ca', 'cert', 'key'] as const).flatMap((role) => (files[role] ? [files[role].key] : []));
  checkedTlsOptions(pems, keys);
  return { pems, fingerprint };
}

/**
 * The digest `loadPemSet` gives, without the checks: the cheap part of a look for a renewal
 * (a few KiB read and hashed per use).
 */
export function pemFingerprint(files: PemFiles): string {
  return readPemFiles(files).fingerprint;
}

type ReadResult = { bytes?: Buffer; error?: unknown };

function readPemFiles(files: PemFiles): { fingerprint: string; read: Map<keyof PemFiles, ReadResult> } {
  const hash = createHash('sha256');
  const read = new Map<keyof PemFiles, ReadResult>();
  for (const role of ['ca', 'cert', 'key'] as const) {
    const file = files[role];
    if (!file) continue;
    hash.update(`${role}\0${file.path}\0`);
    try {
      const bytes = readFileSync(file.path);
      read.set(role, { bytes });
      hash.update(bytes);
    } catch (error) {
      read.set(role, { error });
      hash.update(`unreadable: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    hash.update('\0');
  }
  return { fingerprint: hash.digest('hex'), read };
}
