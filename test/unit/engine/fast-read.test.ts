// The server's read straight from state bytes (shared/engine/fast-read.ts) against the decoding
// path it replaces: for random streams, both modes and random read times, its values, newest event
// time and read floor equal readFeatures / newestEventTime / readFloor of the decoded state, and
// it refuses (or throws on) every byte string decodeState refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stateBytesReader } from '../../../shared/engine/fast-read.ts';
import {
  applyEvent,
  decodeState,
  type EngineEvent,
  emptyState,
  encodeState,
  newestEventTime,
  readFeatures,
  readFloor,
  type ViewPlan,
} from '../../../shared/engine/index.ts';
import { DAY, fraudPlan, HOUR, planOf, T0 } from '../../support/engine-fixtures.ts';

const MIN = 60_000;
const COVERED = `
- { name: c10m, aggregation: count, window: 10m }
- { name: s1h, aggregation: sum, column: amount, window: 1h, mode: tiled, tile: 5m }
- { name: a1h, aggregation: avg, column: amount, window: 1h, default: 0.0 }
- { name: a30m_t, aggregation: avg, column: amount, window: 30m, mode: tiled, tile: 10m }
- { name: a30m_nd, aggregation: avg, column: amount, window: 30m }
- { name: mx, aggregation: max, column: amount, window: 30m, mode: tiled, tile: 5m }
- { name: mn, aggregation: min, column: amount, window: 1h }
- { name: d, aggregation: count_distinct, column: merchant, window: 1h, mode: tiled, tile: 10m }
- { name: d_e, aggregation: count_distinct, column: merchant, window: 20m }
- { name: dn, aggregation: count_distinct, column: amount, window: 1h, mode: tiled, tile: 5m }
- { name: dn_e, aggregation: count_distinct, column: amount, window: 40m }
- { name: sd, aggregation: stddev, column: amount, window: 1h, mode: tiled, tile: 15m }
- { name: sd_e, aggregation: stddev, column: amount, window: 30m, default: -1.0 }
- { name: c2h_t, aggregation: count, window: 2h, mode: tiled, tile: 1h }
- { name: var, aggregation: variance, column: amount, window: 45m }
- { name: mxe, aggregation: max, column: amount, window: 20m, default: 0.0 }
- { name: mnt, aggregation: min, column: amount, window: 1h, mode: tiled, tile: 10m, default: 0.0 }
- { name: se, aggregation: sum, column: amount, window: 15m }
`;

interface Case {
  name: string;
  plan: ViewPlan;
  /** Event times are drawn from [0, span) after T0; reads up to `span` after the newest. */
  span: number;
}

const CASES: Case[] = [
  { name: 'mixed plan, both modes', plan: planOf(COVERED, 'allowed_lateness: 20m'), span: 3 * HOUR },
  {
    name: 'mixed plan, few events kept',
    plan: planOf(COVERED, 'allowed_lateness: 20m\n    max_events_per_entity: 7'),
    span: 3 * HOUR,
  },
  { name: "fraudPlan('exact')", plan: fraudPlan('exact'), span: 40 * DAY },
  { name: "fraudPlan('tiled')", plan: fraudPlan('tiled'), span: 40 * DAY },
];

const draftArb = (span: number) =>
  fc.record({
    ts: fc.oneof(fc.integer({ min: 0, max: span }), fc.constantFrom(0, 5 * MIN, 10 * MIN, HOUR, 2 * HOUR)),
    delay: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
    amount: fc.oneof(
      fc.integer({ min: -5000, max: 500_000 }).map((c) => c / 100),
      fc.constantFrom(null, 0, -0, 1e300, -1e300, 0.1, 5e-324, 7),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
    ),
    merchant: fc.constantFrom('a', 'b', 'c', 'd', 'é', 'ünï', null),
    partition: fc.integer({ min: 0, max: 1 }),
    /** Advance the writer's clock to the event time plus this (the ingestor's `now`), or not. */
    now: fc.option(fc.integer({ min: 0, max: 2 * HOUR }), { freq: 4 }),
  });

/** The state a writer builds from drafts arriving in time + delay order (late ones refused). */
type Draft = ReturnType<typeof draftArb> extends fc.Arbitrary<infer D> ? D : never;

function buildState(plan: ViewPlan, drafts: readonly Draft[]) {
  const state = emptyState(plan);
  const arrival = drafts
    .map((d, i) => ({ ...d, at: d.ts + d.delay * plan.latenessMs, i }))
    .sort((a, b) => a.at - b.at || a.i - b.i);
  const next = [0, 0];
  for (const d of arrival) {
    const event: EngineEvent = {
      ts: T0 + d.ts,
      partition: d.partition,
      offset: next[d.partition]!++,
      values: plan.columns.map((c) => (c === 'amount' ? d.amount : d.merchant)),
    };
    try {
      applyEvent(plan, state, event, d.now === null ? undefined : event.ts + d.now);
    } catch {
      // late against an advanced clock: refused, as the ingestor does
    }
  }
  return state;
}

