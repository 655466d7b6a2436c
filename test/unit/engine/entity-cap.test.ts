// max_events_per_entity: every reader of a capped state keeps the same events (the writer's state,
// one rebuilt from its bytes and delta records, the server's byte reader), and a tiled feature
// counts the same events whether or not exact features share its view.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stateBytesReader } from '../../../shared/engine/fast-read.ts';
import {
  applyDeltas,
  applyEvent,
  BeforeEventReader,
  decodeState,
  type EngineEvent,
  type EntityState,
  emptyState,
  encodeDelta,
  encodeState,
  featuresBeforeEach,
  readFeatures,
  readFloor,
  type ViewPlan,
} from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { DAY, HOUR, planOf, T0 } from '../../support/engine-fixtures.ts';

const MIN = 60_000;

/** An event of a plan over (amount, merchant). */
function event(
  plan: ViewPlan,
  ts: number,
  partition: number,
  offset: number,
  amount: number,
  merchant = 'm',
) {
  return { ts, partition, offset, values: plan.columns.map((c) => (c === 'amount' ? amount : merchant)) };
}

/** The stored bytes of `base`, then delta records of `batches` applied to it, as the ingestor saves. */
function stored(plan: ViewPlan, base: readonly EngineEvent[], batches: readonly EngineEvent[][]) {
  const writer = emptyState(plan);
  for (const e of base) applyEvent(plan, writer, e);
  const bytes = encodeState(plan, writer);
  const records: Uint8Array[] = [];
  for (const batch of batches) {
    for (const e of batch) applyEvent(plan, writer, e);
    records.push(encodeDelta(plan, batch));
  }
  const delta = Buffer.concat(records);
  const decoded = decodeState(plan, bytes);
  if (records.length > 0) applyDeltas(plan, decoded, delta);
  return { writer, decoded, bytes, delta: records.length > 0 ? delta : null };
}

