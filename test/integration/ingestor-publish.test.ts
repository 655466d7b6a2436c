// TESSERA_PUBLISH_UPDATES: every pushed vector is also PUBLISHed on Redis channel
// `<prefix>:updates:<view>`, in the same JSON as the `features.updates` records; two vectors of an
// entity with the same as_of (an out-of-order event) are told apart by their state_version.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { stateKey } from '../../shared/state-store/redis-state-store.ts';
import { type FraudEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  fraudMessages,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { stopAfter } from '../support/stop-after.ts';

const VIEW = loadDefinitionsFile('definitions/fraud.yaml').views[0]!;

describe('ingestor: vectors PUBLISHed on Redis', { timeout: 120_000 }, () => {
  let run: TestRun;
  let subscriber: Redis;

  before(async () => {
    run = newTestRun({ TESSERA_INGEST_CLOCK: 'event', TESSERA_PUBLISH_UPDATES: 'true' });
    await createSourceTopic(run, 2);
    subscriber = new Redis(run.config.redisUrl);
  });
  after(async () => {
    subscriber.disconnect();
    await cleanupRun(run);
  });

  it('publishes each touched entity its vector, as the features.updates records carry it', async (t) => {
    const received: Record<string, unknown>[] = [];
    await subscriber.subscribe(`${run.id}:updates:${VIEW.name}`);
    subscriber.on('message', (_channel, text: string) => received.push(JSON.parse(text)));

    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    const events = generateFraudEvents({ events: 300, seed: 31 });
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.topic, messages: fraudMessages(events) });
    await producer.disconnect();
    await waitForCaughtUp(run, run.topic, 60_000);
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0, ingestor.output());
    // main.ts installed kafkajs' fast paths before kafkajs loaded (the ingestor warns otherwise).
    assert.doesNotMatch(ingestor.output(), /runs without Tessera's faster/);

    const users = new Set(events.map((e) => String(e.user_id)));
    assert.deepEqual(new Set(received.map((m) => m.entity)), users, 'a vector for every user');
    const names = VIEW.features.map((f) => f.name).sort();
    for (const m of received) {
      assert.deepEqual(Object.keys(m), [
        'view',
        'entity',
        'as_of',
        'state_version',
        'features',
        'definitions_hash',
      ]);
      assert.ok(
        Number.isSafeInteger(m.state_version) && (m.state_version as number) > 0,
        String(m.state_version),
      );
      assert.equal(m.view, VIEW.name);
      assert.ok(!Number.isNaN(Date.parse(m.as_of as string)), String(m.as_of));
      assert.deepEqual(Object.keys(m.features as object).sort(), names);
    }
    // The last vector of the busiest user counts all its events within the hour before as_of.
    const newest = received.filter((m) => m.entity === String(events.at(-1)!.user_id)).at(-1)!;
    const asOf = Date.parse(newest.as_of as string);
    const inHour = events.filter(
      (e) =>
        String(e.user_id) === newest.entity &&
        e.event_timestamp >= asOf - 3_600_000 &&
        e.event_timestamp < asOf,
    ).length;
    assert.equal((newest.features as Record<string, number>).transaction_count_1h, inHour);
  });

  it("gives an out-of-order event's vector the same as_of and a larger state_version", async (t) => {
    const user = 987_654;
    const received: Record<string, unknown>[] = [];
    subscriber.on('message', (_channel, text: string) => {
      const m = JSON.parse(text) as Record<string, unknown>;
      if (m.entity === String(user)) received.push(m);
    });
    const t0 = Date.UTC(2026, 0, 10, 12);
    const tx = (minutes: number, amount: number) =>
      ({
        user_id: user,
        event_timestamp: t0 + minutes * 60_000,
        amount,
        merchant_id: `m${amount}`,
      }) as FraudEvent;
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    const producer = run.kafka.producer();
    await producer.connect();
    // The newest event first, then one 10 minutes older (within the view's 1 h allowed lateness):
    // it changes the windows, not the newest event time.
    await producer.send({ topic: run.topic, messages: fraudMessages([tx(0, 10), tx(20, 20)]) });
    await waitForCaughtUp(run, run.topic, 60_000);
    await producer.send({ topic: run.topic, messages: fraudMessages([tx(10, 30)]) });
    await producer.disconnect();
    await waitForCaughtUp(run, run.topic, 60_000);
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0, ingestor.output());

    const asOf = new Date(t0 + 20 * 60_000 + 1).toISOString();
    const tied = received.filter((m) => m.as_of === asOf);
    assert.equal(tied.length, 2, JSON.stringify(received));
    const [before, after] = [...tied].sort(
      (a, b) => (a.state_version as number) - (b.state_version as number),
    );
    assert.ok((after!.state_version as number) > (before!.state_version as number));
    // The larger version is the vector with the late event in it, whatever order they arrived in.
    const count = (m: Record<string, unknown>) => (m.features as Record<string, number>).transaction_count_1h;
    assert.equal(count(before!), 2);
    assert.equal(count(after!), 3);
    assert.equal((after!.features as Record<string, number>).max_transaction_amount_7d, 30);
    // It is the version of the state Redis holds.
    const stored = await run.redis.hget(stateKey(run.id, VIEW.name, String(user)), 'v');
    assert.equal(Number(stored), after!.state_version);
  });
});
