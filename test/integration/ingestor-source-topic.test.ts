// A source topic that does not exist when the ingestor starts. kafkajs refused the subscription
// with a raw "This server does not host this topic-partition" stack, after the ingestor had
// created the DLQ, updates and rows topics of a source that was not there. Now the ingestor waits
// up to 15 s (a topic created a moment ago may not be in a broker's metadata yet), then stops
// with the topic's name and what to do, before creating anything.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import {
  cleanupRun,
  createSourceTopic,
  newTestRun,
  startIngestor,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { stopAfter } from '../support/stop-after.ts';

describe('ingestor: its source topic missing at the start', { timeout: 90_000 }, () => {
  const missing = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const late = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  after(async () => {
    await cleanupRun(missing);
    await cleanupRun(late);
  });

  it('stops with exit 1, naming the topic, and creates none of its own topics', async (t) => {
    const ingestor = stopAfter(t, startIngestor(missing));
    assert.equal(await ingestor.exited, 1, ingestor.output().slice(-2000));
    assert.match(
      ingestor.output(),
      new RegExp(
        `NOT_FOUND: source topic ${missing.topic.replaceAll('.', '\\.')} not found on .*: create it`,
      ),
    );
    const admin = missing.kafka.admin();
    await admin.connect();
    try {
      const mine = (await admin.listTopics()).filter((name) => name.startsWith(`${missing.id}.`));
      assert.deepEqual(mine, [], 'no DLQ, updates or rows topic was created');
    } finally {
      await admin.disconnect();
    }
  });

  it('waits for a source topic created a few seconds after its start, then consumes it', async (t) => {
    const ingestor = stopAfter(t, startIngestor(late));
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    assert.equal(ingestor.child.exitCode, null, ingestor.output().slice(-2000));
    await createSourceTopic(late, 1);
    await ingestor.ready;
    assert.match(ingestor.output(), /source topics not found on the broker yet; waiting up to 15 s/);
    const producer = late.kafka.producer();
    await producer.connect();
    await producer.send({
      topic: late.topic,
      messages: [
        {
          key: '1',
          value: JSON.stringify({
            user_id: 1,
            event_timestamp: '2026-01-01T00:00:00Z',
            amount: 1,
            merchant_id: 'm',
          }),
        },
      ],
    });
    await producer.disconnect();
    await waitForCaughtUp(late, late.topic, 30_000);
  });
});
