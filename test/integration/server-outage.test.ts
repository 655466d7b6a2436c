// Redis outage: the server answers 503 at once (never hangs), /ready says why, and it recovers by
// itself when Redis is back. Runs against a private redis-server on its own port, so stopping it
// disturbs nobody else.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { applyEvent, emptyState, planView, toEngineEvent } from '../../shared/engine/index.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { cleanupRun, createSourceTopic, newTestRun } from '../support/ingestor-process.ts';
import { PrivateKafka } from '../support/private-kafka.ts';
import { PrivateRedis } from '../support/private-redis.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';
import { stopAfter } from '../support/stop-after.ts';

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

describe('online server started while Redis or Kafka is down', { timeout: 180_000 }, () => {
  let redis: PrivateRedis | undefined;
  let broker: PrivateKafka | undefined;
  let server: ServerProcess | undefined;

  after(async () => {
    await server?.stop();
    await redis?.remove();
    broker?.remove();
  });

  it('listens without Redis, answers 503 and /ready says why, then serves once Redis is up', async (t) => {
    // It once exited at start: waiting for Redis' ready event rejected at the first connection error.
    redis = await PrivateRedis.start();
    await redis.kill();
    // Stopped when this test ends: the next one reuses `server`, and the suite's after hook stops
    // only the last.
    server = stopAfter(
      t,
      startServer({
        TESSERA_REDIS_URL: redis.url,
        TESSERA_REDIS_KEY_PREFIX: 'down-at-start',
        TESSERA_AUTH_TOKEN: TOKEN,
        TESSERA_LOG_LEVEL: 'warn',
        TESSERA_REDIS_TIMEOUT_MS: '500',
      }),
    );
    const url = await server.url; // rejects if the process exits before listening
    const lookup = () =>
      fetch(`${url}/get-online-features`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ features: [`${VIEW}:transaction_count_1h`], entities: { user_id: [7] } }),
      });
    const down = await lookup();
    assert.equal(down.status, 503, await down.text());
    const ready = await fetch(`${url}/ready`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /redis/);

    await redis.restart();
    const deadline = Date.now() + 20_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) {
      const res = await lookup();
      status = res.status;
      await res.body?.cancel();
      if (status !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 200, 'the server connects once Redis is up');
    await server.stop();
    server = undefined;
  });

  it('takes pushes once Kafka is up, though it was down when the server started', async () => {
    // kafkajs gives up on a producer whose first connect failed: every /push answered 503 until a
    // restart. A push now connects again.
    broker = await PrivateKafka.start();
    const run = newTestRun({ TESSERA_KAFKA_BROKERS: broker.brokers });
    try {
      await createSourceTopic(run, 1);
      broker.kill();
      server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN });
      const url = await server.url;
      const push = async () => {
        const res = await fetch(`${url}/push`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify({
            push_source_name: 'transactions',
            df: {
              user_id: [5],
              event_timestamp: [new Date().toISOString()],
              amount: [1.5],
              merchant_id: ['m'],
            },
          }),
        });
        return { status: res.status, body: await res.text() };
      };
      const down = await push();
      assert.equal(down.status, 503, down.body);
      // The push first reads the source topic's size limit: with Kafka down that fails, and nothing
      // is sent.
      assert.match(down.body, /did not answer for .*size limit.*nothing was written/);

      broker.restart();
      const deadline = Date.now() + 60_000;
      let up = await push();
      while (up.status !== 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        up = await push();
      }
      assert.equal(up.status, 200, up.body);
      const admin = run.kafka.admin();
      await admin.connect();
      const offsets = await admin.fetchTopicOffsets(run.topic);
      await admin.disconnect();
      assert.equal(offsets[0]!.high, '1', 'the pushed row is on the source topic');
    } finally {
      await server?.stop();
      server = undefined;
      await cleanupRun(run);
    }
  });
});
