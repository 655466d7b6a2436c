// The server's read straight from state bytes (shared/engine/fast-read.ts) against the decoding
// path it replaces: for random streams, both modes and random read times, its values, newest event
// time and read floor equal readFeatures / newestEventTime / readFloor of the decoded state (with
// its delta records replayed, as decodeStoredState does), and it refuses (or throws on) every byte
// string decodeState refuses and every delta record applyDeltas refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type StateBytesReader, stateBytesReader } from '../../../shared/engine/fast-read.ts';
import {
  applyEvent,
  decodeState,
  type EngineEvent,
  type EntityState,
  emptyState,
  encodeDelta,
  encodeState,
  eventCount,
  newestEventTime,
  readFeatures,
  readFloor,
  type ViewPlan,
} from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { decodeStoredState } from '../../../shared/state-store/redis-state-store.ts';
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
  // Folding raw events into tiles after a few (FOLD_AT is more than these streams reach).
  {
    name: 'mixed plan, folding past 3 raw events',
    plan: { ...planOf(COVERED, 'allowed_lateness: 20m'), foldAt: 3 },
    span: 3 * HOUR,
  },
  {
    name: "fraudPlan('tiled'), folding past 4 raw events",
    plan: { ...fraudPlan('tiled'), foldAt: 4 },
    span: 40 * DAY,
  },
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
    merchant: fc.constantFrom('a', 'b', 'c', 'd', 'é', 'ünï', '', '\uFEFFa', null),
    partition: fc.integer({ min: 0, max: 1 }),
    /** Advance the writer's clock to the event time plus this (the ingestor's `now`), or not. */
    now: fc.option(fc.integer({ min: 0, max: 2 * HOUR }), { freq: 4 }),
  });

/** The state a writer builds from drafts arriving in time + delay order (late ones refused). */
type Draft = ReturnType<typeof draftArb> extends fc.Arbitrary<infer D> ? D : never;

/** Drafts as engine events, in the order they reach the writer (time + delay). */
function arrivals(
  plan: ViewPlan,
  drafts: readonly Draft[],
): { event: EngineEvent; now: number | undefined }[] {
  const next = [0, 0];
  return drafts
    .map((d, i) => ({ ...d, at: d.ts + d.delay * plan.latenessMs, i }))
    .sort((a, b) => a.at - b.at || a.i - b.i)
    .map((d) => {
      const ts = T0 + d.ts;
      const event: EngineEvent = {
        ts,
        partition: d.partition,
        offset: next[d.partition]!++,
        values: plan.columns.map((c) => (c === 'amount' ? d.amount : d.merchant)),
      };
      return { event, now: d.now === null ? undefined : ts + d.now };
    });
}

/** An event's values for `plan.columns` from named ones (amount, merchant, merchant_id). */
function row(plan: ViewPlan, named: Record<string, number | string | null>): (number | string | null)[] {
  return plan.columns.map((c) => named[c] ?? null);
}

/** The bytes of a state holding one event at T0 (partition 0, offset 0) with these values. */
function oneEventState(plan: ViewPlan, named: Record<string, number | string | null>): Buffer {
  const state = emptyState(plan);
  applyEvent(plan, state, { ts: T0, partition: 0, offset: 0, values: row(plan, named) });
  return Buffer.from(encodeState(plan, state));
}

/** applyEvent, with a late event refused as the ingestor refuses it; true when applied. */
function apply(plan: ViewPlan, state: EntityState, event: EngineEvent, now: number | undefined): boolean {
  try {
    return applyEvent(plan, state, event, now).outcome === 'applied';
  } catch (error) {
    // Late against an advanced clock; any other error is the engine's and fails the run.
    if (!isTesseraError(error, 'EVENT_LATE')) throw error;
    return false;
  }
}

/** The state a writer builds from drafts arriving in time + delay order (late ones refused). */
function buildState(plan: ViewPlan, drafts: readonly Draft[]) {
  const state = emptyState(plan);
  for (const { event, now } of arrivals(plan, drafts)) apply(plan, state, event, now);
  return state;
}

