// readFeatures' fast paths (shared/engine/window-read.ts, state.ts lowerBoundBack) against a naive
// reference: every raw event filtered by its time, tiles merged and events added through acc.ts
// accumulators, as reads were computed before the fast paths. Random streams put events at exactly
// a window's start and at the read time, tie many events in time, mix negative, signed-zero and
// huge amounts (sums that overflow depend on their order: the reuse of a shorter window's sum must
// not change them), and give an entity hundreds of events (tiled features fold past 256).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { addEvent, emptyAcc, type FeatureValue, finalize } from '../../../shared/engine/acc.ts';
import {
  applyEvent,
  type EntityState,
  emptyState,
  readFeatures,
  readFloor,
  type ViewPlan,
  windowStart,
} from '../../../shared/engine/index.ts';
import { lowerBoundBack, lowerBoundTs } from '../../../shared/engine/state.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { fraudPlan, planOf, T0 } from '../../support/engine-fixtures.ts';

const MIN = 60_000;

// Sums of one column over nested windows (the reuse), each kind in both modes, distinct counts of
// strings and numbers over windows both under and over the small-window path's 16 events.
const NESTED = `
- { name: s10m, aggregation: sum, column: amount, window: 10m }
- { name: a20m, aggregation: avg, column: amount, window: 20m, default: 0.0 }
- { name: s20m, aggregation: sum, column: amount, window: 20m }
- { name: s1h, aggregation: sum, column: amount, window: 1h }
- { name: c10m, aggregation: count, window: 10m }
- { name: c1h_t, aggregation: count, window: 1h, mode: tiled, tile: 10m }
- { name: s20m_t, aggregation: sum, column: amount, window: 20m, mode: tiled, tile: 5m }
- { name: a1h_t, aggregation: avg, column: amount, window: 1h, mode: tiled, tile: 10m }
- { name: mx, aggregation: max, column: amount, window: 20m }
- { name: mn_t, aggregation: min, column: amount, window: 30m, mode: tiled, tile: 5m, default: 0.0 }
- { name: d, aggregation: count_distinct, column: merchant, window: 20m }
- { name: d_t, aggregation: count_distinct, column: merchant, window: 1h, mode: tiled, tile: 10m }
- { name: dn, aggregation: count_distinct, column: amount, window: 30m }
- { name: sd, aggregation: stddev, column: amount, window: 30m }
- { name: fst, aggregation: first, column: merchant, window: 20m }
`;

const PLANS: { name: string; plan: ViewPlan }[] = [
  { name: 'nested windows, both modes', plan: planOf(NESTED, 'allowed_lateness: 10m') },
  {
    name: 'nested windows, folding past 8 raw events',
    plan: planOf(NESTED, 'allowed_lateness: 10m\n    max_events_per_entity: 8'),
  },
  { name: 'reference view, exact', plan: fraudPlan('exact') },
  { name: 'reference view, tiled', plan: fraudPlan('tiled') },
];

/** The feature values as of t computed naively: every raw event tested, accumulators of acc.ts. */
function naiveRead(plan: ViewPlan, state: EntityState, t: number): FeatureValue[] {
  return plan.features.map((feature) => {
    const start = windowStart(t, feature);
    const acc = emptyAcc(feature.acc);
    if (feature.tileMs > 0) {
      const g = plan.tileGroups.findIndex((group) => group.tileMs === feature.tileMs);
      state.tiles[g]!.mergeRange(acc, feature.slot, start, Number.POSITIVE_INFINITY);
    }
    for (let i = state.head; i < state.events.length; i++) {
      const e = state.events[i]!;
      if (e.ts >= start && e.ts < t) addEvent(acc, feature, e);
    }
    return finalize(feature, acc);
  });
}

function same(a: FeatureValue, b: FeatureValue): boolean {
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
  return Object.is(a, b);
}

const amountArb = fc.oneof(
  fc.integer({ min: -100_000, max: 100_000 }).map((c) => c / 100),
  fc.constantFrom(0, -0, 1e308, -1e308, 1.7976931348623157e308, 2 ** -1074, 1e16, 1),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constant(null),
);

/** Minutes from the stream start, mostly on 5-minute marks (window and tile edges), with ties. */
const stepArb = fc.oneof(fc.constant(0), fc.constantFrom(1, 5, 10, 20), fc.integer({ min: 0, max: 30 }));

