// A Redis Cluster that changes under running clients, on a private three-master cluster: slots
// moved by a resharding, a master restarted. Before, the writes of a moved slot got MOVED for good
// (ioredis retries an auto-pipeline only when all its errors are the same and its commands
// read-only, and the slot map was never refreshed), a batch lookup answered 500, the flusher's
// snapshot left out a restarted master's entities without an error, and /ready pinged one random
// node.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { takeSnapshot } from '../../services/flusher/entity-snapshot.ts';
import { StateReads } from '../../services/server/state-reads.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { planView } from '../../shared/engine/index.ts';
import { connectRedis, type RedisClient } from '../../shared/state-store/redis-client.ts';
import { RedisStateStore, stateKey } from '../../shared/state-store/redis-state-store.ts';
import { PrivateCluster } from '../support/private-cluster.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

const PREFIX = 'it-reshard';
const view = loadDefinitionsFile('definitions/fraud.yaml').views[0]!;
const plan = planView(view);
const entities = Array.from({ length: 300 }, (_, i) => String(i + 1));

describe('Redis Cluster resharding and a restarted master (private cluster)', { timeout: 120_000 }, () => {
  let cluster: PrivateCluster;
  let redis: RedisClient;
  let server: ServerProcess | undefined;

  const saveAll = async (store: RedisStateStore) => {
    const loaded = await store.loadMany(entities);
    return store.saveMany(
      entities.map((e) => ({ entity: e, version: loaded.get(e)!.version, state: loaded.get(e)!.state })),
    );
  };

  before(async () => {
    cluster = await PrivateCluster.start();
    const config = loadConfig({
      argv: [],
      env: { ...process.env, TESSERA_REDIS_URL: cluster.url, TESSERA_REDIS_CLUSTER: 'true' },
    });
    redis = connectRedis(config);
    const { conflicts } = await saveAll(new RedisStateStore(redis, plan, PREFIX));
    assert.deepEqual(conflicts, []);
  });
  after(async () => {
    await server?.stop();
    redis?.disconnect();
    await cluster?.remove();
  });

  it('loads, saves and batch-reads across slots moved behind the client', async () => {
    // Three slots holding keys, moved off their master: the client's slot map is now stale.
    const slotOf = (e: string) =>
      Number(cluster.cli(cluster.ports[0]!, 'cluster', 'keyslot', stateKey(PREFIX, view.name, e)));
    const slots = [...new Set(entities.slice(0, 60).map(slotOf))];
    const from = cluster.ownerOf(slots[0]!);
    const moved = slots.filter((s) => cluster.ownerOf(s) === from).slice(0, 3);
    const to = cluster.ports.find((p) => p !== from)!;
    for (const slot of moved) cluster.moveSlot(slot, from, to);
    assert.equal(cluster.ownerOf(moved[0]!), to);

    const store = new RedisStateStore(redis, plan, PREFIX);
    const { conflicts, versions } = await saveAll(store);
    assert.deepEqual(conflicts, []);
    assert.equal(versions.size, entities.length, 'every state saved again');
    // Two fields per key, `s` (the state) first: a null `s` is a key not found.
    const fields = await new StateReads(redis).read(entities.map((e) => stateKey(PREFIX, view.name, e)));
    assert.equal(fields.filter((f, i) => i % 2 === 0 && f !== null).length, entities.length);
  });

  it("snapshots every master's entities after one was restarted, and /ready checks every master", async () => {
    const victim = cluster.ports[2]!;
    await cluster.kill(victim);
    server = startServer({
      TESSERA_REDIS_URL: cluster.url,
      TESSERA_REDIS_CLUSTER: 'true',
      TESSERA_REDIS_KEY_PREFIX: PREFIX,
      TESSERA_AUTH_TOKEN: 'reshard-test-token-0123456789',
      TESSERA_SERVER_PUSH: 'false',
    });
    const url = await server.url;
    let ready = 200;
    for (let i = 0; i < 5 && ready === 200; i++) ready = (await fetch(`${url}/ready`)).status;
    assert.equal(ready, 503, 'a dead master makes the server not ready');

    await cluster.restart(victim);
    // Its keys are gone (no persistence): written again, as the ingestor would on new events.
    const { conflicts } = await saveAll(new RedisStateStore(redis, plan, PREFIX));
    assert.deepEqual(conflicts, []);
    const snap = await takeSnapshot(redis, view, PREFIX, Date.now(), {});
    assert.equal(snap.entities, entities.length, 'the snapshot holds every entity, the restarted master too');
    // The server's cluster client has to learn the restarted master again (a slot refresh) and
    // connect to it: a moment, a few seconds on a busy machine (5 s was the limit here).
    for (const deadline = Date.now() + 20_000; ready !== 200 && Date.now() < deadline; ) {
      ready = (await fetch(`${url}/ready`)).status;
      if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(ready, 200);
  });
});
