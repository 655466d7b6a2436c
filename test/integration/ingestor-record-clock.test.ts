// The default clock, TESSERA_INGEST_CLOCK=record: lateness is judged by when a record reached Kafka
// (its timestamp), not by when the ingestor gets to it. A backlog left by an outage longer than the
// allowed lateness is applied, where the wall clock dead-lettered all of it as late; a record that
// reached Kafka later than the lateness after its event's time is dead-lettered as late, and one
// over 5 minutes ahead of its record's timestamp as future, whenever the ingestor reads them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { type EntityState, planView } from '../../shared/engine/index.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import type { FraudEvent } from '../../shared/synth/fraud-events.ts';
import { seededRng } from '../../shared/synth/random.ts';
import {
  cleanupRun,
  createSourceTopic,
  fraudMessages,
  newTestRun,
  readTopicToEnd,
  recentFraudEvents,
  runOffline,
  startIngestor,
  stateDifferences,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { scrapeMetrics } from '../support/ops-endpoint.ts';
import { stopAfter } from '../support/stop-after.ts';

const HOUR = 3_600_000;
const MIN = 60_000;

describe('ingestor: the record clock (the default)', { timeout: 180_000 }, () => {
  // Nothing set: the default clock is under test.
  const run = newTestRun({});
  // Records stamped up to 20 days back: under the broker's default time retention (7 days) the
  // segments they fill could be deleted by its next retention check before the ingestor reads them.
  before(async () => createSourceTopic(run, 1, { keepOldRecords: true }));
  after(async () => cleanupRun(run));

  it('applies a backlog older than the lateness, and dead-letters by record time alone', async (t) => {
    const plan = planView(loadDefinitionsFile(run.config.definitions).views[0]!);
    assert.equal(run.config.ingestClock, 'record');
    const lateness = plan.latenessMs;
    // 20 days of events ending 10 h ago, produced as they happened: each record's timestamp is
    // the newest event time so far plus half a second. The ingestor was down all along.
    const now = Date.now();
    const { events } = recentFraudEvents(now - 10 * HOUR, { events: 20_000, users: 400, seed: 41 });
    const rng = seededRng(41);
    let newest = Number.NEGATIVE_INFINITY;
    const arrivals: number[] = [];
    /** Index in `events` (= offset) → the reason the ingestor must dead-letter it. */
    const expected = new Map<number, 'late' | 'future'>();
    events.forEach((e, i) => {
      newest = Math.max(newest, e.event_timestamp);
      let arrival = newest + 500;
      const roll = rng.next();
      if (roll < 0.002) {
        // Reached Kafka 2 h after its time (a producer that buffered): late.
        arrival = e.event_timestamp + 2 * HOUR;
        expected.set(i, 'late');
      } else if (roll < 0.004) {
        // Stamped 10 minutes ahead of its record (a producer with a broken clock): future.
        e.event_timestamp = arrival + 10 * MIN;
        expected.set(i, 'future');
      } else if (e.event_timestamp < arrival - lateness) {
        expected.set(i, 'late'); // out of order by more than the lateness, as generated
      }
      arrivals.push(arrival);
    });
    assert.ok(expected.size >= 40, `dead letters expected: ${expected.size}`);
    assert.ok(
      Math.max(...arrivals) < now - 10 * HOUR + lateness,
      'every event is older than the lateness on the wall clock: it would have dead-lettered them all',
    );
    const messages = fraudMessages(events).map((m, i) => ({ ...m, timestamp: String(arrivals[i]) }));
    const producer = run.kafka.producer();
    await producer.connect();
    for (let i = 0; i < messages.length; i += 2000)
      await producer.send({ topic: run.topic, messages: messages.slice(i, i + 2000) });
    await producer.disconnect();

    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    await waitForCaughtUp(run, run.topic, 90_000);

    // The whole topic once the ingestor has caught up: a dead letter too many fails the compare.
    const dead = await readTopicToEnd(run, `${run.topic}.dlq`);
    // The DLQ topic has partitions of its own: compared by source offset.
    const letters = dead.map((m) => ({
      offset: Number(m.headers?.['tessera-source-offset']?.toString()),
      reason: m.headers?.['tessera-reason']?.toString(),
    }));
    letters.sort((a, b) => a.offset - b.offset);
    assert.deepEqual(
      letters.map((l) => `${l.offset}/${l.reason}`),
      [...expected].sort(([a], [b]) => a - b).map(([i, reason]) => `${i}/${reason}`),
    );
    const metrics = await scrapeMetrics(ingestor.output());
    assert.ok(
      metrics.includes(
        `tessera_ingestor_events_total{view="${plan.view.name}",outcome="applied"} ${events.length - expected.size}\n`,
      ),
      metrics,
    );

    // Every entity equals the engine run offline over the records not dead-lettered, each at its
    // own offset (one partition, produced in order).
    const kept: FraudEvent[] = [];
    events.forEach((e, i) => {
      if (!expected.has(i)) kept.push({ ...e, partition: 0, offset: i });
    });
    const offline = runOffline(plan, kept);
    const store = new RedisStateStore(run.redis, plan, run.config.redisKeyPrefix);
    const entities = [...offline.states.keys()];
    const loaded = await store.loadMany(entities);
    const online = new Map<string, EntityState | null>(
      entities.map((entity) => {
        const got = loaded.get(entity)!;
        return [entity, got.version === 0 ? null : got.state];
      }),
    );
    const end = Math.max(...kept.map((e) => e.event_timestamp)) + 1;
    const differences = stateDifferences(plan, offline, online, end);
    assert.deepEqual(
      differences.slice(0, 10),
      [],
      `${differences.length} of ${entities.length} entities differ`,
    );
  });
});
