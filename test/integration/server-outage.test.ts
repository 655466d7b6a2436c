// Redis outage: the server answers 503 at once (never hangs), /ready says why, and it recovers by
// itself when Redis is back. Runs against a private redis-server on its own port, so stopping it
// disturbs nobody else.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { applyEvent, emptyState, planView, toEngineEvent } from '../../shared/engine/index.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { PrivateRedis } from '../support/private-redis.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

const TOKEN = 'outage-token-0123456789abcdef';
const VIEW = 'user_transaction_features';

describe('online server during a Redis outage', { timeout: 90_000 }, () => {
  let redis: PrivateRedis | undefined;
  let server: ServerProcess | undefined;

  after(async () => {
    await server?.stop();
    await redis?.remove();
  });

  it('answers 503 quickly while Redis is down and recovers without a restart', async () => {
    redis = await PrivateRedis.start();
    const port = redis.port;

    const plan = planView(loadDefinitionsFile('definitions/fraud.yaml').views[0]!);
    const state = emptyState(plan);
    const t0 = Date.now() - 10 * 60_000;
    for (let i = 0; i < 3; i++)
      applyEvent(
        plan,
        state,
        toEngineEvent(plan, { amount: 10 * (i + 1), merchant_id: `m${i}` }, t0 + i * 1000, 0, i),
      );
    const client = new Redis({ port, host: '127.0.0.1' });
    await new RedisStateStore(client, plan, 'outage').saveMany([{ entity: '42', version: 0, state }]);
    client.disconnect();

    server = startServer({
      TESSERA_REDIS_URL: `redis://127.0.0.1:${port}`,
      TESSERA_REDIS_KEY_PREFIX: 'outage',
      TESSERA_AUTH_TOKEN: TOKEN,
      TESSERA_LOG_LEVEL: 'warn',
      TESSERA_REDIS_TIMEOUT_MS: '500',
    });
    const url = await server.url;
    const ask = async () => {
      const started = performance.now();
      const res = await fetch(`${url}/get-online-features`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [42] } }),
      });
      return {
        status: res.status,
        body: (await res.json()) as Record<string, unknown>,
        ms: performance.now() - started,
      };
    };

    const up = await ask();
    assert.equal(up.status, 200);
    assert.deepEqual((up.body.results as { values: unknown[] }[])[1]!.values, [3]);

    await redis.kill();
    const down = await ask();
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.equal((down.body.error as { code: string }).code, 'SERVICE_UNAVAILABLE');
    assert.ok(down.ms < 2000, `503 took ${down.ms.toFixed(0)} ms: it must not hang`);
    const ready = await fetch(`${url}/ready`);
    assert.equal(ready.status, 503);
    assert.match(JSON.stringify(await ready.json()), /redis/);

    await redis.restart();
    const deadline = Date.now() + 20_000;
    let back = await ask();
    while (back.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      back = await ask();
    }
    assert.equal(back.status, 200, 'the server reconnects by itself');
    assert.deepEqual((back.body.results as { values: unknown[] }[])[1]!.values, [3]);
    assert.equal((await fetch(`${url}/ready`)).status, 200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /tessera_server_redis_errors_total [1-9]/);
  });
});
