// A feature vector or training row over its topic's max.message.bytes: a last_n of long strings
// holds n of its events' values, so it can be several times a record the source took. Sent as
// is, the rows' request failed for good and the consumer crashed at every restart; an oversized
// vector took the rest of its fetch's vectors down with it. Now it is left out (a row gives way
// to a no-row mark), counted and logged, and everything else goes out.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import { parseRows } from '../../services/flusher/feature-rows.ts';
import {
  cleanupRun,
  createSourceTopic,
  newTestRun,
  readTopic,
  startIngestor,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { scrapeMetrics } from '../support/ops-endpoint.ts';
import { stopAfter } from '../support/stop-after.ts';
import { createReadyTopics } from '../support/topics.ts';

describe('ingestor: vectors and rows over their topic limit', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-oversized-'));
  const definitions = join(dir, 'fraud-last-n.yaml');
  writeFileSync(
    definitions,
    readFileSync('definitions/fraud.yaml', 'utf8').replace(
      '\nfeature_services:',
      `      - name: last_merchants_1h
        aggregation: last_n
        n: 3
        column: merchant_id
        window: 1h

feature_services:`,
    ),
  );
  const run = newTestRun({ TESSERA_DEFINITIONS: definitions, TESSERA_INGEST_CLOCK: 'event' });
  const t0 = Date.UTC(2026, 0, 1);
  const event = (user: number, s: number, merchant: string) => ({
    key: String(user),
    value: JSON.stringify({
      user_id: user,
      event_timestamp: new Date(t0 + s * 1000).toISOString(),
      amount: 1,
      merchant_id: merchant,
    }),
  });

  before(async () => createSourceTopic(run, 1));
  after(async () => {
    await cleanupRun(run);
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves out only what is too large, keeps every other vector and row, and keeps running', async () => {
    const big = (c: string) => c.repeat(400_000);
    const producer = run.kafka.producer();
    await producer.connect();
    // User 1's fourth event has three 400 KB merchants before it (its row: 1.2 MB) and its vector
    // after it too; user 2 is small, in the same fetch, after it.
    // One request each: together they are over the broker's request limit.
    for (const message of [
      event(1, 1, big('a')),
      event(1, 2, big('b')),
      event(1, 3, big('c')),
      event(1, 4, big('d')),
      event(2, 5, 'm2'),
    ])
      await producer.send({ topic: run.topic, messages: [message] });
    await producer.disconnect();
    const ingestor = startIngestor(run);
    try {
      await ingestor.ready;
      await waitForCaughtUp(run, run.topic, 60_000);
      const metrics = await scrapeMetrics(ingestor.output());
      assert.match(metrics, /tessera_ingestor_consumer_crashes_total\{cause="batch"\} 0\n/);
      assert.match(metrics, /tessera_ingestor_oversized_records_total\{topic="[^"]+features\.rows"\} [1-9]/);
      assert.match(
        metrics,
        /tessera_ingestor_oversized_records_total\{topic="[^"]+features\.updates"\} [1-9]/,
      );

      // Waits for user 2's vector (user 1's earlier, smaller vectors may come first).
      const updates = await readTopic(run, `${run.id}.features.updates`, 1, 30_000, (m) =>
        m.key?.toString() === '2' ? 1 : 0,
      );
      assert.ok(
        updates.some((m) => m.key?.toString() === '2'),
        "user 2's vector went out beside user 1's oversized one",
      );
      const lines = (m: KafkaMessage) =>
        parseRows(m.value).map((p) => {
          assert.ok(p.ok, `a features.rows line the flusher refuses: ${JSON.stringify(p)}`);
          return p.row
            ? { offset: p.row.offset, entity: p.row.entity, no_row: undefined }
            : { offset: p.noRow.offset, entity: undefined, no_row: p.noRow.reason };
        });
      // Waits for user 2's row and the mark (all the rows come in source order, one partition).
      const wanted = (r: { entity?: string; no_row?: string }) => r.entity === '2' || r.no_row !== undefined;
      const rows = (
        await readTopic(run, `${run.id}.features.rows`, 2, 30_000, (m) => lines(m).filter(wanted).length)
      ).flatMap(lines);
      assert.deepEqual(
        rows.filter((r) => r.no_row !== undefined).map((r) => [r.offset, r.no_row]),
        [[3, 'too_large']],
        "the fourth event's row gave way to a mark",
      );
      assert.ok(rows.some((r) => r.entity === '2'));
    } finally {
      ingestor.child.kill('SIGTERM');
      assert.equal(await ingestor.exited, 0, ingestor.output().slice(-2000));
    }
  });
});

// The training rows are packed into records of up to 64 KiB, and rows, vectors and dead letters
// sent in requests of up to 512 KiB; the broker holds a request's whole record batch to the topic's
// max.message.bytes. Topics set lower, and rows of multi-byte text (the records' bound was once
// counted in UTF-16 units), must still get batches they take: the rows' were refused for good and
// the consumer crashed.
describe('ingestor: rows, vectors and dead letters within small topic limits', { timeout: 120_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const LIMIT = 16_384;
  const UPDATES_LIMIT = 4_096;
  const EVENTS = 2_000;
  const USERS = 50;
  /** Undecodable records after the events: a dead letter each (~1.2 KB with its headers). */
  const BAD = 100;
  const DLQ_LIMIT = 8_192;
  const t0 = Date.UTC(2026, 0, 1);

  before(async () => {
    await createSourceTopic(run, 1);
    await createReadyTopics(run.kafka, [
      {
        topic: `${run.id}.features.rows`,
        numPartitions: 1,
        configEntries: [{ name: 'max.message.bytes', value: String(LIMIT) }],
      },
      {
        topic: `${run.id}.features.updates`,
        numPartitions: 1,
        configEntries: [{ name: 'max.message.bytes', value: String(UPDATES_LIMIT) }],
      },
      {
        topic: `${run.topic}.dlq`,
        numPartitions: 1,
        configEntries: [{ name: 'max.message.bytes', value: String(DLQ_LIMIT) }],
      },
    ]);
  });
  after(async () => cleanupRun(run));

  it('sends every row, vector and dead letter in batches under the topic limits, without a crash', async () => {
    const producer = run.kafka.producer();
    await producer.connect();
    // Merchants of two- and three-byte characters: each row ~150 bytes, 2,000 of them ~300 KB.
    await producer.send({
      topic: run.topic,
      messages: Array.from({ length: EVENTS }, (_, i) => ({
        key: String(i % USERS),
        value: JSON.stringify({
          user_id: i % USERS,
          event_timestamp: new Date(t0 + i * 1000).toISOString(),
          amount: 1 + (i % 7),
          merchant_id: `ü€${'ö'.repeat(i % 30)}${i % 40}`,
        }),
      })),
    });
    await producer.send({
      topic: run.topic,
      messages: Array.from({ length: BAD }, (_, i) => ({ key: String(i), value: `not json ${i}` })),
    });
    await producer.disconnect();
    const ingestor = startIngestor(run);
    try {
      await ingestor.ready;
      await waitForCaughtUp(run, run.topic, 60_000);
      const records = await readTopic(
        run,
        `${run.id}.features.rows`,
        EVENTS + BAD,
        30_000,
        (m) => parseRows(m.value).filter((p) => p.ok).length,
      );
      const offsets: number[] = [];
      const marks: number[] = [];
      for (const m of records) {
        assert.ok(m.value!.length <= LIMIT, `a features.rows record of ${m.value!.length} bytes`);
        for (const p of parseRows(m.value)) {
          assert.ok(p.ok, `a line the flusher refuses: ${JSON.stringify(p)}`);
          if (p.row) offsets.push(p.row.offset);
          else marks.push(p.noRow.offset);
        }
      }
      assert.deepEqual(
        marks.sort((a, b) => a - b),
        Array.from({ length: BAD }, (_, i) => EVENTS + i),
        'a no-row mark per dead letter',
      );
      // A fetch's rows come entity by entity (the order they are applied in), not in source order.
      assert.deepEqual(
        offsets.sort((a, b) => a - b),
        Array.from({ length: EVENTS }, (_, i) => i),
        'one row per event',
      );
      assert.ok(records.length > 1, `several records (${records.length})`);
      // Every user's vector, each at most the topic's limit (a request of several is held to it too).
      const users = new Set<string>();
      await readTopic(run, `${run.id}.features.updates`, USERS, 30_000, (m) => {
        assert.ok(m.value!.length <= UPDATES_LIMIT, `a vector of ${m.value!.length} bytes`);
        const user = m.key!.toString();
        const first = !users.has(user);
        users.add(user);
        return first ? 1 : 0;
      });
      assert.equal(users.size, USERS);
      const letters = await readTopic(run, `${run.topic}.dlq`, BAD, 30_000);
      assert.deepEqual(
        letters.map((m) => m.value!.toString()),
        Array.from({ length: BAD }, (_, i) => `not json ${i}`),
        'every dead letter, in source order',
      );
      const metrics = await scrapeMetrics(ingestor.output());
      assert.match(metrics, /tessera_ingestor_consumer_crashes_total\{cause="batch"\} 0\n/);
      assert.doesNotMatch(metrics, /tessera_ingestor_push_errors_total\{[^}]*\} [1-9]/);
    } finally {
      ingestor.child.kill('SIGTERM');
      assert.equal(await ingestor.exited, 0, ingestor.output().slice(-2000));
    }
  });
});

