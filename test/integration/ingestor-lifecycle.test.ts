// Moments of an ingestor's life a broker only produces by chance, driven through a scripted kafkajs
// (test/support/scripted-kafka.ts) over the stack's real Redis: a heartbeat that fails once the
// states are saved, a batch kafkajs hands over after stop() began, a rejoin, a batch that keeps
// failing. The same moments on the real broker: ingestor-stop.test.ts, ingestor-scaleout.test.ts.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { stateKey } from '../../shared/state-store/redis-state-store.ts';
import { fraudRecord, type ScriptedMessage, scriptedIngestor } from '../support/scripted-kafka.ts';

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const records = (first: number, n: number, users: number): ScriptedMessage[] =>
  Array.from({ length: n }, (_, i) => ({
    offset: first + i,
    key: String(i % users),
    value: fraudRecord(i % users, T0 + (first + i) * 1000),
  }));

describe('ingestor lifecycle (scripted kafkajs, real Redis)', { timeout: 30_000 }, () => {
  let run: ReturnType<typeof scriptedIngestor> | undefined;
  afterEach(async () => {
    await run?.ingestor.stop();
    await run?.cleanup();
    run = undefined;
  });

  it('finishes a batch whose heartbeat fails after its states are saved (a rebalance then)', async () => {
    run = scriptedIngestor();
    const r = run;
    await r.ingestor.start();
    const batch = [...records(0, 20, 5), { offset: 20, key: 'x', value: '{not json' }];
    let failed = 0;
    r.control.heartbeat = async () => {
      if ((await r.stateKeys()).length > 0 && failed === 0) {
        failed++;
        const error = new Error('The group is rebalancing, so a rejoin is needed');
        error.name = 'KafkaJSProtocolError';
        throw error;
      }
    };
    // Failing here redelivered the batch: its events counted as duplicates, never as applied, the
    // bad record dead-lettered twice, and the push waited for the redelivery.
    await r.deliver(0, batch);
    assert.equal(failed, 1, 'the heartbeat after the save failed once');
    assert.deepEqual(r.resolved, [{ partition: 0, offset: '20' }]);
    const events = await r.metric('tessera_ingestor_events_total');
    assert.ok(
      events.includes('tessera_ingestor_events_total{view="user_transaction_features",outcome="applied"} 20'),
      events.join('\n'),
    );
    assert.ok(!events.some((l) => l.includes('outcome="duplicate"') && !l.endsWith(' 0')), events.join('\n'));
    assert.deepEqual(await r.metric('tessera_ingestor_kafka_errors_total'), [
      'tessera_ingestor_kafka_errors_total 0',
    ]);
    const letters = r.produced.filter((p) => p.topic.endsWith('.dlq')).flatMap((p) => p.messages);
    assert.equal(letters.length, 1);
  });

  it('leaves a batch handed over after stop() began unprocessed and unresolved', async () => {
    run = scriptedIngestor();
    const r = run;
    await r.ingestor.start();
    // kafkajs runs 6 batch handlers at once; a seventh partition's batch waits in its queue and is
    // handed over when one finishes, pause or not: after stop() has committed.
    const first = r.deliver(0, records(0, 50, 10));
    const stopping = r.ingestor.stop();
    const late = r.deliver(
      1,
      records(0, 50, 10).map((m) => ({
        ...m,
        key: `${Number(m.key) + 100}`,
        value: fraudRecord(Number(m.key) + 100, T0 + m.offset * 1000),
      })),
    );
    await Promise.all([first, late, stopping]);
    assert.deepEqual(r.resolved, [{ partition: 0, offset: '49' }]);
    assert.deepEqual(
      r.committed.map((c) => [c.partition, c.offset]),
      [[0, '50']],
      'the processed batch is committed by the stop',
    );
    const keys = await r.stateKeys();
    assert.ok(
      keys.length > 0 && keys.every((k) => !/:1\d\d\}$/.test(k)),
      `states of the late batch: ${keys.filter((k) => /:1\d\d\}$/.test(k)).length}`,
    );
  });

  it('shows the lag of a batch that keeps failing, and forgets given-away partitions at a rejoin', async () => {
    run = scriptedIngestor();
    const r = run;
    await r.ingestor.start();
    // Every series an alert's increase() reads exists from the start at 0 (a counter born at 1
    // hides its first crash from increase()).
    assert.deepEqual(await r.metric('tessera_ingestor_consumer_crashes_total'), [
      'tessera_ingestor_consumer_crashes_total{cause="kafka"} 0',
      'tessera_ingestor_consumer_crashes_total{cause="batch"} 0',
    ]);
    await r.deliver(2, records(0, 10, 5), 30);
    assert.deepEqual(await r.metric('tessera_ingestor_consumer_lag_messages'), [
      `tessera_ingestor_consumer_lag_messages{topic="${r.topic}",partition="2"} 20`,
    ]);
    // The brokers gone: the rows cannot be produced, so the batch fails, again and again. Its lag
    // (1,000 behind from its first record) must show, not a stale or missing figure.
    r.control.produceFails = true;
    await assert.rejects(r.deliver(3, records(0, 10, 5), 1000), /ECONNREFUSED/);
    assert.ok(
      (await r.metric('tessera_ingestor_consumer_lag_messages')).includes(
        `tessera_ingestor_consumer_lag_messages{topic="${r.topic}",partition="3"} 1000`,
      ),
    );
    // A rejoin may give partitions away: their last lag must not stay here (summed with the new
    // owner's by the lag alert).
    r.control.produceFails = false;
    r.rejoin();
    assert.deepEqual(await r.metric('tessera_ingestor_consumer_lag_messages'), []);
  });

  it('dead-letters a late event once when its batch is retried in place', async () => {
    run = scriptedIngestor();
    const r = run;
    await r.ingestor.start();
    await r.deliver(0, [{ offset: 0, key: '1', value: fraudRecord(1, T0 + 10 * HOUR) }]);
    // Another writer keeps changing user 1's state: every compare-and-set of the next batch loses,
    // until applyBatch gives up (a retriable error) and the batch is retried in place.
    const key = stateKey(r.config.redisKeyPrefix, 'user_transaction_features', '1');
    let bumps = 0;
    r.control.heartbeat = async () => {
      const failed = await r.metric('tessera_ingestor_redis_errors_total');
      if (failed[0]!.endsWith(' 0')) {
        bumps++;
        await r.redis.hincrby(key, 'v', 1);
      }
    };
    await r.deliver(0, [
      { offset: 1, key: '1', value: fraudRecord(1, T0 + 10 * HOUR + 1000) },
      { offset: 2, key: '1', value: fraudRecord(1, T0) }, // ten hours older: late
    ]);
    assert.ok(bumps >= 8, `the state was changed under the batch ${bumps} times`);
    const retries = await r.metric('tessera_ingestor_redis_errors_total');
    assert.deepEqual(retries, ['tessera_ingestor_redis_errors_total 1'], 'one attempt gave up');
    const letters = r.produced.filter((p) => p.topic.endsWith('.dlq')).flatMap((p) => p.messages);
    assert.equal(letters.length, 1, 'the late event was dead-lettered once, not once per attempt');
    assert.ok(
      (await r.metric('tessera_ingestor_dlq_events_total')).some((l) => l.endsWith('reason="late"} 1')),
    );
  });
});