const draftArb = fc.record({
  step: stepArb,
  back: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 9 })),
  ms: fc.constantFrom(0, 0, 0, 1, MIN - 1),
  amount: amountArb,
  merchant: fc.oneof(fc.constantFrom('a', 'b', 'c', ''), fc.string({ maxLength: 2 }), fc.constant(null)),
});

describe('readFeatures fast paths', () => {
  it('lowerBoundBack finds what lowerBoundTs finds, for every bound, start and end', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 120 }),
        fc.integer({ min: -2, max: 45 }),
        fc.nat(),
        (times, bound, pick) => {
          times.sort((a, b) => a - b);
          const events = times.map((ts, offset) => ({ ts, partition: 0, offset, values: [] }));
          const from = times.length === 0 ? 0 : pick % (times.length + 1);
          // `to`: any position whose event (if any) is at or after the bound, as readFeatures passes.
          const to =
            lowerBoundTs(events, bound, from) +
            (pick % 3 === 0 ? 0 : (pick >> 2) % (times.length + 1 - lowerBoundTs(events, bound, from) || 1));
          assert.equal(
            lowerBoundBack(events, bound, from, Math.min(to, times.length)),
            lowerBoundTs(events, bound, from),
          );
        },
      ),
      { numRuns: 3000 },
    );
  });

  for (const { name, plan } of PLANS) {
    it(`equal the naive read, bit for bit, at window edges, ties and huge amounts: ${name}`, () => {
      fc.assert(
        fc.property(
          fc.array(draftArb, { maxLength: 400 }),
          fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 6 }),
          (drafts, picks) => {
            const state = emptyState(plan);
            const times: number[] = [];
            let minute = 0;
            drafts.forEach((d, i) => {
              minute += d.step;
              const ts = T0 + (minute - d.back) * MIN + d.ms;
              const event = {
                ts,
                partition: 0,
                offset: i,
                values: plan.columns.map((c) => (c === 'amount' ? d.amount : d.merchant)),
              };
              try {
                applyEvent(plan, state, event);
                times.push(ts);
              } catch (e) {
                // A late event is not applied; any other error is the engine's and fails the run.
                if (!isTesseraError(e, 'EVENT_LATE')) throw e;
              }
            });
            // The first event of an empty state is never late: a run that applied nothing did not
            // read what it meant to.
            assert.ok(drafts.length === 0 || times.length > 0, 'no event applied');
            // Reads at an event's time (it and its ties are out), one window after one (that event
            // is exactly at the window's start), a millisecond around them, and after the newest.
            const floor = readFloor(plan, state);
            const reads = new Set<number>([(state.clock ?? T0) + 1, (state.clock ?? T0) + 45 * MIN]);
            for (const p of picks) {
              const ts = times[p % Math.max(1, times.length)] ?? T0;
              const windows = plan.features.map((f) => f.windowMs);
              const w = windows[p % windows.length]!;
              for (const t of [ts, ts + 1, ts - 1, ts + w, ts + w + 1, ts + w - 1])
                if (t >= floor) reads.add(t);
            }
            for (const t of reads) {
              const fast = readFeatures(plan, state, t);
              const naive = naiveRead(plan, state, t);
              plan.features.forEach((f, i) => {
                assert.ok(same(fast[i]!, naive[i]!), `${f.def.name} at ${t}: ${fast[i]} vs ${naive[i]}`);
              });
            }
          },
        ),
        { numRuns: 150 },
      );
    });
  }

  it('sums an overflowing window in time order, as summed from scratch', () => {
    const plan = planOf(NESTED, 'allowed_lateness: 10m');
    const state = emptyState(plan);
    // In time order 1e308 + 1e308 overflows; the 20-minute window alone (1e308 - 1e308) does not,
    // so adding the first 1e308 to its sum would give 1e308.
    const amounts = [1e308, 1e308, -1e308];
    amounts.forEach((amount, i) => {
      applyEvent(plan, state, {
        ts: T0 + i * 15 * MIN,
        partition: 0,
        offset: i,
        values: plan.columns.map((c) => (c === 'amount' ? amount : 'a')),
      });
    });
    const t = T0 + 31 * MIN;
    const values = readFeatures(plan, state, t);
    const s1h = plan.features.findIndex((f) => f.def.name === 's1h');
    assert.deepEqual(values[s1h], naiveRead(plan, state, t)[s1h]);
    assert.ok(!Number.isFinite(values[s1h] as number), 'the time-ordered sum overflows');
  });
});
