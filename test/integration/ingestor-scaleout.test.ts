// Scale-out: three ingestors in one consumer group share a 6-partition topic; one leaves in the
// middle (a rebalance) and another joins; the result must still equal the offline engine exactly.
// Run on the event clock and on the record clock (the default). On the record clock each record
// is stamped as if produced live (the newest event time so far plus half a second), and some
// exactly at their view's lateness after their event (in time) or 1 ms past it (late): every writer,
// before and after the rebalance, must judge them alike, so the late ones are in the DLQ and in no
// state, and the rest equal the engine run offline.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  fraudMessages,
  groupLag,
  liveStamps,
  newTestRun,
  startIngestor,
  type TestRun,
  topicRecords,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { stopAfter } from '../support/stop-after.ts';

const EVENTS = Number(process.env.SCALEOUT_TEST_EVENTS ?? 60_000);

for (const clock of ['event', 'record'] as const)
  describe(`three ingestors on six partitions, with a rebalance in the middle (${clock} clock)`, {
    timeout: 300_000,
  }, () => {
    const run: TestRun = newTestRun({ TESSERA_INGEST_CLOCK: clock });
    const events = generateFraudEvents({ events: EVENTS, seed: 5 });
    const lateness = loadDefinitionsFile(run.config.definitions).views[0]!.allowedLatenessMs;
    // On the record clock, records stamped as if produced live, some at the lateness boundary.
    const { stamps, late } =
      clock === 'record' ? liveStamps(events, lateness) : { stamps: undefined, late: new Set<number>() };

    // Stamped in January 2026: the broker's 7-day time retention must not delete them unread.
    before(async () => createSourceTopic(run, 6, { keepOldRecords: true }));
    after(async () => cleanupRun(run));

    it('matches the offline engine for every entity', async (t) => {
      if (clock === 'record') assert.ok(late.size >= EVENTS / 500, `late records: ${late.size}`);
      const ingestors = [1, 2, 3].map(() => stopAfter(t, startIngestor(run)));
      await Promise.all(ingestors.map((i) => i.ready));
      const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      const messages = fraudMessages(events, stamps);
      const half = Math.floor(events.length / 2);
      const send = async (from: number, to: number) => {
        for (let i = from; i < to; i += 2000)
          await producer.send({ topic: run.topic, messages: messages.slice(i, Math.min(to, i + 2000)) });
      };
      await send(0, half);
      // Rebalance while the first half is still being consumed: one leaves, one joins. A group
      // that had committed everything would move idle partitions only, and prove little.
      const lagAtRebalance = await groupLag(run, run.topic);
      assert.ok(lagAtRebalance > 0, 'the group had consumed the first half before the rebalance');
      ingestors[0]!.child.kill('SIGTERM');
      assert.equal(await ingestors[0]!.exited, 0, ingestors[0]!.output());
      const joiner = stopAfter(t, startIngestor(run));
      await joiner.ready;
      await send(half, events.length);
      await producer.disconnect();
      await waitForCaughtUp(run, run.topic, 180_000);
      const rest = [ingestors[1]!, ingestors[2]!, joiner];
      for (const i of rest) i.child.kill('SIGTERM');
      const exits = await Promise.all(rest.map((i) => i.exited));
      assert.deepEqual(exits, [0, 0, 0], rest.map((i) => i.output()).join('\n'));

      const { entities, differences } = await differencesFromOffline(run, events, run.topic, undefined, late);
      assert.deepEqual(differences, [], `first differences among ${entities} entities`);
      // Each late record dead-lettered (a writer that lost a rebalance may have sent it twice).
      const letters = await topicRecords(run, `${run.topic}.dlq`);
      assert.ok(letters >= late.size, `dead letters ${letters}, late records ${late.size}`);
    });
  });