/** One save of the ingestor after the base: this many arrivals, applied with this wall clock. */
const batchArb = fc.record({
  size: fc.integer({ min: 1, max: 6 }),
  /** The wall clock, relative to the batch's first event time; null on event time (no `now`). */
  now: fc.option(fc.integer({ min: -HOUR, max: 2 * HOUR }), { freq: 2 }),
});
type Batch = ReturnType<typeof batchArb.generate>['value'];

/**
 * What Redis holds after the ingestor saved the first `share` of the arrivals in full and each
 * later batch as a delta record of the events it applied (with the batch's wall clock, if any).
 */
function buildStored(plan: ViewPlan, drafts: readonly Draft[], share: number, batches: readonly Batch[]) {
  const state = emptyState(plan);
  const events = arrivals(plan, drafts);
  const split = Math.floor(share * events.length);
  for (const { event, now } of events.slice(0, split)) apply(plan, state, event, now);
  const base = Buffer.from(encodeState(plan, state));
  const records: Buffer[] = [];
  let deltaEvents = 0;
  for (let i = split, b = 0; i < events.length; b++) {
    const batch = batches[b % batches.length]!;
    const chunk = events.slice(i, i + batch.size).map((a) => a.event);
    i += batch.size;
    const now = batch.now === null ? undefined : chunk[0]!.ts + batch.now;
    const applied = chunk.filter((event) => apply(plan, state, event, now));
    deltaEvents += applied.length;
    records.push(Buffer.from(encodeDelta(plan, applied, now)));
  }
  return { base, records, deltaEvents, delta: records.length > 0 ? Buffer.concat(records) : null };
}

/** Read times: random ones from the floor to past the newest event, and where windows turn. */
function readTimes(plan: ViewPlan, state: EntityState, fractions: readonly number[], span: number): number[] {
  const floor = readFloor(plan, state);
  const newest = newestEventTime(state) ?? T0;
  const base = Number.isFinite(floor) ? floor : T0;
  const times = fractions.map((r) => Math.round(base + r * (newest - base + span)));
  // Tile edges and event times, where windows open and close.
  times.push(newest, newest + 1, Math.floor(newest / HOUR) * HOUR);
  if (state.clock !== null)
    times.push(floor, state.clock, state.clock + 1, Math.floor(state.clock / DAY) * DAY);
  return times.map((t) => Math.max(floor, t));
}

/** The reader's newest, floor and reads (all features, then `subset`) equal the decoded state's. */
function assertSameAnswers(
  reader: StateBytesReader,
  plan: ViewPlan,
  state: EntityState,
  times: readonly number[],
  subset: readonly number[] = [],
): void {
  assert.equal(reader.newest(), newestEventTime(state), 'newest event time');
  assert.equal(reader.floor(), readFloor(plan, state), 'read floor');
  for (const t of times) {
    const expected = readFeatures(plan, state, t);
    assert.deepEqual(reader.read(t), expected, `as of ${t}`);
    if (subset.length === 0) continue;
    const some = reader.read(
      t,
      subset.map((index) => ({ index })),
    );
    for (const f of plan.features)
      assert.deepEqual(some[f.index], subset.includes(f.index) ? expected[f.index] : undefined);
  }
}

/** decodeStoredState, or null when it refuses the bytes (STATE_CORRUPT). */
function decodeOrNull(plan: ViewPlan, base: Buffer, delta: Buffer | null): EntityState | null {
  try {
    return decodeStoredState(plan, 'k', base, delta);
  } catch (error) {
    assert.equal((error as { code?: string }).code, 'STATE_CORRUPT');
    return null;
  }
}

