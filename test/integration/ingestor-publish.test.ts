// TESSERA_PUBLISH_UPDATES: every pushed vector is also PUBLISHed on Redis channel
// `<prefix>:updates:<view>`, in the same JSON as the `features.updates` records.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  fraudMessages,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';

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

  it('publishes each touched entity its vector, as the features.updates records carry it', async () => {
    const received: Record<string, unknown>[] = [];
    await subscriber.subscribe(`${run.id}:updates:${VIEW.name}`);
    subscriber.on('message', (_channel, text: string) => received.push(JSON.parse(text)));

    const ingestor = startIngestor(run);
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
      assert.deepEqual(Object.keys(m), ['view', 'entity', 'as_of', 'features', 'definitions_hash']);
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
});
