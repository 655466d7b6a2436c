// One feature's aggregate over a sliding window of an entity's time-ordered log, held as typed
// columns: add or remove one log position, read the value. The offline sweep runs each feature
// as its own tight loop over precomputed window bounds (`sweep`), so the hot kinds (count, sum
// and avg, min and max, distinct strings) get monomorphic loops over typed arrays with no
// per-row allocation; the online before-event reader drives the same aggregates one read at a
// time through `Slider` (sliding.ts). Results go through the same result functions as reads.
import { below, extremeResult, type FeatureValue, momentsResult, sumResult, type Value } from './acc.ts';
import { addExact, addExactSquare, ExactAccumulator } from './exact-sum.ts';
import { hllAdd, hllEstimate } from './hll.ts';
import type { FeaturePlan } from './plan.ts';

/**
 * A numeric column (NaN = null) or a dictionary-encoded one (-1 = null): strings, booleans, or
 * int64 values (numbers, and exact decimal strings beyond 2^53) that no numeric aggregation reads.
 */
export type ColumnData =
  | { kind: 'num'; values: Float64Array }
  | { kind: 'str'; ids: Int32Array; dict: Value[] };

/** A column of feature values: a Float64Array when the feature can only be a number (no boxing). */
export type FeatureColumn = Float64Array | FeatureValue[];

/**
 * Window bounds of sorted rows: row j's window is the log positions [lo[j], hi[j]), both
 * non-decreasing in j across the whole log (entities are laid out one after another), and its
 * value goes to output position perm[j].
 */
export interface RowWindows {
  rows: number;
  lo: Int32Array;
  hi: Int32Array;
  perm: Int32Array;
  /** The most events any one entity has (a window never holds more). */
  longest: number;
}

export abstract class WindowAgg {
  constructor(protected readonly feature: FeaturePlan) {}

  /** Forgets the window [lo, hi) that was added: the aggregate is empty afterwards. */
  abstract clear(lo: number, hi: number): void;
  abstract add(i: number): void;
  abstract remove(i: number): void;
  abstract value(): FeatureValue;

  /** Whether `scan` can give a window's value without an aggregate (min and max). */
  get scans(): boolean {
    return false;
  }

  /** The value over log positions [lo, hi), from the log alone (only when `scans`). */
  scan(_lo: number, _hi: number): FeatureValue {
    throw new TypeError(`${this.feature.def.name}: no scan for ${this.feature.acc}`);
  }

  /**
   * Writes every row's value. The window only moves forward; when it no longer overlaps the
   * previous one (a new entity, or a gap longer than the window) the aggregate starts afresh,
   * and rows with the same bounds as the previous row (ties) reuse its value.
   */
  sweep(w: RowWindows, out: FeatureColumn): void {
    let pLo = 0;
    let pHi = 0;
    let value: FeatureValue = this.value();
    for (let j = 0; j < w.rows; j++) {
      const lo = w.lo[j]!;
      const hi = w.hi[j]!;
      if (lo !== pLo || hi !== pHi) {
        if (lo >= pHi) {
          this.clear(pLo, pHi);
          pLo = lo;
          pHi = lo;
        }
        while (pHi < hi) this.add(pHi++);
        while (pLo < lo) this.remove(pLo++);
        value = this.value();
      }
      out[w.perm[j]!] = value as number;
    }
  }
}

/** count: the window's size; nothing to aggregate. */
class CountAgg extends WindowAgg {
  private n = 0;
  clear(): void {
    this.n = 0;
  }
  add(): void {
    this.n++;
  }
  remove(): void {
    this.n--;
  }
  value(): FeatureValue {
    return this.n;
  }
  override sweep(w: RowWindows, out: FeatureColumn): void {
    const { lo, hi, perm } = w;
    for (let j = 0; j < w.rows; j++) out[perm[j]!] = hi[j]! - lo[j]!;
  }
}

