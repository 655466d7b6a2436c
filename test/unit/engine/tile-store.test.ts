// The tile store (shared/engine/tile-series.ts): per entity and tile size, tiles come and go as
// bursts fill them and fold old raw events into them, days-long gaps empty them, late events
// arrive, and states are encoded and decoded between events. Reads must not notice: they equal a
// brute-force aggregate of the applied events; every event is held once, raw or in the tiles; and
// the live tiles are exactly those of the folded events the retention rule keeps.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  advanceClock,
  applyEvent,
  decodeState,
  type EngineEvent,
  type EntityState,
  emptyState,
  encodeState,
  readFeatures,
  readFloor,
} from '../../../shared/engine/index.ts';
import { floorTo, windowStart } from '../../../shared/engine/window.ts';
import { DAY, ev, HOUR, planOf, T0 } from '../../support/engine-fixtures.ts';

const MIN = 60_000;

const defaultPlan = planOf(`
  - { name: c, aggregation: count, window: 30m, mode: tiled, tile: 5m }
  - { name: s, aggregation: sum, column: amount, window: 6h, mode: tiled, tile: 1h }
  - { name: d, aggregation: count_distinct, column: merchant, window: 6h, mode: tiled, tile: 1h }
  - { name: m, aggregation: max, column: amount, window: 2d, mode: tiled, tile: 1d }
`);
// The same view folding after 8 raw events instead of FOLD_AT: folds at nearly every event.
const eagerPlan = { ...defaultPlan, foldAt: 8 };
let plan = defaultPlan;

/** Bursts (many tiles), gaps of days (every tile expires), a trickle, late arrivals. */
function stream(): EngineEvent[] {
  let seed = 7;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const events: EngineEvent[] = [];
  let t = T0;
  for (let phase = 0; phase < 12; phase++) {
    const burst = phase % 3 === 0;
    for (let i = 0; i < (burst ? 120 : 25); i++) {
      t += burst ? next(40) * 1000 : next(90) * MIN;
      // Late now and then: up to 50 minutes back, inside the view's hour of lateness.
      const ts = next(6) === 0 ? t - next(50) * MIN : t;
      events.push(ev(plan, ts, { amount: 1 + next(500), merchant: `m${next(burst ? 40 : 5)}` }));
    }
    t += phase % 4 === 1 ? 3 * DAY + next(20) * HOUR : next(3) * HOUR;
  }
  return events;
}

/** The features as of t over `applied`, by brute force (integer amounts: sums are exact). */
function bruteForce(applied: readonly EngineEvent[], t: number): (number | null)[] {
  return plan.features.map((f) => {
    const from = windowStart(t, f);
    const inside = applied.filter((e) => e.ts >= from && e.ts < t);
    const values = inside.map((e) => e.values[f.column]);
    switch (f.def.aggregation) {
      case 'count':
        return inside.length;
      case 'sum':
        return values.reduce<number>((a, v) => a + (v as number), 0);
      case 'count_distinct':
        return new Set(values).size;
      default:
        return values.length === 0 ? null : Math.max(...(values as number[]));
    }
  });
}

/**
 * The applied events that are not raw in the state: folded into tiles, or older than any read.
 * Matched by time and values (a decoded state's events carry no source position in this view),
 * as a multiset: events alike in both are interchangeable here.
 */
function notRaw(applied: readonly EngineEvent[], state: EntityState): EngineEvent[] {
  const raw = new Map<string, number>();
  for (const e of state.events.slice(state.head)) {
    const key = JSON.stringify([e.ts, e.values]);
    raw.set(key, (raw.get(key) ?? 0) + 1);
  }
  const rest = applied.filter((e) => {
    const key = JSON.stringify([e.ts, e.values]);
    const n = raw.get(key) ?? 0;
    if (n > 0) raw.set(key, n - 1);
    return n === 0;
  });
  assert.ok(
    [...raw.values()].every((n) => n === 0),
    'a raw event that was never applied',
  );
  return rest;
}

/**
 * Each tile size's live tile starts: those of the events no longer raw (folded: none is dropped
 * before it is older than every size's keep) that are not yet out of the size's keep.
 */
function expectedStarts(applied: readonly EngineEvent[], state: EntityState): number[][] {
  const folded = notRaw(applied, state);
  return plan.tileGroups.map((group) => {
    const cutoff = floorTo(state.clock! - plan.latenessMs - group.keepMs, group.tileMs);
    const starts = new Set(folded.map((e) => floorTo(e.ts, group.tileMs)).filter((s) => s >= cutoff));
    return [...starts].sort((a, b) => a - b);
  });
}

function liveStarts(state: EntityState): number[][] {
  return [...state.tiles].map((series) => Array.from({ length: series.length }, (_, k) => series.startOf(k)));
}

describe('packed tile store', () => {
  for (const [name, p, minFolds] of [
    ['folding past FOLD_AT raw events', defaultPlan, 1],
    ['folding past 8 raw events', eagerPlan, 10],
  ] as const) {
    it(`answers every read like a brute-force aggregate while tiles fill, expire and come back, ${name}`, () => {
      plan = p;
      let state = emptyState(plan);
      const applied: EngineEvent[] = [];
      let checked = 0;
      let folds = 0;
      for (const [i, e] of stream().entries()) {
        if (e.ts >= readFloor(plan, state)) {
          assert.deepEqual(readFeatures(plan, state, e.ts), bruteForce(applied, e.ts), `before event ${i}`);
          checked++;
        }
        const before = liveStarts(state).flat().length;
        applyEvent(plan, state, e);
        applied.push(e);
        assert.deepEqual(liveStarts(state), expectedStarts(applied, state), `tiles after event ${i}`);
        if (liveStarts(state).flat().length > before) folds++;
        // Now and then continue from the decoded state: its store is built by appending tiles.
        if (i % 97 === 0) state = decodeState(plan, encodeState(plan, state));
      }
      const after = Math.max(...applied.map((e) => e.ts)) + 1;
      assert.deepEqual(readFeatures(plan, state, after), bruteForce(applied, after));
      assert.ok(checked > 500, `only ${checked} reads checked`);
      assert.ok(folds >= minFolds, `only ${folds} applies folded events into new tiles`);
    });
  }

  it('drops every tile of an entity idle for longer than its windows, then fills again', () => {
    plan = eagerPlan;
    const state = emptyState(plan);
    const applied: EngineEvent[] = [];
    const apply = (e: EngineEvent): void => {
      applyEvent(plan, state, e);
      applied.push(e);
    };
    for (let i = 0; i < 50; i++) apply(ev(plan, T0 + i * MIN, { amount: i, merchant: 'a' }));
    advanceClock(plan, state, T0 + 10 * DAY);
    assert.deepEqual(liveStarts(state), [[], [], []]);
    apply(ev(plan, T0 + 10 * DAY, { amount: 3, merchant: 'b' }));
    apply(ev(plan, T0 + 10 * DAY + 6 * MIN, { amount: 4, merchant: 'c' }));
    assert.deepEqual(liveStarts(state), expectedStarts(applied, state));
    const t = T0 + 10 * DAY + 7 * MIN;
    assert.deepEqual(readFeatures(plan, state, t), [2, 7, 2, 4]);
    assert.deepEqual(readFeatures(plan, decodeState(plan, encodeState(plan, state)), t), [2, 7, 2, 4]);
  });
});
