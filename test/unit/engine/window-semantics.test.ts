// Hand-computed cases of the window contract (docs/semantics.md; the team's DESIGN.md, "Window semantics").
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  applyEvent,
  BeforeEventReader,
  decodeState,
  emptyState,
  encodeState,
  eventCount,
  featuresBeforeEach,
  readFeatures,
} from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { DAY, ev, fraudPlan, HOUR, planOf, T0 } from '../../support/engine-fixtures.ts';

const MIN = 60_000;

describe('window semantics (exact mode)', () => {
  const plan = fraudPlan('exact');
  const names = plan.features.map((f) => f.def.name);
  const read = (state: ReturnType<typeof emptyState>, t: number) =>
    Object.fromEntries(readFeatures(plan, state, t).map((v, i) => [names[i], v]));

  it('excludes the event at exactly t and includes the one at exactly t - W', () => {
    const state = emptyState(plan);
    applyEvent(plan, state, ev(plan, T0 - HOUR, { amount: 10, merchant_id: 'a' }));
    applyEvent(plan, state, ev(plan, T0, { amount: 99, merchant_id: 'b' }));
    const f = read(state, T0);
    assert.equal(f.transaction_count_1h, 1, 'the event at t - 1h is in [t - 1h, t)');
    assert.equal(f.max_transaction_amount_7d, 10, 'the event at t is not');
    assert.equal(f.distinct_merchant_count_7d, 1);
    assert.equal(
      read(state, T0 + 1).transaction_count_1h,
      1,
      'one ms later the edge event has left the 1h window',
    );
    assert.equal(read(state, T0 + 1).transaction_count_24h, 2);
  });

  it('decays at read time without new events', () => {
    const state = emptyState(plan);
    applyEvent(plan, state, ev(plan, T0, { amount: 5, merchant_id: 'a' }));
    assert.equal(read(state, T0 + 30 * MIN).transaction_count_1h, 1);
    assert.equal(read(state, T0 + HOUR + 1).transaction_count_1h, 0);
    assert.equal(
      read(state, T0 + 7 * DAY + 1).avg_transaction_amount_7d,
      0,
      'empty avg is the declared default 0.0',
    );
    assert.equal(read(state, T0 + 7 * DAY + 1).avg_transaction_amount_30d, 5);
  });

  it('gives 0 for counts and the declared default for an empty window, never NaN', () => {
    const f = read(emptyState(plan), T0);
    assert.deepEqual(f, {
      transaction_count_1h: 0,
      transaction_count_24h: 0,
      avg_transaction_amount_7d: 0,
      avg_transaction_amount_30d: 0,
      max_transaction_amount_7d: 0,
      distinct_merchant_count_7d: 0,
    });
    const noDefault = planOf('- { name: a, aggregation: avg, column: amount, window: 1h }');
    assert.deepEqual(readFeatures(noDefault, emptyState(noDefault), T0), [null]);
  });

  it('counts ties on one timestamp together, and excludes all of them at their own time', () => {
    const state = emptyState(plan);
    for (let i = 0; i < 3; i++)
      applyEvent(plan, state, ev(plan, T0, { amount: i + 1, merchant_id: `m${i}` }));
    assert.equal(read(state, T0).transaction_count_1h, 0);
    assert.equal(read(state, T0 + 1).transaction_count_1h, 3);
    assert.equal(read(state, T0 + 1).avg_transaction_amount_7d, 2);
  });

  it('averages with exactly rounded sums (0.1 ten times is 1.0 / 10)', () => {
    const state = emptyState(plan);
    for (let i = 0; i < 10; i++) applyEvent(plan, state, ev(plan, T0 + i, { amount: 0.1, merchant_id: 'a' }));
    assert.equal(read(state, T0 + HOUR).avg_transaction_amount_7d, 0.1);
  });
});