// The record the broker holds to the updates topic's max.message.bytes is the vector's key (the
// entity) and value together, and the value names the entity too: a long string entity counts
// twice. A vector whose value alone was within the limit but whose key took it over was sent, the
// broker refused it (MESSAGE_TOO_LARGE, not retriable), and the push was retried for ever: every
// topic's commits stopped behind it.
describe('ingestor: a vector over its topic limit by its key', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-oversized-key-'));
  const definitions = join(dir, 'fraud-string-keys.yaml');
  writeFileSync(
    definitions,
    readFileSync('definitions/fraud.yaml', 'utf8')
      .replace('join_key: user_id\n    type: int64', 'join_key: user_id\n    type: string')
      .replace('user_id: int64', 'user_id: string'),
  );
  const run = newTestRun({ TESSERA_DEFINITIONS: definitions, TESSERA_INGEST_CLOCK: 'event' });
  const UPDATES_LIMIT = 4_096;
  const t0 = Date.UTC(2026, 0, 1);
  const event = (user: string, s: number) => ({
    key: user,
    value: JSON.stringify({
      user_id: user,
      event_timestamp: new Date(t0 + s * 1000).toISOString(),
      amount: 1,
      merchant_id: 'm',
    }),
  });

  before(async () => {
    await createSourceTopic(run, 1);
    await createReadyTopics(run.kafka, [
      {
        topic: `${run.id}.features.updates`,
        numPartitions: 1,
        configEntries: [{ name: 'max.message.bytes', value: String(UPDATES_LIMIT) }],
      },
    ]);
  });
  after(async () => {
    await cleanupRun(run);
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves the vector out, counted, and pushes and commits the rest', async (t) => {
    // Value ~2.6 KB, under the limit less the record overhead (3,072 bytes); key and value ~4.9 KB.
    const long = 'u'.repeat(2_300);
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.topic, messages: [event(long, 1), event('short', 2)] });
    await producer.disconnect();
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    await waitForCaughtUp(run, run.topic, 60_000);
    const updates = await readTopic(run, `${run.id}.features.updates`, 1, 30_000, (m) =>
      m.key?.toString() === 'short' ? 1 : 0,
    );
    assert.deepEqual(
      updates.map((m) => m.key?.toString()),
      ['short'],
      'only the short entity was pushed',
    );
    const metrics = await scrapeMetrics(ingestor.output());
    assert.match(metrics, /tessera_ingestor_oversized_records_total\{topic="[^"]+features\.updates"\} 1\n/);
    assert.doesNotMatch(metrics, /tessera_ingestor_push_errors_total\{[^}]*\} [1-9]/);
    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0, ingestor.output().slice(-2000));
  });
});