/** The reader's load, with a throw counted as a refusal (the caller then decodes). */
function loadOrRefuse(reader: StateBytesReader, base: Uint8Array, delta: Uint8Array | null): boolean {
  try {
    return reader.load(base, delta);
  } catch {
    return false;
  }
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
            assertSameAnswers(reader, plan, decoded, readTimes(plan, decoded, reads, span), subset);
          },
        ),
        { numRuns: 300 },
      );
    });

    it(`replays delta records as decodeStoredState does: ${name}`, () => {
      const reader = stateBytesReader(plan)!;
      fc.assert(
        fc.property(
          fc.array(draftArb(span), { maxLength: 80 }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.array(batchArb, { minLength: 1, maxLength: 8 }),
          fc.array(fc.double({ min: -0.05, max: 1.05, noNaN: true }), { minLength: 1, maxLength: 8 }),
          fc.subarray(plan.features.map((f) => f.index)),
          (drafts, share, batches, reads, subset) => {
            const { base, delta, deltaEvents } = buildStored(plan, drafts, share, batches);
            const decoded = decodeStoredState(plan, 'k', base, delta);
            // A tiled plan's cap is not replayed: past it the reader refuses, and the caller
            // decodes. Every other record the ingestor writes is covered.
            const raw = eventCount(decodeState(plan, base)) + deltaEvents;
            const mayRefuse = plan.tileGroups.length > 0 && raw > plan.maxEvents;
            const covered = reader.load(base, delta);
            assert.ok(covered || mayRefuse, 'records the ingestor writes are covered');
            if (covered)
              assertSameAnswers(reader, plan, decoded, readTimes(plan, decoded, reads, span), subset);
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
          const floor = readFloor(plan, decoded);
          assertSameAnswers(reader, plan, decoded, [Number.isFinite(floor) ? floor + 30 * MIN : T0]);
        },
      ),
      { numRuns: 2000 },
    );
  });

  for (const { name, plan, span } of [CASES[0]!, CASES[3]!]) {
    it(`refuses delta records exactly when applyDeltas refuses them, and agrees on the rest: ${name}`, () => {
      const reader = stateBytesReader(plan)!;
      const foreign = CASES.find((c) => c.plan.fingerprint !== plan.fingerprint)!.plan;
      const seen = { refused: 0, agreed: 0 };
      fc.assert(
        fc.property(
          fc.array(draftArb(span), { minLength: 2, maxLength: 40 }),
          fc.double({ min: 0, max: 0.8, noNaN: true }),
          fc.array(batchArb, { minLength: 1, maxLength: 4 }),
          fc.array(draftArb(span), { minLength: 1, maxLength: 10 }),
          fc.constantFrom('edit', 'truncate', 'replay', 'foreign', 'reorder', 'other entity', 'older base'),
          fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), {
            minLength: 1,
            maxLength: 3,
          }),
          fc.nat(),
          (drafts, share, batches, others, damage, edits, pick) => {
            const stored = buildStored(plan, drafts, share, batches);
            const { records } = stored;
            let base = stored.base;
            if (records.length === 0) return;
            let delta = Buffer.concat(records);
            const record = records[pick % records.length]!;
            switch (damage) {
              case 'edit':
                delta = Buffer.from(delta);
                for (const { at, byte } of edits) delta[at % delta.length] = byte;
                break;
              case 'truncate':
                delta = delta.subarray(0, pick % delta.length);
                break;
              case 'replay':
                delta = Buffer.concat([delta, record]);
                break;
              case 'foreign': {
                const copy = Buffer.from(record);
                copy.writeUInt32LE(foreign.fingerprint, 1);
                delta = Buffer.concat([...records.slice(0, pick % records.length), copy]);
                break;
              }
              case 'reorder':
                delta = Buffer.concat([...records].reverse());
                break;
              case 'other entity':
                // Records of another stream (its offsets and times are this entity's business only).
                delta = Buffer.concat([
                  delta,
                  ...buildStored(plan, others, 0, [{ size: 2, now: null }]).records,
                ]);
                break;
              case 'older base':
                base = Buffer.from(encodeState(plan, emptyState(plan)));
                break;
            }
            const decoded = decodeOrNull(plan, base, delta);
            const loaded = loadOrRefuse(reader, base, delta);
            if (decoded === null) {
              assert.equal(loaded, false, `records applyDeltas refuses are refused (${damage})`);
              seen.refused++;
              return;
            }
            if (!loaded) return; // not covered: the caller decodes
            seen.agreed++;
            const floor = readFloor(plan, decoded);
            const t = Number.isFinite(floor) ? floor : T0;
            assertSameAnswers(reader, plan, decoded, [t, t + 30 * MIN, t + 2 * DAY]);
          },
        ),
        { numRuns: 1500 },
      );
      // Both outcomes happened, so the comparison above was exercised both ways.
      assert.ok(seen.refused > 100 && seen.agreed > 100, JSON.stringify(seen));
    });
  }

  it('refuses a replayed record, a foreign one, a late event and a truncated record, as decoding does', () => {
    const plan = fraudPlan('tiled');
    const reader = stateBytesReader(plan)!;
    const state = emptyState(plan);
    const event = (i: number, ts: number): EngineEvent => ({
      ts,
      partition: 0,
      offset: i,
      values: plan.columns.map((c) => (c === 'amount' ? 10 + i : `m${i}`)),
    });
    applyEvent(plan, state, event(0, T0));
    const base = Buffer.from(encodeState(plan, state));
    const first = Buffer.from(encodeDelta(plan, [event(1, T0 + HOUR), event(2, T0 + 2 * HOUR)]));
    assert.equal(reader.load(base, first), true);
    assert.equal(reader.read(T0 + 4 * HOUR)[0], 0); // transaction_count_1h
    assert.equal(reader.read(T0 + 2 * HOUR + 1)[0], 2); // tiled: the window opens at T0 + 1h
    assertSameAnswers(reader, plan, decodeStoredState(plan, 'k', base, first), [
      T0 + HOUR,
      T0 + 2 * HOUR + 1,
    ]);
    const late = Buffer.from(encodeDelta(plan, [event(3, T0)]));
    const foreign = Buffer.from(first);
    foreign.writeUInt32LE(fraudPlan('exact').fingerprint, 1);
    for (const [what, delta] of [
      ['a replayed record', Buffer.concat([first, first])],
      ['a late event', Buffer.concat([first, late])],
      ['a record of another layout', foreign],
      ['a truncated record', first.subarray(0, first.length - 1)],
      ['bytes that are not a record', Buffer.from([0x01, ...first])],
    ] as const) {
      assert.throws(() => decodeStoredState(plan, 'k', base, delta), { code: 'STATE_CORRUPT' }, what);
      assert.throws(() => reader.load(base, delta), { code: 'STATE_CORRUPT' }, what);
    }
  });

  it('refuses an event one millisecond older than the lateness allows, by the clock or the wall clock', () => {
    const plan = fraudPlan('exact');
    const reader = stateBytesReader(plan)!;
    const state = emptyState(plan);
    applyEvent(plan, state, { ts: T0, partition: 0, offset: 0, values: row(plan, { amount: 1 }) });
    const base = Buffer.from(encodeState(plan, state));
    const at = (ts: number, now?: number) =>
      Buffer.from(
        encodeDelta(plan, [{ ts, partition: 0, offset: 1, values: row(plan, { amount: 2 }) }], now),
      );
    const L = plan.latenessMs;
    for (const [delta, refused] of [
      [at(T0 - L), false],
      [at(T0 - L - 1), true],
      [at(T0 + DAY - L, T0 + DAY), false],
      [at(T0 + DAY - L - 1, T0 + DAY), true],
    ] as const) {
      const decoded = decodeOrNull(plan, base, delta);
      assert.equal(decoded === null, refused);
      assert.equal(loadOrRefuse(reader, base, delta), !refused);
      if (decoded) {
        const floor = readFloor(plan, decoded);
        assertSameAnswers(reader, plan, decoded, [floor, floor + 1, T0 + 2 * DAY]);
      }
    }
  });

  it('keeps the sign of a zero extreme as the decoded state does, whatever the order of 0 and -0', () => {
    for (const mode of ['exact', 'tiled'] as const) {
      const plan = fraudPlan(mode);
      const reader = stateBytesReader(plan)!;
      for (const [first, second] of [
        [0, -0],
        [-0, 0],
      ]) {
        for (const gap of [0, 1, 10 * MIN]) {
          for (const [p0, p1] of [
            [0, 1],
            [1, 0],
          ]) {
            const state = emptyState(plan);
            applyEvent(plan, state, {
              ts: T0 + gap,
              partition: p0!,
              offset: 5,
              values: row(plan, { amount: first! }),
            });
            const base = Buffer.from(encodeState(plan, state));
            const delta = Buffer.from(
              encodeDelta(plan, [
                { ts: T0, partition: p1!, offset: 5, values: row(plan, { amount: second! }) },
              ]),
            );
            const decoded = decodeStoredState(plan, 'k', base, delta);
            assert.equal(reader.load(base, delta), true);
            assertSameAnswers(reader, plan, decoded, [T0 + gap + 1, T0 + HOUR, T0 + HOUR + 1, T0 + 7 * DAY]);
          }
        }
      }
    }
  });

  it("moves the clock to a record's wall clock, which prunes and moves the read floor", () => {
    const plan = fraudPlan('exact');
    const reader = stateBytesReader(plan)!;
    const base = oneEventState(plan, { amount: 5, merchant_id: 'a' });
    const now = T0 + 40 * DAY;
    const delta = Buffer.from(
      encodeDelta(
        plan,
        [{ ts: now - 10, partition: 0, offset: 1, values: row(plan, { amount: 7, merchant_id: 'b' }) }],
        now,
      ),
    );
    const decoded = decodeStoredState(plan, 'k', base, delta);
    assert.equal(reader.load(base, delta), true);
    assert.equal(reader.floor(), now - plan.latenessMs);
    assertSameAnswers(reader, plan, decoded, [now - plan.latenessMs, now, now + DAY]);
  });

  it('caps the events replayed at max_events_per_entity, as applyEvent does', () => {
    const plan = planOf(
      '- { name: c, aggregation: count, window: 1h }\n- { name: d, aggregation: count_distinct, column: merchant, window: 1h }',
      'max_events_per_entity: 3',
    );
    const reader = stateBytesReader(plan)!;
    const state = emptyState(plan);
    const event = (i: number): EngineEvent => ({
      ts: T0 + i,
      partition: 0,
      offset: i,
      values: row(plan, { merchant: `m${i}` }),
    });
    applyEvent(plan, state, event(0));
    applyEvent(plan, state, event(1));
    const base = Buffer.from(encodeState(plan, state));
    const delta = Buffer.concat([2, 3, 4].map((i) => Buffer.from(encodeDelta(plan, [event(i)]))));
    assert.equal(reader.load(base, delta), true);
    assert.deepEqual(reader.read(T0 + 10), [3, 3]);
    assert.deepEqual(
      reader.read(T0 + 10),
      readFeatures(plan, decodeStoredState(plan, 'k', base, delta), T0 + 10),
    );
  });

  it('counts a string of a record once when the state holds it too', () => {
    const plan = planOf(
      '- { name: d, aggregation: count_distinct, column: merchant, window: 1h, mode: tiled, tile: 5m }',
    );
    const reader = stateBytesReader(plan)!;
    const state = emptyState(plan);
    applyEvent(plan, state, { ts: T0, partition: 0, offset: 0, values: row(plan, { merchant: 'ünï' }) });
    const base = Buffer.from(encodeState(plan, state));
    const delta = Buffer.concat([
      Buffer.from(
        encodeDelta(plan, [{ ts: T0 + 1, partition: 0, offset: 1, values: row(plan, { merchant: 'x' }) }]),
      ),
      Buffer.from(
        encodeDelta(plan, [{ ts: T0 + 2, partition: 0, offset: 2, values: row(plan, { merchant: 'ünï' }) }]),
      ),
      Buffer.from(
        encodeDelta(plan, [{ ts: T0 + 3, partition: 0, offset: 3, values: row(plan, { merchant: 'x' }) }]),
      ),
    ]);
    assert.equal(reader.load(base, delta), true);
    assert.deepEqual(reader.read(T0 + 4), [2]); // from raw events of the open tile
    assert.deepEqual(reader.read(T0 + 10 * MIN), [2]); // from the tile
  });

  it('leaves a record to decoding when a numeric column holds a string', () => {
    const plan = planOf(
      '- { name: d, aggregation: count_distinct, column: merchant, window: 1h }\n- { name: s, aggregation: sum, column: amount, window: 1h }',
    );
    const reader = stateBytesReader(plan)!;
    const base = oneEventState(plan, { amount: 1, merchant: 'a' });
    const values = row(plan, { amount: '2', merchant: 'b' });
    const delta = Buffer.from(encodeDelta(plan, [{ ts: T0 + 1, partition: 0, offset: 1, values }]));
    decodeStoredState(plan, 'k', base, delta); // decodes
    assert.equal(reader.load(base, delta), false);
  });

  it('counts the empty string of delta records once, as the state written and the decoded one do', () => {
    // Bug fixed: the hash of "" stayed the unsigned FNV seed while the dictionary keeps signed
    // hashes, so "" never matched its stored copy and each record counted it again.
    const plan = planOf('- { name: d, aggregation: count_distinct, column: merchant, window: 1h }');
    const reader = stateBytesReader(plan)!;
    const live = emptyState(plan);
    const event = (i: number, merchant: string): EngineEvent => ({
      ts: T0 + i,
      partition: 0,
      offset: i,
      values: row(plan, { merchant }),
    });
    applyEvent(plan, live, event(0, ''));
    const base = Buffer.from(encodeState(plan, live));
    const later = [event(1, ''), event(2, 'a'), event(3, ''), event(4, 'a'), event(5, '')];
    const delta = Buffer.concat(later.map((e) => Buffer.from(encodeDelta(plan, [e]))));
    for (const e of later) applyEvent(plan, live, e);
    const t = T0 + 10;
    assert.deepEqual(readFeatures(plan, live, t), [2]);
    assert.deepEqual(readFeatures(plan, decodeStoredState(plan, 'k', base, delta), t), [2]);
    assert.equal(reader.load(base, delta), true);
    assert.deepEqual(reader.read(t), [2]);
    // A state with no "" yet: the first record adds it, the later ones find it there.
    const fromEmpty = Buffer.from(encodeState(plan, emptyState(plan)));
    assert.equal(reader.load(fromEmpty, delta), true);
    assert.deepEqual(reader.read(t), [2]);
  });

  it('keeps a leading byte-order mark: "\\uFEFFa" and "a" are two strings in the state and its records', () => {
    // Bug fixed: the UTF-8 decoders dropped a leading U+FEFF, so "\uFEFFa" came back as "a".
    const plan = planOf('- { name: d, aggregation: count_distinct, column: merchant, window: 1h }');
    const reader = stateBytesReader(plan)!;
    for (const [stored, recorded] of [
      ['a', '\uFEFFa'],
      ['\uFEFFa', 'a'],
      ['\uFEFFa', '\uFEFFa'],
    ] as const) {
      const live = emptyState(plan);
      applyEvent(plan, live, { ts: T0, partition: 0, offset: 0, values: row(plan, { merchant: stored }) });
      const base = Buffer.from(encodeState(plan, live));
      const next: EngineEvent = {
        ts: T0 + 1,
        partition: 0,
        offset: 1,
        values: row(plan, { merchant: recorded }),
      };
      const delta = Buffer.from(encodeDelta(plan, [next]));
      applyEvent(plan, live, next);
      const want = readFeatures(plan, live, T0 + 2);
      assert.deepEqual(want, [stored === recorded ? 1 : 2]);
      assert.deepEqual(readFeatures(plan, decodeStoredState(plan, 'k', base, delta), T0 + 2), want);
      assert.equal(reader.load(base), true, 'the state alone');
      assert.deepEqual(reader.read(T0 + 1), [1]);
      assert.equal(
        reader.load(base, delta),
        true,
        `${JSON.stringify(stored)} then ${JSON.stringify(recorded)}`,
      );
      assert.deepEqual(reader.read(T0 + 2), want);
    }
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

  it('leaves plans with a bool column to the decoding path, which reads booleans', () => {
    // count_distinct is covered, but not over booleans: their value tags are not read here.
    const features = '- { name: d, aggregation: count_distinct, column: merchant, window: 1h }';
    assert.notEqual(stateBytesReader(planOf(features)), null, 'over a string column');
    const plan = planOf(features, 'allowed_lateness: 1h', 'bool');
    assert.equal(stateBytesReader(plan), null, 'over a bool column');
    const state = emptyState(plan);
    [true, false, true, null].forEach((v, i) => {
      applyEvent(plan, state, { ts: T0 + i, partition: 0, offset: i, values: [v] });
    });
    const decoded = decodeState(plan, encodeState(plan, state));
    assert.deepEqual(readFeatures(plan, decoded, T0 + 10), [2]);
    assert.deepEqual(
      decoded.events.slice(decoded.head).map((e) => e.values[0]),
      [true, false, true, null],
    );
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
