// The fastify app over stand-ins (no port opened: app.inject): what an audit found a client could
// do to it, or read from it without a token.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { buildApp, REQUEST_TIMEOUT_MS } from '../../../services/server/app.ts';
import { createAuthenticator } from '../../../services/server/auth.ts';
import { createServerMetrics } from '../../../services/server/metrics.ts';
import { loadConfig } from '../../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';

const TOKEN = 'app-test-token-0123456789abcdef';
const definitions = loadDefinitionsFile('definitions/fraud.yaml');

function app(redis: Partial<Redis> = {}, requestTimeoutMs?: number) {
  const config = loadConfig({ argv: [], env: { TESSERA_AUTH_TOKEN: TOKEN } });
  return buildApp({
    definitions,
    redis: {
      tesseraReadStates: true,
      defineCommand() {},
      async ping() {
        return 'PONG';
      },
      ...redis,
    } as unknown as Redis,
    redisKeyPrefix: 'app-test',
    authenticate: createAuthenticator(config, [TOKEN]),
    metrics: createServerMetrics(),
    logger: pino({ level: 'silent' }),
    maxEntities: 1000,
    bodyLimitBytes: 1024 * 1024,
    ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }),
  });
}

/** Sends a request's head, then its body a byte every `dripMs`; resolves with what came back and when. */
function slowClient(port: number, dripMs: number): Promise<{ reply: string; ms: number }> {
  const body = JSON.stringify({
    features: ['user_features:transaction_count_1h'],
    entities: { user_id: [1] },
  });
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    let sent = 0;
    const drip = setInterval(() => {
      if (sent < body.length && !socket.destroyed) socket.write(body[sent++]!);
    }, dripMs);
    socket.on('connect', () => {
      socket.write(
        `POST /get-online-features HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
    });
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
    });
    socket.on('error', (error) => {
      clearInterval(drip);
      reject(error);
    });
    socket.on('close', () => {
      clearInterval(drip);
      resolve({ reply, ms: Date.now() - started });
    });
  });
}

describe('server app', () => {
  it('takes at most REQUEST_TIMEOUT_MS for a request to arrive, and closes after a 401', async () => {
    const a = app();
    await a.ready();
    // fastify's default (0) had turned Node's own request timeout off.
    assert.equal(a.server.requestTimeout, REQUEST_TIMEOUT_MS);
    const res = await a.inject({ method: 'POST', url: '/get-online-features', payload: {} });
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers.connection, 'close');
    await a.close();
  });

  it('answers a client whose request takes longer than TESSERA_SERVER_REQUEST_TIMEOUT_MS with 408, and closes', {
    timeout: 15_000,
  }, async () => {
    const a = app({}, 400);
    await a.listen({ host: '127.0.0.1', port: 0 });
    const port = (a.server.address() as { port: number }).port;
    // The body needs ~9 s at a byte per 100 ms; the server must cut it at 400 ms (Node's deadline
    // check runs every 50 ms here), not at its 30 s default nor after Node's 30 s check interval.
    const { reply, ms } = await slowClient(port, 100);
    assert.match(reply, /^HTTP\/1\.1 408 /);
    assert.ok(ms >= 350 && ms < 2000, `closed after ${ms} ms`);
    // A client that sends in time is unaffected.
    const ok = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(ok.status, 200);
    await a.close();
  });

  it('counts a request refused before routing (a malformed path) in the request histogram, once', async () => {
    const metrics = createServerMetrics();
    const a = buildApp({
      definitions,
      redis: { defineCommand() {} } as unknown as Redis,
      redisKeyPrefix: 'app-test',
      authenticate: null,
      metrics,
      logger: pino({ level: 'silent' }),
      maxEntities: 1000,
      bodyLimitBytes: 1024 * 1024,
    });
    const res = await a.inject({ method: 'GET', url: '/%zz' });
    assert.equal(res.statusCode, 400);
    const text = await metrics.registry.getSingleMetricAsString('tessera_server_request_duration_seconds');
    assert.match(
      text,
      /^tessera_server_request_duration_seconds_count\{route="unmatched",status="400"\} 1$/m,
    );
    await a.close();
  });

  it("tells /ready's open callers that Redis does not answer, not how it failed", async () => {
    const a = app({
      async ping() {
        throw new Error('connect ECONNREFUSED 10.20.30.40:6379');
      },
    });
    const res = await a.inject({ method: 'GET', url: '/ready' });
    assert.equal(res.statusCode, 503);
    assert.deepEqual(res.json().problems, ['redis: not answering']);
    assert.doesNotMatch(res.body, /10\.20\.30\.40/);
    await a.close();
  });

  it('documents /push as off without a producer, and names no file path', async () => {
    const a = app();
    const doc = (await a.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      info: { description: string };
      paths: Record<string, { post: { summary: string } }>;
      components: { schemas: { PushRequest: { properties: { push_source_name: { enum: string[] } } } } };
    };
    assert.match(doc.paths['/push']!.post.summary, /^Off: this server runs with TESSERA_SERVER_PUSH=false/);
    assert.deepEqual(doc.components.schemas.PushRequest.properties.push_source_name.enum, []);
    assert.doesNotMatch(JSON.stringify(doc), /fraud\.yaml/);
    // Off on purpose (TESSERA_SERVER_PUSH=false): not found, not a 503 a client would retry.
    const push = await a.inject({
      method: 'POST',
      url: '/push',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: { push_source_name: 'transactions', df: { user_id: [1] } },
    });
    assert.equal(push.statusCode, 404);
    assert.match(push.json().error.message, /TESSERA_SERVER_PUSH=false/);
    await a.close();
  });
});
