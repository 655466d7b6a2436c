// Property-based tests (fast-check): random event streams, arrival orders within lateness, and
// read times, in both modes. The engine must equal the naive reference, and its online, offline
// and serialized paths must agree with each other bit for bit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  applyDeltas,
  applyEvent,
  BeforeEventReader,
  decodeState,
  type EngineEvent,
  emptyState,
  encodeDelta,
  encodeState,
  featuresBeforeEach,
  readFeatures,
  readFloor,
  type ViewPlan,
} from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { HOUR, planOf, T0 } from '../../support/engine-fixtures.ts';
import { type NaiveEvent, type NaiveFeature, naiveValue, sameValue } from '../../support/naive-reference.ts';

const MIN = 60_000;
const FEATURES = `
- { name: c10m, aggregation: count, window: 10m }
- { name: s1h, aggregation: sum, column: amount, window: 1h, mode: tiled, tile: 5m }
- { name: a1h, aggregation: avg, column: amount, window: 1h, default: 0.0 }
- { name: a30m_t, aggregation: avg, column: amount, window: 30m, mode: tiled, tile: 10m }
- { name: mx, aggregation: max, column: amount, window: 30m, mode: tiled, tile: 5m }
- { name: mn, aggregation: min, column: amount, window: 1h }
- { name: d, aggregation: count_distinct, column: merchant, window: 1h, mode: tiled, tile: 10m }
- { name: d_e, aggregation: count_distinct, column: merchant, window: 20m }
- { name: f, aggregation: first, column: merchant, window: 1h }
- { name: l, aggregation: last, column: merchant, window: 30m, mode: tiled, tile: 5m }
- { name: ln, aggregation: last_n, column: merchant, window: 1h, n: 3 }
- { name: sd, aggregation: stddev, column: amount, window: 1h, mode: tiled, tile: 15m }
- { name: c2h_t, aggregation: count, window: 2h, mode: tiled, tile: 1h }
- { name: var, aggregation: variance, column: amount, window: 45m }
- { name: mxe, aggregation: max, column: amount, window: 20m, default: 0.0 }
- { name: mnt, aggregation: min, column: amount, window: 1h, mode: tiled, tile: 10m, default: 0.0 }
- { name: se, aggregation: sum, column: amount, window: 15m }
`;
const LATENESS = 20 * MIN;
/**
 * The merchant column as a string column, declared bool, and declared int64 (ids: numbers while
 * exact, decimal strings beyond 2^53, as the validator gives them). Each takes the same paths
 * (dictionary columns, distinct sets, first/last/last_n, the state bytes) and must keep its values.
 */
const MERCHANTS = [
  { type: 'string', values: ['a', 'b', 'c', 'd', 'e', 'f', null] },
  { type: 'bool', values: [true, false, null] },
  { type: 'int64', values: [1, 2, -7, '9007199254740993', '9007199254740995', '-9223372036854775808', null] },
] as const;

