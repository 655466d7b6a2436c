// One entity's tiles of one tile size, packed: tile after tile in one flat array of numbers (the
// start, then each feature's numeric fields: counts, a sum's first partial, extremes) and, for
// features that need them, one flat array of references (a sum's partials from its second
// value on, a distinct set, other accumulators). Every event lands in a tile and most events open
// a new one: appending a tile pushes a few numbers next to the previous tile's (one or two cache
// lines, no objects), and dropping old tiles moves a head index. Reads merge tiles into the
// accumulators of acc.ts; the codec reads and writes tiles as those accumulators (toAcc /
// pushTile), so the bytes are the same as when tiles were objects.
import { type Acc, addEvent, below, emptyAcc, mergeAcc, type StoredEvent, type Value } from './acc.ts';
import { addExact, type ExactAccumulator, mergeExact } from './exact-sum.ts';
import type { FeaturePlan } from './plan.ts';
import { floorTo } from './window.ts';

/** What a tile's reference field holds (null until needed). */
type TileRef = number[] | Value | Value[] | Set<Value> | Acc | null;

// TileSeries#add adds an event to every feature of a tile in one loop. A call through each
// column's own `add` there sees five classes (a megamorphic call: 30-110 ns each, measured), so
// the common kinds are switched on a code held in a typed array and added by the functions below.
const ADD_COUNT = 0;
const ADD_SUM = 1;
const ADD_MIN = 2;
const ADD_MAX = 3;
const ADD_DISTINCT = 4;
const ADD_OTHER = 5;

/** sum and avg: [count, first value] in num, the exact partials from the second value on in ref. */
function addSum(num: number[], ref: TileRef[], n: number, r: number, v: Value | null | undefined): void {
  if (typeof v !== 'number') return;
  if (num[n]!++ === 0) {
    num[n + 1] = v;
    return;
  }
  let parts = ref[r] as number[] | null;
  if (parts === null) {
    parts = [num[n + 1]!];
    ref[r] = parts;
  }
  addExact(parts, v);
}

/** min: [count, minimum] in num. */
function addMin(num: number[], n: number, v: Value | null | undefined): void {
  if (typeof v !== 'number') return;
  if (num[n] === 0 || below(v, num[n + 1]!)) num[n + 1] = v;
  num[n]!++;
}

/** max: [count, maximum] in num. */
function addMax(num: number[], n: number, v: Value | null | undefined): void {
  if (typeof v !== 'number') return;
  if (num[n] === 0 || below(num[n + 1]!, v)) num[n + 1] = v;
  num[n]!++;
}

/** count_distinct: the values seen, in ref: one value itself, a short array, or a Set. */
function addDistinct(ref: TileRef[], r: number, v: Value | null | undefined): void {
  if (v === null || v === undefined) return;
  const set = ref[r] as Value | Value[] | Set<Value> | null;
  if (set === null) ref[r] = v;
  else if (typeof set !== 'object') {
    if (set !== v) ref[r] = [set, v];
  } else if (set instanceof Set) set.add(v);
  else if (!set.includes(v)) {
    if (set.length < SMALL_SET) set.push(v);
    else ref[r] = new Set([...set, v]);
  }
}

/**
 * One feature's accumulator inside a packed tile: `numFields` numbers at num[n..] and `refFields`
 * references at ref[r..], where n and r locate the tile and the feature's fields in it.
 */
abstract class TileColumn {
  /** Offsets of this feature's fields inside a tile (set by the series). */
  numAt = 0;
  refAt = 0;
  /** How TileSeries#add adds an event (ADD_*): a function below, or AccColumn#add. */
  abstract readonly code: number;
  /** The event column it reads (-1 for count). */
  readonly column: number = -1;
  abstract readonly numFields: number;
  abstract readonly refFields: number;
  abstract mergeInto(acc: Acc, num: number[], ref: TileRef[], n: number, r: number): void;
  abstract toAcc(num: number[], ref: TileRef[], n: number, r: number): Acc;
  /** Fills an empty tile's fields from a decoded accumulator. */
  abstract fromAcc(acc: Acc, num: number[], ref: TileRef[], n: number, r: number): void;
}

