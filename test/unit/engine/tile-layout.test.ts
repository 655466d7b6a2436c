// The packed tile layout (shared/engine/tile-series.ts): the bytes it serializes stay those of
// format version 2 (pinned), and its compact forms (one value inline, a short list, a Set) count
// right.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  applyEvent,
  decodeState,
  type EntityState,
  emptyState,
  encodeState,
  readFeatures,
} from '../../../shared/engine/index.ts';
import { fraudEngineEvent, generateFraudEvents } from '../../../shared/synth/fraud-events.ts';
import { ev, fraudPlan, HOUR, planOf, T0 } from '../../support/engine-fixtures.ts';

const MIN = 60_000;

describe('packed tiles', () => {
  it('serialize to the bytes format version 2 pins', () => {
    // Digest of these states' bytes when version 2 was introduced (raw events and tiles disjoint;
    // version 1 wrote 14,943 bytes here). A change to it is a change of format: raise
    // FORMAT_VERSION (codec.ts) and document it in docs/state-format.md, then pin the new digest.
    const expected = {
      tiled: '7a0246895362039a2393f46725efb44eb3bb14eb3da900af8007a1d7baaea32a',
      bytes: 16589,
    };
    // Folding after 64 raw events, as when the digest was taken (FOLD_AT, a policy, may change
    // what is folded without changing the format).
    const plan = { ...fraudPlan('tiled'), foldAt: 64 };
    const states = new Map<number, EntityState>();
    for (const e of generateFraudEvents({ events: 5000, seed: 11, users: 40 })) {
      let state = states.get(e.user_id);
      if (!state) {
        state = emptyState(plan);
        states.set(e.user_id, state);
      }
      applyEvent(plan, state, fraudEngineEvent(plan, e));
    }
    const hash = createHash('sha256');
    let bytes = 0;
    for (const id of [...states.keys()].sort((a, b) => a - b)) {
      const encoded = encodeState(plan, states.get(id)!);
      bytes += encoded.length;
      hash.update(encoded);
      assert.deepEqual(encodeState(plan, decodeState(plan, encoded)), encoded, `user ${id} round trip`);
    }
    assert.deepEqual({ tiled: hash.digest('hex'), bytes }, expected);
  });

  it('counts each distinct value once in a tile that outgrows its short list', () => {
    const plan = planOf(
      '- { name: d, aggregation: count_distinct, column: merchant, window: 1h, mode: tiled, tile: 10m }',
    );
    const state = emptyState(plan);
    for (let i = 0; i < 60; i++) applyEvent(plan, state, ev(plan, T0 + i, { merchant: `m${i % 25}` }));
    const t = T0 + 10 * MIN;
    assert.deepEqual(readFeatures(plan, state, t), [25]);
    assert.deepEqual(readFeatures(plan, decodeState(plan, encodeState(plan, state)), t), [25]);
  });

  it('opens a tile between older and newer ones for an event that arrives late', () => {
    const plan = planOf(
      `- { name: c, aggregation: count, window: 1h, mode: tiled, tile: 5m }
       - { name: s, aggregation: sum, column: amount, window: 1h, mode: tiled, tile: 5m }`,
    );
    const state = emptyState(plan);
    for (const [minute, amount] of [
      [50, 1],
      [10, 2],
      [30, 4],
      [30, 8],
      [20, 16],
    ] as const)
      applyEvent(plan, state, ev(plan, T0 + minute * MIN, { amount }));
    assert.deepEqual(readFeatures(plan, state, T0 + HOUR), [5, 31]);
    assert.deepEqual(readFeatures(plan, state, T0 + 25 * MIN), [2, 18], 'tiles 10m and 20m, in order');
    const decoded = decodeState(plan, encodeState(plan, state));
    assert.deepEqual(readFeatures(plan, decoded, T0 + HOUR), [5, 31]);
  });
});