for (const merchants of MERCHANTS) {
  const plan: ViewPlan = planOf(FEATURES, 'allowed_lateness: 20m', merchants.type);
  const naiveFeatures: NaiveFeature[] = plan.features.map((f) => ({
    aggregation: f.def.aggregation,
    column: f.def.column as NaiveFeature['column'],
    windowMs: f.windowMs,
    tileMs: f.tileMs,
    default: f.def.default,
    n: f.n,
  }));

  /** A stream of events in arrival order: each arrives at most LATENESS after its own time. */
  const streamArb = fc
    .array(
      fc.record({
        ts: fc.oneof(
          fc.integer({ min: 0, max: 3 * HOUR }),
          fc.constantFrom(0, 5 * MIN, 10 * MIN, HOUR, 2 * HOUR),
        ),
        delay: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: LATENESS - 1 })),
        cents: fc.integer({ min: -5000, max: 500_000 }),
        merchant: fc.constantFrom<string | number | boolean | null>(...merchants.values),
        partition: fc.integer({ min: 0, max: 1 }),
      }),
      { maxLength: 80, size: 'max' },
    )
    .map((drafts) => {
      const arrival = drafts
        .map((d, i) => ({ ...d, i }))
        .sort((a, b) => a.ts + a.delay - (b.ts + b.delay) || a.i - b.i);
      const next = [0, 0];
      return arrival.map((d): NaiveEvent => {
        const offset = next[d.partition]!++;
        return { ts: T0 + d.ts, partition: d.partition, offset, amount: d.cents / 100, merchant: d.merchant };
      });
    });

  const toEngine = (e: NaiveEvent): EngineEvent => ({
    ts: e.ts,
    partition: e.partition,
    offset: e.offset,
    values: plan.columns.map((c) => (c === 'amount' ? e.amount : e.merchant)),
  });

  function checkAgainstNaive(values: unknown[], events: NaiveEvent[], t: number, where: string): void {
    naiveFeatures.forEach((f, i) => {
      const expected = naiveValue(events, f, t);
      assert.ok(
        sameValue(f.aggregation, values[i], expected),
        `${where}: ${plan.features[i]!.def.name} as of T0+${t - T0}ms: engine ${JSON.stringify(values[i])}, naive ${JSON.stringify(expected)}`,
      );
    });
  }

  describe(`engine properties (merchant: ${merchants.type})`, () => {
    it('online reads equal the naive reference at any time the state can answer', () => {
      fc.assert(
        fc.property(
          streamArb,
          fc.array(fc.integer({ min: -LATENESS, max: 3 * HOUR }), { minLength: 1, maxLength: 5 }),
          (events, offsets) => {
            const state = emptyState(plan);
            events.forEach((e, i) => {
              // Read before applying: the value the ingestor would emit for this event.
              checkAgainstNaive(
                readFeatures(plan, state, e.ts),
                events.slice(0, i),
                e.ts,
                `before event ${i}`,
              );
              applyEvent(plan, state, toEngine(e));
            });
            const last = Math.max(T0, ...events.map((e) => e.ts));
            for (const dt of offsets) {
              const t = Math.max(last + dt, readFloor(plan, state));
              checkAgainstNaive(readFeatures(plan, state, t), events, t, 'after all events');
            }
          },
        ),
        { numRuns: 300 },
      );
    });

    it('pruning only once due (state.pruneAt) leaves what pruning at every clock move leaves', () => {
      // The writer that skips prunes must hold exactly the raw events and tiles of one that prunes
      // whenever its clock moves (pruneAt forced to -Infinity), folding early or not, with the
      // clock also moved by a caller's `now`.
      const exactOnly = planOf(
        FEATURES.split('\n')
          .filter((line) => !line.includes('tiled'))
          .join('\n'),
        'allowed_lateness: 20m',
        merchants.type,
      );
      for (const p of [plan, { ...plan, foldAt: 3 }, exactOnly]) {
        fc.assert(
          fc.property(
            streamArb,
            fc.array(fc.option(fc.integer({ min: 0, max: 3 * HOUR })), { minLength: 1 }),
            (events, nows) => {
              const lazy = emptyState(p);
              const eager = emptyState(p);
              events.forEach((e, i) => {
                const now = nows[i % nows.length];
                const at = now === null || now === undefined ? undefined : e.ts + now;
                const outcomes: string[] = [];
                for (const state of [lazy, eager]) {
                  if (state === eager) state.pruneAt = Number.NEGATIVE_INFINITY;
                  try {
                    outcomes.push(applyEvent(p, state, toEngine(e), at).outcome);
                  } catch (error) {
                    // late against `now`: refused by both; any other error fails the run
                    if (!isTesseraError(error, 'EVENT_LATE')) throw error;
                    outcomes.push('late');
                  }
                }
                assert.equal(outcomes[0], outcomes[1], `outcome of event ${i}`);
                assert.deepEqual(encodeState(p, lazy), encodeState(p, eager), `after event ${i}`);
              });
            },
          ),
          { numRuns: 200 },
        );
      }
    });

    it('training rows (sliding sweep) equal the naive reference over the whole log', () => {
      fc.assert(
        fc.property(streamArb, (events) => {
          const rows = featuresBeforeEach(plan, events.map(toEngine));
          events.forEach((e, i) => {
            checkAgainstNaive(rows[i]!, events, e.ts, `row ${i}`);
          });
        }),
        { numRuns: 300 },
      );
    });

    it('online reads, training rows and decoded state agree bit for bit', () => {
      fc.assert(
        fc.property(streamArb, fc.integer({ min: 1, max: 2 * HOUR }), (events, after) => {
          const state = emptyState(plan);
          for (const e of events) applyEvent(plan, state, toEngine(e));
          const decoded = decodeState(plan, encodeState(plan, state));
          const rows = featuresBeforeEach(plan, events.map(toEngine));
          events.forEach((e, i) => {
            if (e.ts < readFloor(plan, state)) return;
            assert.deepEqual(readFeatures(plan, state, e.ts), rows[i], `online vs offline at row ${i}`);
            assert.deepEqual(readFeatures(plan, decoded, e.ts), rows[i], `decoded vs offline at row ${i}`);
          });
          const t = Math.max(T0, ...events.map((e) => e.ts)) + after;
          assert.deepEqual(readFeatures(plan, decoded, t), readFeatures(plan, state, t));
        }),
        { numRuns: 300 },
      );
    });

    it('a stored state with delta records replayed equals the state that wrote them', () => {
      // The ingestor's save: per batch, either the full state or a delta record of the events it
      // applied (with its wall clock `now` or none); a reader decodes the last full state and
      // replays the records after it. Its state must encode to the writer's bytes exactly. On the
      // record clock the writer also judged each event by its arrival (its Kafka timestamp), which
      // no delta holds: the arrival rejects events but must not change the state.
      fc.assert(
        fc.property(
          streamArb,
          fc.array(
            fc.record({
              size: fc.integer({ min: 1, max: 12 }),
              full: fc.boolean(),
              now: fc.option(fc.integer({ min: 0, max: LATENESS })),
              waited: fc.option(fc.integer({ min: 0, max: 2 * LATENESS })),
            }),
            {
              minLength: 1,
              maxLength: 30,
            },
          ),
          fc.integer({ min: 0, max: 2 * HOUR }),
          (events, batches, after) => {
            const writer = emptyState(plan);
            let base = encodeState(plan, writer);
            let deltas: Uint8Array[] = [];
            let next = 0;
            for (let b = 0; next < events.length; b++) {
              const batch = batches[b % batches.length]!;
              const slice = events.slice(next, next + batch.size);
              next += slice.length;
              const now = batch.now === null ? undefined : Math.max(...slice.map((e) => e.ts)) + batch.now;
              const applied: EngineEvent[] = [];
              for (const e of slice) {
                try {
                  const arrival = batch.waited === null ? undefined : e.ts + batch.waited;
                  if (applyEvent(plan, writer, toEngine(e), now, arrival).outcome === 'applied')
                    applied.push(toEngine(e));
                } catch (error) {
                  // late against the writer's `now` or the event's arrival: rejected, as the ingestor does;
                  // any other error is the engine's and fails the run
                  if (!isTesseraError(error, 'EVENT_LATE')) throw error;
                }
              }
              if (batch.full || applied.length === 0) {
                base = encodeState(plan, writer);
                deltas = [];
              } else {
                deltas.push(encodeDelta(plan, applied, now));
              }
            }
            const reader = decodeState(plan, base);
            const stored = Buffer.concat(deltas);
            assert.equal(applyDeltas(plan, reader, stored), deltas.length);
            assert.deepEqual(encodeState(plan, reader), encodeState(plan, writer));
            const t = Math.max(readFloor(plan, writer), T0 + after);
            assert.deepEqual(readFeatures(plan, reader, t), readFeatures(plan, writer, t));
          },
        ),
        { numRuns: 300 },
      );
    });

    it('delta records refuse bytes that are not theirs: another plan, garbage, a replay twice', () => {
      const state = emptyState(plan);
      const e: EngineEvent = { ts: T0, partition: 0, offset: 1, values: plan.columns.map(() => 'a') };
      const record = encodeDelta(plan, [e]);
      const other = planOf('- { name: c, aggregation: count, window: 1h }');
      assert.throws(() => applyDeltas(other, emptyState(other), record), /another layout/);
      assert.throws(() => applyDeltas(plan, emptyState(plan), Uint8Array.of(7, 1, 2)), /not a delta/);
      assert.throws(
        () => applyDeltas(plan, emptyState(plan), record.subarray(0, record.length - 1)),
        /truncated/,
      );
      assert.equal(applyDeltas(plan, state, record), 1);
      assert.throws(() => applyDeltas(plan, state, record), /repeats partition 0 offset 1/);
    });

    it('the online before-event reader equals a plain read before every event', () => {
      fc.assert(
        fc.property(streamArb, fc.integer({ min: 0, max: 5 }), (events, extra) => {
          const state = emptyState(plan);
          const reader = new BeforeEventReader(plan, state, extra);
          events.forEach((e, i) => {
            if (e.ts >= readFloor(plan, state)) {
              assert.deepEqual(reader.read(e.ts), readFeatures(plan, state, e.ts), `before event ${i}`);
            }
            applyEvent(plan, state, toEngine(e));
            if (i % 3 === 0) applyEvent(plan, state, toEngine(e)); // a redelivery: no change
            reader.synced(e);
          });
        }),
        { numRuns: 300 },
      );
    });

    /**
     * Reads at any time the state can answer, earlier or later than the previous read (probes),
     * interleaved with out-of-order inserts: every read of the reader equals a plain read of the state.
     */
    function readerEqualsPlainReads(p: ViewPlan): void {
      fc.assert(
        fc.property(
          streamArb,
          fc.array(fc.integer({ min: -LATENESS, max: 40 * MIN }), { minLength: 1, maxLength: 200 }),
          fc.integer({ min: 0, max: 5 }),
          (events, shifts, extra) => {
            const state = emptyState(p);
            const reader = new BeforeEventReader(p, state, extra);
            events.forEach((e, i) => {
              for (let r = 0; r < 1 + (i % 3); r++) {
                const t = e.ts + shifts[(i * 3 + r) % shifts.length]!;
                if (t < readFloor(p, state)) continue;
                assert.deepEqual(reader.read(t), readFeatures(p, state, t), `read at ${t} before event ${i}`);
              }
              applyEvent(p, state, toEngine(e)); // `p` has the columns of `plan`
              reader.synced(e);
            });
          },
        ),
        { numRuns: 300 },
      );
    }

    it('the before-event reader also answers reads back in time, between applies', () => {
      readerEqualsPlainReads(plan);
    });

    it('the before-event reader leaves out what max_events_per_entity dropped', () => {
      // A cap of a few events drops the oldest while they are still inside the windows: the reader
      // must stop counting them (it once kept them in its mirror until its next rebuild).
      readerEqualsPlainReads(
        planOf(FEATURES, 'allowed_lateness: 20m\n    max_events_per_entity: 6', merchants.type),
      );
    });

    it('applying any record twice changes nothing', () => {
      fc.assert(
        fc.property(streamArb, fc.nat(), (events, pick) => {
          fc.pre(events.length > 0);
          const once = emptyState(plan);
          const twice = emptyState(plan);
          const replayAt = pick % events.length;
          events.forEach((e, i) => {
            applyEvent(plan, once, toEngine(e));
            applyEvent(plan, twice, toEngine(e));
            if (i >= replayAt) {
              const again = events[replayAt]!;
              assert.equal(applyEvent(plan, twice, toEngine(again)).outcome, 'duplicate');
            }
          });
          assert.deepEqual(encodeState(plan, twice), encodeState(plan, once));
        }),
        { numRuns: 200 },
      );
    });
  });
}
