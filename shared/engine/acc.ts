// Accumulators: the mergeable intermediate result of each aggregation (what a tile stores and
// what a read builds), and the one `finalize` that turns an accumulator into a feature value.
// Every accumulator is order-independent (exact sums, set unions, maxima, ordered by
// (ts, partition, offset) for first/last), which is what makes online == offline bit for bit.
import { addExact, addExactSquare, exactVariance, mergeExact, roundExact } from './exact-sum.ts';
import { type HllRegisters, hllAdd, hllEstimate, hllMerge } from './hll.ts';
import type { AccKind, FeaturePlan } from './plan.ts';

export type Value = number | string | boolean;
export type FeatureValue = number | string | boolean | Value[] | null;

/**
 * One event as the engine takes and stores it: time, source position, and the plan's column
 * values in the order of `plan.columns`. applyEvent keeps the caller's object in the state (no
 * copy): it must not change once applied.
 */
export interface StoredEvent {
  ts: number;
  partition: number;
  offset: number;
  values: (Value | null)[];
}

/** An event's value of one column, with its position for first/last/last_n ordering. */
export interface Positioned {
  ts: number;
  partition: number;
  offset: number;
  val: Value;
}

export type Acc =
  | { k: 'count'; n: number }
  | { k: 'sum'; n: number; s: number[] }
  | { k: 'moments'; n: number; s: number[]; q: number[] }
  | { k: 'min' | 'max'; n: number; v: number }
  | { k: 'distinct'; set: Map<Value, number> }
  | { k: 'hll'; regs: HllRegisters }
  | { k: 'first' | 'last'; e: Positioned | null }
  | { k: 'last_n'; items: Positioned[] };

/**
 * a < b, with -0 below 0 (as Math.min and Math.max order them): min and max of a window holding
 * both zeros must not depend on which came first (a state holds events tied in time in the order
 * applied, the offline sweep by partition and offset, tiles merge in any order). Every min/max
 * comparison of the engine uses this order.
 */
export function below(a: number, b: number): boolean {
  return a < b || (a === b && 1 / a < 1 / b);
}

/** Total order of events: time, then partition, then offset. */
export function compareEvents(
  a: { ts: number; partition: number; offset: number },
  b: { ts: number; partition: number; offset: number },
): number {
  return a.ts - b.ts || a.partition - b.partition || a.offset - b.offset;
}

export function emptyAcc(kind: AccKind): Acc {
  switch (kind) {
    case 'count':
      return { k: 'count', n: 0 };
    case 'sum':
      return { k: 'sum', n: 0, s: [] };
    case 'moments':
      return { k: 'moments', n: 0, s: [], q: [] };
    case 'min':
    case 'max':
      return { k: kind, n: 0, v: 0 };
    case 'distinct':
      return { k: 'distinct', set: new Map() };
    case 'hll':
      return { k: 'hll', regs: new Map() };
    case 'first':
    case 'last':
      return { k: kind, e: null };
    case 'last_n':
      return { k: 'last_n', items: [] };
  }
}

/** Adds one event to an accumulator. Null column values are skipped, as in SQL aggregates. */
export function addEvent(acc: Acc, feature: FeaturePlan, event: StoredEvent): void {
  if (acc.k === 'count') {
    acc.n++;
    return;
  }
  const val = event.values[feature.column];
  if (val === null || val === undefined) return;
  switch (acc.k) {
    case 'sum':
      acc.n++;
      addExact(acc.s, val as number);
      return;
    case 'moments':
      acc.n++;
      addExact(acc.s, val as number);
      addExactSquare(acc.q, val as number);
      return;
    case 'min':
      if (acc.n === 0 || below(val as number, acc.v)) acc.v = val as number;
      acc.n++;
      return;
    case 'max':
      if (acc.n === 0 || below(acc.v, val as number)) acc.v = val as number;
      acc.n++;
      return;
    case 'distinct':
      acc.set.set(val, (acc.set.get(val) ?? 0) + 1);
      return;
    case 'hll':
      hllAdd(acc.regs, val, feature.precision);
      return;
    case 'first':
    case 'last':
    case 'last_n':
      addPositioned(acc, feature, { ts: event.ts, partition: event.partition, offset: event.offset, val });
      return;
  }
}

