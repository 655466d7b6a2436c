// The schema registry client against a loopback HTTP server that requires a login, as Confluent
// Cloud's registry does: basic auth from the URL's user:pass@ or from TESSERA_SCHEMA_REGISTRY_USERNAME
// with _PASSWORD or _PASSWORD_FILE, or a bearer token from _BEARER_TOKEN_FILE; the secrets never
// appear in a message, a log or the printed configuration.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Message, Producer } from 'kafkajs';
import { registerUpdateSchemas } from '../../../services/ingestor/push-avro.ts';
import { Pusher } from '../../../services/server/push.ts';
import { createDecoder, createEncoder } from '../../../shared/codecs/index.ts';
import { latestSchema, registerSchema, registryLookup } from '../../../shared/codecs/schema-registry.ts';
import { decoderOptions, schemaRegistryEndpoint } from '../../../shared/config/clients.ts';
import { loadConfig, redactConfig, renderConfig } from '../../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { KNOWN_RECORD, TRANSACTION_SCHEMA, transactions } from './support.ts';

const USER = 'KSEC7API';
// A Confluent Cloud secret may hold `/` and `+`: percent-encoded in the URL.
const SECRET = 'ksec/s3cr+t';
const SCHEMA = '{"type":"record","name":"T","fields":[]}';

