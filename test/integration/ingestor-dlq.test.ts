// Bad input never crashes the ingestor and is never lost: each bad record lands in
// `<topic>.dlq` with its original bytes and a reason, is counted in a metric, and the ingestor keeps
// applying the good records around it. Also checks the continuous push (features.updates) and the
// per-event training rows (features.rows), and that a DLQ outage holds the partition back instead
// of dropping the bad records.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseRows, rowsInRecord } from '../../services/flusher/feature-rows.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { planView, readFeatures } from '../../shared/engine/index.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  fraudMessages,
  newTestRun,
  readTopic,
  readTopicToEnd,
  startIngestor,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { assertStillUp, opsUrl, scrapeMetrics } from '../support/ops-endpoint.ts';
import { stopAfter } from '../support/stop-after.ts';
import { createReadyTopics } from '../support/topics.ts';

const MIN = 60_000;

describe('ingestor: dead letters, push and training rows', { timeout: 120_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'wall' });
  const now = Date.now();
  const good = (user: number, dt: number, amount: number, merchant: string) =>
    JSON.stringify({
      user_id: user,
      event_timestamp: new Date(now + dt).toISOString(),
      amount,
      merchant_id: merchant,
    });
  const bad: { value: string; reason: string }[] = [
    { value: '{not json', reason: 'undecodable' },
    {
      value: JSON.stringify({ event_timestamp: new Date(now).toISOString(), amount: 1, merchant_id: 'm' }),
      reason: 'missing_key',
    },
    {
      value: JSON.stringify({
        user_id: 1,
        event_timestamp: new Date(now).toISOString(),
        amount: 'abc',
        merchant_id: 'm',
      }),
      reason: 'non_numeric',
    },
    {
      value: JSON.stringify({
        user_id: 1,
        event_timestamp: '2026-01-01T10:00:00',
        amount: 1,
        merchant_id: 'm',
      }),
      reason: 'bad_timestamp',
    },
    {
      // Half a surrogate pair, escaped: no UTF-8 form, so stored it would merge with other merchants.
      value: JSON.stringify({
        user_id: 1,
        event_timestamp: new Date(now).toISOString(),
        amount: 1,
        merchant_id: 'm\ud800',
      }),
      reason: 'schema_mismatch',
    },
    { value: good(1, -2 * 60 * MIN, 5, 'late-merchant'), reason: 'late' },
    { value: good(1, 60 * MIN, 5, 'future-merchant'), reason: 'future' },
  ];

  before(async () => createSourceTopic(run, 1));
  after(async () => cleanupRun(run));

  it('dead-letters each bad record with its bytes and reason, and applies the good ones', async (t) => {
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({
      topic: run.topic,
      messages: [
        { key: '1', value: good(1, -10 * MIN, 10, 'a') },
        ...bad.map((b) => ({ key: '1', value: b.value })),
        { key: '1', value: good(1, -5 * MIN, 20, 'b') },
      ],
    });
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    await waitForCaughtUp(run, run.topic, 30_000);
    // Still alive and still applying after the bad input.
    await producer.send({ topic: run.topic, messages: [{ key: '1', value: good(1, -1 * MIN, 30, 'a') }] });
    await waitForCaughtUp(run, run.topic, 30_000);
    await producer.disconnect();

    // The whole topic once the ingestor has caught up: a dead letter too many fails the compare.
    const dead = await readTopicToEnd(run, `${run.topic}.dlq`);
    assert.deepEqual(
      dead.map((m) => m.headers?.['tessera-reason']?.toString()),
      bad.map((b) => b.reason),
    );
    dead.forEach((m, i) => {
      assert.equal(m.value?.toString(), bad[i]!.value, 'original bytes');
      assert.equal(m.headers?.['tessera-source-topic']?.toString(), run.topic);
      assert.equal(m.headers?.['tessera-source-offset']?.toString(), String(i + 1));
      assert.ok(
        (m.headers?.['tessera-message']?.toString() ?? '').length > 10,
        'a message says what was wrong',
      );
    });

    const metrics = await scrapeMetrics(ingestor.output());
    for (const reason of [
      'undecodable',
      'missing_key',
      'non_numeric',
      'bad_timestamp',
      'schema_mismatch',
      'late',
      'future',
    ]) {
      assert.match(
        metrics,
        new RegExp(
          `tessera_ingestor_dlq_events_total\\{topic="${run.topic.replaceAll('.', '\\.')}",reason="${reason}"\\} 1`,
        ),
      );
    }
    assert.match(
      metrics,
      /tessera_ingestor_events_total\{view="user_transaction_features",outcome="applied"\} 3/,
    );
    // Five undecodable or invalid records and two rejected (late, future) by the one view.
    assert.match(
      metrics,
      /tessera_ingestor_events_total\{view="user_transaction_features",outcome="dlq"\} 7\n/,
    );
    // Event -> Redis latency of the three good records only: the dead letters never reach Redis.
    assert.match(metrics, /^tessera_ingestor_event_to_redis_seconds_count 3$/m);
    assert.equal((await fetch(`${opsUrl(ingestor.output())}/ready`)).status, 200);

    const plan = planView(loadDefinitionsFile(run.config.definitions).views[0]!);
    const state = (await new RedisStateStore(run.redis, plan, run.config.redisKeyPrefix).loadMany(['1'])).get(
      '1',
    )!;
    const values = readFeatures(plan, state.state, now);
    assert.deepEqual(values, [3, 3, 20, 20, 30, 2], 'three good events: avg 20, max 30, merchants a and b');

    // Three rows, and a no-row mark for each offset dead-lettered by the decoder or as late (five
    // and one, each naming its dead letter's reason; the future event gets none), so the offline
    // writer sees every offset accounted for. Read with the flusher's own parser.
    const records = await readTopic(run, `${run.id}.features.rows`, 9, 30_000, (m) => rowsInRecord(m.value));
    const parsed = records.flatMap((m) =>
      parseRows(m.value).map((p) => {
        assert.ok(p.ok, `a features.rows line the flusher refuses: ${JSON.stringify(p)}`);
        return p.row
          ? { offset: p.row.offset, no_row: undefined, features: p.row.features as Record<string, number> }
          : { offset: p.noRow.offset, no_row: p.noRow.reason, features: {} as Record<string, number> };
      }),
    );
    assert.deepEqual(
      parsed.filter((r) => r.no_row === undefined).map((r) => r.features.transaction_count_1h),
      [0, 1, 2],
      'each training row holds the features before its event',
    );
    assert.deepEqual(
      parsed.filter((r) => r.no_row !== undefined).map((r) => [r.offset, r.no_row]),
      bad.map((b, i) => [i + 1, b.reason]).filter(([, reason]) => reason !== 'future'),
    );
    const updates = await readTopic(run, `${run.id}.features.updates`, 2);
    const lastUpdate = JSON.parse(updates[updates.length - 1]!.value!.toString()) as {
      features: Record<string, number>;
      definitions_hash: string;
    };
    assert.equal(lastUpdate.features.transaction_count_1h, 3);
    assert.match(lastUpdate.definitions_hash, /^[0-9a-f]{16}$/);

    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0);
  });
});

