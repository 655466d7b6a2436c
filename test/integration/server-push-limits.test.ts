// POST /push to a source topic whose max.message.bytes is lower than the 512 KiB of a produce
// request: the server reads the topic's limit from the real broker, so a large push goes out in
// requests the topic takes (the broker holds a request's whole batch to that limit; before, such a
// push was refused whole with MESSAGE_TOO_LARGE), a row over the limit refuses the push before
// anything is written, and a limit lowered while the server runs is read again after one refusal.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  cleanupRun,
  newTestRun,
  readTopicToEnd,
  type TestRun,
  topicRecords,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { postJson, startIngestorAndServer } from '../support/server-process.ts';
import { createReadyTopics } from '../support/topics.ts';

const TOKEN = 'push-limits-test-token-0123';
const VIEW = 'user_transaction_features';
/** The source topic's limit: 16 KiB, a push of 1,500 rows is ~150 KB. */
const TOPIC_LIMIT = 16 * 1024;

describe('server: /push to a source topic with a small max.message.bytes', { timeout: 120_000 }, () => {
  let run: TestRun;
  let services: Awaited<ReturnType<typeof startIngestorAndServer>> | undefined;
  let url = '';

  before(async () => {
    run = newTestRun({ TESSERA_INGEST_CLOCK: 'event' }, 'push-limits');
    await createReadyTopics(run.kafka, [
      {
        topic: run.topic,
        numPartitions: 2,
        configEntries: [{ name: 'max.message.bytes', value: String(TOPIC_LIMIT) }],
      },
    ]);
    services = await startIngestorAndServer(run, TOKEN);
    url = services.url;
  });

  after(async () => {
    await services?.stop();
    await cleanupRun(run);
  });

  const post = (path: string, body: unknown) =>
    postJson<{ rows?: number; error?: { code: string; message: string; field?: string } }>(
      url,
      path,
      body,
      TOKEN,
    );

  /** `rows` events of `user`, a second apart from `start`, with the given merchants. */
  const df = (
    user: number,
    start: number,
    rows: number,
    merchant = (i: number) => `merchant_${i % 300}`,
  ) => ({
    user_id: Array.from({ length: rows }, () => user),
    event_timestamp: Array.from({ length: rows }, (_, i) => new Date(start + i * 1000).toISOString()),
    amount: Array.from({ length: rows }, (_, i) => (i % 50) + 0.5),
    merchant_id: Array.from({ length: rows }, (_, i) => merchant(i)),
  });

  const recordsOnTopic = () => topicRecords(run, run.topic);

  const count1h = async (user: number, asOf: number) => {
    const res = await post('/get-online-features', {
      features: [`${VIEW}:transaction_count_1h`],
      entities: { user_id: [user] },
      as_of: asOf,
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return (res.json as unknown as { results: { values: unknown[] }[] }).results[1]!.values[0];
  };

  it('sends a push many times the topic limit in requests the topic takes, in order', async () => {
    const user = 91_000_001;
    const start = Date.UTC(2026, 0, 7, 10);
    const rows = 1_500;
    const pushed = df(user, start, rows);
    const ok = await post('/push', { push_source_name: 'transactions', df: pushed });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal(ok.json.rows, rows);

    // The whole topic (a 200 means Kafka acknowledged every row): a row sent twice would show.
    const messages = await readTopicToEnd(run, run.topic);
    assert.equal(messages.length, rows);
    assert.deepEqual(
      messages.map((m) => (JSON.parse(String(m.value)) as { event_timestamp: string }).event_timestamp),
      pushed.event_timestamp,
      'one key, one partition: the rows in the order pushed',
    );
    await waitForCaughtUp(run, run.topic, 30_000);
    // 1,500 events a second apart: the 1 h window just after the last holds its 3,600 s before.
    assert.equal(await count1h(user, start + rows * 1000), rows);
  });

  it("refuses a push with a row over the topic's limit, writing none of its rows", async () => {
    const before = await recordsOnTopic();
    const start = Date.UTC(2026, 0, 7, 12);
    const res = await post('/push', {
      push_source_name: 'transactions',
      df: df(91_000_002, start, 20, (i) => (i === 13 ? 'm'.repeat(TOPIC_LIMIT) : `m_${i}`)),
    });
    assert.equal(res.status, 400, JSON.stringify(res.json));
    assert.equal(res.json.error!.code, 'INVALID_ARGUMENT');
    assert.equal(res.json.error!.field, 'df');
    assert.match(
      res.json.error!.message,
      new RegExp(
        `df row 13: its record is \\d+ bytes, over what ${run.topic} takes \\(max.message.bytes ${TOPIC_LIMIT}`,
      ),
    );
    assert.equal(await recordsOnTopic(), before, 'nothing of the refused push is on the topic');
  });

  it('reads a limit lowered while it runs again after the broker refuses one request', async () => {
    const lowered = 4 * 1024;
    const admin = run.kafka.admin();
    await admin.connect();
    try {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: 2,
            name: run.topic,
            configEntries: [{ name: 'max.message.bytes', value: String(lowered) }],
          },
        ],
      });
    } finally {
      await admin.disconnect();
    }
    const user = 91_000_003;
    const start = Date.UTC(2026, 0, 7, 14);
    // ~10 KB to one key: one request under the old 15 KiB bound, over the new limit.
    const first = await post('/push', { push_source_name: 'transactions', df: df(user, start, 100) });
    assert.equal(first.status, 400, JSON.stringify(first.json));
    assert.match(first.json.error!.message, /MESSAGE_TOO_LARGE/);
    const again = await post('/push', { push_source_name: 'transactions', df: df(user, start, 100) });
    assert.equal(again.status, 200, JSON.stringify(again.json));
    await waitForCaughtUp(run, run.topic, 30_000);
    // The refused request was written in no part: the window holds the second push's 100 only.
    assert.equal(await count1h(user, start + 100_000), 100);
  });
});