/** A Confluent-API registry that answers only `Basic USER:SECRET` or `Bearer <token>`. */
async function startLoginRegistry(schema: string): Promise<{
  port: number;
  /** The Authorization header of every request, in order. */
  seen: (string | undefined)[];
  /** The bearer token accepted now (undefined: none). */
  token: { value?: string };
  server: Server;
}> {
  const seen: (string | undefined)[] = [];
  const token: { value?: string } = {};
  const server = createServer((req, res) => {
    seen.push(req.headers.authorization);
    const basic = `Basic ${Buffer.from(`${USER}:${SECRET}`).toString('base64')}`;
    const accepted = [basic, ...(token.value === undefined ? [] : [`Bearer ${token.value}`])];
    if (!accepted.includes(req.headers.authorization ?? '')) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error_code":401,"message":"Unauthorized"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
    if (req.method === 'POST') res.end('{"id":7}');
    else if (req.url?.endsWith('/versions/latest')) res.end(JSON.stringify({ id: 7, schema }));
    else res.end(JSON.stringify({ schema }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, seen, token, server };
}

describe('schema registry client with basic auth', () => {
  let server: Server;
  let port: number;
  let seen: (string | undefined)[] = [];

  before(async () => {
    ({ server, port, seen } = await startLoginRegistry(SCHEMA));
  });
  after(() => server.close());

  const url = (secret: string) => `http://${USER}:${encodeURIComponent(secret)}@127.0.0.1:${port}/`;

  it('sends the URL credentials as basic auth on lookups, registrations and latest-schema reads', async () => {
    seen.length = 0;
    assert.equal(await registryLookup(url(SECRET))(7), SCHEMA);
    assert.equal(await registerSchema(url(SECRET), 'ksec-subject', SCHEMA), 7);
    assert.deepEqual(await latestSchema(url(SECRET), 'ksec-subject'), { id: 7, schema: SCHEMA });
    assert.equal(seen.length, 3);
  });

  it('answers wrong credentials with an error that names the variable and not the secret', async () => {
    const wrong = 'ksec-wrong-secret';
    for (const call of [
      () => registryLookup(url(wrong))(7),
      () => registerSchema(url(wrong), 'ksec-subject', SCHEMA),
      () => latestSchema(url(wrong), 'ksec-subject'),
    ]) {
      const error = await call().then(
        () => assert.fail('expected a refusal'),
        (e: unknown) => e,
      );
      assert.ok(isTesseraError(error), String(error));
      assert.match(error.message, /HTTP 401 \(not authorized\).*TESSERA_SCHEMA_REGISTRY_URL/);
      const shown = `${error.message} ${JSON.stringify(error.context)}`;
      assert.ok(!shown.includes(wrong) && !shown.includes(USER), shown);
    }
  });

  it('keeps the secret out of the error when the registry is unreachable', async () => {
    const down = `http://${USER}:${encodeURIComponent(SECRET)}@127.0.0.1:1`;
    const error = await registryLookup(
      down,
      500,
    )(7).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e,
    );
    assert.ok(isTesseraError(error, 'SERVICE_UNAVAILABLE') && error.retriable, String(error));
    const shown = `${error.message} ${JSON.stringify(error.context)} ${String(error.cause)}`;
    assert.ok(!shown.includes('s3cr') && !shown.includes(USER), shown);
  });

  it('prints the configured registry URL without its password', () => {
    const config = loadConfig({ env: { TESSERA_SCHEMA_REGISTRY_URL: url(SECRET) }, argv: [] });
    assert.ok(!JSON.stringify(redactConfig(config)).includes('s3cr'));
    assert.ok(!renderConfig(config).includes('s3cr'));
    assert.match(
      renderConfig(config),
      /TESSERA_SCHEMA_REGISTRY_URL = http:\/\/KSEC7API:(<|%3C)redacted(>|%3E)@127\.0\.0\.1/,
    );
  });
});

describe('schema registry login from its own settings (TESSERA_SCHEMA_REGISTRY_USERNAME, _PASSWORD, _PASSWORD_FILE, _BEARER_TOKEN_FILE)', () => {
  let server: Server;
  let port: number;
  let seen: (string | undefined)[] = [];
  let token: { value?: string };
  let dir: string;
  const basicHeader = `Basic ${Buffer.from(`${USER}:${SECRET}`).toString('base64')}`;

  before(async () => {
    ({ server, port, seen, token } = await startLoginRegistry(TRANSACTION_SCHEMA));
    dir = mkdtempSync(join(tmpdir(), 'tessera-registry-login-'));
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const registryUrl = () => `http://127.0.0.1:${port}`;
  const configWith = (env: Record<string, string>) =>
    loadConfig({ env: { TESSERA_SCHEMA_REGISTRY_URL: registryUrl(), ...env }, argv: [] });

  /** Every way a service talks to the registry, with the endpoint built from `config`. */
  async function everyCall(config: ReturnType<typeof loadConfig>) {
    const endpoint = schemaRegistryEndpoint(config)!;
    assert.equal(await registryLookup(endpoint)(7), TRANSACTION_SCHEMA);
    assert.equal(await registerSchema(endpoint, 'ksec-subject', TRANSACTION_SCHEMA), 7);
    assert.deepEqual(await latestSchema(endpoint, 'ksec-subject'), { id: 7, schema: TRANSACTION_SCHEMA });
  }

  /** The error each call rejects with (each must reject). */
  async function refusals(config: ReturnType<typeof loadConfig>): Promise<Error[]> {
    const endpoint = schemaRegistryEndpoint(config)!;
    const out: Error[] = [];
    for (const call of [
      () => registryLookup(endpoint)(7),
      () => registerSchema(endpoint, 'ksec-subject', TRANSACTION_SCHEMA),
      () => latestSchema(endpoint, 'ksec-subject'),
    ])
      out.push(
        await call().then(
          () => assert.fail('expected a refusal'),
          (e: unknown) => e as Error,
        ),
      );
    return out;
  }

  it('sends TESSERA_SCHEMA_REGISTRY_USERNAME and _PASSWORD as basic auth on lookups, registrations and latest-schema reads', async () => {
    seen.length = 0;
    const config = configWith({
      TESSERA_SCHEMA_REGISTRY_USERNAME: USER,
      TESSERA_SCHEMA_REGISTRY_PASSWORD: SECRET,
    });
    await everyCall(config);
    assert.deepEqual(seen, [basicHeader, basicHeader, basicHeader]);
    // Printed configuration: the user name shown, the password never.
    const printed = renderConfig(config);
    assert.match(printed, /^TESSERA_SCHEMA_REGISTRY_PASSWORD = <redacted>$/m);
    assert.match(printed, /^TESSERA_SCHEMA_REGISTRY_USERNAME = KSEC7API$/m);
    assert.ok(!printed.includes('s3cr') && !JSON.stringify(redactConfig(config)).includes('s3cr'));
  });

  it('reads the password from TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE, without its trailing newline', async () => {
    const file = join(dir, 'registry-password');
    writeFileSync(file, `${SECRET}\n`);
    seen.length = 0;
    const config = configWith({
      TESSERA_SCHEMA_REGISTRY_USERNAME: USER,
      TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE: file,
    });
    await everyCall(config);
    assert.deepEqual(seen, [basicHeader, basicHeader, basicHeader]);
  });

  it("the ingestor's and flusher's decoder, the server's /push and the ingestor's update schemas use the login from the settings", async () => {
    const file = join(dir, 'registry-password-services');
    writeFileSync(file, SECRET);
    const config = configWith({
      TESSERA_SCHEMA_REGISTRY_USERNAME: USER,
      TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE: file,
    });
    seen.length = 0;
    // Decoders: ingestor.ts and flusher.ts build theirs from decoderOptions(config, ...).
    const source = transactions('avro-confluent');
    const framed = createEncoder(source, { definitionsDir: 'definitions', schemaId: 7 }).encode(KNOWN_RECORD);
    const decoder = createDecoder(source, decoderOptions(config, 'definitions/fraud.yaml'));
    const decoded = await decoder.decode({ key: null, value: framed });
    assert.ok(decoded.ok, JSON.stringify(decoded));
    assert.deepEqual(decoded.record, KNOWN_RECORD);
    // /push of an avro-confluent source: the latest schema of <topic>-value, read with the login.
    const sends: Message[][] = [];
    const producer = {
      events: { DISCONNECT: 'producer.disconnect' },
      on() {},
      async connect() {},
      async send({ messages }: { messages: Message[] }) {
        sends.push(messages);
        return [];
      },
    } as unknown as Producer;
    const definitions = loadDefinitionsFile('definitions/fraud.yaml');
    // Its clock at the record's time: the wall clock would refuse a row that old as late.
    const pusher = new Pusher(producer, config, { ...definitions, sources: [source] }, 'definitions', {
      now: () => Number(KNOWN_RECORD.event_timestamp),
    });
    const pushed = await pusher.push({
      push_source_name: source.name,
      df: {
        user_id: [KNOWN_RECORD.user_id],
        event_timestamp: [new Date(KNOWN_RECORD.event_timestamp).toISOString()],
        amount: [KNOWN_RECORD.amount],
        merchant_id: [KNOWN_RECORD.merchant_id],
      },
    });
    assert.equal(pushed.rows, 1);
    const value = sends.flat()[0]?.value as Buffer;
    assert.equal(value.readUInt32BE(1), 7, 'framed with the id the registry gave');
    // The ingestor's Avro feature updates: one schema registered per view, with the login.
    const views = definitions.views;
    assert.ok(views.length >= 1);
    const ids = await registerUpdateSchemas(schemaRegistryEndpoint(config)!, 'features.updates', views);
    assert.deepEqual(
      [...ids.keys()],
      views.map((v) => v.name),
    );
    assert.ok([...ids.values()].every((id) => id === 7));
    assert.deepEqual(
      seen,
      Array.from({ length: 2 + views.length }, () => basicHeader),
    );
  });

  it('a wrong password is answered 401 with a message naming the variables, never the secret', async () => {
    const wrong = 'ksec-wrong/pass';
    const file = join(dir, 'wrong-password');
    writeFileSync(file, `${wrong}\n`);
    const logins: Record<string, string>[] = [
      { TESSERA_SCHEMA_REGISTRY_USERNAME: USER, TESSERA_SCHEMA_REGISTRY_PASSWORD: wrong },
      { TESSERA_SCHEMA_REGISTRY_USERNAME: USER, TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE: file },
    ];
    for (const env of logins)
      for (const error of await refusals(configWith(env))) {
        assert.ok(isTesseraError(error, 'SERVICE_UNAVAILABLE') && !error.retriable, String(error));
        assert.match(error.message, /HTTP 401 \(not authorized\)/);
        for (const name of [
          'TESSERA_SCHEMA_REGISTRY_USERNAME',
          'TESSERA_SCHEMA_REGISTRY_PASSWORD',
          'TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE',
          'TESSERA_SCHEMA_REGISTRY_URL',
        ])
          assert.ok(error.message.includes(name), `names ${name}: ${error.message}`);
        const shown = `${error.message} ${JSON.stringify(error.context)} ${String(error.cause)}`;
        assert.ok(!shown.includes(wrong) && !shown.includes('s3cr'), shown);
      }
  });

  it('a missing or empty password file fails the start, naming the variable and the path', () => {
    const empty = join(dir, 'empty-password');
    writeFileSync(empty, '\n');
    for (const [path, reason] of [
      [join(dir, 'no-such-file'), /cannot read it \(ENOENT\)/],
      [empty, /is empty; it should hold the registry password/],
    ] as const) {
      const config = configWith({
        TESSERA_SCHEMA_REGISTRY_USERNAME: USER,
        TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE: path,
      });
      assert.throws(
        () => schemaRegistryEndpoint(config),
        (e: unknown) =>
          isTesseraError(e, 'CONFIG_INVALID') &&
          e.message.includes(`TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE`) &&
          e.message.includes(path) &&
          reason.test(e.message),
      );
    }
  });

  it('a missing bearer token file fails the start, naming the variable and the path', () => {
    const path = join(dir, 'no-such-token');
    assert.throws(
      () => schemaRegistryEndpoint(configWith({ TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE: path })),
      (e: unknown) =>
        isTesseraError(e, 'CONFIG_INVALID') &&
        e.message.startsWith(`TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE = ${path}: cannot read it (ENOENT)`),
    );
  });

  it('reads TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE again at each request, and names it on a 401', async () => {
    const file = join(dir, 'registry-token');
    writeFileSync(file, 'tok-first.abc\n');
    token.value = 'tok-first.abc';
    const config = configWith({ TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE: file });
    const lookup = registryLookup(schemaRegistryEndpoint(config)!);
    seen.length = 0;
    assert.equal(await lookup(7), TRANSACTION_SCHEMA);
    // The token is renewed (a sidecar rewrites the file): the same client sends the new one.
    writeFileSync(file, 'tok-second.def\n');
    token.value = 'tok-second.def';
    assert.equal(await lookup(7), TRANSACTION_SCHEMA);
    assert.deepEqual(seen, ['Bearer tok-first.abc', 'Bearer tok-second.def']);
    // The registry no longer takes the token in the file: refused, naming the file, not the token.
    token.value = 'tok-third.ghi';
    const refused = await lookup(7).then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e as Error,
    );
    assert.ok(isTesseraError(refused, 'SERVICE_UNAVAILABLE'), String(refused));
    assert.match(refused.message, /HTTP 401 .*TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE/);
    assert.ok(!refused.message.includes('tok-'), refused.message);
    // The file gone (in the middle of a replacement): retriable, so the ingestor pauses.
    unlinkSync(file);
    const missing = await lookup(7).then(
      () => assert.fail('expected an error'),
      (e: unknown) => e as Error,
    );
    assert.ok(isTesseraError(missing, 'SERVICE_UNAVAILABLE') && missing.retriable, String(missing));
    assert.match(
      missing.message,
      /TESSERA_SCHEMA_REGISTRY_BEARER_TOKEN_FILE = .*registry-token cannot be read \(ENOENT\)/,
    );
    token.value = undefined;
  });
});