class CountColumn extends TileColumn {
  readonly code = ADD_COUNT;
  readonly numFields = 1;
  readonly refFields = 0;
  mergeInto(acc: Acc, num: number[], _ref: TileRef[], n: number): void {
    (acc as { n: number }).n += num[n]!;
  }
  toAcc(num: number[], _ref: TileRef[], n: number): Acc {
    return { k: 'count', n: num[n]! };
  }
  fromAcc(acc: Acc, num: number[], _ref: TileRef[], n: number): void {
    num[n] = (acc as { n: number }).n;
  }
}

/**
 * sum and avg: fields [count, first value], and the exact partials from the second value on. Most
 * tiles hold one value, which is its own single partial, so they need no array.
 */
class SumColumn extends TileColumn {
  readonly code = ADD_SUM;
  readonly numFields = 2;
  readonly refFields = 1;
  constructor(override readonly column: number) {
    super();
  }
  mergeInto(acc: Acc, num: number[], ref: TileRef[], n: number, r: number): void {
    if (num[n] === 0) return;
    const a = acc as { n: number; s: number[] };
    a.n += num[n]!;
    const parts = ref[r] as number[] | null;
    if (parts) mergeExact(a.s, parts);
    else addExact(a.s, num[n + 1]!);
  }
  toAcc(num: number[], ref: TileRef[], n: number, r: number): Acc {
    const parts = (ref[r] as number[] | null) ?? (num[n] === 0 ? [] : [num[n + 1]!]);
    return { k: 'sum', n: num[n]!, s: parts };
  }
  fromAcc(acc: Acc, num: number[], ref: TileRef[], n: number, r: number): void {
    const a = acc as { n: number; s: number[] };
    num[n] = a.n;
    if (a.n > 0 && a.s.length === 1) num[n + 1] = a.s[0]!;
    else if (a.n > 0) ref[r] = a.s;
  }
}

/** min and max: fields [count, extreme]. */
class ExtremeColumn extends TileColumn {
  readonly code: number;
  readonly numFields = 2;
  readonly refFields = 0;
  private readonly isMax: boolean;
  constructor(
    private readonly kind: 'min' | 'max',
    override readonly column: number,
  ) {
    super();
    this.isMax = kind === 'max';
    this.code = this.isMax ? ADD_MAX : ADD_MIN;
  }
  mergeInto(acc: Acc, num: number[], _ref: TileRef[], n: number): void {
    const count = num[n]!;
    if (count === 0) return;
    const a = acc as { n: number; v: number };
    const v = num[n + 1]!;
    if (a.n === 0 || (this.isMax ? below(a.v, v) : below(v, a.v))) a.v = v;
    a.n += count;
  }
  toAcc(num: number[], _ref: TileRef[], n: number): Acc {
    return { k: this.kind, n: num[n]!, v: num[n + 1]! };
  }
  fromAcc(acc: Acc, num: number[], _ref: TileRef[], n: number): void {
    const a = acc as { n: number; v: number };
    num[n] = a.n;
    num[n + 1] = a.v;
  }
}

const SMALL_SET = 16;

/** A distinct field's values: none (null), one (the value itself), a short array, or a Set. */
function* valuesOf(set: TileRef): Iterable<Value> {
  if (set === null) return;
  if (typeof set !== 'object') yield set;
  else yield* set as Value[] | Set<Value>;
}

