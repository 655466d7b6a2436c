// Effectively once, proven the hard way: 200k events flow through a real ingestor process that is
// killed with SIGKILL at random moments ten times and restarted; afterwards every entity's
// features in Redis must equal the engine run offline over the same events. Zero differences.
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

const EVENTS = Number(process.env.CRASH_TEST_EVENTS ?? 200_000);
const KILLS = 10;

describe(`ingestor survives ${KILLS} kill -9 with ${EVENTS} events in flight`, { timeout: 600_000 }, () => {
  // Event-time clock: the generated stream is historical (2026-01), lateness is judged per entity.
  const run: TestRun = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const events = generateFraudEvents({ events: EVENTS, seed: 99 });

  before(async () => createSourceTopic(run, 6));
  after(async () => cleanupRun(run));

  it('ends with state identical to the offline engine for every entity', async () => {
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    let produced = 0;
    const producing = (async () => {
      for (let i = 0; i < events.length; i += 2000) {
        await producer.send({ topic: run.topic, messages: fraudMessages(events.slice(i, i + 2000)) });
        produced = Math.min(events.length, i + 2000);
        await new Promise((r) => setTimeout(r, 300)); // ~7k events/s: the stream keeps flowing through the kills
      }
    })();

    const killedWhileBehind: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const ingestor = startIngestor(run);
      await ingestor.ready;
      await new Promise((r) => setTimeout(r, 400 + Math.random() * 1600));
      ingestor.child.kill('SIGKILL');
      await ingestor.exited;
      killedWhileBehind.push(produced);
    }
    await producing;
    await producer.disconnect();
    const last = startIngestor(run);
    await last.ready;
    await waitForCaughtUp(run, run.topic, 240_000);
    last.child.kill('SIGTERM');
    assert.equal(await last.exited, 0, `graceful stop failed:\n${last.output()}`);

    const { entities, differences } = await differencesFromOffline(run, events);
    assert.deepEqual(differences, [], `first differences among ${entities} entities`);
    console.log(
      `# ${EVENTS} events, ${entities} entities, ${KILLS} kills (produced at each kill: ${killedWhileBehind.join(', ')}): 0 differences`,
    );
  });
});
