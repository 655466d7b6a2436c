// Kafka TLS and SASL options: what kafkajs is given, and the start-up errors of half-configured or
// unreadable settings, each naming its variable and never the secret.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { logLevel } from 'kafkajs';
import { pino } from 'pino';
import { kafkaLogCreator, kafkaOptions } from '../../shared/config/clients.ts';
import { loadConfig, redactConfig, renderConfig } from '../../shared/config/index.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { type CertFiles, selfSignedCert } from '../support/tls-certs.ts';

const SECRET = 'ksec-unit-password-42';

function configError(fn: () => unknown): { message: string; invalid: unknown } {
  try {
    fn();
  } catch (e) {
    assert.ok(isTesseraError(e, 'CONFIG_INVALID'), `expected CONFIG_INVALID, got ${String(e)}`);
    assert.ok(!e.message.includes(SECRET), `the password is in the message: ${e.message}`);
    return { message: e.message, invalid: e.context.invalid };
  }
  assert.fail('expected a CONFIG_INVALID error');
}

const options = (env: Record<string, string>) => kafkaOptions(loadConfig({ env, argv: [] }), 'ksec-unit');

describe('kafka security config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ksec-unit-'));
  const file = (name: string) => join(dir, name);
  /** Two self-signed certificates: each its own CA, neither the other's. */
  let client: CertFiles;
  let other: CertFiles;

  before(() => {
    client = selfSignedCert(dir, 'ksec-client');
    other = selfSignedCert(dir, 'ksec-other');
    writeFileSync(file('password'), `${SECRET}\n`);
    writeFileSync(file('empty'), '\n');
    writeFileSync(file('not-pem'), 'just some bytes\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives kafkajs neither ssl nor sasl by default', () => {
    const o = options({});
    assert.equal(o.ssl, undefined);
    assert.equal(o.sasl, undefined);
  });

  it('uses the system CAs when TLS is on without a CA file', () => {
    assert.equal(options({ TESSERA_KAFKA_TLS: 'true' }).ssl, true);
  });

  it('reads the CA, client certificate and key files into the TLS options', () => {
    const o = options({
      TESSERA_KAFKA_TLS: 'true',
      TESSERA_KAFKA_TLS_CA_FILE: other.cert,
      TESSERA_KAFKA_TLS_CERT_FILE: client.cert,
      TESSERA_KAFKA_TLS_KEY_FILE: client.key,
    });
    assert.ok(typeof o.ssl === 'object');
    assert.match(String(o.ssl.ca), /BEGIN CERTIFICATE/);
    assert.match(String(o.ssl.cert), /BEGIN CERTIFICATE/);
    assert.match(String(o.ssl.key), /BEGIN PRIVATE KEY/);
  });

  it('passes the SASL mechanism, user and password, in either spelling of the mechanism', () => {
    assert.deepEqual(
      options({
        TESSERA_KAFKA_TLS: 'true',
        TESSERA_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
        TESSERA_KAFKA_SASL_USERNAME: 'ksec',
        TESSERA_KAFKA_SASL_PASSWORD: SECRET,
      }).sasl,
      { mechanism: 'scram-sha-512', username: 'ksec', password: SECRET },
    );
  });

  it('reads the password from its file without the trailing newline', () => {
    assert.deepEqual(
      options({
        TESSERA_KAFKA_SASL_MECHANISM: 'scram-sha-256',
        TESSERA_KAFKA_SASL_USERNAME: 'ksec',
        TESSERA_KAFKA_SASL_PASSWORD_FILE: file('password'),
      }).sasl,
      { mechanism: 'scram-sha-256', username: 'ksec', password: SECRET },
    );
  });

  it('never prints the SASL password', () => {
    const config = loadConfig({
      env: {
        TESSERA_KAFKA_TLS: 'true',
        TESSERA_KAFKA_SASL_MECHANISM: 'plain',
        TESSERA_KAFKA_SASL_USERNAME: 'ksec',
        TESSERA_KAFKA_SASL_PASSWORD: SECRET,
      },
      argv: [],
    });
    assert.ok(!renderConfig(config).includes(SECRET));
    assert.ok(!JSON.stringify(redactConfig(config)).includes(SECRET));
    assert.match(renderConfig(config), /^TESSERA_KAFKA_SASL_PASSWORD = <redacted>$/m);
  });

  it('refuses an unknown mechanism, listing the known ones', () => {
    const { message } = configError(() => options({ TESSERA_KAFKA_SASL_MECHANISM: 'gssapi' }));
    assert.match(
      message,
      /TESSERA_KAFKA_SASL_MECHANISM = "gssapi": expected plain, scram-sha-256, scram-sha-512 or oauthbearer/,
    );
  });

  it('refuses a mechanism without a user name or a password', () => {
    const { message, invalid } = configError(() =>
      options({ TESSERA_KAFKA_SASL_MECHANISM: 'scram-sha-256' }),
    );
    assert.deepEqual(invalid, [
      'TESSERA_KAFKA_SASL_USERNAME (default)',
      'TESSERA_KAFKA_SASL_PASSWORD (default)',
    ]);
    assert.match(
      message,
      /TESSERA_KAFKA_SASL_USERNAME.*is needed with TESSERA_KAFKA_SASL_MECHANISM=scram-sha-256/,
    );
    assert.match(message, /TESSERA_KAFKA_SASL_PASSWORD.*set it, or TESSERA_KAFKA_SASL_PASSWORD_FILE/);
  });

  it('refuses credentials without a mechanism', () => {
    const { message } = configError(() =>
      options({ TESSERA_KAFKA_SASL_USERNAME: 'ksec', TESSERA_KAFKA_SASL_PASSWORD: SECRET }),
    );
    assert.match(message, /no mechanism: set TESSERA_KAFKA_SASL_MECHANISM/);
  });

  it('refuses both a password and a password file', () => {
    const { message } = configError(() =>
      options({
        TESSERA_KAFKA_SASL_MECHANISM: 'scram-sha-256',
        TESSERA_KAFKA_SASL_USERNAME: 'ksec',
        TESSERA_KAFKA_SASL_PASSWORD: SECRET,
        TESSERA_KAFKA_SASL_PASSWORD_FILE: file('password'),
      }),
    );
    assert.match(
      message,
      /TESSERA_KAFKA_SASL_PASSWORD_FILE = ".*": and TESSERA_KAFKA_SASL_PASSWORD are both set/,
    );
  });

  it('refuses PLAIN over a plaintext connection', () => {
    const { message } = configError(() =>
      options({
        TESSERA_KAFKA_SASL_MECHANISM: 'plain',
        TESSERA_KAFKA_SASL_USERNAME: 'ksec',
        TESSERA_KAFKA_SASL_PASSWORD: SECRET,
      }),
    );
    assert.match(message, /plain sends the password in clear text: set TESSERA_KAFKA_TLS=true/);
  });

  it('refuses TLS files while TLS is off', () => {
    const { message } = configError(() => options({ TESSERA_KAFKA_TLS_CA_FILE: other.cert }));
    assert.match(
      message,
      /TESSERA_KAFKA_TLS \(default\) = false: is off, but TLS files are set \(TESSERA_KAFKA_TLS_CA_FILE\)/,
    );
  });

  it('refuses a client certificate without its key, and a key without its certificate', () => {
    assert.match(
      configError(() => options({ TESSERA_KAFKA_TLS: '1', TESSERA_KAFKA_TLS_CERT_FILE: client.cert }))
        .message,
      /TESSERA_KAFKA_TLS_KEY_FILE.*is needed with TESSERA_KAFKA_TLS_CERT_FILE/,
    );
    assert.match(
      configError(() => options({ TESSERA_KAFKA_TLS: '1', TESSERA_KAFKA_TLS_KEY_FILE: client.key })).message,
      /TESSERA_KAFKA_TLS_CERT_FILE.*is needed with TESSERA_KAFKA_TLS_KEY_FILE/,
    );
  });

  it('names the variable of an unreadable or non-PEM CA file and says what to do', () => {
    const missing = configError(() =>
      options({ TESSERA_KAFKA_TLS: 'true', TESSERA_KAFKA_TLS_CA_FILE: file('nope.pem') }),
    );
    assert.deepEqual(missing.invalid, ['TESSERA_KAFKA_TLS_CA_FILE']);
    assert.match(
      missing.message,
      /TESSERA_KAFKA_TLS_CA_FILE = .*nope\.pem: cannot read it \(ENOENT\); check the path/,
    );
    const notPem = configError(() =>
      options({ TESSERA_KAFKA_TLS: 'true', TESSERA_KAFKA_TLS_CA_FILE: file('not-pem') }),
    );
    assert.match(notPem.message, /TESSERA_KAFKA_TLS_CA_FILE = .*not-pem: not a PEM file.*convert it/);
  });

  it('refuses a key that does not belong to the certificate', () => {
    const { message } = configError(() =>
      options({
        TESSERA_KAFKA_TLS: 'true',
        TESSERA_KAFKA_TLS_CERT_FILE: client.cert,
        TESSERA_KAFKA_TLS_KEY_FILE: other.key,
      }),
    );
    assert.match(message, /TESSERA_KAFKA_TLS_CERT_FILE, TESSERA_KAFKA_TLS_KEY_FILE: not usable together/);
  });

  it("adds to kafkajs' refused-login and certificate errors the settings that decide them", () => {
    const lines: Record<string, unknown>[] = [];
    const log = kafkaLogCreator(
      pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) }),
    );
    const entry = (namespace: string, message: string, error?: string) => ({
      namespace,
      level: logLevel.ERROR,
      label: 'ERROR',
      log: { timestamp: '', logger: 'kafkajs', message, ...(error ? { error } : {}) },
    });
    log(
      entry(
        'SaslAuthenticator-SCRAM-SHA-512',
        'SASL SCRAM SHA512 authentication failed: invalid credentials',
      ),
    );
    log(
      entry(
        'Connection',
        'Connection error: self-signed certificate in certificate chain',
        'self-signed certificate',
      ),
    );
    log(entry('Connection', 'Response Metadata(key: 3, version: 6)', 'Topic with this name already exists'));
    assert.match(String(lines[0]!.hint), /TESSERA_KAFKA_SASL_USERNAME, TESSERA_KAFKA_SASL_PASSWORD/);
    assert.match(String(lines[1]!.hint), /TESSERA_KAFKA_TLS_CA_FILE/);
    assert.equal(lines[2]!.hint, undefined);
  });

  it('refuses an empty password file', () => {
    const { message } = configError(() =>
      options({
        TESSERA_KAFKA_SASL_MECHANISM: 'scram-sha-512',
        TESSERA_KAFKA_SASL_USERNAME: 'ksec',
        TESSERA_KAFKA_SASL_PASSWORD_FILE: file('empty'),
      }),
    );
    assert.match(message, /TESSERA_KAFKA_SASL_PASSWORD_FILE: .*empty is empty/);
  });
});
