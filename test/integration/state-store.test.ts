// The Redis state store and its Lua compare-and-set on the real Redis of the local stack.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redisOptions } from '../../shared/config/clients.ts';
import { loadConfig, renderConfig } from '../../shared/config/index.ts';
import { applyEvent, type EngineEvent, encodeState, readFeatures } from '../../shared/engine/index.ts';
import { connectRedis } from '../../shared/state-store/redis-client.ts';
import { MAX_DELTA_RECORDS, RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { StateCache } from '../../shared/state-store/state-cache.ts';
import { ev, fraudPlan, T0 } from '../support/engine-fixtures.ts';

const config = loadConfig({ argv: [] });
const prefix = `tessera-test-${randomUUID().slice(0, 8)}`;
const loads = (store: RedisStateStore) => ({ cached: store.stats.cached, fetched: store.stats.fetched });

describe('redis state store (cas-state.lua)', { timeout: 30_000 }, () => {
  const redis = new Redis({ ...redisOptions(config), lazyConnect: false });
  const plan = fraudPlan('exact');
  const store = new RedisStateStore(redis, plan, prefix);

  after(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('round-trips state through Redis with a version and the view TTL, hash-tagged on the entity', async () => {
    const loaded = (await store.loadMany(['42'])).get('42')!;
    assert.equal(loaded.version, 0);
    applyEvent(plan, loaded.state, ev(plan, T0, { amount: 12.5, merchant_id: 'm1' }, 1));
    const { conflicts, versions } = await store.saveMany([{ entity: '42', version: 0, state: loaded.state }]);
    assert.deepEqual(conflicts, []);
    const version = versions.get('42')!;
    assert.ok(version > 0 && Number.isSafeInteger(version), `version ${version}`);
    const again = (await store.loadMany(['42'])).get('42')!;
    assert.equal(again.version, version);
    assert.deepEqual(readFeatures(plan, again.state, T0 + 1), readFeatures(plan, loaded.state, T0 + 1));
    assert.equal(store.key('42'), `${prefix}:{user_transaction_features:42}`);
    const ttl = await redis.pttl(store.key('42'));
    assert.ok(ttl > plan.view.ttlMs - 60_000 && ttl <= plan.view.ttlMs, `ttl ${ttl}`);
  });

  it('refuses a write based on a stale version (a concurrent writer won)', async () => {
    const first = (await store.loadMany(['7'])).get('7')!;
    const second = (await store.loadMany(['7'])).get('7')!;
    applyEvent(plan, first.state, ev(plan, T0, { amount: 1, merchant_id: 'a' }, 1));
    applyEvent(plan, second.state, ev(plan, T0, { amount: 2, merchant_id: 'b' }, 2));
    assert.deepEqual((await store.saveMany([{ entity: '7', version: 0, state: first.state }])).conflicts, []);
    assert.deepEqual((await store.saveMany([{ entity: '7', version: 0, state: second.state }])).conflicts, [
      '7',
    ]);
    const stored = (await store.loadMany(['7'])).get('7')!;
    assert.equal(readFeatures(plan, stored.state, T0 + 1)[4], 1, 'the first write stays');
  });

  it('a new key starts at a random version, so a deleted and rewritten key does not repeat versions', async () => {
    const seen = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const loaded = (await store.loadMany(['reborn'])).get('reborn')!;
      assert.equal(loaded.version, 0);
      const { versions } = await store.saveMany([{ entity: 'reborn', version: 0, state: loaded.state }]);
      seen.add(versions.get('reborn')!);
      await redis.del(store.key('reborn'));
    }
    assert.equal(seen.size, 5);
  });

  it('reuses a cached state without a round trip; a stale copy loses its compare-and-set', async () => {
    const cached = new RedisStateStore(redis, plan, prefix, new StateCache(1000));
    const other = new RedisStateStore(redis, plan, prefix);
    const first = (await cached.loadMany(['c'])).get('c')!;
    applyEvent(plan, first.state, ev(plan, T0, { amount: 5, merchant_id: 'a' }, 1));
    const { versions } = await cached.saveMany([{ entity: 'c', version: 0, state: first.state }]);

    const hit = (await cached.loadMany(['c'])).get('c')!;
    assert.deepEqual(loads(cached), { cached: 1, fetched: 1 }, 'the first load fetched, this one did not');
    assert.equal(hit.state, first.state, 'the very object saved, not a decoded copy');
    assert.equal(hit.version, versions.get('c'));
    await cached.saveMany([{ entity: 'c', version: hit.version, state: hit.state }]);

    // Another writer (an ingestor that owned the partition meanwhile) saves a newer state.
    const theirs = (await other.loadMany(['c'])).get('c')!;
    applyEvent(plan, theirs.state, ev(plan, T0 + 1, { amount: 50, merchant_id: 'b' }, 2));
    assert.deepEqual(
      (await other.saveMany([{ entity: 'c', version: theirs.version, state: theirs.state }])).conflicts,
      [],
    );

    // The cached copy is stale: it is handed out, but writing it back conflicts and is refused.
    const stale = (await cached.loadMany(['c'])).get('c')!;
    assert.deepEqual(loads(cached), { cached: 2, fetched: 1 });
    applyEvent(plan, stale.state, ev(plan, T0 + 2, { amount: 700, merchant_id: 'c' }, 3));
    const { conflicts } = await cached.saveMany([
      { entity: 'c', version: stale.version, state: stale.state },
    ]);
    assert.deepEqual(conflicts, ['c'], 'the stale write lost');
    const reloaded = (await cached.loadMany(['c'])).get('c')!;
    assert.deepEqual(loads(cached), { cached: 2, fetched: 2 }, 'after the conflict it is fetched again');
    assert.equal(readFeatures(plan, reloaded.state, T0 + 2)[4], 50, "the other writer's event is there");
    assert.equal(readFeatures(plan, reloaded.state, T0 + 3)[4], 50, 'and the refused event is not');
  });

  it('a state taken by a batch that then fails is fetched again, not reused half-applied', async () => {
    const cached = new RedisStateStore(redis, plan, prefix, new StateCache(1000));
    const first = (await cached.loadMany(['f'])).get('f')!;
    applyEvent(plan, first.state, ev(plan, T0, { amount: 5, merchant_id: 'a' }, 1));
    await cached.saveMany([{ entity: 'f', version: 0, state: first.state }]);
    const taken = (await cached.loadMany(['f'])).get('f')!;
    applyEvent(plan, taken.state, ev(plan, T0 + 1, { amount: 99, merchant_id: 'z' }, 2)); // never saved
    const again = (await cached.loadMany(['f'])).get('f')!;
    assert.deepEqual(loads(cached), { cached: 1, fetched: 2 });
    assert.notEqual(again.state, taken.state);
    assert.equal(readFeatures(plan, again.state, T0 + 2)[4], 5);
  });

  it('refuses to misread state written under another layout', async () => {
    const loaded = (await store.loadMany(['9'])).get('9')!;
    await store.saveMany([{ entity: '9', version: 0, state: loaded.state }]);
    const tiledStore = new RedisStateStore(redis, fraudPlan('tiled'), prefix);
    await assert.rejects(tiledStore.loadMany(['9']), /STATE_CORRUPT|cannot be decoded/);
  });

  it('appends the applied events as delta records, folds them into a full write, and every reader replays them', async () => {
    const writer = new RedisStateStore(redis, plan, prefix, new StateCache(100_000));
    const key = writer.key('d');
    let offset = 0;
    const batch = (n: number): EngineEvent[] =>
      Array.from({ length: n }, () => {
        offset++;
        return ev(plan, T0 + offset * 1000, { amount: offset / 100, merchant_id: `m${offset % 7}` }, offset);
      });
    // A big first write, so the delta records that follow stay under a quarter of it.
    const heavy = batch(4000);
    for (let round = 0; round <= MAX_DELTA_RECORDS + 1; round++) {
      const loaded = (await writer.loadMany(['d'])).get('d')!;
      const applied = round === 0 ? heavy : batch(2);
      for (const e of applied) applyEvent(plan, loaded.state, e);
      const { conflicts } = await writer.saveMany([
        { entity: 'd', version: loaded.version, stored: loaded.stored, state: loaded.state, applied },
      ]);
      assert.deepEqual(conflicts, []);
      const [s, d] = await redis.hmgetBuffer(key, 's', 'd');
      const records = round === 0 || round === MAX_DELTA_RECORDS + 1 ? 0 : round;
      if (records === 0) assert.equal(d, null, `round ${round}: a full write drops the delta records`);
      else
        assert.ok(d && d.length > 0 && d.length < s!.length / 4, `round ${round}: ${d?.length} delta bytes`);
      // A reader without the writer's cache (another ingestor, the server, the flusher) replays them.
      const fresh = (await new RedisStateStore(redis, plan, prefix).loadMany(['d'])).get('d')!;
      assert.equal(fresh.stored?.records, records, `round ${round}`);
      assert.deepEqual(encodeState(plan, fresh.state), encodeState(plan, loaded.state), `round ${round}`);
    }
    assert.deepEqual(
      { appended: writer.stats.appended, full: writer.stats.full },
      { appended: MAX_DELTA_RECORDS, full: 2 },
    );
  });

  for (const cluster of [false, true])
    it(`writes 300 entities in ${cluster ? 'one call each (Redis Cluster)' : 'calls of up to 128 entities'}, each checked on its own version`, async () => {
      const writer = new RedisStateStore(redis, plan, prefix, new StateCache(0), cluster);
      const rival = new RedisStateStore(redis, plan, prefix);
      const entities = Array.from({ length: 300 }, (_, i) => `many-${cluster}-${i}`);
      const loaded = await writer.loadMany(entities);
      // Another writer gets to every seventh entity first: those writes must conflict, alone.
      const taken = entities.filter((_, i) => i % 7 === 3);
      const theirs = await rival.loadMany(taken);
      for (const [entity, l] of theirs) {
        applyEvent(plan, l.state, ev(plan, T0, { amount: 1, merchant_id: 'rival' }, 1));
        assert.deepEqual((await rival.saveMany([{ entity, version: 0, state: l.state }])).conflicts, []);
      }
      const requests = entities.map((entity, i) => {
        const l = loaded.get(entity)!;
        applyEvent(plan, l.state, ev(plan, T0, { amount: i, merchant_id: 'mine' }, 2));
        return { entity, version: l.version, state: l.state };
      });
      const { conflicts, versions } = await writer.saveMany(requests);
      assert.deepEqual(conflicts, taken);
      assert.equal(versions.size, entities.length - taken.length);
      // tessera_ingestor_state_writes_total: the saves that lost wrote nothing, and are not counted.
      assert.deepEqual(
        { full: writer.stats.full, appended: writer.stats.appended },
        { full: entities.length - taken.length, appended: 0 },
      );
      const stored = await new RedisStateStore(redis, plan, prefix).loadMany(entities);
      entities.forEach((entity, i) => {
        const s = stored.get(entity)!;
        const won = !taken.includes(entity);
        if (won) assert.equal(s.version, versions.get(entity));
        assert.equal(readFeatures(plan, s.state, T0 + 1)[4], won ? i : 1, entity);
      });
    });
});

describe('TESSERA_REDIS_PASSWORD (a password kept out of the URL, as from a Secret)', {
  timeout: 30_000,
}, () => {
  // A user of the stack's Redis with a password: the default user has none.
  const user = `tessera-test-${randomUUID().slice(0, 8)}`;
  const secret = `pw-${randomUUID()}`;
  const admin = new Redis(redisOptions(config));
  const base = config.redisUrl.replace('redis://', `redis://${user}@`);

  after(async () => {
    await admin.call('ACL', 'DELUSER', user);
    admin.disconnect();
  });

  it('authenticates with it, is refused without it, and never prints it', async () => {
    await admin.call('ACL', 'SETUSER', user, 'on', `>${secret}`, '~*', '+@all');
    const withSecret = loadConfig({
      argv: [],
      env: { TESSERA_REDIS_URL: base, TESSERA_REDIS_PASSWORD: secret },
    });
    const good = connectRedis(withSecret, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await good.connect();
    assert.equal(await good.call('ACL', 'WHOAMI'), user);
    good.disconnect();
    // It replaces a wrong password in the URL; without it the same URL is refused.
    const wrongInUrl = base.replace(`${user}@`, `${user}:wrong@`);
    const overridden = connectRedis(
      loadConfig({ argv: [], env: { TESSERA_REDIS_URL: wrongInUrl, TESSERA_REDIS_PASSWORD: secret } }),
      { lazyConnect: true, maxRetriesPerRequest: 0 },
    );
    await overridden.connect();
    assert.equal(await overridden.call('ACL', 'WHOAMI'), user);
    overridden.disconnect();
    const refused = connectRedis(loadConfig({ argv: [], env: { TESSERA_REDIS_URL: wrongInUrl } }), {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    const errors: string[] = [];
    refused.on('error', (error: Error) => errors.push(error.message));
    await assert.rejects(refused.connect());
    assert.ok(
      errors.some((m) => m.includes('WRONGPASS')),
      errors.join('; '),
    );
    refused.disconnect();
    assert.ok(!renderConfig(withSecret).includes(secret));
    assert.match(renderConfig(withSecret), /^TESSERA_REDIS_PASSWORD = <redacted>$/m);
  });
});
