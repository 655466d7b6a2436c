// The rebuild of a view after a layout change (docs/ingestor.md, "Rebuilding a view"), step by step
// as a user runs it, on the real Kafka and Redis: definitions A ingested; definitions B change a
// window and its tile (a new state layout); the B ingestor refuses the A states (STATE_CORRUPT,
// exit 1); `cli.ts plan --redis` says so and counts them; `tessera keys --delete-view` deletes
// them; kafka-consumer-groups.sh (the stack's Kafka jars) moves the group back by the plan's
// horizon; B runs with TESSERA_INGEST_CLOCK=event until caught up, then with the wall clock.
// Afterwards every entity equals the engine run offline under B: exactly (offsets and every read
// time) over the events replayed, and at now over all events, so the skipped ones were not needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../shared/config/index.ts';
import { isoDuration } from '../../shared/definitions/change-plan.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { type EntityState, emptyState, planView, readFeatures } from '../../shared/engine/index.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import type { FraudEvent } from '../../shared/synth/fraud-events.ts';
import {
  cleanupRun,
  createSourceTopic,
  logPositions,
  newTestRun,
  recentFraudEvents,
  runOffline,
  sameFeatureValue,
  startIngestor,
  stateDifferences,
  type TestRun,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { stopAfter } from '../support/stop-after.ts';

const VIEW = 'user_activity';

/** A view of the reference source; `long` is the feature B changes. */
function definitions(long: string): string {
  return `version: 1
project: rebuild
entities:
  - name: user
    join_key: user_id
    type: int64
sources:
  - name: transactions
    topic: transactions
    format: json
    key_field: user_id
    timestamp_field: event_timestamp
    timestamp_format: iso8601
    schema: { user_id: int64, event_timestamp: timestamp, amount: double, merchant_id: string }
views:
  - name: ${VIEW}
    entity: user
    source: transactions
    allowed_lateness: 1h
    features:
      - { name: transaction_count_1h, aggregation: count, window: 1h }
      - { name: amount_sum_2d, aggregation: sum, column: amount, window: 2d }
      - { name: distinct_merchants_2d, aggregation: count_distinct, column: merchant_id, window: 2d }
      - ${long}
`;
}
const A = definitions(
  '{ name: transaction_count_long, aggregation: count, window: 1d, mode: tiled, tile: 1h }',
);
const B = definitions(
  '{ name: transaction_count_long, aggregation: count, window: 3d, mode: tiled, tile: 6h }',
);

const KAFKA_JARS = spawnSync(
  'bash',
  ['-c', 'source scripts/lib/common.sh && source scripts/lib/kafka.sh && echo "$KAFKA_JARS"'],
  { encoding: 'utf8' },
).stdout.trim();

function tool(args: string[], env: Record<string, string>) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { code: run.status, out: run.stdout, err: run.stderr };
}

/** Kafka's kafka-consumer-groups.sh: the class it runs, from the stack's jars. */
function consumerGroups(args: string[]) {
  const run = spawnSync(
    'java',
    ['-cp', `${KAFKA_JARS}/*`, 'org.apache.kafka.tools.consumer.group.ConsumerGroupCommand', ...args],
    { encoding: 'utf8' },
  );
  return { code: run.status, out: run.stdout, err: run.stderr };
}

async function produce(run: TestRun, events: readonly FraudEvent[]): Promise<void> {
  const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  // The record timestamp is the event's time, as for a source produced as things happen.
  for (let i = 0; i < events.length; i += 2000)
    await producer.send({
      topic: run.topic,
      messages: events.slice(i, i + 2000).map((e) => ({
        key: String(e.user_id),
        timestamp: String(e.event_timestamp),
        value: JSON.stringify({
          user_id: e.user_id,
          event_timestamp: new Date(e.event_timestamp).toISOString(),
          amount: e.amount,
          merchant_id: e.merchant_id,
        }),
      })),
    });
  await producer.disconnect();
}

