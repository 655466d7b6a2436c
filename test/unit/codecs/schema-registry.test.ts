// The schema registry client against a scripted HTTP server on loopback: what each answer of a
// registry becomes (an id, a schema, unknown, or which error, retriable or not).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  directoryLookup,
  latestSchema,
  registerSchema,
  registryLookup,
} from '../../../shared/codecs/schema-registry.ts';
import { isTesseraError } from '../../../shared/errors.ts';

/** The next answer per path, and what each request sent. */
const answers = new Map<string, { status: number; body: string; cut?: boolean; type?: string }>();
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
        res.writeHead(answer.status, {
          'content-type': answer.type ?? 'application/vnd.schemaregistry.v1+json',
          ...(answer.cut ? { 'content-length': String(answer.body.length + 100) } : {}),
        });
        if (answer.cut) {
          // Half the answer, then the connection reset: a registry or proxy dying mid-body.
          res.write(answer.body);
          setTimeout(() => res.destroy(), 20);
        } else res.end(answer.body);
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

  it('retries a schema lookup whose answer is cut off, not JSON, or a 408, instead of failing for good', async () => {
    // Found by an audit: these were permanent errors, so the ingestor's consumer restarted (and the
    // group rebalanced) where a registry outage pauses the partitions and asks again.
    const lookup = registryLookup(url, 2000);
    for (const [id, answer] of [
      [21, { status: 200, body: '{"schema":"{\\"type\\":', cut: true }],
      [22, { status: 200, body: '<html>proxy error</html>', type: 'text/html' }],
      [23, { status: 408, body: '' }],
    ] as const) {
      answers.set(`/schemas/ids/${id}`, answer);
      await assert.rejects(
        lookup(id),
        (e) => isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable === true,
        `schema id ${id}`,
      );
    }
    answers.set('/schemas/ids/24', { status: 401, body: '' });
    await assert.rejects(
      lookup(24),
      (e) => isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable === false,
    );
  });

  it('retries a schema file that exists but cannot be read; a missing one is unknown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-schema-dir-'));
    try {
      mkdirSync(join(dir, '7.avsc')); // EISDIR, as EMFILE or EACCES would be
      await assert.rejects(
        directoryLookup(dir)(7),
        (e) => isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable === true,
      );
      assert.equal(await directoryLookup(dir)(8), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