describe('delivery: duplicates, lateness, caps', () => {
  const plan = fraudPlan('exact');

  it('a redelivered record (same partition, offset at or below the last applied) changes nothing', () => {
    const state = emptyState(plan);
    assert.equal(
      applyEvent(plan, state, ev(plan, T0, { amount: 1, merchant_id: 'a' }, 5)).outcome,
      'applied',
    );
    const before = encodeState(plan, state);
    assert.equal(
      applyEvent(plan, state, ev(plan, T0, { amount: 1, merchant_id: 'a' }, 5)).outcome,
      'duplicate',
    );
    assert.equal(
      applyEvent(plan, state, ev(plan, T0 + 9, { amount: 7, merchant_id: 'b' }, 4)).outcome,
      'duplicate',
    );
    assert.deepEqual(encodeState(plan, state), before);
    assert.equal(
      applyEvent(plan, state, ev(plan, T0, { amount: 1, merchant_id: 'a' }, 5, 1)).outcome,
      'applied',
      'another partition is another record',
    );
  });

  it('rejects an event older than the allowed lateness with reason late, and applies one within it', () => {
    const state = emptyState(plan);
    applyEvent(plan, state, ev(plan, T0, { amount: 1, merchant_id: 'a' }));
    applyEvent(plan, state, ev(plan, T0 - HOUR, { amount: 2, merchant_id: 'b' }));
    assert.throws(
      () => applyEvent(plan, state, ev(plan, T0 - HOUR - 1, { amount: 3, merchant_id: 'c' })),
      (e: unknown) =>
        isTesseraError(e, 'EVENT_LATE') && e.context.reason === 'late' && /allowed_lateness/.test(e.message),
    );
    assert.throws(
      () => applyEvent(plan, state, ev(plan, T0 - HOUR - 1, { amount: 3, merchant_id: 'c' })),
      new RegExp(`the entity's clock is ${new Date(T0).toISOString()}`),
    );
    // A new entity has no clock: the ingestor's was the one (the message named 1970).
    assert.throws(
      () => applyEvent(plan, emptyState(plan), ev(plan, T0 - 2 * HOUR, {}), T0),
      (e: unknown) =>
        isTesseraError(e, 'EVENT_LATE') &&
        e.message.includes(`the ingestor's clock is ${new Date(T0).toISOString()}`),
      'now counts too',
    );
    assert.equal(readFeatures(plan, state, T0 + 1)[1], 2);
  });

  it('an out-of-order event within lateness lands in the right place', () => {
    const state = emptyState(plan);
    applyEvent(plan, state, ev(plan, T0, { amount: 4, merchant_id: 'a' }));
    applyEvent(plan, state, ev(plan, T0 - 30 * MIN, { amount: 8, merchant_id: 'b' }));
    assert.deepEqual(
      readFeatures(plan, state, T0).slice(0, 2),
      [1, 1],
      'only the earlier event is before T0',
    );
    assert.equal(readFeatures(plan, state, T0 + 1)[4], 8);
  });

  it('refuses reads older than the lateness horizon instead of answering wrongly', () => {
    const state = emptyState(plan);
    applyEvent(plan, state, ev(plan, T0, { amount: 4, merchant_id: 'a' }));
    assert.throws(
      () => readFeatures(plan, state, T0 - 2 * HOUR),
      (e: unknown) => isTesseraError(e, 'AS_OF_OUT_OF_RANGE'),
    );
  });

  it('caps the events an exact entity keeps and says how many it dropped', () => {
    const capped = planOf('- { name: c, aggregation: count, window: 1h }', 'max_events_per_entity: 3');
    const state = emptyState(capped);
    let dropped = 0;
    for (let i = 0; i < 5; i++) dropped += applyEvent(capped, state, ev(capped, T0 + i)).dropped;
    assert.equal(dropped, 2);
    assert.equal(state.dropped, 2);
    assert.deepEqual(readFeatures(capped, state, T0 + 10), [3]);
  });

  it('prunes events no read can need once time moves on', () => {
    const state = emptyState(plan);
    applyEvent(plan, state, ev(plan, T0, { amount: 1, merchant_id: 'a' }));
    applyEvent(plan, state, ev(plan, T0 + 31 * DAY + 2 * HOUR, { amount: 1, merchant_id: 'a' }));
    assert.equal(eventCount(state), 1);
  });
});

