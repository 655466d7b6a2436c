// Effectively once, proven the hard way: 200k events flow through a real ingestor process that is
// killed with SIGKILL at random moments ten times and restarted; afterwards every entity's
// features in Redis must equal the engine run offline over the same events. Zero differences.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import {
  applyEvent,
  type EntityState,
  emptyState,
  planView,
  readFeatures,
  toEngineEvent,
} from '../../shared/engine/index.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { type FraudEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  newTestRun,
  startIngestor,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';

const EVENTS = Number(process.env.CRASH_TEST_EVENTS ?? 200_000);
const KILLS = 10;

function toMessage(e: FraudEvent) {
  return {
    key: String(e.user_id),
    value: JSON.stringify({
      user_id: e.user_id,
      event_timestamp: new Date(e.event_timestamp).toISOString(),
      amount: e.amount,
      merchant_id: e.merchant_id,
    }),
  };
}

describe(`ingestor survives ${KILLS} kill -9 with ${EVENTS} events in flight`, { timeout: 600_000 }, () => {
  // Event-time clock: the generated stream is historical (2026-01), lateness is judged per entity.
  const run: TestRun = newTestRun({ TESSERA_INGEST_CLOCK: 'event' });
  const events = generateFraudEvents({ events: EVENTS, seed: 99 });

  before(async () => {
    const admin = run.kafka.admin();
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: run.topic, numPartitions: 6 }] });
    await admin.disconnect();
  });
  after(async () => cleanupRun(run));

  it('ends with state identical to the offline engine for every entity', async () => {
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    let produced = 0;
    const producing = (async () => {
      for (let i = 0; i < events.length; i += 2000) {
        await producer.send({ topic: run.topic, messages: events.slice(i, i + 2000).map(toMessage) });
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

    // Offline: the same engine over the same events, per entity, in produce order.
    const plan = planView(loadDefinitionsFile(run.config.definitions).views[0]!);
    const offline = new Map<string, EntityState>();
    events.forEach((e, i) => {
      const key = String(e.user_id);
      let state = offline.get(key);
      if (!state) {
        state = emptyState(plan);
        offline.set(key, state);
      }
      applyEvent(
        plan,
        state,
        toEngineEvent(plan, e as unknown as Record<string, unknown>, e.event_timestamp, 0, i),
      );
    });
    const t = events.reduce((m, e) => Math.max(m, e.event_timestamp), 0) + 1;
    const store = new RedisStateStore(run.redis, plan, run.config.redisKeyPrefix);
    const entities = [...offline.keys()];
    const differences: string[] = [];
    for (let i = 0; i < entities.length; i += 1000) {
      const chunk = entities.slice(i, i + 1000);
      const online = await store.loadMany(chunk);
      for (const entity of chunk) {
        const got = online.get(entity)!;
        const want = readFeatures(plan, offline.get(entity)!, t);
        const have = got.version === 0 ? null : readFeatures(plan, got.state, t);
        if (JSON.stringify(have) !== JSON.stringify(want) && differences.length < 10) {
          differences.push(`user ${entity}: online ${JSON.stringify(have)}, offline ${JSON.stringify(want)}`);
        }
      }
    }
    assert.deepEqual(differences, [], `first differences among ${entities.length} entities`);
    console.log(
      `# ${EVENTS} events, ${entities.length} entities, ${KILLS} kills (produced at each kill: ${killedWhileBehind.join(', ')}): 0 differences`,
    );
  });
});
