// SASL/OAUTHBEARER settings: the start-up errors of inconsistent settings (each naming its
// variables), and the token provider against a token endpoint on loopback: what it sends, how long
// it keeps a token, and the errors of an IdP that refuses or is down. Secrets never in a message.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kafkaOptions } from '../../shared/config/clients.ts';
import { loadConfig, renderConfig } from '../../shared/config/index.ts';
import { oauthBearerProvider, type TokenSource } from '../../shared/config/oauth-token.ts';
import { isTesseraError } from '../../shared/errors.ts';

const SECRET = 'oauth-unit-secret-42';

function configError(env: Record<string, string>): { message: string; invalid: unknown } {
  try {
    kafkaOptions(loadConfig({ env, argv: [] }), 'oauth-unit');
  } catch (e) {
    assert.ok(isTesseraError(e, 'CONFIG_INVALID'), `expected CONFIG_INVALID, got ${String(e)}`);
    assert.ok(!e.message.includes(SECRET), `the secret is in the message: ${e.message}`);
    return { message: e.message, invalid: e.context.invalid };
  }
  assert.fail('expected a CONFIG_INVALID error');
}

const BASE = { TESSERA_KAFKA_TLS: 'true', TESSERA_KAFKA_SASL_MECHANISM: 'oauthbearer' };
const ENDPOINT = {
  ...BASE,
  TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'https://idp.example.com/token',
  TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID: 'tessera',
  TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: SECRET,
};

describe('kafka OAUTHBEARER config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'oauth-unit-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses oauthbearer without a token source, naming both ways to give one', () => {
    const { message, invalid } = configError(BASE);
    assert.deepEqual(invalid, ['TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL (default)']);
    assert.match(message, /or set TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE/);
  });

  it('refuses a token endpoint and a token file together', () => {
    // A readable token file: only the two sources together can be refused.
    writeFileSync(join(dir, 'token'), 'a.token\n');
    const { message, invalid } = configError({
      ...ENDPOINT,
      TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: join(dir, 'token'),
    });
    assert.deepEqual(invalid, ['TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE']);
    assert.match(message, /and TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL are both set/);
  });

  it('refuses a token endpoint without the client id or secret, or with both secret and secret file', () => {
    assert.deepEqual(
      configError({ ...BASE, TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'https://idp/t' }).invalid,
      [
        'TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID (default)',
        'TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET (default)',
      ],
    );
    assert.deepEqual(
      configError({ ...ENDPOINT, TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE: '/x' }).invalid,
      ['TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE'],
    );
  });

  it('refuses client settings beside a token file', () => {
    const { message, invalid } = configError({
      ...BASE,
      TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: '/x',
      TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID: 'tessera',
      TESSERA_KAFKA_SASL_OAUTHBEARER_SCOPE: 'kafka',
    });
    assert.deepEqual(invalid, ['TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID']);
    assert.match(message, /CLIENT_ID, TESSERA_KAFKA_SASL_OAUTHBEARER_SCOPE are for the token endpoint/);
  });

  it('refuses oauthbearer without TLS, and a client secret sent over plain http off loopback', () => {
    const { TESSERA_KAFKA_TLS: _tls, ...plaintext } = ENDPOINT;
    assert.deepEqual(configError(plaintext).invalid, ['TESSERA_KAFKA_SASL_MECHANISM']);
    const http = configError({
      ...ENDPOINT,
      TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'http://keycloak:8080/token',
    });
    assert.match(http.message, /clear text to keycloak:8080: use the endpoint's https:\/\/ URL/);
  });

  it('refuses OAUTHBEARER options without the mechanism, and user/password with it', () => {
    const { TESSERA_KAFKA_SASL_MECHANISM: _m, ...noMechanism } = ENDPOINT;
    assert.match(configError(noMechanism).message, /set TESSERA_KAFKA_SASL_MECHANISM=oauthbearer/);
    assert.match(
      configError({
        ...ENDPOINT,
        TESSERA_KAFKA_SASL_MECHANISM: 'scram-sha-512',
        TESSERA_KAFKA_SASL_USERNAME: 'u',
        TESSERA_KAFKA_SASL_PASSWORD: 'p',
      }).message,
      /are for TESSERA_KAFKA_SASL_MECHANISM=oauthbearer, not scram-sha-512/,
    );
    assert.deepEqual(configError({ ...ENDPOINT, TESSERA_KAFKA_SASL_USERNAME: 'u' }).invalid, [
      'TESSERA_KAFKA_SASL_USERNAME',
    ]);
  });

  it('refuses malformed SASL extensions', () => {
    const { message } = configError({
      ...ENDPOINT,
      TESSERA_KAFKA_SASL_OAUTHBEARER_EXTENSIONS: 'logicalCluster',
    });
    assert.match(message, /"logicalCluster" is no extension: expected key=value pairs/);
    configError({ ...ENDPOINT, TESSERA_KAFKA_SASL_OAUTHBEARER_EXTENSIONS: 'auth=x' });
  });

  it('refuses an empty client secret file or token file at start, naming it', () => {
    writeFileSync(join(dir, 'empty'), '\n');
    const { TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: _s, ...noSecret } = ENDPOINT;
    assert.deepEqual(
      configError({ ...noSecret, TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE: join(dir, 'empty') })
        .invalid,
      ['TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE'],
    );
    assert.deepEqual(
      configError({ ...BASE, TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: join(dir, 'missing') }).invalid,
      ['TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE'],
    );
  });

  it('never prints the client secret', () => {
    const text = renderConfig(loadConfig({ env: ENDPOINT, argv: [] }));
    assert.ok(!text.includes(SECRET));
    assert.match(text, /^TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET = <redacted>$/m);
  });
});