/** count_distinct: the set of values the tile saw (one value, the usual case, needs no object). */
class DistinctColumn extends TileColumn {
  readonly code = ADD_DISTINCT;
  readonly numFields = 0;
  readonly refFields = 1;
  constructor(override readonly column: number) {
    super();
  }
  mergeInto(acc: Acc, _num: number[], ref: TileRef[], _n: number, r: number): void {
    const into = (acc as { set: Map<Value, number> }).set;
    const set = ref[r]!;
    if (typeof set !== 'object') into.set(set, (into.get(set) ?? 0) + 1);
    else for (const v of valuesOf(set)) into.set(v, (into.get(v) ?? 0) + 1);
  }
  toAcc(_num: number[], ref: TileRef[], _n: number, r: number): Acc {
    const set = new Map<Value, number>();
    for (const v of valuesOf(ref[r]!)) set.set(v, 1);
    return { k: 'distinct', set };
  }
  fromAcc(acc: Acc, _num: number[], ref: TileRef[], _n: number, r: number): void {
    const values = [...(acc as { set: Map<Value, number> }).set.keys()];
    if (values.length === 1) ref[r] = values[0]!;
    else if (values.length > 1) ref[r] = values.length <= SMALL_SET ? values : new Set(values);
  }
}

/** Every other kind (moments, hll, first, last, last_n): an accumulator object, made on first use. */
class AccColumn extends TileColumn {
  readonly code = ADD_OTHER;
  readonly numFields = 0;
  readonly refFields = 1;
  constructor(private readonly feature: FeaturePlan) {
    super();
  }
  add(ref: TileRef[], r: number, event: StoredEvent): void {
    let acc = ref[r] as Acc | null;
    if (acc === null) {
      acc = emptyAcc(this.feature.acc);
      ref[r] = acc;
    }
    addEvent(acc, this.feature, event);
  }
  mergeInto(acc: Acc, _num: number[], ref: TileRef[], _n: number, r: number): void {
    const own = ref[r] as Acc | null;
    if (own) mergeAcc(acc, own, this.feature);
  }
  toAcc(_num: number[], ref: TileRef[], _n: number, r: number): Acc {
    return (ref[r] as Acc | null) ?? emptyAcc(this.feature.acc);
  }
  fromAcc(acc: Acc, _num: number[], ref: TileRef[], _n: number, r: number): void {
    ref[r] = acc;
  }
}

function tileColumn(feature: FeaturePlan): TileColumn {
  switch (feature.acc) {
    case 'count':
      return new CountColumn();
    case 'sum':
      return new SumColumn(feature.column);
    case 'min':
    case 'max':
      return new ExtremeColumn(feature.acc, feature.column);
    case 'distinct':
      return new DistinctColumn(feature.column);
    default:
      return new AccColumn(feature);
  }
}

interface TileLayout {
  columns: readonly TileColumn[];
  /** Per column, as typed arrays so that the add loop reads them monomorphically. */
  codes: Int32Array;
  numAt: Int32Array;
  refAt: Int32Array;
  eventColumn: Int32Array;
  numStride: number;
  refStride: number;
}

/** Tile layouts by tile group (one per plan group, shared by every entity's series: kept in cache). */
const layouts = new WeakMap<readonly FeaturePlan[], TileLayout>();

function layoutOf(features: readonly FeaturePlan[]): TileLayout {
  let layout = layouts.get(features);
  if (!layout) {
    const columns = features.map(tileColumn);
    let numAt = 1;
    let refAt = 0;
    for (const column of columns) {
      column.numAt = numAt;
      column.refAt = refAt;
      numAt += column.numFields;
      refAt += column.refFields;
    }
    layout = {
      columns,
      codes: Int32Array.from(columns, (c) => c.code),
      numAt: Int32Array.from(columns, (c) => c.numAt),
      refAt: Int32Array.from(columns, (c) => c.refAt),
      eventColumn: Int32Array.from(columns, (c) => c.column),
      numStride: numAt,
      refStride: refAt,
    };
    layouts.set(features, layout);
  }
  return layout;
}

/**
 * The tiles of one size, ascending by start. Tile k (counted from the array's beginning) has its
 * start at num[k * numStride] and its features' fields after it, and its references at
 * ref[k * refStride ..]. Tiles before `head` are dropped; the arrays are compacted once the dead
 * prefix outweighs the live part, so pruning is O(1) amortized.
 */
export class TileSeries {
  private num: number[] = [];
  private ref: TileRef[] = [];
  private head = 0;
  private tiles = 0;
  private readonly columns: readonly TileColumn[];
  private readonly layout: TileLayout;
  private readonly numStride: number;
  private readonly refStride: number;