describe('ingestor: a DLQ outage pauses instead of dropping', { timeout: 180_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const dlqTopic = `${run.topic}.dlq`;
  before(async () => createSourceTopic(run, 2));
  after(async () => cleanupRun(run));

  it('keeps the bad records until the DLQ is back, then dead-letters each and loses no good one', async (t) => {
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready; // it has created the DLQ topic
    const admin = run.kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [dlqTopic] });

    const events = generateFraudEvents({ events: 400, seed: 23 });
    const messages = fraudMessages(events);
    const bad = [3, 150, 390].map((at) => ({ at, value: `{broken ${at}` }));
    const producer = run.kafka.producer();
    await producer.connect();
    let sent = 0;
    for (const b of bad) {
      await producer.send({ topic: run.topic, messages: messages.slice(sent, b.at) });
      await producer.send({ topic: run.topic, messages: [{ key: '1', value: b.value }] });
      sent = b.at;
    }
    await producer.send({ topic: run.topic, messages: messages.slice(sent) });
    await producer.disconnect();

    // While the DLQ is gone, the batches holding bad records fail and come back: nothing commits
    // past them, and nothing is counted as dead-lettered. Looked at no sooner than 8 s in, and only
    // once a failed DLQ send is counted: each send fails only after kafkajs' own retries (~5 s),
    // which a busy machine stretches past a fixed 8 s.
    const outage = Date.now();
    let during = '';
    for (;;) {
      during = await scrapeMetrics(ingestor.output());
      const failed = /^tessera_ingestor_kafka_errors_total [1-9]/m.test(during);
      if (failed && Date.now() - outage >= 8000) break;
      assert.ok(Date.now() - outage < 60_000, `no failed DLQ send counted in 60 s:\n${during}`);
      assertStillUp(ingestor, 'while the DLQ was down');
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.doesNotMatch(
      during,
      /tessera_ingestor_dlq_events_total\{/,
      'no dead letter counted during the outage',
    );
    assert.match(during, /^tessera_ingestor_kafka_errors_total [1-9]/m, 'the failed DLQ sends are counted');
    const [committed] = await admin.fetchOffsets({ groupId: run.config.ingestorGroup, topics: [run.topic] });
    const ends = await admin.fetchTopicOffsets(run.topic);
    const lag = ends.reduce(
      (sum, end) =>
        sum +
        Number(end.high) -
        Math.max(0, Number(committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? 0)),
      0,
    );
    assert.ok(lag > 0, 'the partitions with bad records are held back');
    assertStillUp(ingestor, 'while the DLQ was down');

    await admin.disconnect();
    await createReadyTopics(run.kafka, [{ topic: dlqTopic, numPartitions: 6 }]);
    await waitForCaughtUp(run, run.topic, 120_000);
    const dead = await readTopic(run, dlqTopic, bad.length);
    assert.deepEqual(
      [...new Set(dead.map((m) => m.value!.toString()))].sort(),
      bad.map((b) => b.value).sort(),
      'every bad record reached the DLQ once it was back',
    );
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0);
    const { entities, differences } = await differencesFromOffline(run, events);
    assert.deepEqual(differences, [], `no good event lost or doubled among ${entities} entities`);
  });
});