describe('tiled mode', () => {
  it('rounds the window start down to the tile boundary and stays exact up to t', () => {
    const plan = planOf('- { name: c, aggregation: count, window: 1h, mode: tiled, tile: 10m }');
    const state = emptyState(plan);
    // Window as of T0 + 65m: start = floor(T0 + 5m, 10m) = T0 (T0 is midnight, a boundary).
    applyEvent(plan, state, ev(plan, T0 - 1));
    applyEvent(plan, state, ev(plan, T0));
    applyEvent(plan, state, ev(plan, T0 + 4 * MIN));
    applyEvent(plan, state, ev(plan, T0 + 65 * MIN - 1));
    applyEvent(plan, state, ev(plan, T0 + 65 * MIN));
    assert.deepEqual(
      readFeatures(plan, state, T0 + 65 * MIN),
      [3],
      'T0, T0+4m and T0+65m-1; not T0-1, not T0+65m',
    );
    assert.deepEqual(
      readFeatures(plan, state, T0 + 70 * MIN),
      [2],
      'at T0+70m the start is T0+10m: T0+65m-1 and T0+65m',
    );
    const exact = planOf('- { name: c, aggregation: count, window: 1h }');
    const s2 = emptyState(exact);
    for (const e of [T0, T0 + 4 * MIN, T0 + 65 * MIN - 1]) applyEvent(exact, s2, ev(exact, e));
    assert.deepEqual(readFeatures(exact, s2, T0 + 65 * MIN), [1], 'exact mode would say 1 here');
  });

  /** The reference view's state after n transactions spread evenly over 30 days (23 merchants). */
  function spreadOver30Days(mode: 'exact' | 'tiled', n: number) {
    const plan = fraudPlan(mode);
    const state = emptyState(plan);
    for (let i = 0; i < n; i++) {
      applyEvent(
        plan,
        state,
        ev(plan, T0 + Math.floor((i * 30 * DAY) / n), {
          amount: 10 + ((i * 37) % 500) / 100,
          merchant_id: `m_${(i * 7) % 23}`,
        }),
      );
    }
    return { plan, state, bytes: encodeState(plan, state) };
  }

  it('tiled state of the reference view stays small: under 2 KiB for 100 events in 30 days', () => {
    const { plan, state, bytes } = spreadOver30Days('tiled', 100);
    assert.ok(bytes.length <= 2048, `state is ${bytes.length} bytes`);
    const t = T0 + 30 * DAY + 1;
    assert.deepEqual(readFeatures(plan, decodeState(plan, bytes), t), readFeatures(plan, state, t));
  });

  it("a busy entity's tiled state stays bounded: 10,000 events in 30 days, folded into tiles", () => {
    const exact = spreadOver30Days('exact', 10_000);
    const tiled = spreadOver30Days('tiled', 10_000);
    assert.ok(tiled.bytes.length <= 16 * 1024, `tiled state is ${tiled.bytes.length} bytes`);
    assert.ok(tiled.bytes.length * 5 <= exact.bytes.length, `${tiled.bytes.length} vs ${exact.bytes.length}`);
    assert.ok(eventCount(tiled.state) <= tiled.plan.foldAt, `${eventCount(tiled.state)} raw events`);
    const t = T0 + 30 * DAY + 1;
    assert.deepEqual(
      readFeatures(tiled.plan, decodeState(tiled.plan, tiled.bytes), t),
      readFeatures(tiled.plan, tiled.state, t),
    );
  });
});

