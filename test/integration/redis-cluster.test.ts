// Redis Cluster end to end (TESSERA_REDIS_CLUSTER=true, the stack's three masters): the real
// ingestor writes the states, which land on every master (keys are hash-tagged per entity, so
// each compare-and-set is single-slot); the real server answers batch lookups whose keys span the
// nodes, equal to a naive loop; the flusher's entity snapshot scans every master; PUBLISH reaches
// a cluster subscriber. Before, every service opened a one-server client: on a cluster a batch's
// reads and writes failed on MOVED and CROSSSLOT.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { takeSnapshot } from '../../services/flusher/entity-snapshot.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { readParquet } from '../../shared/offline/parquet.ts';
import { keyNodes } from '../../shared/state-store/redis-client.ts';
import {
  cleanupRun,
  createSourceTopic,
  differencesFromOffline,
  fraudMessages,
  ingestThenStop,
  newTestRun,
  recentFraudEvents,
  type TestRun,
} from '../support/ingestor-process.ts';
import { naiveFraudValue, sameValue } from '../support/naive-reference.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

const TOKEN = 'redis-cluster-test-token';
const VIEW = 'user_transaction_features';

const clusterUrl = process.env.TESSERA_TEST_REDIS_CLUSTER_URL;

describe('Redis Cluster: ingestor, server and snapshot', { timeout: 180_000 }, () => {
  const now = Date.now();
  const { events, users } = recentFraudEvents(now, { events: 4000, users: 120, seed: 11 });
  let run: TestRun;
  let server: ServerProcess;
  let subscriber: Cluster;
  const published = new Map<string, { entity: string }>();

  before(async () => {
    assert.ok(
      clusterUrl,
      'TESSERA_TEST_REDIS_CLUSTER_URL is not set: run eval "$(scripts/stack env)" after scripts/stack start, which starts the three-master cluster',
    );
    run = newTestRun({
      TESSERA_REDIS_URL: clusterUrl,
      TESSERA_REDIS_CLUSTER: 'true',
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_PUBLISH_UPDATES: 'true',
    });
    assert.ok(run.redis instanceof Cluster, 'the test run talks to the cluster');
    subscriber = new Cluster([new URL(clusterUrl).host]);
    await subscriber.subscribe(`${run.id}:updates:${VIEW}`);
    subscriber.on('message', (_channel, text: string) => {
      const update = JSON.parse(text) as { entity: string };
      published.set(update.entity, update);
    });
    await createSourceTopic(run, 3);
    const output = await ingestThenStop(run, fraudMessages(events));
    assert.doesNotMatch(output, /dead.letter|MOVED|CROSSSLOT/i, output);
    server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN });
  });

  after(async () => {
    subscriber?.disconnect();
    await server?.stop();
    if (run) await cleanupRun(run);
  });

  it('spreads the states over the three masters and matches the engine run offline', async () => {
    const nodes = keyNodes(run.redis);
    assert.equal(nodes.length, 3, 'three masters');
    const perNode = await Promise.all(nodes.map(async (node) => (await node.keys(`${run.id}:*`)).length));
    assert.ok(
      perNode.every((n) => n > 0),
      `states on every master: ${perNode.join(', ')}`,
    );
    assert.equal(
      perNode.reduce((a, b) => a + b, 0),
      users.length,
    );
    const { entities, differences } = await differencesFromOffline(run, events);
    assert.equal(entities, users.length);
    assert.deepEqual(differences, []);
  });

  it('answers a batch spanning the nodes, and single lookups, equal to a naive loop', async () => {
    const view = loadDefinitionsFile(run.config.definitions).views.find((v) => v.name === VIEW)!;
    const lookup = async (ids: number[]) => {
      const response = await fetch(`${await server.url}/get-online-features`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({
          features: view.features.map((f) => f.ref),
          entities: { user_id: ids },
          as_of: new Date(now).toISOString(),
        }),
      });
      const body = (await response.json()) as { results: { values: unknown[]; statuses: string[] }[] };
      assert.equal(response.status, 200, JSON.stringify(body) + server.output());
      return body.results;
    };
    const newestOf = (user: number) =>
      Math.max(...events.filter((e) => e.user_id === user).map((e) => e.event_timestamp));
    /** Asserts every value and status; returns how many values were compared with the loop. */
    const check = (results: { values: unknown[]; statuses: string[] }[], ids: number[]) => {
      let compared = 0;
      view.features.forEach((f, fi) => {
        ids.forEach((user, row) => {
          const want = naiveFraudValue(events, user, f, now);
          const have = results[fi + 1]!.values[row];
          const status = results[fi + 1]!.statuses[row];
          // The status follows from the user's newest event, not from what the server says: a
          // user idle for longer than the view's max_age is OUTSIDE_MAX_AGE, every other PRESENT.
          if (newestOf(user) < now - view.maxAgeMs!) {
            assert.equal(status, 'OUTSIDE_MAX_AGE', `${f.name} of user ${user}`);
            assert.equal(have, null, `${f.name} of user ${user}`);
            return;
          }
          assert.equal(status, 'PRESENT', `${f.name} of user ${user}`);
          assert.ok(
            sameValue(f.aggregation, have, want),
            `${f.name} of user ${user}: ${have}, naive ${want}`,
          );
          compared++;
        });
      });
      return compared;
    };
    // The events span less than max_age, so most values (all, unless a user is idle) are compared.
    const compared = check(await lookup(users), users);
    assert.ok(compared >= (users.length * view.features.length) / 2, `only ${compared} values were PRESENT`);
    for (const user of users.slice(0, 5)) check(await lookup([user]), [user]);
    // An unknown user is NOT_FOUND on a cluster as on one server.
    const [, count] = await lookup([999_999]);
    assert.equal(count!.statuses[0], 'NOT_FOUND');
  });

  it("snapshots every master's states", async () => {
    const view = loadDefinitionsFile(run.config.definitions).views.find((v) => v.name === VIEW)!;
    const snapshot = await takeSnapshot(run.redis, view, run.id, now, {});
    assert.equal(snapshot.entities, users.length);
    assert.deepEqual(snapshot.corrupt, []);
    const table = readParquet(snapshot.body);
    const ids = table.getChild('user_id')!.toArray() as BigInt64Array;
    assert.deepEqual([...ids].map(Number), users, 'every user, in order');
    const count24h = table.getChild('transaction_count_24h')!.toArray() as BigInt64Array;
    const feature = view.features.find((f) => f.name === 'transaction_count_24h')!;
    users.forEach((user, i) => {
      assert.equal(Number(count24h[i]), naiveFraudValue(events, user, feature, now), `user ${user}`);
    });
  });

  it('publishes the updates to a cluster subscriber', () => {
    assert.equal(published.size, users.length, 'an update for every user');
  });
});