describe('ingestor: commits are periodic, and a graceful stop commits what is processed', {
  timeout: 120_000,
}, () => {
  // A minute between commits: within the test only the first fetch's commit and the stop commit.
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event', TESSERA_INGEST_COMMIT_INTERVAL_MS: '60000' });
  before(async () => createSourceTopic(run, 2));
  after(async () => cleanupRun(run));

  it('leaves the committed offsets behind while running and at the end after SIGTERM', async (t) => {
    const events = generateFraudEvents({ events: 3000, seed: 29 });
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    const producer = run.kafka.producer();
    await producer.connect();
    const processed = async () => {
      const text = await scrapeMetrics(ingestor.output());
      return [...text.matchAll(/^tessera_ingestor_events_total\{[^}]*\} (\d+)/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    };
    const waitProcessed = async (n: number) => {
      for (let i = 0; (await processed()) < n && i < 300; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(await processed(), n);
    };
    // Two rounds: each partition's first fetch commits at once (its interval has passed), the
    // second round's wait for the interval.
    await producer.send({ topic: run.topic, messages: fraudMessages(events.slice(0, 1500)) });
    await waitProcessed(1500);
    await producer.send({ topic: run.topic, messages: fraudMessages(events.slice(1500)) });
    await waitProcessed(events.length);
    await producer.disconnect();

    const admin = run.kafka.admin();
    await admin.connect();
    const committedSum = async () => {
      const [c] = await admin.fetchOffsets({ groupId: run.config.ingestorGroup, topics: [run.topic] });
      return (c?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
    };
    assert.ok((await committedSum()) < events.length, 'the second round is processed but not committed yet');
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0);
    assert.equal(await committedSum(), events.length, 'the graceful stop committed everything processed');
    await admin.disconnect();
  });
});

describe('ingestor: a burst of dead letters larger than one produce request', { timeout: 120_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const dlqTopic = `${run.topic}.dlq`;
  before(async () => createSourceTopic(run, 1));
  after(async () => cleanupRun(run));

  // Their headers (reason, message, source position) outweigh their values: a size estimate of
  // keys and values alone put ~1.3 MB in one request, over the broker's 1 MiB limit, which crashed
  // the consumer for good (found by the RSS benchmark, whose replayed stream is mostly late).
  it('dead-letters 4,000 late events fetched together and keeps consuming', async (ctx) => {
    const ingestor = stopAfter(ctx, startIngestor(run));
    await ingestor.ready;
    const t = Date.UTC(2026, 0, 20);
    const event = (ts: number, amount: number) =>
      JSON.stringify({ user_id: 1, event_timestamp: new Date(ts).toISOString(), amount, merchant_id: 'm1' });
    const late = Array.from({ length: 4000 }, (_, i) => ({
      key: '1',
      value: event(t - 2 * 24 * 60 * MIN + i, i),
    }));
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.topic, messages: [{ key: '1', value: event(t, 5) }] });
    // One send: the ingestor fetches them in one batch.
    await producer.send({ topic: run.topic, messages: late });
    await producer.send({ topic: run.topic, messages: [{ key: '1', value: event(t + MIN, 7) }] });
    await producer.disconnect();

    await waitForCaughtUp(run, run.topic, 60_000);
    assertStillUp(ingestor);
    // The whole topic once the ingestor has caught up: each late event dead-lettered exactly once.
    const dead = await readTopicToEnd(run, dlqTopic);
    assert.equal(dead.length, late.length);
    assert.ok(dead.every((m) => m.headers?.['tessera-reason']?.toString() === 'late'));
    const plan = planView(loadDefinitionsFile(run.config.definitions).views[0]!);
    const { state } = (
      await new RedisStateStore(run.redis, plan, run.config.redisKeyPrefix).loadMany(['1'])
    ).get('1')!;
    assert.equal(readFeatures(plan, state, t + 2 * MIN)[0], 2, 'both in-time events applied, no late one');
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0);
  });
});