  constructor(features: readonly FeaturePlan[]) {
    const layout = layoutOf(features);
    this.layout = layout;
    this.columns = layout.columns;
    this.numStride = layout.numStride;
    this.refStride = layout.refStride;
  }

  /** Live tiles. */
  get length(): number {
    return this.tiles - this.head;
  }

  /** Start of the k-th live tile. */
  startOf(k: number): number {
    return this.num[(this.head + k) * this.numStride]!;
  }

  /**
   * Adds an event to its tile of `tileMs` (opened if new) for every feature of the group, unless
   * that tile starts before `cutoff` (it could never be read). The tile start is computed here, not
   * passed in: a time is no small integer, and passing one to a call V8 does not inline allocates
   * a number box per event.
   */
  add(event: StoredEvent, tileMs: number, cutoff: number): void {
    const start = floorTo(event.ts, tileMs);
    if (start < cutoff) return;
    let k = this.tiles - 1;
    if (k < this.head || this.startAt(k) < start) {
      // The usual case: the event opens the newest tile.
      this.appendEmpty(start);
      k = this.tiles - 1;
    } else {
      while (k >= this.head && this.startAt(k) > start) k--;
      if (k < this.head || this.startAt(k) !== start) {
        k++;
        this.insertEmpty(k, start);
      }
    }
    const num = this.num;
    const ref = this.ref;
    const n = k * this.numStride;
    const r = k * this.refStride;
    const { codes, numAt, refAt, eventColumn } = this.layout;
    const values = event.values;
    for (let c = 0; c < codes.length; c++) {
      switch (codes[c]) {
        case ADD_COUNT:
          num[n + numAt[c]!]!++;
          break;
        case ADD_SUM:
          addSum(num, ref, n + numAt[c]!, r + refAt[c]!, values[eventColumn[c]!]);
          break;
        case ADD_MIN:
          addMin(num, n + numAt[c]!, values[eventColumn[c]!]);
          break;
        case ADD_MAX:
          addMax(num, n + numAt[c]!, values[eventColumn[c]!]);
          break;
        case ADD_DISTINCT:
          addDistinct(ref, r + refAt[c]!, values[eventColumn[c]!]);
          break;
        default:
          (this.columns[c] as AccColumn).add(ref, r + refAt[c]!, event);
      }
    }
  }

  /** Merges into `acc` the feature `slot` of every tile with a start in [from, to). */
  mergeRange(acc: Acc, slot: number, from: number, to: number): void {
    const column = this.columns[slot]!;
    for (let k = this.lowerBound(from); k < this.tiles && this.startAt(k) < to; k++) {
      column.mergeInto(
        acc,
        this.num,
        this.ref,
        k * this.numStride + column.numAt,
        k * this.refStride + column.refAt,
      );
    }
  }

  // Reads of the common kinds without an accumulator object (window-read.ts): the same fields
  // mergeInto merges, in the same order (tiles ascending by start).

  /** A count feature's total over the tiles starting at or after `from`. */
  countFrom(slot: number, from: number): number {
    const stride = this.numStride;
    const num = this.num;
    let total = 0;
    for (
      let n = this.lowerBound(from) * stride + this.columns[slot]!.numAt, end = this.tiles * stride;
      n < end;
      n += stride
    )
      total += num[n]!;
    return total;
  }

  /** Adds a sum feature's values over the tiles starting at or after `from` to `exact`; returns their count. */
  sumFrom(slot: number, from: number, exact: ExactAccumulator): number {
    const column = this.columns[slot]!;
    const num = this.num;
    const ref = this.ref;
    let count = 0;
    for (let k = this.lowerBound(from); k < this.tiles; k++) {
      const n = k * this.numStride + column.numAt;
      const tn = num[n]!;
      if (tn === 0) continue;
      count += tn;
      const parts = ref[k * this.refStride + column.refAt] as number[] | null;
      if (parts === null) exact.add(num[n + 1]!);
      else for (let j = 0; j < parts.length; j++) exact.add(parts[j]!);
    }
    return count;
  }

