// Scale-out: three ingestors in one consumer group share a 6-partition topic; one leaves in the
// middle (a rebalance) and another joins; the result must still equal the offline engine exactly.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import {
  applyEvent,
  type EntityState,
  emptyState,
  planView,
  readFeatures,
  toEngineEvent,
} from '../../shared/engine/index.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';

const EVENTS = Number(process.env.SCALEOUT_TEST_EVENTS ?? 60_000);

describe('three ingestors on six partitions, with a rebalance in the middle', { timeout: 300_000 }, () => {
  const run: TestRun = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const events = generateFraudEvents({ events: EVENTS, seed: 5 });

  before(async () => {
    const admin = run.kafka.admin();
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: run.topic, numPartitions: 6 }] });
    await admin.disconnect();
  });
  after(async () => cleanupRun(run));

  it('matches the offline engine for every entity', async () => {
    const ingestors = [startIngestor(run), startIngestor(run), startIngestor(run)];
    await Promise.all(ingestors.map((i) => i.ready));
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const half = Math.floor(events.length / 2);
    const send = async (from: number, to: number) => {
      for (let i = from; i < to; i += 2000) {
        await producer.send({
          topic: run.topic,
          messages: events.slice(i, Math.min(to, i + 2000)).map((e) => ({
            key: String(e.user_id),
            value: JSON.stringify({
              user_id: e.user_id,
              event_timestamp: new Date(e.event_timestamp).toISOString(),
              amount: e.amount,
              merchant_id: e.merchant_id,
            }),
          })),
        });
      }
    };
    await send(0, half);
    // Rebalance while the first half is still being consumed: one leaves, one joins.
    ingestors[0]!.child.kill('SIGTERM');
    assert.equal(await ingestors[0]!.exited, 0);
    const joiner = startIngestor(run);
    await joiner.ready;
    await send(half, events.length);
    await producer.disconnect();
    await waitForCaughtUp(run, run.topic, 180_000);
    for (const i of [ingestors[1]!, ingestors[2]!, joiner]) i.child.kill('SIGTERM');
    await Promise.all([ingestors[1]!, ingestors[2]!, joiner].map((i) => i.exited));

    const plan = planView(loadDefinitionsFile(run.config.definitions).views[0]!);
    const offline = new Map<string, EntityState>();
    events.forEach((e, i) => {
      const key = String(e.user_id);
      let state = offline.get(key);
      if (!state) {
        state = emptyState(plan);
        offline.set(key, state);
      }
      applyEvent(
        plan,
        state,
        toEngineEvent(plan, e as unknown as Record<string, unknown>, e.event_timestamp, 0, i),
      );
    });
    const t = events.reduce((m, e) => Math.max(m, e.event_timestamp), 0) + 1;
    const store = new RedisStateStore(run.redis, plan, run.config.redisKeyPrefix);
    const entities = [...offline.keys()];
    let differences = 0;
    for (let i = 0; i < entities.length; i += 1000) {
      const chunk = entities.slice(i, i + 1000);
      const online = await store.loadMany(chunk);
      for (const entity of chunk) {
        const want = JSON.stringify(readFeatures(plan, offline.get(entity)!, t));
        if (JSON.stringify(readFeatures(plan, online.get(entity)!.state, t)) !== want) differences++;
      }
    }
    assert.equal(differences, 0, `${differences} of ${entities.length} entities differ`);
  });
});
