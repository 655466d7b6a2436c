// The fastify app over stand-ins (no port opened: app.inject): what an audit found a client could
// do to it, or read from it without a token.
import assert from 'node:assert/strict';
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

function app(redis: Partial<Redis> = {}) {
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
    assert.match(doc.paths['/push']!.post.summary, /^Off: this server was started without Kafka/);
    assert.deepEqual(doc.components.schemas.PushRequest.properties.push_source_name.enum, []);
    assert.doesNotMatch(JSON.stringify(doc), /fraud\.yaml/);
    await a.close();
  });
});