describe('fast read from state bytes', () => {
  for (const { name, plan, span } of CASES) {
    it(`equals readFeatures of the decoded state: ${name}`, () => {
      const reader = stateBytesReader(plan);
      assert.ok(reader, 'the plan is covered');
      fc.assert(
        fc.property(
          fc.array(draftArb(span), { maxLength: 80 }),
          fc.array(fc.double({ min: -0.05, max: 1.05, noNaN: true }), { minLength: 1, maxLength: 8 }),
          fc.subarray(plan.features.map((f) => f.index)),
          (drafts, reads, subset) => {
            const bytes = encodeState(plan, buildState(plan, drafts));
            const decoded = decodeState(plan, bytes);
            assert.equal(reader.load(bytes), true);
            assert.equal(reader.newest(), newestEventTime(decoded));
            assert.equal(reader.floor(), readFloor(plan, decoded));
            const floor = readFloor(plan, decoded);
            const newest = newestEventTime(decoded) ?? T0;
            const base = Number.isFinite(floor) ? floor : T0;
            const times = reads.map((r) => Math.max(floor, Math.round(base + r * (newest - base + span))));
            // Tile edges and event times, where windows open and close.
            times.push(
              Math.max(floor, newest),
              newest + 1,
              Math.max(floor, Math.floor(newest / HOUR) * HOUR),
            );
            for (const t of times) {
              if (t < floor) continue;
              const expected = readFeatures(plan, decoded, t);
              assert.deepEqual(reader.read(t), expected, `as of ${t}`);
              const some = reader.read(
                t,
                subset.map((index) => ({ index })),
              );
              for (const f of plan.features)
                assert.deepEqual(some[f.index], subset.includes(f.index) ? expected[f.index] : undefined);
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  }

  it('refuses or throws on every byte string decodeState refuses, and agrees on the rest', () => {
    const { plan, span } = CASES[0]!;
    const reader = stateBytesReader(plan)!;
    fc.assert(
      fc.property(
        fc.array(draftArb(span), { minLength: 1, maxLength: 30 }),
        fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.nat(),
        fc.boolean(),
        (drafts, edits, cut, truncate) => {
          const good = encodeState(plan, buildState(plan, drafts));
          let bytes = Uint8Array.from(good);
          for (const { at, byte } of edits) bytes[at % bytes.length] = byte;
          if (truncate) bytes = bytes.subarray(0, cut % bytes.length);
          let decoded: ReturnType<typeof decodeState> | null = null;
          try {
            decoded = decodeState(plan, bytes);
          } catch {
            decoded = null;
          }
          let loaded: boolean;
          try {
            loaded = reader.load(bytes);
          } catch {
            loaded = false;
          }
          if (decoded === null) {
            assert.equal(loaded, false, 'bytes decodeState refuses are refused');
            return;
          }
          if (!loaded) return; // not covered: the caller decodes
          assert.equal(reader.newest(), newestEventTime(decoded));
          assert.equal(reader.floor(), readFloor(plan, decoded));
          const floor = readFloor(plan, decoded);
          const t = Number.isFinite(floor) ? floor + 30 * MIN : T0;
          assert.deepEqual(reader.read(t), readFeatures(plan, decoded, t));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('leaves plans with hll, first, last or last_n to the decoding path', () => {
    for (const kind of [
      'approx_count_distinct, column: merchant',
      'first, column: merchant',
      'last, column: merchant',
      'last_n, column: merchant, n: 2',
    ]) {
      const plan = planOf(`- { name: x, aggregation: ${kind}, window: 1h }`);
      assert.equal(stateBytesReader(plan), null, kind);
    }
  });

  it('refuses a dictionary that repeats a string, since count_distinct counts its indexes', () => {
    const plan = planOf('- { name: d, aggregation: count_distinct, column: merchant, window: 1h }');
    const state = emptyState(plan);
    applyEvent(plan, state, { ts: T0, partition: 0, offset: 0, values: ['ab'] });
    applyEvent(plan, state, { ts: T0 + 1, partition: 0, offset: 1, values: ['ac'] });
    const bytes = encodeState(plan, state);
    const reader = stateBytesReader(plan)!;
    assert.equal(reader.load(bytes), true);
    assert.equal(reader.read(T0 + 2)[0], 2);
    const at = bytes.lastIndexOf(0x63); // 'c' of "ac" in the dictionary
    const same = Uint8Array.from(bytes);
    same[at] = 0x62;
    assert.equal(readFeatures(plan, decodeState(plan, same), T0 + 2)[0], 1);
    assert.equal(reader.load(same), false);
  });

  it('refuses a string in a numeric column', () => {
    const plan = planOf('- { name: s, aggregation: sum, column: amount, window: 1h }');
    const state = emptyState(plan);
    applyEvent(plan, state, { ts: T0, partition: 0, offset: 0, values: ['12'] });
    assert.equal(stateBytesReader(plan)!.load(encodeState(plan, state)), false);
  });
});