/** sum and avg: exact partials, so removing a value is exact and the result order-independent. */
class SumAgg extends WindowAgg {
  private n = 0;
  private readonly sum = new ExactAccumulator();
  constructor(
    feature: FeaturePlan,
    private readonly nums: Float64Array,
  ) {
    super(feature);
  }
  clear(): void {
    this.n = 0;
    this.sum.clear();
  }
  add(i: number): void {
    const v = this.nums[i]!;
    if (Number.isNaN(v)) return;
    this.n++;
    this.sum.add(v);
  }
  remove(i: number): void {
    const v = this.nums[i]!;
    if (Number.isNaN(v)) return;
    this.n--;
    if (this.n === 0) this.sum.clear();
    else this.sum.add(-v);
  }
  value(): FeatureValue {
    return sumResult(this.feature, this.n, this.sum.value());
  }
  override sweep(w: RowWindows, out: FeatureColumn): void {
    if (!(out instanceof Float64Array)) {
      super.sweep(w, out);
      return;
    }
    const { lo: los, hi: his, perm } = w;
    const nums = this.nums;
    const sum = this.sum;
    const feature = this.feature;
    let n = 0;
    let pLo = 0;
    let pHi = 0;
    sum.clear();
    // sumResult inlined on unboxed numbers: an empty window gives sum 0 or avg's default.
    const empty = sumResult(feature, 0, 0) as number;
    const isAvg = feature.def.aggregation === 'avg';
    let value = empty;
    for (let j = 0; j < w.rows; j++) {
      const lo = los[j]!;
      const hi = his[j]!;
      if (lo !== pLo || hi !== pHi) {
        if (lo >= pHi) {
          n = 0;
          sum.clear();
          pLo = lo;
          pHi = lo;
        }
        for (; pHi < hi; pHi++) {
          const v = nums[pHi]!;
          if (!Number.isNaN(v)) {
            n++;
            sum.add(v);
          }
        }
        for (; pLo < lo; pLo++) {
          const v = nums[pLo]!;
          if (!Number.isNaN(v)) {
            n--;
            sum.add(-v);
          }
        }
        if (n === 0) {
          sum.clear();
          value = empty;
        } else {
          value = isAvg ? sum.value() / n : sum.value();
        }
      }
      out[perm[j]!] = value;
    }
    this.n = n;
  }
}

/** stddev and variance: exact sums of values and of squares. */
class MomentsAgg extends WindowAgg {
  private n = 0;
  private sums: number[] = [];
  private squares: number[] = [];
  constructor(
    feature: FeaturePlan,
    private readonly nums: Float64Array,
  ) {
    super(feature);
  }
  clear(): void {
    this.n = 0;
    this.sums = [];
    this.squares = [];
  }
  add(i: number): void {
    const v = this.nums[i]!;
    if (Number.isNaN(v)) return;
    this.n++;
    addExact(this.sums, v);
    addExactSquare(this.squares, v);
  }
  remove(i: number): void {
    const v = this.nums[i]!;
    if (Number.isNaN(v)) return;
    this.n--;
    addExact(this.sums, -v);
    addExactSquare(this.squares, v, -1);
  }
  value(): FeatureValue {
    return momentsResult(this.feature, this.n, this.sums, this.squares);
  }
}

/**
 * min and max: a monotonic deque of log positions (values non-increasing for max, non-decreasing
 * for min), so the extreme is at its head. Each position enters once, so a buffer as long as the
 * log never overflows between clears.
 */
