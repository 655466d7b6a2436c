// The TLS options of the configuration: the server's HTTPS certificate and key, Redis' CA and
// client certificate. Rules across options, the files read at start with errors naming the
// variable (never a key's content), and the ioredis options every service builds from them.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadServerTls } from '../../services/server/tls.ts';
import { describeRedisError, redisOptions } from '../../shared/config/clients.ts';
import { loadConfig, renderConfig } from '../../shared/config/index.ts';
import { isTesseraError } from '../../shared/errors.ts';
import { privateCa, selfSignedCert, signedCert } from '../support/tls-certs.ts';

const dir = mkdtempSync(join(tmpdir(), 'stls-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ca = privateCa(dir, 'ca');
const client = signedCert(dir, ca, 'client');
const other = selfSignedCert(dir, 'other');
const notPem = join(dir, 'not.pem');
writeFileSync(notPem, 'just text\n');

const load = (env: Record<string, string>) => loadConfig({ env, argv: [] });

/** The CONFIG_INVALID error `fn` throws, as its message. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(isTesseraError(error) && error.code === 'CONFIG_INVALID', String(error));
    return error.message;
  }
  assert.fail('expected CONFIG_INVALID');
}

/** Lines of a PEM file's body: none may appear in any message. */
const bodyLines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 20 && !l.startsWith('-----'));

describe('TLS configuration', () => {
  it('takes a certificate only with its key, naming the missing variable', () => {
    assert.match(
      refusal(() => load({ TESSERA_SERVER_TLS_CERT_FILE: client.cert })),
      /TESSERA_SERVER_TLS_KEY_FILE \(default\) = "": is needed with TESSERA_SERVER_TLS_CERT_FILE/,
    );
    assert.match(
      refusal(() => load({ TESSERA_SERVER_TLS_KEY_FILE: client.key })),
      /TESSERA_SERVER_TLS_CERT_FILE \(default\) = "": is needed with TESSERA_SERVER_TLS_KEY_FILE/,
    );
    assert.match(
      refusal(() => load({ TESSERA_REDIS_URL: 'rediss://r:6380', TESSERA_REDIS_TLS_CERT_FILE: client.cert })),
      /TESSERA_REDIS_TLS_KEY_FILE \(default\) = "": is needed with TESSERA_REDIS_TLS_CERT_FILE/,
    );
    const both = load({ TESSERA_SERVER_TLS_CERT_FILE: client.cert, TESSERA_SERVER_TLS_KEY_FILE: client.key });
    assert.deepEqual([both.serverTlsCertFile, both.serverTlsKeyFile], [client.cert, client.key]);
    // Paths are printed at start; contents never are.
    assert.ok(renderConfig(both).includes(`TESSERA_SERVER_TLS_KEY_FILE = ${client.key}`));
  });

  it('refuses Redis TLS files with a redis:// URL, where they would be ignored', () => {
    const message = refusal(() =>
      load({ TESSERA_REDIS_URL: 'redis://r:6379', TESSERA_REDIS_TLS_CA_FILE: ca.cert }),
    );
    assert.match(
      message,
      /TESSERA_REDIS_TLS_CA_FILE = ".*ca\.crt": is for a TLS connection: TESSERA_REDIS_URL must start with rediss:\/\//,
    );
  });

  it('gives ioredis the CA and the client certificate for rediss://, the system CAs without', () => {
    const options = redisOptions(
      load({
        TESSERA_REDIS_URL: 'rediss://127.0.0.1:6380/2',
        TESSERA_REDIS_TLS_CA_FILE: ca.cert,
        TESSERA_REDIS_TLS_CERT_FILE: client.cert,
        TESSERA_REDIS_TLS_KEY_FILE: client.key,
      }),
    );
    assert.deepEqual(options.tls, {
      ca: readFileSync(ca.cert),
      cert: readFileSync(client.cert),
      key: readFileSync(client.key),
    });
    assert.deepEqual([options.host, options.port, options.db], ['127.0.0.1', 6380, 2]);
    assert.deepEqual(redisOptions(load({ TESSERA_REDIS_URL: 'rediss://127.0.0.1:6380' })).tls, {});
    assert.equal(redisOptions(load({ TESSERA_REDIS_URL: 'redis://127.0.0.1:6379' })).tls, undefined);
  });

  it('refuses at start a Redis TLS file it cannot use, naming the variable and never the key', () => {
    const rediss = { TESSERA_REDIS_URL: 'rediss://127.0.0.1:6380' };
    const missing = join(dir, 'missing.crt');
    assert.match(
      refusal(() => redisOptions(load({ ...rediss, TESSERA_REDIS_TLS_CA_FILE: missing }))),
      new RegExp(`^TESSERA_REDIS_TLS_CA_FILE = ${missing}: cannot read it \\(ENOENT\\)`),
    );
    assert.match(
      refusal(() => redisOptions(load({ ...rediss, TESSERA_REDIS_TLS_CA_FILE: notPem }))),
      /^TESSERA_REDIS_TLS_CA_FILE = .*not\.pem: not a PEM file/,
    );
    // Another certificate's key: OpenSSL's reason, both variables, none of the key's lines.
    const mismatched = refusal(() =>
      redisOptions(
        load({ ...rediss, TESSERA_REDIS_TLS_CERT_FILE: client.cert, TESSERA_REDIS_TLS_KEY_FILE: other.key }),
      ),
    );
    assert.match(
      mismatched,
      /^TESSERA_REDIS_TLS_CERT_FILE, TESSERA_REDIS_TLS_KEY_FILE: not usable together \(.*key values mismatch/,
    );
    for (const line of bodyLines(other.key)) assert.ok(!mismatched.includes(line));
  });

  it("reads the server's certificate and key, refusing unusable ones with the variable's name", () => {
    assert.equal(loadServerTls({ serverTlsCertFile: '', serverTlsKeyFile: '' }), null);
    const tls = loadServerTls({ serverTlsCertFile: other.cert, serverTlsKeyFile: other.key });
    assert.deepEqual(tls, { cert: readFileSync(other.cert), key: readFileSync(other.key) });
    assert.match(
      refusal(() => loadServerTls({ serverTlsCertFile: other.cert, serverTlsKeyFile: join(dir, 'nokey') })),
      /^TESSERA_SERVER_TLS_KEY_FILE = .*nokey: cannot read it \(ENOENT\)/,
    );
    const swapped = refusal(() =>
      loadServerTls({ serverTlsCertFile: other.key, serverTlsKeyFile: other.cert }),
    );
    assert.match(swapped, /^TESSERA_SERVER_TLS_CERT_FILE, TESSERA_SERVER_TLS_KEY_FILE: not usable together/);
    for (const line of bodyLines(other.key)) assert.ok(!swapped.includes(line));
  });

  it('says what to set when Redis refuses the TLS handshake', () => {
    const tls = { redisUrl: 'rediss://r:6380', redisTlsCertFile: '' };
    const unverified = Object.assign(new Error('self-signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    assert.match(describeRedisError(unverified, tls), /set TESSERA_REDIS_TLS_CA_FILE/);
    const required = new Error('error:0A00045C:SSL routines::tlsv13 alert certificate required');
    const reset = Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
    for (const refused of [required, reset])
      assert.match(
        describeRedisError(refused, tls),
        /asks for client certificates \(tls-auth-clients\), set TESSERA_REDIS_TLS_CERT_FILE and TESSERA_REDIS_TLS_KEY_FILE/,
      );
    // A reset is only a hint where a client certificate could be what is missing.
    assert.equal(describeRedisError(reset, { ...tls, redisTlsCertFile: '/c.pem' }), 'write ECONNRESET');
    assert.equal(describeRedisError(reset, { ...tls, redisUrl: 'redis://r:6379' }), 'write ECONNRESET');
    const refusedTcp = new Error('connect ECONNREFUSED');
    assert.equal(describeRedisError(refusedTcp, tls), 'connect ECONNREFUSED');
  });
});