describe('state codec strings', () => {
  it('round-trips ASCII and non-ASCII strings, and writes the UTF-8 bytes of each', () => {
    const plan = fraudPlan('exact');
    const state = emptyState(plan);
    const merchants = ['m_1', 'café', '☕ shop', '𝔘nicode', ''];
    merchants.forEach((m, i) => {
      applyEvent(plan, state, ev(plan, T0 + i * MIN, { amount: 1 + i, merchant_id: m }, i + 1));
    });
    const bytes = encodeState(plan, state);
    const decoded = decodeState(plan, bytes);
    assert.deepEqual(
      decoded.events.map((e) => e.values),
      state.events.map((e) => e.values),
    );
    // Each dictionary string is stored as its UTF-8 bytes (a JS-string length would truncate).
    const text = Buffer.from(bytes).toString('latin1');
    for (const m of merchants.filter((x) => x !== ''))
      assert.ok(text.includes(Buffer.from(m, 'utf8').toString('latin1')), `${m} stored as UTF-8`);
  });
});

describe('features before each event (training rows)', () => {
  it('sees every earlier event of the entity, whatever order the rows come in, and not the row itself', () => {
    const plan = fraudPlan('exact');
    const events = [
      ev(plan, T0 + 2 * MIN, { amount: 30, merchant_id: 'c' }, 3),
      ev(plan, T0, { amount: 10, merchant_id: 'a' }, 1),
      ev(plan, T0 + MIN, { amount: 20, merchant_id: 'a' }, 2),
    ];
    const rows = featuresBeforeEach(plan, events);
    assert.deepEqual(rows[1], [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(rows[2], [1, 1, 10, 10, 10, 1]);
    assert.deepEqual(rows[0], [2, 2, 15, 15, 20, 1]);
  });

  it('counts a redelivered record once', () => {
    const plan = fraudPlan('exact');
    const a = ev(plan, T0, { amount: 10, merchant_id: 'a' }, 1);
    const rows = featuresBeforeEach(plan, [
      a,
      { ...a },
      ev(plan, T0 + 1, { amount: 1, merchant_id: 'b' }, 2),
    ]);
    assert.equal(rows[2]![0], 1);
  });
});

describe('numerics', () => {
  it('stddev of large values with a small spread has no cancellation error (found by the property test)', () => {
    const plan = planOf('- { name: sd, aggregation: stddev, column: amount, window: 1h }');
    const state = emptyState(plan);
    applyEvent(plan, state, ev(plan, T0, { amount: 3276.34 }));
    applyEvent(plan, state, ev(plan, T0, { amount: 3278.09 }));
    // Exact: the two differ by 1.75, so the sample deviation is 1.75 / sqrt(2).
    const [sd] = readFeatures(plan, state, T0 + 1) as [number];
    assert.ok(Math.abs(sd - 1.75 / Math.SQRT2) < 1e-12, `stddev ${sd}`);
  });
});

describe('approx_count_distinct', () => {
  it('estimates within four standard errors of the truth, and exactly for a few values', () => {
    const plan = planOf('- { name: hll, aggregation: approx_count_distinct, column: merchant, window: 7d }');
    const state = emptyState(plan);
    for (let i = 0; i < 20_000; i++)
      applyEvent(plan, state, ev(plan, T0 + i, { merchant: `merchant-${i % 10_000}` }));
    const [estimate] = readFeatures(plan, state, T0 + DAY) as [number];
    const standardError = 1.04 / Math.sqrt(2 ** 12);
    assert.ok(
      Math.abs(estimate - 10_000) / 10_000 < 4 * standardError,
      `estimate ${estimate} for 10000 distinct`,
    );
    const small = emptyState(plan);
    for (const m of ['a', 'b', 'c', 'a']) applyEvent(plan, small, ev(plan, T0, { merchant: m }));
    assert.deepEqual(readFeatures(plan, small, T0 + 1), [3]);
  });

  it('min and max of 0 and -0 do not depend on the order of the events: -0 is below 0, as in Math.min', () => {
    // Bug fixed: the first zero seen stayed the extreme, so a writer (events tied in time ordered
    // by partition and offset) and a state decoded without positions could answer 0 and -0.
    const plan = planOf(`
      - { name: mn, aggregation: min, column: amount, window: 1h }
      - { name: mx, aggregation: max, column: amount, window: 1h }
      - { name: mnt, aggregation: min, column: amount, window: 1h, mode: tiled, tile: 5m }
      - { name: mxt, aggregation: max, column: amount, window: 1h, mode: tiled, tile: 5m }
    `);
    const t = T0 + 30 * MIN;
    for (const order of [
      [0, -0],
      [-0, 0],
      [0, -0, 0],
      [-0, 0, -0],
    ]) {
      const events = order.map((amount, i) => ev(plan, T0 + (i % 2) * MIN, { amount }, i));
      const state = emptyState(plan);
      for (const e of events) applyEvent(plan, state, e);
      const want = [Math.min(...order), Math.max(...order), Math.min(...order), Math.max(...order)];
      const same = (got: unknown[] | undefined, where: string) =>
        assert.ok(
          got?.every((v, i) => Object.is(v, want[i])),
          `${where} ${JSON.stringify(order.map((v) => (Object.is(v, -0) ? '-0' : v)))}: ${got?.map((v) => (Object.is(v, -0) ? '-0' : v))}`,
        );
      same(readFeatures(plan, state, t), 'online');
      same(readFeatures(plan, decodeState(plan, encodeState(plan, state)), t), 'decoded');
      same(featuresBeforeEach(plan, [...events, ev(plan, t, { amount: 1 }, 9)]).at(-1), 'offline');
      // Folded into tiles: a tile's extreme, then merged across tiles.
      const tiledOnly = planOf(`
        - { name: mnt, aggregation: min, column: amount, window: 1h, mode: tiled, tile: 5m }
        - { name: mxt, aggregation: max, column: amount, window: 1h, mode: tiled, tile: 5m }
      `);
      const folded = { ...tiledOnly, foldAt: 1 };
      const tiles = emptyState(folded);
      for (const e of order.map((amount, i) => ev(folded, T0 + (i % 2) * 6 * MIN, { amount }, i)))
        applyEvent(folded, tiles, e);
      applyEvent(folded, tiles, ev(folded, T0 + 67 * MIN, { amount: null }, 10));
      assert.equal(eventCount(tiles), 1, 'the zeros are in tiles');
      const got = readFeatures(folded, tiles, T0 + 64 * MIN);
      assert.ok(
        Object.is(got[0], want[0]) && Object.is(got[1], want[1]),
        `tiles: ${got.map((v) => 1 / (v as number))}`,
      );
    }
  });
});

describe('BeforeEventReader below the read floor', () => {
  it('refuses a read below the floor as readFeatures does, in a plan of exact features only', () => {
    // Found by an audit: it answered 0 from the events pruning had left (4 were applied before t).
    const plan = planOf('- { name: c, aggregation: count, window: 10ms }', 'allowed_lateness: 2ms');
    const state = emptyState(plan);
    const reader = new BeforeEventReader(plan, state, 4);
    [0, 1, 2, 3, 30].forEach((ts, offset) => {
      reader.read(ts);
      applyEvent(plan, state, { ts, partition: 0, offset, values: [] });
      reader.synced({ ts, partition: 0, offset });
    });
    const outOfRange = (e: unknown) => isTesseraError(e, 'AS_OF_OUT_OF_RANGE');
    assert.throws(() => readFeatures(plan, state, 5), outOfRange);
    assert.throws(() => reader.read(5), outOfRange);
    assert.deepEqual(reader.read(31), readFeatures(plan, state, 31));
  });
});