class ExtremeAgg extends WindowAgg {
  private n = 0;
  private readonly deque: Int32Array;
  private head = 0;
  private tail = 0;
  private readonly isMax: boolean;
  constructor(
    feature: FeaturePlan,
    private readonly nums: Float64Array,
  ) {
    super(feature);
    this.isMax = feature.acc === 'max';
    this.deque = new Int32Array(nums.length + 1);
  }
  clear(): void {
    this.n = 0;
    this.head = 0;
    this.tail = 0;
  }
  add(i: number): void {
    const nums = this.nums;
    const v = nums[i]!;
    if (Number.isNaN(v)) return;
    this.n++;
    const dq = this.deque;
    // Pops what the new value equals or beats, -0 below 0 (acc.ts `below`).
    if (this.isMax) while (this.tail > this.head && !below(v, nums[dq[this.tail - 1]!]!)) this.tail--;
    else while (this.tail > this.head && !below(nums[dq[this.tail - 1]!]!, v)) this.tail--;
    dq[this.tail++] = i;
  }
  remove(i: number): void {
    if (Number.isNaN(this.nums[i]!)) return;
    this.n--;
    if (this.deque[this.head] === i && this.head < this.tail) this.head++;
  }
  value(): FeatureValue {
    return extremeResult(this.feature, this.n, this.n > 0 ? this.nums[this.deque[this.head]!]! : 0);
  }
  override get scans(): boolean {
    return true;
  }
  /**
   * One pass, with no deque: the extreme in the order of `below`, so the same value as the deque's
   * head (values equal in that order are the same bits).
   */
  override scan(lo: number, hi: number): FeatureValue {
    const nums = this.nums;
    const isMax = this.isMax;
    let n = 0;
    let v = 0;
    for (let i = lo; i < hi; i++) {
      const x = nums[i]!;
      if (Number.isNaN(x)) continue;
      if (n === 0 || (isMax ? below(v, x) : below(x, v))) v = x;
      n++;
    }
    return extremeResult(this.feature, n, v);
  }
  override sweep(w: RowWindows, out: FeatureColumn): void {
    if (!(out instanceof Float64Array)) {
      super.sweep(w, out);
      return;
    }
    const { lo: los, hi: his, perm } = w;
    const nums = this.nums;
    // The window restarts at each entity, so the deque never holds more than one entity's events.
    const dq = new Int32Array(w.longest + 1);
    const isMax = this.isMax;
    const empty = extremeResult(this.feature, 0, 0) as number;
    let n = 0;
    let head = 0;
    let tail = 0;
    let pLo = 0;
    let pHi = 0;
    let value = empty;
    for (let j = 0; j < w.rows; j++) {
      const lo = los[j]!;
      const hi = his[j]!;
      if (lo !== pLo || hi !== pHi) {
        if (lo >= pHi) {
          n = 0;
          head = 0;
          tail = 0;
          pLo = lo;
          pHi = lo;
        }
        for (; pHi < hi; pHi++) {
          const v = nums[pHi]!;
          if (Number.isNaN(v)) continue;
          n++;
          if (isMax) while (tail > head && !below(v, nums[dq[tail - 1]!]!)) tail--;
          else while (tail > head && !below(nums[dq[tail - 1]!]!, v)) tail--;
          dq[tail++] = pHi;
        }
        for (; pLo < lo; pLo++) {
          if (Number.isNaN(nums[pLo]!)) continue;
          n--;
          if (dq[head] === pLo) head++;
        }
        value = n > 0 ? nums[dq[head]!]! : empty;
      }
      out[perm[j]!] = value;
    }
    this.clear();
  }
}

/** count_distinct over a dictionary column: occurrences per dictionary id, and how many are > 0. */
class DistinctIdAgg extends WindowAgg {
  private counts: Int32Array;
  private distinct = 0;
  constructor(
    feature: FeaturePlan,
    private readonly ids: Int32Array,
    dict: readonly unknown[],
  ) {
    super(feature);
    this.counts = new Int32Array(Math.max(16, dict.length));
  }
  clear(lo: number, hi: number): void {
    for (let i = lo; i < hi; i++) if (this.ids[i]! >= 0) this.counts[this.ids[i]!] = 0;
    this.distinct = 0;
  }
  add(i: number): void {
    const id = this.ids[i]!;
    if (id < 0) return;
    if (id >= this.counts.length) {
      // The dictionary grew (online reader): widen the counts.
      const wider = new Int32Array(Math.max(id + 1, this.counts.length * 2));
      wider.set(this.counts);
      this.counts = wider;
    }
    if (this.counts[id]!++ === 0) this.distinct++;
  }
  remove(i: number): void {
    const id = this.ids[i]!;
    if (id >= 0 && --this.counts[id]! === 0) this.distinct--;
  }
  value(): FeatureValue {
    return this.distinct;
  }
  override sweep(w: RowWindows, out: FeatureColumn): void {
    const { lo: los, hi: his, perm } = w;
    const ids = this.ids;
    const counts = this.counts;
    let distinct = 0;
    let pLo = 0;
    let pHi = 0;
    for (let j = 0; j < w.rows; j++) {
      const lo = los[j]!;
      const hi = his[j]!;
      if (lo !== pLo || hi !== pHi) {
        if (lo >= pHi) {
          for (let i = pLo; i < pHi; i++) if (ids[i]! >= 0) counts[ids[i]!] = 0;
          distinct = 0;
          pLo = lo;
          pHi = lo;
        }
        for (; pHi < hi; pHi++) {
          const id = ids[pHi]!;
          if (id >= 0 && counts[id]!++ === 0) distinct++;
        }
        for (; pLo < lo; pLo++) {
          const id = ids[pLo]!;
          if (id >= 0 && --counts[id]! === 0) distinct--;
        }
      }
      out[perm[j]!] = distinct;
    }
    for (let i = pLo; i < pHi; i++) if (ids[i]! >= 0) counts[ids[i]!] = 0;
  }
}

