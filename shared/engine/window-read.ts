// One feature's value over a window of an entity's raw events and, for a tiled feature, its tiles
// from the window's start on: readFeatures' inner loop. The common kinds (count, sum and avg, min
// and max, count_distinct) accumulate in scratch reused from read to read, with no accumulator
// object, partials array or Map made per read (most reads are of small entities, where those
// allocations cost more than the values: a profile of the engine bench's reads put a third of the
// time of an entity with under 16 events in them); the other kinds go through acc.ts. Same bits
// either way: every accumulator is exact and order-independent (docs/semantics.md), and the values
// are added in the same order as the accumulator path (tiles ascending, then raw events).
import {
  addEvent,
  below,
  emptyAcc,
  extremeResult,
  type FeatureValue,
  finalize,
  type StoredEvent,
  sumResult,
  type Value,
} from './acc.ts';
import { ExactAccumulator } from './exact-sum.ts';
import type { FeaturePlan } from './plan.ts';
import type { TileSeries } from './tile-series.ts';

const exact = new ExactAccumulator();

// The last sum read without tiles, still held in `exact`: a longer window of the same column that
// ends at the same event (avg 7d, then avg 30d) adds only the events before it instead of summing
// the shorter window's events again. The exact partials hold the shorter window's sum exactly, so
// the longer one rounds to the same bits as when summed from scratch in time order, as long as no
// step overflows: then a sum does depend on the order (1e308 + 1e308 - 1e308 is Infinity, the
// other way round 1e308). No step can while the values' magnitudes total less than SAFE_TOTAL,
// whatever the order; past it the longer window is summed again in time order, as it always was.
let sumEvents: readonly StoredEvent[] | null = null;
let sumColumn = -1;
let sumLo = 0;
let sumHi = 0;
let sumCount = 0;
/** The magnitudes' total of the last sum (addValues), and the total it may reach for reuse. */
let sumMagnitude = 0;
const SAFE_TOTAL = 2 ** 1000;

// count_distinct: a value counts once per read, when it does not yet carry the read's mark (one
// Map kept across reads, instead of a new one per read). Map keys compare as the accumulator's do
// (SameValueZero).
const seen = new Map<Value, number>();
let mark = 0;
/** Values a read may leave in `seen` before it is cleared (it holds every value reads met). */
const SEEN_LIMIT = 1 << 16;

/** Starts one entity's read: the events may have changed since the last one (forgets the last sum). */
export function beginRead(): void {
  sumEvents = null;
}

/**
 * The feature's value over the raw events [lo, hi) and, when `tiles` is given, the tiles of its
 * size that start at or after `from` (every one older than the read floor, so before the read's
 * time: state.ts readTiled).
 */
export function readWindow(
  feature: FeaturePlan,
  events: readonly StoredEvent[],
  lo: number,
  hi: number,
  tiles: TileSeries | null,
  from: number,
): FeatureValue {
  const column = feature.column;
  switch (feature.acc) {
    case 'count':
      return (tiles === null ? 0 : tiles.countFrom(feature.slot, from)) + (hi - lo);
    case 'sum': {
      let count = -1;
      if (tiles === null && events === sumEvents && column === sumColumn && hi === sumHi && lo <= sumLo) {
        const shorter = sumMagnitude;
        count = sumCount + addValues(events, lo, sumLo, column);
        sumMagnitude += shorter;
        if (!(sumMagnitude < SAFE_TOTAL)) count = -1;
      }
      if (count < 0) {
        exact.clear();
        count = tiles === null ? 0 : tiles.sumFrom(feature.slot, from, exact);
        count += addValues(events, lo, hi, column);
      }
      if (tiles === null) {
        sumEvents = events;
        sumColumn = column;
        sumLo = lo;
        sumHi = hi;
        sumCount = count;
      } else sumEvents = null;
      return sumResult(feature, count, exact.value());
    }
    case 'min':
    case 'max': {
      const isMax = feature.acc === 'max';
      let count = 0;
      let v = 0;
      if (tiles !== null) {
        count = tiles.extremeFrom(feature.slot, from, isMax);
        v = tiles.extreme;
      }
      for (let i = lo; i < hi; i++) {
        const x = events[i]!.values[column];
        if (x === null || x === undefined) continue;
        if (count === 0 || (isMax ? below(v, x as number) : below(x as number, v))) v = x as number;
        count++;
      }
      return extremeResult(feature, count, v);
    }
    case 'distinct': {
      if (tiles === null && hi - lo <= SMALL_WINDOW) return distinctSmall(events, lo, hi, column);
      if (mark === 0x7fffffff || seen.size > SEEN_LIMIT) {
        seen.clear();
        mark = 0;
      }
      const m = ++mark;
      let distinct = tiles === null ? 0 : tiles.distinctFrom(feature.slot, from, seen, m);
      for (let i = lo; i < hi; i++) {
        const x = events[i]!.values[column];
        if (x === null || x === undefined) continue;
        if (seen.get(x) !== m) {
          seen.set(x, m);
          distinct++;
        }
      }
      return distinct;
    }
    default: {
      const acc = emptyAcc(feature.acc);
      if (tiles !== null) tiles.mergeRange(acc, feature.slot, from, Number.POSITIVE_INFINITY);
      for (let i = lo; i < hi; i++) addEvent(acc, feature, events[i]!);
      return finalize(feature, acc);
    }
  }
}

/** Windows of at most this many raw events count distinct values by comparing with each other. */
const SMALL_WINDOW = 16;
const small: Value[] = [];

/**
 * count_distinct of a few events: each value compared with the distinct ones before it, as
 * SameValueZero (the Map's equality: NaN equals NaN, -0 equals 0). Cheaper than a Map lookup,
 * whose table of every value reads met is rarely in cache.
 */
function distinctSmall(events: readonly StoredEvent[], lo: number, hi: number, column: number): number {
  let distinct = 0;
  for (let i = lo; i < hi; i++) {
    const x = events[i]!.values[column];
    if (x === null || x === undefined) continue;
    let j = 0;
    while (j < distinct && !sameValueZero(small[j]!, x)) j++;
    if (j === distinct) small[distinct++] = x;
  }
  // Let go of the values: the array outlives the read.
  for (let j = 0; j < distinct; j++) small[j] = 0;
  return distinct;
}

/** The Map's key equality: NaN equals NaN, -0 equals 0. */
function sameValueZero(a: Value, b: Value): boolean {
  return a === b || (typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b));
}

/**
 * Adds the non-null values of `column` in events [lo, hi) to `exact`, in order; returns how many,
 * and leaves the total of their magnitudes in `sumMagnitude`.
 */
function addValues(events: readonly StoredEvent[], lo: number, hi: number, column: number): number {
  let count = 0;
  let magnitude = 0;
  for (let i = lo; i < hi; i++) {
    const v = events[i]!.values[column] as number | null | undefined;
    if (v === null || v === undefined) continue;
    count++;
    magnitude += Math.abs(v);
    exact.add(v);
  }
  sumMagnitude = magnitude;
  return count;
}