describe('max_events_per_entity', () => {
  it('drops the same events from a state rebuilt from its bytes and delta records as from the writer', () => {
    // Bug fixed: the cap drops by place in the array, and events tied in time were placed by
    // (partition, offset). The bytes keep no positions (no first/last feature), so decoded events
    // were all (0, 0) and an event of a delta record tied with them went after them, where the
    // writer had put it among them: the writer kept 100 + 1000, the rebuilt state 10 + 1000.
    const plan = planOf(
      '- { name: s, aggregation: sum, column: amount, window: 1d }',
      'max_events_per_entity: 2',
    );
    const { writer, decoded, bytes, delta } = stored(
      plan,
      [event(plan, T0, 0, 5, 1), event(plan, T0, 1, 0, 100)], // p1 after a repartitioning, same time
      [[event(plan, T0, 0, 6, 10), event(plan, T0 + 1000, 0, 7, 1000)]],
    );
    const t = T0 + HOUR;
    const want = readFeatures(plan, writer, t);
    assert.deepEqual(readFeatures(plan, decoded, t), want);
    const reader = stateBytesReader(plan)!;
    if (reader.load(bytes, delta)) assert.deepEqual(reader.read(t), want, 'fast reader');
    // The events at T0 stay in the order applied (1, 100, 10): the cap drops 1, then 100.
    assert.deepEqual(want, [1010]);
  });

  const PLANS: [string, ViewPlan][] = [
    [
      'exact features',
      planOf(
        `
        - { name: s, aggregation: sum, column: amount, window: 1h }
        - { name: c, aggregation: count, window: 1h }
        - { name: d, aggregation: count_distinct, column: merchant, window: 1h }
        - { name: mn, aggregation: min, column: amount, window: 1h }
        `,
        'max_events_per_entity: 4',
      ),
    ],
    [
      'first, last and last_n (positions stored)',
      planOf(
        `
        - { name: s, aggregation: sum, column: amount, window: 1h }
        - { name: f, aggregation: first, column: merchant, window: 1h }
        - { name: l, aggregation: last, column: amount, window: 1h }
        - { name: ln, aggregation: last_n, column: merchant, window: 1h, n: 3 }
        `,
        'max_events_per_entity: 3',
      ),
    ],
    [
      'exact and tiled features',
      planOf(
        `
        - { name: s, aggregation: sum, column: amount, window: 1h }
        - { name: d, aggregation: count_distinct, column: merchant, window: 1h }
        - { name: st, aggregation: sum, column: amount, window: 2h, mode: tiled, tile: 10m }
        - { name: ct, aggregation: count, window: 1h, mode: tiled, tile: 5m }
        `,
        'allowed_lateness: 10m\n    max_events_per_entity: 4',
      ),
    ],
  ];

  for (const [name, plan] of PLANS) {
    it(`keeps the same events past the cap in every reader, events tied in time from several partitions: ${name}`, () => {
      const drafts = fc.array(
        fc.record({
          minute: fc.integer({ min: 0, max: 40 }).map((m) => m - (m % 4)), // many ties
          partition: fc.integer({ min: 0, max: 2 }),
          amount: fc.constantFrom(1, 2, 5, -3, 0, -0, 0.5),
          merchant: fc.constantFrom('a', 'b', 'c'),
        }),
        { maxLength: 40 },
      );
      fc.assert(
        fc.property(
          drafts,
          fc.nat(),
          fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1 }),
          (ds, split, sizes) => {
            // Arrival in time order, one partition's offsets rising: nothing is late or repeated.
            const next = [0, 0, 0];
            const events = ds
              .map((d, i) => ({ ...d, i }))
              .sort((a, b) => a.minute - b.minute || a.i - b.i)
              .map((d) =>
                event(plan, T0 + d.minute * MIN, d.partition, next[d.partition]!++, d.amount, d.merchant),
              );
            const at = events.length === 0 ? 0 : split % (events.length + 1);
            const batches: EngineEvent[][] = [];
            for (let i = at, b = 0; i < events.length; b++) {
              const size = sizes[b % sizes.length]!;
              batches.push(events.slice(i, i + size));
              i += size;
            }
            const { writer, decoded, bytes, delta } = stored(plan, events.slice(0, at), batches);
            assert.equal(decoded.dropped, writer.dropped);
            const reader = stateBytesReader(plan);
            const loaded = reader?.load(bytes, delta) ?? false;
            for (const t of [T0 + 41 * MIN, T0 + 50 * MIN, T0 + 70 * MIN, T0 + 100 * MIN, T0 + 3 * HOUR]) {
              if (t < readFloor(plan, writer)) continue;
              const want = readFeatures(plan, writer, t);
              assert.deepEqual(readFeatures(plan, decoded, t), want, `decoded, as of T0+${(t - T0) / MIN}m`);
              if (loaded) assert.deepEqual(reader!.read(t), want, `fast reader, as of T0+${(t - T0) / MIN}m`);
            }
          },
        ),
        { numRuns: 400 },
      );
    });
  }

  it('counts every event in a tiled feature that the cap dropped once older than the read floor, exact features in the view or not', () => {
    // Bug fixed: in a view with an exact feature, raw events that feature still read were never
    // folded into tiles, so the cap threw them away for the tiled features too (3 here, not 10).
    const features = `
      - { name: ct, aggregation: count, window: 30d, mode: tiled, tile: 1d }
      - { name: st, aggregation: sum, column: amount, window: 30d, mode: tiled, tile: 1d }
    `;
    const view = 'allowed_lateness: 1h\n    max_events_per_entity: 3';
    const mixed = planOf(`- { name: c, aggregation: count, window: 30d }\n${features}`, view);
    const tiledOnly = planOf(features, view);
    const events = (plan: ViewPlan) =>
      Array.from({ length: 10 }, (_, i) => event(plan, T0 + i * HOUR, 0, i, i + 1));
    const t = T0 + 10 * HOUR;
    const state = emptyState(mixed);
    const reader = new BeforeEventReader(mixed, state, 4);
    for (const e of events(mixed)) {
      // The ingestor's "before" values equal a plain read of the state.
      assert.deepEqual(reader.read(e.ts), readFeatures(mixed, state, e.ts));
      applyEvent(mixed, state, e);
      reader.synced(e);
    }
    assert.equal(state.dropped, 7);
    // The exact count keeps the cap's 3 newest; the tiled ones keep all 10 (sum 1 + ... + 10).
    assert.deepEqual(readFeatures(mixed, state, t), [3, 10, 55]);
    assert.deepEqual(reader.read(t), [3, 10, 55]);
    assert.deepEqual(readFeatures(mixed, decodeState(mixed, encodeState(mixed, state)), t), [3, 10, 55]);
    const alone = emptyState(tiledOnly);
    for (const e of events(tiledOnly)) applyEvent(tiledOnly, alone, e);
    assert.deepEqual(readFeatures(tiledOnly, alone, t), [10, 55]);
    // The offline sweep (no cap: it sees the whole log) gives the same tiled values.
    const offline = featuresBeforeEach(mixed, [...events(mixed), event(mixed, t, 0, 10, 0)]).at(-1);
    assert.deepEqual(offline?.slice(1), [10, 55]);
  });

  it('gives a tiled feature the same value with or without exact features in its view, late events and ties included', () => {
    const tiled = `
      - { name: st, aggregation: sum, column: amount, window: 1h, mode: tiled, tile: 5m }
      - { name: ct, aggregation: count, window: 2h, mode: tiled, tile: 1h }
      - { name: dt, aggregation: count_distinct, column: merchant, window: 30m, mode: tiled, tile: 10m }
    `;
    const exact = `
      - { name: c, aggregation: count, window: 2h }
      - { name: s, aggregation: sum, column: amount, window: 15m }
    `;
    const view = 'allowed_lateness: 20m\n    max_events_per_entity: 5';
    const mixed = planOf(`${exact}\n${tiled}`, view);
    const tiledOnly = planOf(tiled, view);
    const offsetOfTiled = mixed.features.length - tiledOnly.features.length;
    const drafts = fc.array(
      fc.record({
        ts: fc.oneof(fc.integer({ min: 0, max: 3 * HOUR }), fc.constantFrom(0, 5 * MIN, HOUR)),
        delay: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 * MIN - 1 })),
        amount: fc.integer({ min: -500, max: 500 }),
        merchant: fc.constantFrom('a', 'b', 'c', 'd'),
      }),
      { maxLength: 80 },
    );
    /** True when applied, false when late; any other error is the engine's and fails the run. */
    const apply = (plan: ViewPlan, state: EntityState, e: EngineEvent): boolean => {
      try {
        applyEvent(plan, state, e);
        return true;
      } catch (error) {
        if (!isTesseraError(error, 'EVENT_LATE')) throw error;
        return false;
      }
    };
    fc.assert(
      fc.property(
        drafts,
        fc.array(fc.integer({ min: 0, max: 2 * HOUR }), { minLength: 1, maxLength: 4 }),
        (ds, reads) => {
          const arrivals = ds
            .map((d, i) => ({ ...d, i }))
            .sort((a, b) => a.ts + a.delay - (b.ts + b.delay) || a.i - b.i);
          const a = emptyState(mixed);
          const b = emptyState(tiledOnly);
          arrivals.forEach((d, i) => {
            // Late against the clock: refused by both views alike.
            assert.equal(
              apply(mixed, a, event(mixed, T0 + d.ts, 0, i, d.amount, d.merchant)),
              apply(tiledOnly, b, event(tiledOnly, T0 + d.ts, 0, i, d.amount, d.merchant)),
              `event ${i}`,
            );
          });
          const newest = Math.max(T0, ...arrivals.map((d) => T0 + d.ts));
          for (const dt of reads) {
            const t = Math.max(newest + dt - HOUR, readFloor(mixed, a));
            assert.deepEqual(readFeatures(mixed, a, t).slice(offsetOfTiled), readFeatures(tiledOnly, b, t));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('still holds at most max_events_per_entity raw events, a day of ties included', () => {
    const plan = planOf('- { name: c, aggregation: count, window: 1d }', 'max_events_per_entity: 5');
    const state = emptyState(plan);
    for (let i = 0; i < 50; i++)
      applyEvent(plan, state, event(plan, T0 + Math.floor(i / 20) * DAY, i % 2, i, i));
    assert.equal(state.events.length - state.head, 5);
    assert.equal(state.dropped, 45);
  });
});