async function stopped(ingestor: ReturnType<typeof startIngestor>): Promise<void> {
  ingestor.child.kill('SIGTERM');
  assert.equal(await ingestor.exited, 0, `graceful stop failed:\n${ingestor.output()}`);
}

describe('rebuilding a view after a layout change', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-rebuild-'));
  const fileA = join(dir, 'a.yaml');
  const fileB = join(dir, 'b.yaml');
  writeFileSync(fileA, A);
  writeFileSync(fileB, B);
  const runA = newTestRun({ TESSERA_DEFINITIONS: fileA, TESSERA_INGEST_CLOCK: 'event' }, 'rebuild');
  const envB = { ...runA.env, TESSERA_DEFINITIONS: fileB };
  const runB: TestRun = {
    ...runA,
    env: envB,
    config: loadConfig({ argv: [], env: { ...process.env, ...envB } }),
  };

  // Old records must outlive the test: time retention would delete 20-day-old ones.
  before(async () => createSourceTopic(runA, 3, { keepOldRecords: true }));
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await cleanupRun(runA);
  });

  it('ends with every entity equal to the engine run under the new definitions', async (t) => {
    assert.ok(KAFKA_JARS.endsWith('/libs'), `the stack's Kafka jars not found: ${KAFKA_JARS}`);
    const now = Date.now();
    const { events: history } = recentFraudEvents(now, { events: 20_000, users: 400, seed: 21 });
    await produce(runA, history);
    const a = stopAfter(t, startIngestor(runA));
    await a.ready;
    await waitForCaughtUp(runA, runA.topic, 120_000);
    await stopped(a);

    // New events after the change: the B ingestor loads A states to apply them, and refuses.
    const recentUsers = [...new Set(history.slice(-50).map((e) => e.user_id))];
    const arriving: FraudEvent[] = recentUsers.map((user_id, i) => ({
      ...history.find((e) => e.user_id === user_id)!,
      user_id,
      event_timestamp: Date.now() - 30_000 + i,
    }));
    await produce(runA, arriving);
    const refused = stopAfter(t, startIngestor(runB));
    assert.equal(await refused.exited, 1, `the B ingestor did not exit 1:\n${refused.output()}`);
    assert.match(refused.output(), /STATE_CORRUPT/);
    assert.match(refused.output(), /will not be restarted/);

    // The plan names the rebuild, counts the states B refuses, and gives the replay horizon.
    const statesA = new Set(history.map((e) => e.user_id)).size;
    const planned = tool(['shared/definitions/cli.ts', 'plan', fileA, fileB, '--redis'], runA.env);
    assert.equal(planned.code, 3, planned.err + planned.out);
    assert.match(planned.out, new RegExp(`view ${VIEW}: REBUILD: its state layout changed`));
    assert.match(planned.out, /feature transaction_count_long: window 1d -> 3d/);
    assert.match(
      planned.out,
      new RegExp(`0 states the new definitions read, ${statesA.toLocaleString('en-US')} they would refuse`),
    );
    const json = JSON.parse(
      tool(['shared/definitions/cli.ts', 'plan', fileA, fileB, '--json'], runA.env).out,
    );
    const replayMs: number = json.views[0].replayMs;
    // Longest window (3d) + its tile (6h) + lateness (1h): the engine's horizon.
    assert.equal(replayMs, (72 + 6 + 1) * 3_600_000);
    assert.match(planned.out, /--by-duration P3DT7H\b/);

    const keys = tool(['services/keys/main.ts', '--delete-view', VIEW, '--json', '--quiet'], envB);
    assert.equal(keys.code, 0, keys.err);
    assert.equal(JSON.parse(keys.out).deleted, statesA);

    const reset = consumerGroups([
      '--bootstrap-server',
      runA.config.kafkaBrokers.join(','),
      '--group',
      runA.config.ingestorGroup,
      '--topic',
      runA.topic,
      '--reset-offsets',
      '--by-duration',
      isoDuration(replayMs),
      '--execute',
    ]);
    assert.equal(reset.code, 0, reset.err + reset.out);
    const resetAt = Date.now() - replayMs;

    const admin = runA.kafka.admin();
    await admin.connect();
    const [group] = await admin.fetchOffsets({ groupId: runA.config.ingestorGroup, topics: [runA.topic] });
    await admin.disconnect();
    const from = new Map(group!.partitions.map((p) => [p.partition, Number(p.offset)]));

    const replaying = stopAfter(
      t,
      startIngestor({ ...runB, env: { ...envB, TESSERA_INGEST_CLOCK: 'event' } }),
    );
    await replaying.ready;
    await waitForCaughtUp(runB, runB.topic, 120_000);
    await stopped(replaying);
    // Then normally: the wall clock, with new events arriving.
    const normal = stopAfter(t, startIngestor({ ...runB, env: { ...envB, TESSERA_INGEST_CLOCK: 'wall' } }));
    await normal.ready;
    const fresh = arriving.map((e, i) => ({
      ...e,
      amount: e.amount + 1,
      event_timestamp: Date.now() - 10_000 + i,
    }));
    await produce(runB, fresh);
    await waitForCaughtUp(runB, runB.topic, 60_000);
    await stopped(normal);

    // Every event with its place in the log; the replay read those at or after the group's new offsets.
    const all = [...history, ...arriving, ...fresh];
    const positions = await logPositions(runB, runB.topic);
    const seen = new Map<string, number>();
    const placed = all.map((e) => {
      const key = String(e.user_id);
      const k = seen.get(key) ?? 0;
      seen.set(key, k + 1);
      const [partition, offset] = positions.get(key)![k]!;
      return { ...e, partition, offset };
    });
    const replayed = placed.filter((e) => e.offset >= from.get(e.partition)!);
    const skipped = placed.filter((e) => e.offset < from.get(e.partition)!);
    assert.ok(
      skipped.length > all.length / 2,
      `only ${skipped.length} of ${all.length} events before the reset point`,
    );
    for (const e of skipped)
      assert.ok(e.event_timestamp < resetAt, `event at ${new Date(e.event_timestamp).toISOString()} skipped`);

    const plan = planView(loadDefinitionsFile(fileB).views[0]!);
    const store = new RedisStateStore(runB.redis, plan, runB.config.redisKeyPrefix);
    const users = [...new Set(all.map((e) => String(e.user_id)))];
    const loaded = await store.loadMany(users);
    const online = new Map<string, EntityState | null>(
      users.map((u) => [u, loaded.get(u)!.version === 0 ? null : loaded.get(u)!.state]),
    );
    const end = Math.max(...all.map((e) => e.event_timestamp)) + 1;

    // Exactly the engine over what was replayed: applied offsets and features at every read time.
    const exact = stateDifferences(plan, runOffline(plan, replayed), online, end);
    assert.deepEqual(exact.slice(0, 10), [], `${exact.length} entities differ from the replayed events`);

    // And the engine over every event, read at now: the skipped events are outside every window.
    const full = runOffline(plan, placed);
    const readAt = Date.now();
    let withoutState = 0;
    for (const user of users) {
      const got = online.get(user) ?? null;
      if (got === null) withoutState++;
      const have = readFeatures(plan, got ?? emptyState(plan), readAt);
      const want = readFeatures(plan, full.states.get(user)!, readAt);
      for (const [f, v] of have.entries())
        assert.ok(
          sameFeatureValue(v, want[f]!),
          `user ${user} ${plan.features[f]!.def.name}: online ${JSON.stringify(v)}, all events ${JSON.stringify(want[f])}`,
        );
    }
    assert.ok(withoutState > 0, 'every user had an event after the reset point: the skip proved nothing');
    console.log(
      `# ${all.length} events, ${users.length} users: ${skipped.length} before the reset point (not replayed), ${replayed.length} replayed, ${withoutState} users without a state; 0 differences`,
    );
  });
});
