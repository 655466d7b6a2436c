// The schema registry client against a scripted HTTP server on loopback: what each answer of a
// registry becomes (an id, a schema, unknown, or which error, retriable or not).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { latestSchema, registerSchema, registryLookup } from '../../../shared/codecs/schema-registry.ts';
import { isTesseraError } from '../../../shared/errors.ts';

/** The next answer per path, and what each request sent. */
const answers = new Map<string, { status: number; body: string }>();
const seen: { method: string; url: string; contentType: string | undefined; body: string }[] = [];

describe('schema registry client', () => {
  let server: Server;
  let url = '';

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, contentType: req.headers['content-type'], body });
        const answer = answers.get(req.url!) ?? { status: 404, body: '{"error_code":40401}' };
        res.writeHead(answer.status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
        res.end(answer.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('registers a schema under its subject and returns the id', async () => {
    answers.set('/subjects/t.updates-tessera.updates.v/versions', { status: 200, body: '{"id":42}' });
    assert.equal(await registerSchema(url, 't.updates-tessera.updates.v', '{"type":"string"}'), 42);
    const request = seen.at(-1)!;
    assert.equal(request.method, 'POST');
    assert.equal(request.contentType, 'application/vnd.schemaregistry.v1+json');
    assert.deepEqual(JSON.parse(request.body), { schema: '{"type":"string"}' });
  });

  it('refuses an incompatible schema for good, and retries a failing registry', async () => {
    answers.set('/subjects/s/versions', { status: 409, body: '{"error_code":409,"message":"incompatible"}' });
    await assert.rejects(
      registerSchema(url, 's', '{"type":"string"}'),
      (e) => isTesseraError(e, 'CONFIG_INVALID') && !e.retriable && /subject s \(HTTP 409/.test(e.message),
    );
    answers.set('/subjects/s/versions', { status: 503, body: '' });
    await assert.rejects(
      registerSchema(url, 's', '{"type":"string"}'),
      (e) => isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable === true,
    );
    answers.set('/subjects/s/versions', { status: 200, body: '{"id":"seven"}' });
    await assert.rejects(registerSchema(url, 's', '{}'), /without a schema id/);
  });

  it("reads a subject's latest schema; an unknown subject is undefined", async () => {
    answers.set('/subjects/t-value/versions/latest', {
      status: 200,
      body: JSON.stringify({ subject: 't-value', version: 3, id: 9, schema: '{"type":"long"}' }),
    });
    assert.deepEqual(await latestSchema(url, 't-value'), { id: 9, schema: '{"type":"long"}' });
    assert.equal(await latestSchema(url, 'nobody-value'), undefined);
    answers.set('/subjects/p-value/versions/latest', {
      status: 200,
      body: JSON.stringify({ id: 10, schema: 'syntax = "proto3";', schemaType: 'PROTOBUF' }),
    });
    assert.equal(await latestSchema(url, 'p-value'), undefined, 'not an Avro schema');
  });

  it('says which registry did not answer, as a retriable error, for every call', async () => {
    const down = 'http://127.0.0.1:1';
    for (const call of [
      () => registerSchema(down, 's', '{}', 500),
      () => latestSchema(down, 's', 500),
      () => registryLookup(down, 500)(1),
    ])
      await assert.rejects(
        call(),
        (e) =>
          isTesseraError(e, 'SERVICE_UNAVAILABLE') &&
          e.retriable === true &&
          /http:\/\/127\.0\.0\.1:1\/.* unreachable .*TESSERA_SCHEMA_REGISTRY_URL/.test(e.message),
      );
  });
});