  /** The extreme found by the last extremeFrom (meaningless when it returned 0). */
  extreme = 0;

  /**
   * A min or max feature over the tiles starting at or after `from`: returns how many values they
   * hold and leaves their extreme in `extreme`.
   */
  extremeFrom(slot: number, from: number, isMax: boolean): number {
    const stride = this.numStride;
    const num = this.num;
    let count = 0;
    let v = 0;
    for (
      let n = this.lowerBound(from) * stride + this.columns[slot]!.numAt, end = this.tiles * stride;
      n < end;
      n += stride
    ) {
      const tn = num[n]!;
      if (tn === 0) continue;
      const x = num[n + 1]!;
      if (count === 0 || (isMax ? below(v, x) : below(x, v))) v = x;
      count += tn;
    }
    this.extreme = v;
    return count;
  }

  /**
   * A count_distinct feature's values over the tiles starting at or after `from`: each value not yet
   * marked `mark` in `seen` is marked and counted; returns how many were.
   */
  distinctFrom(slot: number, from: number, seen: Map<Value, number>, mark: number): number {
    const r0 = this.columns[slot]!.refAt;
    const ref = this.ref;
    let fresh = 0;
    for (let k = this.lowerBound(from); k < this.tiles; k++) {
      const set = ref[k * this.refStride + r0] as Value | Value[] | Set<Value> | null;
      if (set === null) continue;
      if (typeof set !== 'object') {
        if (seen.get(set) !== mark) {
          seen.set(set, mark);
          fresh++;
        }
      } else {
        for (const v of set) {
          if (seen.get(v) !== mark) {
            seen.set(v, mark);
            fresh++;
          }
        }
      }
    }
    return fresh;
  }

  /** Drops the tiles that start before `cutoff`. */
  dropBefore(cutoff: number): void {
    if (this.head === this.tiles || this.startAt(this.head) >= cutoff) return;
    this.head = this.lowerBound(cutoff);
    if (this.head > 8 && this.head * 2 > this.tiles) {
      this.num.splice(0, this.head * this.numStride);
      this.ref.splice(0, this.head * this.refStride);
      this.tiles -= this.head;
      this.head = 0;
    }
  }

  /** The k-th live tile's accumulator of feature `slot` (serialization). */
  accOf(k: number, slot: number): Acc {
    const column = this.columns[slot]!;
    const tile = this.head + k;
    return column.toAcc(
      this.num,
      this.ref,
      tile * this.numStride + column.numAt,
      tile * this.refStride + column.refAt,
    );
  }

  /** Appends a tile after the last one, with its accumulators in the group's order (decoding). */
  pushTile(start: number, accs: readonly Acc[]): void {
    this.appendEmpty(start);
    const n = (this.tiles - 1) * this.numStride;
    const r = (this.tiles - 1) * this.refStride;
    this.columns.forEach((column, slot) => {
      column.fromAcc(accs[slot]!, this.num, this.ref, n + column.numAt, r + column.refAt);
    });
  }

  private startAt(k: number): number {
    return this.num[k * this.numStride]!;
  }

  private appendEmpty(start: number): void {
    const num = this.num;
    let at = this.tiles * this.numStride;
    num[at] = start;
    for (let end = at + this.numStride; ++at < end; ) num[at] = 0;
    const ref = this.ref;
    for (let i = this.tiles * this.refStride, end = i + this.refStride; i < end; i++) ref[i] = null;
    this.tiles++;
  }

  /** Opens an empty tile at position k (an event older than the newest tile: rare). */
  private insertEmpty(k: number, start: number): void {
    const fields = new Array<number>(this.numStride).fill(0);
    fields[0] = start;
    this.num.splice(k * this.numStride, 0, ...fields);
    this.ref.splice(k * this.refStride, 0, ...new Array<TileRef>(this.refStride).fill(null));
    this.tiles++;
  }

  /** Index of the first live tile whose start is >= bound (this.tiles if none). */
  private lowerBound(bound: number): number {
    let lo = this.head;
    let hi = this.tiles;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.startAt(mid) < bound) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
