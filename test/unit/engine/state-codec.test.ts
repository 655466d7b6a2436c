// The state bytes keep every value: large magnitudes with cents once went through a zigzag form
// that doubled them past 2^53, so a negative value (or a tile's exact sum) with cents beyond 2^52
// came back positive and a cent off from decodeState, delta records and the server's byte reader.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteWriter } from '../../../shared/engine/bytes.ts';
import { stateBytesReader } from '../../../shared/engine/fast-read.ts';
import {
  applyDeltas,
  applyEvent,
  decodeState,
  emptyState,
  encodeDelta,
  encodeState,
  readFeatures,
} from '../../../shared/engine/index.ts';
import { ev, planOf, T0 } from '../../support/engine-fixtures.ts';

const plan = planOf(`
- { name: s, aggregation: sum, column: amount, window: 1h }
- { name: lo, aggregation: min, column: amount, window: 1h }
- { name: hi, aggregation: last, column: amount, window: 1h }
`);

// The server's byte reader takes sums and extremes (not `last`).
const readable = planOf(`
- { name: s, aggregation: sum, column: amount, window: 1h }
- { name: lo, aggregation: min, column: amount, window: 1h }
`);

describe('state codec: values of any magnitude', () => {
  it('reads back whole cents up to 2^53 and beyond, of either sign, by every reader', () => {
    const cents = fc.oneof(
      fc.integer({ min: 2 ** 50, max: 2 ** 53 - 1 }),
      fc.bigInt({ min: 2n ** 53n, max: 2n ** 60n }).map((n) => Number(n)),
    );
    fc.assert(
      fc.property(cents, fc.boolean(), (c, negative) => {
        const v = (negative ? -c : c) / 100;
        const state = emptyState(plan);
        const event = ev(plan, T0, { amount: v }, 1);
        applyEvent(plan, state, event);
        const want = readFeatures(plan, state, T0 + 1);
        assert.deepEqual(want, [v, v, v]);
        assert.deepEqual(
          readFeatures(plan, decodeState(plan, encodeState(plan, state)), T0 + 1),
          want,
          'decodeState',
        );
        const viaDelta = decodeState(plan, encodeState(plan, emptyState(plan)));
        applyDeltas(plan, viaDelta, encodeDelta(plan, [event]));
        assert.deepEqual(readFeatures(plan, viaDelta, T0 + 1), want, 'delta record');
        const small = emptyState(readable);
        applyEvent(readable, small, ev(readable, T0, { amount: v }, 1));
        const reader = stateBytesReader(readable)!;
        assert.ok(reader.load(encodeState(readable, small)));
        assert.deepEqual(reader.read(T0 + 1), [v, v], 'byte reader');
      }),
      { numRuns: 2000 },
    );
  });

  it("keeps a tile's exact sum when it grows past 2^52 cents", () => {
    const tiled = planOf(
      '- { name: s, aggregation: sum, column: amount, window: 1d, mode: tiled, tile: 1h }',
      'allowed_lateness: 1m',
    );
    const state = emptyState(tiled);
    // Each value is far from the limit; their sum (-8e13, 8e15 cents) is past it.
    for (let i = 0; i < 400; i++)
      applyEvent(tiled, state, ev(tiled, T0 + i * 1000, { amount: -200_000_000_000.25 }, i));
    assert.ok(state.tiles[0]!.length > 0, 'events were folded into a tile');
    const t = T0 + 400 * 1000;
    assert.deepEqual(readFeatures(tiled, state, t), [-80_000_000_000_100]);
    assert.deepEqual(
      readFeatures(tiled, decodeState(tiled, encodeState(tiled, state)), t),
      [-80_000_000_000_100],
    );
  });

  it('refuses to zigzag an integer whose form would not be exact', () => {
    const w = new ByteWriter();
    w.zigzag(-(2 ** 52) + 1);
    assert.throws(() => w.zigzag(-(2 ** 52)), /below 2\^52/);
    assert.throws(() => w.zigzag(2 ** 52), /below 2\^52/);
    assert.throws(() => w.zigzag(0.5), /below 2\^52/);
  });

  it('keeps a leading U+FEFF of a string value through the state bytes and delta records', () => {
    // Bug fixed: the UTF-8 decoder dropped a leading byte-order mark, so a merchant id "\uFEFFm1"
    // came back from Redis as "m1": distinct counts and first/last values changed.
    const strings = planOf(`
    - { name: d, aggregation: count_distinct, column: merchant, window: 1h }
    - { name: f, aggregation: first, column: merchant, window: 1h }
    - { name: l, aggregation: last, column: merchant, window: 1h }
    `);
    const events = ['\uFEFFm1', 'm1', '\uFEFF', '\uFEFF\uFEFFm1'].map((merchant, i) =>
      ev(strings, T0 + i, { merchant }, i),
    );
    const state = emptyState(strings);
    for (const e of events) applyEvent(strings, state, e);
    const t = T0 + 10;
    const want = readFeatures(strings, state, t);
    assert.deepEqual(want, [4, '\uFEFFm1', '\uFEFF\uFEFFm1']);
    assert.deepEqual(
      readFeatures(strings, decodeState(strings, encodeState(strings, state)), t),
      want,
      'decodeState',
    );
    const viaDelta = decodeState(strings, encodeState(strings, emptyState(strings)));
    applyDeltas(strings, viaDelta, encodeDelta(strings, events));
    assert.deepEqual(readFeatures(strings, viaDelta, t), want, 'delta record');
  });
});