function addPositioned(acc: Acc, feature: FeaturePlan, item: Positioned): void {
  if (acc.k === 'first') {
    if (acc.e === null || compareEvents(item, acc.e) < 0) acc.e = item;
  } else if (acc.k === 'last') {
    if (acc.e === null || compareEvents(item, acc.e) > 0) acc.e = item;
  } else if (acc.k === 'last_n') {
    const items = acc.items;
    let i = items.length;
    while (i > 0 && compareEvents(items[i - 1] as Positioned, item) > 0) i--;
    items.splice(i, 0, item);
    if (items.length > feature.n) items.shift();
  }
}

/** Merges accumulator `other` (a tile) into `into`. Both must be of the same kind. */
export function mergeAcc(into: Acc, other: Acc, feature: FeaturePlan): void {
  switch (into.k) {
    case 'count':
      into.n += (other as typeof into).n;
      return;
    case 'sum': {
      const o = other as typeof into;
      into.n += o.n;
      mergeExact(into.s, o.s);
      return;
    }
    case 'moments': {
      const o = other as typeof into;
      into.n += o.n;
      mergeExact(into.s, o.s);
      mergeExact(into.q, o.q);
      return;
    }
    case 'min':
    case 'max': {
      const o = other as typeof into;
      if (o.n === 0) return;
      if (into.n === 0 || (into.k === 'min' ? below(o.v, into.v) : below(into.v, o.v))) into.v = o.v;
      into.n += o.n;
      return;
    }
    case 'distinct':
      for (const [val, count] of (other as typeof into).set)
        into.set.set(val, (into.set.get(val) ?? 0) + count);
      return;
    case 'hll':
      hllMerge(into.regs, (other as typeof into).regs);
      return;
    case 'first':
    case 'last': {
      const e = (other as typeof into).e;
      if (e) addPositioned(into, feature, e);
      return;
    }
    case 'last_n':
      for (const item of (other as typeof into).items) addPositioned(into, feature, item);
      return;
  }
}

/** The feature value of an accumulator. Empty windows give 0 for counts and sums, otherwise the
 * feature's declared default (null when none): never NaN. */
export function finalize(feature: FeaturePlan, acc: Acc): FeatureValue {
  switch (acc.k) {
    case 'count':
      return acc.n;
    case 'sum':
      return sumResult(feature, acc.n, roundExact(acc.s));
    case 'moments':
      return momentsResult(feature, acc.n, acc.s, acc.q);
    case 'min':
    case 'max':
      return extremeResult(feature, acc.n, acc.v);
    case 'distinct':
      return acc.set.size;
    case 'hll':
      return hllEstimate(acc.regs, feature.precision);
    case 'first':
    case 'last':
      return acc.e === null ? feature.def.default : acc.e.val;
    case 'last_n':
      return acc.items.map((item) => item.val);
  }
}

// Results from the raw parts of an accumulator; the offline sweep calls these directly.

/** sum (0 when empty) or avg (the default when empty) of `n` values whose exactly rounded total is `total`. */
export function sumResult(feature: FeaturePlan, n: number, total: number): FeatureValue {
  if (feature.def.aggregation === 'sum') return n === 0 ? 0 : total;
  return n === 0 ? feature.def.default : total / n;
}

/** Sample stddev or variance; the default below two values. */
export function momentsResult(
  feature: FeaturePlan,
  n: number,
  sum: readonly number[],
  squares: readonly number[],
): FeatureValue {
  if (n < 2) return feature.def.default;
  const variance = exactVariance(n, sum, squares);
  return feature.def.aggregation === 'stddev' ? Math.sqrt(variance) : variance;
}

/** min or max `v` of `n` values; the default when empty. */
export function extremeResult(feature: FeaturePlan, n: number, v: number): FeatureValue {
  return n === 0 ? feature.def.default : v;
}
