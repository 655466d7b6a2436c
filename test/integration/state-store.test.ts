// The Redis state store and its Lua compare-and-set on the real Redis of the local stack.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redisOptions } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { applyEvent, readFeatures } from '../../shared/engine/index.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { ev, fraudPlan, T0 } from '../support/engine-fixtures.ts';

const config = loadConfig({ argv: [] });
const prefix = `tessera-test-${randomUUID().slice(0, 8)}`;

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
    assert.equal(versions.get('42'), 1);
    const again = (await store.loadMany(['42'])).get('42')!;
    assert.equal(again.version, 1);
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

  it('refuses to misread state written under another layout', async () => {
    const loaded = (await store.loadMany(['9'])).get('9')!;
    await store.saveMany([{ entity: '9', version: 0, state: loaded.state }]);
    const tiledStore = new RedisStateStore(redis, fraudPlan('tiled'), prefix);
    await assert.rejects(tiledStore.loadMany(['9']), /STATE_CORRUPT|cannot be decoded/);
  });
});