describe('kafka OAUTHBEARER token provider', () => {
  let server: Server;
  let url = '';
  const requests: { authorization: string; body: string }[] = [];
  /** What the endpoint answers next: a status and a JSON body. */
  let answer: { status: number; body: object } = { status: 200, body: {} };
  let issued = 0;

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d.toString();
      });
      req.on('end', () => {
        requests.push({ authorization: req.headers.authorization ?? '', body });
        issued += 1;
        const reply =
          answer.status === 200
            ? { access_token: `token-${issued}`, token_type: 'Bearer', ...answer.body }
            : answer.body;
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(reply));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  });
  after(() => server.close());

  const source = (over: Partial<Extract<TokenSource, { kind: 'endpoint' }>> = {}): TokenSource => ({
    kind: 'endpoint',
    url,
    clientId: 'tessera',
    clientSecret: SECRET,
    scope: 'kafka',
    audience: '',
    ...over,
  });

  it('posts the client credentials grant with the client in basic auth, the scope, and extensions beside the token', async () => {
    requests.length = 0;
    answer = { status: 200, body: { expires_in: 300 } };
    const provider = oauthBearerProvider(source(), { extensions: { logicalCluster: 'lkc-1' } });
    const token = await provider();
    assert.match(token.value, /^token-\d+$/);
    assert.deepEqual(token.extensions, { logicalCluster: 'lkc-1' });
    assert.equal(requests.length, 1);
    assert.equal(requests[0]!.authorization, `Basic ${Buffer.from(`tessera:${SECRET}`).toString('base64')}`);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(requests[0]!.body)), {
      grant_type: 'client_credentials',
      scope: 'kafka',
    });
  });

  it('keeps a token until 80% of its lifetime, then asks again; simultaneous callers share one request', async () => {
    requests.length = 0;
    answer = { status: 200, body: { expires_in: 100 } };
    let now = 1_000_000;
    const provider = oauthBearerProvider(source(), { now: () => now });
    const [a, b] = await Promise.all([provider(), provider()]);
    assert.equal(a.value, b.value);
    now += 79_000;
    assert.equal((await provider()).value, a.value);
    assert.equal(requests.length, 1);
    now += 2_000; // 81 s of 100
    assert.notEqual((await provider()).value, a.value);
    assert.equal(requests.length, 2);
  });

  it('a token of 15 s or less is asked for at every authentication', async () => {
    requests.length = 0;
    answer = { status: 200, body: { expires_in: 10 } };
    const provider = oauthBearerProvider(source());
    await provider();
    await provider();
    assert.equal(requests.length, 2);
  });

  it('a refused client is a non-retriable login error naming the client id and secret, without the secret', async () => {
    answer = { status: 401, body: { error: 'invalid_client', error_description: 'bad secret' } };
    const error = await oauthBearerProvider(source())().then(
      () => assert.fail('no error'),
      (e: Error & { retriable?: boolean }) => e,
    );
    assert.equal(error.name, 'KafkaJSSASLAuthenticationError');
    assert.equal(error.retriable, false);
    assert.match(
      error.message,
      /HTTP 401 invalid_client: bad secret\); check TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_ID and TESSERA_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET/,
    );
    assert.ok(!error.message.includes(SECRET));
  });

  it('a scope the IdP refuses names the scope option', async () => {
    answer = { status: 400, body: { error: 'invalid_scope' } };
    await assert.rejects(oauthBearerProvider(source())(), /check TESSERA_KAFKA_SASL_OAUTHBEARER_SCOPE/);
  });

  it('an IdP that is down or failing is a retriable error naming the endpoint', async () => {
    answer = { status: 503, body: {} };
    await assert.rejects(oauthBearerProvider(source())(), (e: unknown) => {
      assert.ok(isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable, String(e));
      return /token endpoint .* failed \(HTTP 503\)/.test(e.message);
    });
    // A port nothing listens on any more.
    const gone = createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    const port = (gone.address() as AddressInfo).port;
    await new Promise((r) => gone.close(r));
    await assert.rejects(
      oauthBearerProvider(source({ url: `http://127.0.0.1:${port}/token` }))(),
      (e: unknown) => {
        assert.ok(isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable, String(e));
        assert.match(
          e.message,
          /cannot reach the token endpoint http:\/\/127\.0\.0\.1:\d+\/token \(ECONNREFUSED\); check TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL/,
        );
        return true;
      },
    );
  });

  it('when a refresh fails while the current token still lives, that token is used and a warning logged', async () => {
    answer = { status: 200, body: { expires_in: 100 } };
    let now = 5_000_000;
    const warnings: string[] = [];
    const logger = { warn: (_o: object, msg: string) => warnings.push(msg) } as never;
    const provider = oauthBearerProvider(source(), { now: () => now, logger });
    const first = await provider();
    answer = { status: 503, body: {} };
    now += 90_000; // past the refresh point, 10 s before expiry
    assert.equal((await provider()).value, first.value);
    assert.match(warnings.join(), /could not refresh the Kafka OAuth token/);
    now += 11_000; // expired: the failure is the caller's
    await assert.rejects(provider(), /failed \(HTTP 503\)/);
  });

  it('a token file is read again at every authentication', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oauth-unit-file-'));
    try {
      const file = join(dir, 'token');
      writeFileSync(file, 'first.token\n');
      const provider = oauthBearerProvider({ kind: 'file', path: file });
      assert.equal((await provider()).value, 'first.token');
      writeFileSync(file, 'second.token');
      assert.equal((await provider()).value, 'second.token');
      writeFileSync(file, '');
      await assert.rejects(provider(), /token file TESSERA_KAFKA_SASL_OAUTHBEARER_TOKEN_FILE = .* is empty/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
