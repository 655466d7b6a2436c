// POST /push with the ingestors on the record clock (TESSERA_INGEST_CLOCK=record, the default) and
// on the wall clock: a row older than a view's allowed lateness, or over 5 minutes ahead, is
// refused with a 400 naming it and nothing is written. Before, the server answered 200 and the
// ingestor dead-lettered the row as late, so a push that had "succeeded" reached neither Redis nor
// the offline store.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  cleanupRun,
  newTestRun,
  type TestRun,
  topicRecords,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { postJson, startIngestorAndServer } from '../support/server-process.ts';
import { createReadyTopics } from '../support/topics.ts';

const TOKEN = 'push-clock-test-token-0123';
const VIEW = 'user_transaction_features';
const HOUR = 3_600_000;

for (const clock of ['record', 'wall'])
  describe(`server: /push judged by the ingestors' ${clock} clock`, { timeout: 120_000 }, () => {
    let run: TestRun;
    let services: Awaited<ReturnType<typeof startIngestorAndServer>> | undefined;
    let url = '';

    before(async () => {
      run = newTestRun({ TESSERA_INGEST_CLOCK: clock }, `push-${clock}`);
      await createReadyTopics(run.kafka, [{ topic: run.topic, numPartitions: 2 }]);
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

    const push = (user: number, times: number[]) =>
      post('/push', {
        push_source_name: 'transactions',
        df: {
          user_id: times.map(() => user),
          event_timestamp: times.map((t) => new Date(t).toISOString()),
          amount: times.map((_, i) => 10 + i),
          merchant_id: times.map((_, i) => `m_${i}`),
        },
      });

    it('refuses a push with a row past the allowed lateness or too far ahead, writing nothing', async () => {
      const now = Date.now();
      const late = await push(92_000_001, [now - 1000, now - 2 * HOUR]);
      assert.equal(late.status, 400, JSON.stringify(late.json));
      assert.equal(late.json.error!.code, 'INVALID_ARGUMENT');
      assert.equal(late.json.error!.field, 'df.event_timestamp');
      assert.match(
        late.json.error!.message,
        /^df row 1: event time \S+ is older than view user_transaction_features's allowed_lateness \(1h\)/,
      );
      const ahead = await push(92_000_001, [now + HOUR]);
      assert.equal(ahead.status, 400, JSON.stringify(ahead.json));
      assert.match(ahead.json.error!.message, /^df row 0: event time \S+ is more than 5 minutes ahead/);
      assert.equal(await topicRecords(run, run.topic), 0, 'nothing of the refused pushes is on the topic');
    });

    it('applies a push of recent rows, none of them dead-lettered', async () => {
      const user = 92_000_002;
      const now = Date.now();
      const ok = await push(user, [now - 30 * 60_000, now - 1000]);
      assert.equal(ok.status, 200, JSON.stringify(ok.json));
      await waitForCaughtUp(run, run.topic, 30_000);
      const res = await post('/get-online-features', {
        features: [`${VIEW}:transaction_count_1h`],
        entities: { user_id: [user] },
      });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal((res.json as unknown as { results: { values: unknown[] }[] }).results[1]!.values[0], 2);
      assert.equal(await topicRecords(run, `${run.topic}.dlq`), 0);
    });
  });
