// A flusher whose Kafka consumer crashes (its source topic deleted under it) must say so: /ready
// 503 naming the crash, and a counted crash. It said ready, and went on writing empty flushes that
// kept its last-success gauge (and so the stale-store alert) green while nothing was consumed.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { cleanupStore, newFlusherRun, startFlusher } from '../support/flusher-process.ts';
import { cleanupRun, createSourceTopic } from '../support/ingestor-process.ts';
import { opsUrl, scrapeMetrics } from '../support/ops-endpoint.ts';

describe('flusher readiness', { timeout: 90_000 }, () => {
  const run = newFlusherRun();
  after(async () => {
    await cleanupStore(run);
    await cleanupRun(run);
  });

  it('is not ready while its consumer has crashed, and counts the crash', async () => {
    await createSourceTopic(run, 3);
    const flusher = startFlusher(run);
    try {
      await flusher.ready;
      const url = opsUrl(flusher.output());
      assert.equal((await fetch(`${url}/ready`)).status, 200);

      const admin = run.kafka.admin();
      await admin.connect();
      await admin.deleteTopics({ topics: [run.topic] });
      await admin.disconnect();

      let last = '';
      const deadline = Date.now() + 45_000;
      for (;;) {
        const res = await fetch(`${url}/ready`);
        last = `${res.status} ${await res.text()}`;
        if (res.status === 503 && last.includes('kafka consumer crashed')) break;
        assert.ok(Date.now() < deadline, `still "${last}" 45 s after the source topic was deleted`);
        await new Promise((r) => setTimeout(r, 500));
      }
      const crashes = /^tessera_flusher_consumer_crashes_total (\d+)$/m.exec(
        await scrapeMetrics(flusher.output()),
      )?.[1];
      assert.ok(Number(crashes) >= 1, `crashes counted: ${crashes}`);
    } finally {
      flusher.child.kill('SIGTERM');
      await flusher.exited;
    }
  });
});
