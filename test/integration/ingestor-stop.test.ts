// A graceful stop (SIGTERM) commits every record it applied, on the real broker, also when a fetch
// holds more partitions' batches than kafkajs handles at once (6): the batches queued behind were
// applied after the stop had committed, and the process exited 0 with them uncommitted. After
// three stops mid catch-up (each leaves part of the log to do, less each time), a last run catches
// up and every entity equals the offline engine (features and applied offsets).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { planView } from '../../shared/engine/index.ts';
import { offsetEntries } from '../../shared/engine/state.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  fraudMessages,
  groupLag,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
  waitForRecords,
} from '../support/ingestor-process.ts';
import { stopAfter } from '../support/stop-after.ts';

const PARTITIONS = 12;

describe(`graceful stop on ${PARTITIONS} partitions`, { timeout: 300_000 }, () => {
  const run: TestRun = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  // Enough that the third stop still comes mid catch-up. A stop finishes the batches already
  // fetched, up to kafkajs' 1 MB per partition (~8k records here, ~95k over 12 partitions), so a run
  // applies 50-100k records however early it is stopped: with 240k events the third run was left
  // 35k of them in CI, and a quicker run would have found nothing left.
  const events = generateFraudEvents({ events: 360_000, users: 3000, seed: 5 });
  const users = [...new Set(events.map((e) => String(e.user_id)))];

  /** Per source partition, the offset after the newest record any entity state has applied. */
  async function appliedNext(): Promise<Map<number, number>> {
    const plan = planView(loadDefinitionsFile(run.config.definitions).views[0]!);
    const store = new RedisStateStore(run.redis, plan, run.config.redisKeyPrefix);
    const next = new Map<number, number>();
    for (let i = 0; i < users.length; i += 1000)
      for (const { version, state } of (await store.loadMany(users.slice(i, i + 1000))).values())
        if (version !== 0)
          for (const [p, offset] of offsetEntries(state)) next.set(p, Math.max(next.get(p) ?? 0, offset + 1));
    return next;
  }

  async function committed(): Promise<Map<number, number>> {
    const admin = run.kafka.admin();
    await admin.connect();
    try {
      const [c] = await admin.fetchOffsets({ groupId: run.config.ingestorGroup, topics: [run.topic] });
      return new Map(c!.partitions.map((p) => [p.partition, Number(p.offset)]));
    } finally {
      await admin.disconnect();
    }
  }

  before(async () => {
    await createSourceTopic(run, PARTITIONS);
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let i = 0; i < events.length; i += 5000)
      await producer.send({ topic: run.topic, messages: fraudMessages(events.slice(i, i + 5000)) });
    await producer.disconnect();
  });
  after(async () => cleanupRun(run));

  it('commits everything it applied at each stop, and ends equal to the offline engine', async (t) => {
    const caught: string[] = [];
    /** Records left to do after each stop: each stop must come mid catch-up, after some progress. */
    const lags: number[] = [events.length];
    // Each run is stopped once it has handled this many records (its /metrics count), not after a
    // fixed time: on a busy machine 300 ms after "ready" could come before the first batch (nothing
    // to commit, no progress), and on an idle one 1.8 s finished the log (nothing left to stop in).
    for (const target of [5_000, 20_000, 40_000]) {
      const ingestor = stopAfter(t, startIngestor(run));
      await ingestor.ready;
      const handled = await waitForRecords(ingestor, target, 60_000);
      assert.ok(handled >= target, `the run handled ${handled} of ${target} records in 60 s`);
      ingestor.child.kill('SIGTERM');
      assert.equal(await ingestor.exited, 0, ingestor.output().slice(-3000));
      lags.push(await groupLag(run, run.topic));
      const [applied, commits] = [await appliedNext(), await committed()];
      for (const [partition, next] of applied)
        if ((commits.get(partition) ?? -1) < next)
          caught.push(
            `stop after ${target} records: partition ${partition} applied to ${next}, committed ${commits.get(partition)}`,
          );
    }
    assert.deepEqual(caught, [], 'records applied to Redis but not committed by a graceful stop');
    assert.ok(
      lags.every((lag, i) => i === 0 || (lag > 0 && lag < lags[i - 1]!)),
      `records left after each stop (of ${events.length}): ${lags.slice(1).join(', ')}`,
    );

    const last = stopAfter(t, startIngestor(run));
    await last.ready;
    await waitForCaughtUp(run, run.topic, 120_000);
    last.child.kill('SIGTERM');
    assert.equal(await last.exited, 0, last.output().slice(-3000));
    const { entities, differing, differences } = await differencesFromOffline(run, events);
    assert.deepEqual(differences, [], `first differences among ${entities} entities (${differing} differ)`);
    console.log(`# records left after each stop: ${lags.slice(1).join(', ')}; ${entities} entities equal`);
  });
});
