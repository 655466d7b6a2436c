// Scale-out: three ingestors in one consumer group share a 6-partition topic; one leaves in the
// middle (a rebalance) and another joins; the result must still equal the offline engine exactly.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  fraudMessages,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { stopAfter } from '../support/stop-after.ts';

const EVENTS = Number(process.env.SCALEOUT_TEST_EVENTS ?? 60_000);

describe('three ingestors on six partitions, with a rebalance in the middle', { timeout: 300_000 }, () => {
  const run: TestRun = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const events = generateFraudEvents({ events: EVENTS, seed: 5 });

  before(async () => createSourceTopic(run, 6));
  after(async () => cleanupRun(run));

  it('matches the offline engine for every entity', async (t) => {
    const ingestors = [1, 2, 3].map(() => stopAfter(t, startIngestor(run)));
    await Promise.all(ingestors.map((i) => i.ready));
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const half = Math.floor(events.length / 2);
    const send = async (from: number, to: number) => {
      for (let i = from; i < to; i += 2000) {
        await producer.send({
          topic: run.topic,
          messages: fraudMessages(events.slice(i, Math.min(to, i + 2000))),
        });
      }
    };
    await send(0, half);
    // Rebalance while the first half is still being consumed: one leaves, one joins.
    ingestors[0]!.child.kill('SIGTERM');
    assert.equal(await ingestors[0]!.exited, 0);
    const joiner = stopAfter(t, startIngestor(run));
    await joiner.ready;
    await send(half, events.length);
    await producer.disconnect();
    await waitForCaughtUp(run, run.topic, 180_000);
    for (const i of [ingestors[1]!, ingestors[2]!, joiner]) i.child.kill('SIGTERM');
    await Promise.all([ingestors[1]!, ingestors[2]!, joiner].map((i) => i.exited));

    const { entities, differences } = await differencesFromOffline(run, events);
    assert.deepEqual(differences, [], `first differences among ${entities} entities`);
  });
});
