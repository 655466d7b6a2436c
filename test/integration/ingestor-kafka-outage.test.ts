// The broker goes away under a running ingestor (SIGKILL, as a crashed or rebooted node) while a
// producer keeps trying: the ingestor must stay up, and once the broker is back consume the rest
// with every event applied exactly once (every entity's features equal the engine run offline).
// Runs against a private broker, so killing it disturbs nobody else.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  fraudMessages,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { assertStillUp, opsUrl } from '../support/ops-endpoint.ts';
import { PrivateKafka } from '../support/private-kafka.ts';
import { stopAfter } from '../support/stop-after.ts';

const EVENTS = 30_000;
// KAFKA_OUTAGE_MS: a longer outage by hand.
const OUTAGE_MS = Number(process.env.KAFKA_OUTAGE_MS ?? 10_000);

describe('ingestor during a Kafka broker outage', { timeout: 300_000 }, () => {
  const events = generateFraudEvents({ events: EVENTS, seed: 23 });
  let broker: PrivateKafka;
  let run: TestRun;

  before(async () => {
    broker = await PrivateKafka.start();
    // Event-time clock: the generated stream is historical, lateness is judged per entity. The
    // production session timeout, as in the Redis outage test.
    run = newTestRun({
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_KAFKA_BROKERS: broker.brokers,
      TESSERA_KAFKA_SESSION_TIMEOUT_MS: '30000',
      TESSERA_KAFKA_HEARTBEAT_MS: '3000',
    });
    await createSourceTopic(run, 3);
  });
  after(async () => {
    await cleanupRun(run); // while the private broker still runs: it deletes the run's topics there too
    broker.remove();
  });

  it('stays up while the broker is down, then applies every event exactly once', async (t) => {
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    const ops = opsUrl(ingestor.output());
    const stillUp = () => assertStillUp(ingestor);

    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    let produced = 0;
    /** Set when the test ends: a failed assertion must not leave the loop below retrying for ever. */
    let stopped = false;
    const producing = (async () => {
      for (let i = 0; i < events.length && !stopped; i += 1000) {
        const messages = fraudMessages(events.slice(i, i + 1000));
        // The producer waits out the outage: a send that fails is sent again (idempotent, in order).
        for (;;) {
          if (stopped) return;
          try {
            await producer.send({ topic: run.topic, messages });
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 500));
          }
        }
        produced = Math.min(events.length, i + 1000);
        await new Promise((r) => setTimeout(r, 400));
      }
    })();
    t.after(async () => {
      stopped = true;
      await producer.disconnect(); // a send still waiting for the broker fails now
      await producing;
    });

    while (!stopped && (produced < EVENTS / 4 || (await run.redis.keys(`${run.id}:*`)).length === 0))
      await new Promise((r) => setTimeout(r, 50));
    broker.kill();
    const producedAtKill = produced;
    // /ready through the outage: not ready once the consumer has crashed on the missing broker.
    const notReady: string[] = [];
    const downUntil = Date.now() + OUTAGE_MS;
    while (Date.now() < downUntil) {
      const ready = await fetch(`${ops}/ready`);
      if (ready.status === 503) notReady.push(await ready.text());
      else await ready.body?.cancel();
      stillUp();
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(notReady.length > 0, 'never answered 503 on /ready while the broker was down');
    assert.match(notReady.at(-1)!, /kafka consumer crashed/);

    broker.restart();
    const backAt = Date.now();
    await producing;
    await producer.disconnect();
    await waitForCaughtUp(run, run.topic, 180_000);
    const caughtUpS = (Date.now() - backAt) / 1000;
    stillUp();
    assert.equal((await fetch(`${ops}/ready`)).status, 200, 'ready once the broker is back');
    const metrics = await (await fetch(`${ops}/metrics`)).text();
    assert.match(
      metrics,
      /^tessera_ingestor_consumer_crashes_total\{cause="kafka"\} [1-9]/m,
      'the crashes are counted',
    );

    ingestor.child.kill('SIGTERM');
    assert.equal(await ingestor.exited, 0, `graceful stop failed:\n${ingestor.output()}`);
    const { entities, differences } = await differencesFromOffline(run, events);
    assert.deepEqual(differences, [], `first differences among ${entities} entities`);
    console.log(
      `# broker outage of ${OUTAGE_MS / 1000} s after ${producedAtKill} of ${EVENTS} events: not ready in ${notReady.length} polls, caught up ${caughtUpS.toFixed(1)} s after the restart; ${entities} entities equal the offline engine`,
    );
  });

  it('stops gracefully on SIGTERM while its consumer has crashed on the missing broker', async (t) => {
    // kafkajs drops its consumer group when the consumer crashes; pausing it then throws, which
    // once made the stop reject and the process die with a stack trace and exit code 1.
    const ingestor = stopAfter(t, startIngestor(run));
    await ingestor.ready;
    broker.kill();
    try {
      // kafkajs restarts a crashed consumer 200 ms later (retry.initialRetryTime), and pause() no
      // longer throws once it has: the stop is sent the moment the crash is logged, not at the
      // next poll of /ready (a poll every 250 ms missed that window once in CI).
      const until = Date.now() + 60_000;
      while (!/kafka consumer crashed/.test(ingestor.output())) {
        assert.ok(Date.now() < until, 'the consumer never crashed on the missing broker');
        await new Promise((r) => setTimeout(r, 5));
      }
      ingestor.child.kill('SIGTERM');
      assert.equal(await ingestor.exited, 0, `graceful stop failed:\n${ingestor.output()}`);
      // The stop met the crashed consumer (the case this test is for) and went on.
      assert.match(ingestor.output(), /could not pause the kafka consumer/);
    } finally {
      broker.restart();
    }
  });
});
