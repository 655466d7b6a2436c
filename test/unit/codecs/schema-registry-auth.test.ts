// The schema registry client against a loopback HTTP server that requires basic auth, as Confluent
// Cloud's registry does: credentials come from the URL's user:pass@ and never appear in a message.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { latestSchema, registerSchema, registryLookup } from '../../../shared/codecs/schema-registry.ts';
import { loadConfig, redactConfig, renderConfig } from '../../../shared/config/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';

const USER = 'KSEC7API';
// A Confluent Cloud secret may hold `/` and `+`: percent-encoded in the URL.
const SECRET = 'ksec/s3cr+t';
const SCHEMA = '{"type":"record","name":"T","fields":[]}';

describe('schema registry client with basic auth', () => {
  let server: Server;
  let port: number;
  const seen: (string | undefined)[] = [];

  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      const expected = `Basic ${Buffer.from(`${USER}:${SECRET}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error_code":401,"message":"Unauthorized"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
      if (req.method === 'POST') res.end('{"id":7}');
      else if (req.url?.endsWith('/versions/latest')) res.end(JSON.stringify({ id: 7, schema: SCHEMA }));
      else res.end(JSON.stringify({ schema: SCHEMA }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
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
