// The updates topic goes away under a running ingestor (deleted here; a broker refusing it is the
// same to the producer): the push is retried in place and nothing is committed meanwhile, so no
// vector is lost. Before, the push was dropped after the producer's retries and the offsets
// committed: an entity that then went idle stayed stale downstream for good.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  cleanupRun,
  createSourceTopic,
  newTestRun,
  readTopic,
  startIngestor,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { opsUrl, scrapeMetrics } from '../support/ops-endpoint.ts';
import { createReadyTopics } from '../support/topics.ts';

describe('ingestor: the updates topic away', { timeout: 120_000 }, () => {
  const run = newTestRun({ TESSERA_INGEST_CLOCK: 'event', TESSERA_INGEST_COMMIT_INTERVAL_MS: '0' });
  const updatesTopic = `${run.id}.features.updates`;
  const t0 = Date.UTC(2026, 0, 1);
  const event = (user: number, s: number) => ({
    key: String(user),
    value: JSON.stringify({
      user_id: user,
      event_timestamp: new Date(t0 + s * 1000).toISOString(),
      amount: 1,
      merchant_id: 'm',
    }),
  });

  before(async () => createSourceTopic(run, 1));
  after(async () => cleanupRun(run));

  it('retries the push, commits nothing meanwhile, and pushes the vectors once the topic is back', async () => {
    const producer = run.kafka.producer();
    await producer.connect();
    const admin = run.kafka.admin();
    await admin.connect();
    const ingestor = startIngestor(run);
    try {
      await ingestor.ready;
      await producer.send({ topic: run.topic, messages: [event(1, 1)] });
      await waitForCaughtUp(run, run.topic, 30_000);

      // The series exists before any failure, so increase() sees the first one.
      assert.match(
        await scrapeMetrics(ingestor.output()),
        new RegExp(`tessera_ingestor_push_errors_total\\{topic="${run.topic}",stage="kafka"\\} 0\n`),
      );
      await admin.deleteTopics({ topics: [updatesTopic] });
      // Entity 2's only event: nothing later would push a vector of it.
      await producer.send({ topic: run.topic, messages: [event(2, 2)] });
      const url = opsUrl(ingestor.output());
      let body = '';
      for (let i = 0; i < 60 && !body.includes('cannot be pushed'); i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const res = await fetch(`${url}/ready`);
        body = res.status === 503 ? await res.text() : '';
      }
      assert.match(body, /feature updates of .* cannot be pushed/, '/ready names the push');
      await assert.rejects(
        waitForCaughtUp(run, run.topic, 3_000),
        /behind/,
        'nothing is committed meanwhile',
      );

      await createReadyTopics(run.kafka, [{ topic: updatesTopic, numPartitions: 6 }]);
      await waitForCaughtUp(run, run.topic, 60_000);
      const updates = await readTopic(run, updatesTopic, 1, 30_000, (m) =>
        m.key?.toString() === '2' ? 1 : 0,
      );
      assert.ok(
        updates.some((m) => m.key?.toString() === '2'),
        "entity 2's vector reached the topic",
      );
      const metrics = await scrapeMetrics(ingestor.output());
      assert.match(metrics, /tessera_ingestor_consumer_crashes_total\{cause="kafka"\} 0\n/);
      // Counted by the source topic and the stage that failed; the PUBLISH stage, which this run
      // does not have, has no series.
      const failures = metrics.match(
        new RegExp(`tessera_ingestor_push_errors_total\\{topic="${run.topic}",stage="kafka"\\} (\\d+)`),
      );
      assert.ok(failures && Number(failures[1]) > 0, 'the failed pushes are counted under stage="kafka"');
      assert.doesNotMatch(metrics, /push_errors_total\{[^}]*stage="(publish|encode)"/);
      assert.equal((await fetch(`${url}/ready`)).status, 200);
    } finally {
      await producer.disconnect();
      await admin.disconnect();
      ingestor.child.kill('SIGTERM');
      assert.equal(await ingestor.exited, 0, ingestor.output().slice(-2000));
    }
  });
});
