// Redis goes away under a running ingestor while events keep coming: the process must stay up,
// say it is not ready, count the errors, and once Redis is back apply every event exactly once
// (every entity's features equal the engine run offline). Runs against a private redis-server, so
// killing it disturbs nobody else.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  fraudMessages,
  type IngestorProcess,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { assertStillUp, opsUrl } from '../support/ops-endpoint.ts';
import { PrivateRedis } from '../support/private-redis.ts';

const EVENTS = 30_000;
// REDIS_OUTAGE_MS: a longer outage by hand (e.g. 45000: past the session timeout). 15 s by default:
// past kafkajs' own retries of a failed batch (~5 s), which used to crash the consumer and leave
// the group.
const OUTAGE_MS = Number(process.env.REDIS_OUTAGE_MS ?? 15_000);

describe('ingestor during a Redis outage', { timeout: 240_000 }, () => {
  const events = generateFraudEvents({ events: EVENTS, seed: 17 });
  let redis: PrivateRedis;
  let run: TestRun;
  /** Killed after the test whatever happened: a failed assertion must not leave it running. */
  let ingestor: IngestorProcess | undefined;

  before(async () => {
    redis = await PrivateRedis.start();
    // Event-time clock: the generated stream is historical, lateness is judged per entity. The
    // production session timeout (the tests' 6 s elsewhere): the group must not drop the member
    // during the outage, whose rejoin would redeliver from the last commit and hide a skipped batch.
    run = newTestRun({
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_REDIS_URL: redis.url,
      TESSERA_KAFKA_SESSION_TIMEOUT_MS: '30000',
      TESSERA_KAFKA_HEARTBEAT_MS: '3000',
    });
    // The test's own client reconnects by itself; its errors while Redis is down are expected.
    run.redis.on('error', () => {});
    await createSourceTopic(run, 3);
  });
  after(async () => {
    if (ingestor?.child.exitCode === null) ingestor.child.kill('SIGKILL');
    await cleanupRun(run);
    await redis.remove();
  });

  it('stays up and not ready while Redis is down, then applies every event exactly once', async () => {
    const started = startIngestor(run);
    ingestor = started;
    await started.ready;
    const ops = opsUrl(started.output());
    const stillUp = () => assertStillUp(started, 'during the outage');

    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    let produced = 0;
    const producing = (async () => {
      for (let i = 0; i < events.length; i += 1000) {
        await producer.send({ topic: run.topic, messages: fraudMessages(events.slice(i, i + 1000)) });
        produced = Math.min(events.length, i + 1000);
        await new Promise((r) => setTimeout(r, 400)); // ~2.5k events/s: events arrive all through the outage
      }
    })();

    // Down once a quarter of the stream is produced and the ingestor has saved states from it,
    // with the rest still coming.
    while (produced < EVENTS / 4 || (await run.redis.dbsize()) === 0)
      await new Promise((r) => setTimeout(r, 50));
    await redis.kill();
    const downAt = Date.now();
    const producedAtKill = produced;

    await new Promise((r) => setTimeout(r, OUTAGE_MS / 2));
    stillUp();
    const ready = await fetch(`${ops}/ready`);
    assert.equal(ready.status, 503, 'not ready while Redis is down');
    assert.match(await ready.text(), /redis/i);
    await new Promise((r) => setTimeout(r, Math.max(0, downAt + OUTAGE_MS - Date.now())));
    stillUp();
    assert.ok(produced > producedAtKill, 'events kept arriving during the outage');

    await redis.restart();
    await producing;
    await producer.disconnect();
    await waitForCaughtUp(run, run.topic, 120_000);
    assert.equal((await fetch(`${ops}/ready`)).status, 200, 'ready again once Redis is back');
    const metrics = await (await fetch(`${ops}/metrics`)).text();
    assert.match(metrics, /^tessera_ingestor_redis_errors_total [1-9]/m, 'the outage is counted');
    // Retried in place while heartbeating: the consumer never crashed, so it never left the group
    // (with several ingestors, every Redis outage rebalanced them all).
    assert.match(metrics, /^tessera_ingestor_consumer_crashes_total\{cause="batch"\} 0$/m);
    assert.match(started.output(), /retrying it in place/);

    started.child.kill('SIGTERM');
    assert.equal(await started.exited, 0, `graceful stop failed:\n${started.output()}`);
    const { entities, differences } = await differencesFromOffline(run, events);
    assert.deepEqual(differences, [], `first differences among ${entities} entities`);
    console.log(
      `# redis outage of ${OUTAGE_MS / 1000} s after ${producedAtKill} of ${EVENTS} events: ${entities} entities equal the offline engine`,
    );
  });
});
