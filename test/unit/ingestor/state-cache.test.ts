// The decoded-state cache: bounded by what its entries hold (events, tiles, a share per state and
// per kept reader), least recently used out first, and a state is out of the cache while a batch
// owns it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyEvent, BeforeEventReader, emptyState } from '../../../shared/engine/index.ts';
import { NOTHING_STORED, StateCache } from '../../../shared/state-store/state-cache.ts';
import { ev, fraudPlan, T0 } from '../../support/engine-fixtures.ts';

const plan = fraudPlan('exact');

function stateWith(events: number) {
  const state = emptyState(plan);
  for (let i = 0; i < events; i++)
    applyEvent(plan, state, ev(plan, T0 + i, { amount: i, merchant_id: 'm' }, i));
  return state;
}

test('a taken state is gone until it is put back, so a failed batch cannot leave a half-applied state', () => {
  const cache = new StateCache(100);
  cache.put('a', 7, stateWith(2), NOTHING_STORED);
  const taken = cache.take('a');
  assert.equal(taken?.version, 7);
  assert.equal(cache.take('a'), undefined);
  assert.equal(cache.version('a'), undefined);
  cache.put('a', 8, taken!.state, NOTHING_STORED);
  assert.equal(cache.version('a'), 8);
});

test("a state's before-event reader comes back with it, and only with it", () => {
  const cache = new StateCache(100);
  const state = stateWith(2);
  const reader = new BeforeEventReader(plan, state, 16);
  cache.put('a', 1, state, NOTHING_STORED, reader);
  cache.put('b', 1, stateWith(2), NOTHING_STORED);
  const a = cache.take('a')!;
  assert.equal(a.state, state);
  assert.equal(a.reader, reader);
  assert.equal(cache.take('b')!.reader, undefined);
  // Saved again without it (a state reloaded after a lost compare-and-set): no stale reader.
  cache.put('a', 2, stateWith(2), NOTHING_STORED);
  assert.equal(cache.take('a')!.reader, undefined);
});

test('evicts the least recently saved states once the stored events exceed the bound', () => {
  const cache = new StateCache(12);
  cache.put('a', 1, stateWith(3), NOTHING_STORED); // weight 5: 3 events + 2 for the state itself
  cache.put('b', 1, stateWith(3), NOTHING_STORED);
  cache.put('a', 2, cache.take('a')!.state, NOTHING_STORED); // a is now the most recent
  cache.put('c', 1, stateWith(3), NOTHING_STORED); // 15 > 12: b goes
  assert.equal(cache.version('b'), undefined);
  assert.equal(cache.version('a'), 2);
  assert.equal(cache.version('c'), 1);
  assert.equal(cache.weight, 10);
  cache.put('huge', 1, stateWith(20), NOTHING_STORED); // larger than the whole bound: not kept, nothing evicted
  assert.equal(cache.version('huge'), undefined);
  assert.equal(cache.size, 2);
});

test("a kept reader weighs 4 per exact feature: its memory does not shrink with the entity's events", () => {
  const cache = new StateCache(1000);
  const state = stateWith(1);
  cache.put('a', 1, state, NOTHING_STORED);
  assert.equal(cache.weight, 3);
  cache.put('a', 2, state, NOTHING_STORED, new BeforeEventReader(plan, state, 16));
  assert.equal(plan.exactFeatures.length, 6);
  assert.equal(cache.weight, 3 + 4 * 6);
  // A bound that holds forty bare one-event states holds only four with their readers.
  const small = new StateCache(120);
  for (let i = 0; i < 40; i++) {
    const s = stateWith(1);
    small.put(`e${i}`, 1, s, NOTHING_STORED, new BeforeEventReader(plan, s, 16));
  }
  assert.equal(small.size, 4);
});

test('a zero bound caches nothing', () => {
  const cache = new StateCache(0);
  cache.put('a', 1, emptyState(plan), NOTHING_STORED);
  assert.equal(cache.size, 0);
});

test('a state of long strings weighs at least its stored bytes, in units of 260 bytes', () => {
  // Ten events with a 50 KB merchant id each weighed 12, as ten numeric ones, and held 0.5 MB.
  const state = emptyState(plan);
  for (let i = 0; i < 10; i++)
    applyEvent(plan, state, ev(plan, T0 + i, { amount: i, merchant_id: `${i}`.repeat(50_000) }, i));
  const cache = new StateCache(1_000_000);
  cache.put('long', 1, state, { base: 500_120, delta: 0, records: 0 });
  assert.equal(cache.weight, Math.ceil(500_120 / 260));
  // A numeric state's bytes are far below its count of events: that count stays its weight.
  cache.put('small', 1, stateWith(10), { base: 180, delta: 40, records: 1 });
  assert.equal(cache.weight, Math.ceil(500_120 / 260) + 12);
  // The bound holds by bytes too: a cache of 1,000 units (~260 KB) does not keep the long one.
  const bounded = new StateCache(1_000);
  bounded.put('long', 1, state, { base: 500_120, delta: 0, records: 0 });
  assert.equal(bounded.size, 0);
});