/** The column value at log position i, null when missing. */
function columnValue(column: ColumnData, i: number): Value | null {
  if (column.kind === 'num') {
    const v = column.values[i]!;
    return Number.isNaN(v) ? null : v;
  }
  const id = column.ids[i]!;
  return id < 0 ? null : column.dict[id]!;
}

/** count_distinct over numbers, and approx_count_distinct: occurrences per value. */
class ValueCountAgg extends WindowAgg {
  private readonly counts = new Map<Value, number>();
  constructor(
    feature: FeaturePlan,
    private readonly column: ColumnData,
  ) {
    super(feature);
  }
  clear(): void {
    this.counts.clear();
  }
  add(i: number): void {
    const v = columnValue(this.column, i);
    if (v !== null) this.counts.set(v, (this.counts.get(v) ?? 0) + 1);
  }
  remove(i: number): void {
    const v = columnValue(this.column, i);
    if (v === null) return;
    const left = (this.counts.get(v) ?? 0) - 1;
    if (left > 0) this.counts.set(v, left);
    else this.counts.delete(v);
  }
  value(): FeatureValue {
    const f = this.feature;
    if (f.acc === 'distinct') return this.counts.size;
    const registers = new Map<number, number>();
    for (const v of this.counts.keys()) hllAdd(registers, v, f.precision);
    return hllEstimate(registers, f.precision);
  }
}

/** first, last and last_n read the window's ends straight from the log. */
class OrderedAgg extends WindowAgg {
  private lo = 0;
  private hi = 0;
  constructor(
    feature: FeaturePlan,
    private readonly column: ColumnData,
  ) {
    super(feature);
  }
  clear(lo: number): void {
    this.lo = lo;
    this.hi = lo;
  }
  add(i: number): void {
    if (this.hi === this.lo) this.lo = i;
    this.hi = i + 1;
  }
  remove(i: number): void {
    this.lo = i + 1;
  }
  value(): FeatureValue {
    const f = this.feature;
    if (f.acc === 'first') {
      for (let i = this.lo; i < this.hi; i++) {
        const v = columnValue(this.column, i);
        if (v !== null) return v;
      }
      return f.def.default;
    }
    if (f.acc === 'last') {
      for (let i = this.hi - 1; i >= this.lo; i--) {
        const v = columnValue(this.column, i);
        if (v !== null) return v;
      }
      return f.def.default;
    }
    const items: Value[] = [];
    for (let i = this.hi - 1; i >= this.lo && items.length < f.n; i--) {
      const v = columnValue(this.column, i);
      if (v !== null) items.unshift(v);
    }
    return items;
  }
}

/** The aggregate of one feature over the log columns (`column` is the feature's, null for count). */
export function windowAgg(feature: FeaturePlan, column: ColumnData | null): WindowAgg {
  if (feature.acc === 'count' || column === null) return new CountAgg(feature);
  switch (feature.acc) {
    case 'sum':
    case 'moments':
    case 'min':
    case 'max':
      if (column.kind !== 'num') throw new TypeError(`feature ${feature.def.name} needs a numeric column`);
      if (feature.acc === 'sum') return new SumAgg(feature, column.values);
      if (feature.acc === 'moments') return new MomentsAgg(feature, column.values);
      return new ExtremeAgg(feature, column.values);
    case 'distinct':
      return column.kind === 'str'
        ? new DistinctIdAgg(feature, column.ids, column.dict)
        : new ValueCountAgg(feature, column);
    case 'hll':
      return new ValueCountAgg(feature, column);
    default:
      return new OrderedAgg(feature, column);
  }
}