describe('ingestor: a record at the size limit of its topic', { timeout: 120_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const dlqTopic = `${run.topic}.dlq`;
  before(async () => createSourceTopic(run, 1));
  after(async () => cleanupRun(run));

  // The source topic takes a batch of up to 1,048,588 bytes (the broker's default); the same
  // record with Tessera's dead-letter headers is ~300 bytes more. A DLQ topic with the default
  // limit refused it, and the batch failed again after every restart.
  it('dead-letters it whole: the DLQ topic the ingestor creates takes more than its source', async (t) => {
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    const admin = run.kafka.admin();
    await admin.connect();
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: dlqTopic, configNames: ['max.message.bytes'] }],
    });
    await admin.disconnect();
    const limit = Number(resources[0]!.configEntries[0]!.configValue);
    assert.ok(limit >= 1_048_588 + 64 * 1024, `the DLQ takes ${limit} bytes`);

    const huge = Buffer.alloc(1_048_400, 'x'); // not JSON: undecodable
    const good = JSON.stringify({
      user_id: 2,
      event_timestamp: new Date(Date.UTC(2026, 0, 20)).toISOString(),
      amount: 3,
      merchant_id: 'm1',
    });
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.topic, messages: [{ key: '1', value: huge }] });
    await producer.send({ topic: run.topic, messages: [{ key: '2', value: good }] });
    await producer.disconnect();

    await waitForCaughtUp(run, run.topic, 60_000);
    assertStillUp(ingestor);
    const [dead] = await readTopic(run, dlqTopic, 1);
    assert.equal(dead!.headers?.['tessera-reason']?.toString(), 'undecodable');
    assert.ok(dead!.value!.equals(huge), 'the original bytes, whole');
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0);
  });
});

describe('ingestor: training rows off (TESSERA_TRAINING_ROWS=false)', { timeout: 120_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event', TESSERA_TRAINING_ROWS: 'false' });
  const events = generateFraudEvents({ events: 3000, seed: 31 });
  before(async () => createSourceTopic(run, 2));
  after(async () => cleanupRun(run));

  it('writes the same states and pushes vectors, but produces no row', async (t) => {
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.topic, messages: fraudMessages(events) });
    await producer.disconnect();
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    await waitForCaughtUp(run, run.topic, 60_000);
    const { entities, differences } = await differencesFromOffline(run, events);
    assert.deepEqual(differences, [], `first differences among ${entities} entities`);
    const metrics = await scrapeMetrics(ingestor.output());
    assert.match(
      metrics,
      new RegExp(
        `tessera_ingestor_events_total\\{view="user_transaction_features",outcome="applied"\\} ${events.length}`,
      ),
    );
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0, ingestor.output());
    // Read once the ingestor has stopped (all it pushed is in the topic): every entity's vector.
    const updates = await readTopicToEnd(run, `${run.id}.features.updates`);
    assert.equal(new Set(updates.map((m) => m.key?.toString())).size, entities, 'a vector of every entity');

    // The rows topic exists (the flusher subscribes to it) and stays empty.
    const admin = run.kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(`${run.id}.features.rows`);
      assert.deepEqual(
        offsets.map((o) => o.high),
        offsets.map(() => '0'),
        'no training row was produced',
      );
    } finally {
      await admin.disconnect();
    }
  });
});
