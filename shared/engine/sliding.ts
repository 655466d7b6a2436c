// Offline evaluation: for every event, the features as of its own time, before it (window
// [start(ts), ts) over the entity's whole event log). Events are laid out in typed columns, sorted
// by (entity, ts, partition, offset) with a counting sort, then swept once per entity with two
// pointers per feature: O(n) for in-order input, cache-friendly, no per-row allocation. Results
// come from the same window arithmetic and result functions as online reads, and exact sums make
// them bit-identical. This is the hot loop of training sets, backfills and verification.
import { extremeResult, type FeatureValue, momentsResult, sumResult, type Value } from './acc.ts';
import { addExact, addExactSquare, ExactAccumulator } from './exact-sum.ts';
import { hllAdd, hllEstimate } from './hll.ts';
import type { FeaturePlan, ViewPlan } from './plan.ts';
import type { EngineEvent } from './state.ts';
import { type WindowSpec, windowStart } from './window.ts';

/** A numeric column (NaN = null) or a dictionary-encoded string column (-1 = null). */
export type ColumnData =
  | { kind: 'num'; values: Float64Array }
  | { kind: 'str'; ids: Int32Array; dict: string[] };

/** Events as typed columns; `columns` follow plan.columns, `entity` holds dense ids < entities. */
export interface EventColumns {
  n: number;
  entities: number;
  entity: Int32Array;
  ts: Float64Array;
  partition: Int32Array;
  offset: Float64Array;
  columns: ColumnData[];
}

/** A column of feature values: a Float64Array when the feature can only be a number (no boxing). */
export type FeatureColumn = Float64Array | FeatureValue[];

const NUMERIC_TYPES = new Set(['int64', 'double', 'timestamp']);

/** Lays out events (keys[i] is the entity of events[i]) as typed columns, in one sequential pass. */
export function toEventColumns(
  plan: ViewPlan,
  keys: readonly string[],
  events: readonly EngineEvent[],
): EventColumns {
  const n = events.length;
  const ids = new Map<string, number>();
  const entity = new Int32Array(n);
  const ts = new Float64Array(n);
  const partition = new Int32Array(n);
  const offset = new Float64Array(n);
  const columns = newColumns(plan, n);
  const dicts = columns.map(() => new Map<string, number>());
  for (let i = 0; i < n; i++) {
    const e = events[i]!;
    let id = ids.get(keys[i]!);
    if (id === undefined) {
      id = ids.size;
      ids.set(keys[i]!, id);
    }
    entity[i] = id;
    ts[i] = e.ts;
    partition[i] = e.partition;
    offset[i] = e.offset;
    for (let c = 0; c < columns.length; c++) setColumnValue(columns[c]!, dicts[c]!, i, e.values[c]);
  }
  return { n, entities: ids.size, entity, ts, partition, offset, columns };
}

/** Empty typed columns for the plan's columns: numeric schema types as numbers, the rest as strings. */
export function newColumns(plan: ViewPlan, capacity: number): ColumnData[] {
  return plan.columns.map(
    (name): ColumnData =>
      NUMERIC_TYPES.has(plan.view.source.schema[name] ?? '')
        ? { kind: 'num', values: new Float64Array(capacity) }
        : { kind: 'str', ids: new Int32Array(capacity), dict: [] },
  );
}

/** Stores value `v` at row i (NaN / -1 for null or a value of another type); `dict` indexes column.dict. */
export function setColumnValue(
  column: ColumnData,
  dict: Map<string, number>,
  i: number,
  v: Value | null | undefined,
): void {
  if (column.kind === 'num') {
    column.values[i] = typeof v === 'number' ? v : Number.NaN;
  } else if (typeof v === 'string') {
    let code = dict.get(v);
    if (code === undefined) {
      code = column.dict.push(v) - 1;
      dict.set(v, code);
    }
    column.ids[i] = code;
  } else {
    column.ids[i] = -1;
  }
}

/**
 * Features before each event, column-major: result[f][i] is feature f of event i. Rows may come in
 * any order. A record repeated with the same (entity, ts, partition, offset) counts once (a
 * redelivery), but every input row gets its values.
 */
export function featuresBeforeEachColumnar(plan: ViewPlan, input: EventColumns): FeatureColumn[] {
  const { n } = input;
  const out = plan.features.map(
    (f): FeatureColumn => (alwaysNumber(f) ? new Float64Array(n) : new Array<FeatureValue>(n)),
  );
  const { perm, groupStart } = sortRows(input);

  // Gather the sorted log in one pass; drop repeated records (adjacent once sorted).
  const logTs = new Float64Array(n);
  const logStart = new Int32Array(input.entities + 1);
  const logCols: ColumnData[] = input.columns.map((c) =>
    c.kind === 'num'
      ? { kind: 'num', values: new Float64Array(n) }
      : { kind: 'str', ids: new Int32Array(n), dict: c.dict },
  );
  const { ts, partition, offset } = input;
  let k = 0;
  for (let e = 0; e < input.entities; e++) {
    logStart[e] = k;
    let prev = -1;
    for (let j = groupStart[e]!; j < groupStart[e + 1]!; j++) {
      const r = perm[j]!;
      if (prev >= 0 && ts[prev] === ts[r] && partition[prev] === partition[r] && offset[prev] === offset[r])
        continue;
      prev = r;
      logTs[k] = ts[r]!;
      for (let c = 0; c < logCols.length; c++) {
        const src = input.columns[c]!;
        const dst = logCols[c]!;
        if (src.kind === 'num') (dst as { values: Float64Array }).values[k] = src.values[r]!;
        else (dst as { ids: Int32Array }).ids[k] = src.ids[r]!;
      }
      k++;
    }
  }
  logStart[input.entities] = k;

  // Sweep in sorted order writing sorted-order columns (sequential writes), then put each column
  // back in input order one at a time (one random-access stream instead of one per feature).
  const sorted = plan.features.map(
    (f): FeatureColumn => (alwaysNumber(f) ? new Float64Array(n) : new Array<FeatureValue>(n)),
  );
  const sliders = plan.features.map(
    (f, i) => new Slider(f, logTs, f.column >= 0 ? logCols[f.column]! : null, sorted[i]!),
  );
  for (let e = 0; e < input.entities; e++) {
    for (const s of sliders) s.reset(logStart[e]!, logStart[e + 1]!);
    for (let j = groupStart[e]!; j < groupStart[e + 1]!; j++) {
      const t = ts[perm[j]!]!;
      for (let f = 0; f < sliders.length; f++) sliders[f]!.emit(t, j);
    }
  }
  for (let f = 0; f < out.length; f++) {
    const from = sorted[f]!;
    const to = out[f]!;
    if (from instanceof Float64Array && to instanceof Float64Array)
      for (let j = 0; j < n; j++) to[perm[j]!] = from[j]!;
    else for (let j = 0; j < n; j++) (to as FeatureValue[])[perm[j]!] = (from as FeatureValue[])[j]!;
  }
  return out;
}

/** Column-major features before each event for engine events (keys[i] is the entity of events[i]). */
export function featuresBeforeEachColumns(
  plan: ViewPlan,
  keys: readonly string[],
  events: readonly EngineEvent[],
): FeatureColumn[] {
  return featuresBeforeEachColumnar(plan, toEventColumns(plan, keys, events));
}

/** Row-major for many entities: result[i] is the feature vector of events[i]. */
export function featuresBeforeEachByEntity(
  plan: ViewPlan,
  keys: readonly string[],
  events: readonly EngineEvent[],
): FeatureValue[][] {
  const columns = featuresBeforeEachColumns(plan, keys, events);
  return events.map((_, i) => columns.map((column) => column[i] as FeatureValue));
}

/** Row-major for the events of ONE entity. */
export function featuresBeforeEach(plan: ViewPlan, events: readonly EngineEvent[]): FeatureValue[][] {
  return featuresBeforeEachByEntity(plan, new Array<string>(events.length).fill(''), events);
}

/** Counts, sums and numeric aggregations with a numeric default are never null, strings or lists. */
function alwaysNumber(f: FeaturePlan): boolean {
  switch (f.def.aggregation) {
    case 'count':
    case 'sum':
    case 'count_distinct':
    case 'approx_count_distinct':
      return true;
    case 'avg':
    case 'min':
    case 'max':
    case 'stddev':
    case 'variance':
      return typeof f.def.default === 'number';
    default:
      return false;
  }
}

/**
 * Row order by (entity, ts, partition, offset): a stable counting sort by entity, then, inside each
 * entity, an insertion sort by time. Rows arrive almost in time order, so that is O(n + displacement);
 * past a budget a group goes to the general sort, so adversarial input stays O(n log n).
 */
function sortRows(input: EventColumns): { perm: Int32Array; groupStart: Int32Array } {
  const { n, entity, ts, partition, offset } = input;
  const groupStart = new Int32Array(input.entities + 1);
  for (let i = 0; i < n; i++) groupStart[entity[i]! + 1]!++;
  for (let e = 0; e < input.entities; e++) groupStart[e + 1]! += groupStart[e]!;
  const fill = groupStart.slice(0, input.entities);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[fill[entity[i]!]!++] = i;
  const before = (a: number, b: number): boolean =>
    ts[a]! < ts[b]! ||
    (ts[a] === ts[b] &&
      (partition[a]! < partition[b]! || (partition[a] === partition[b] && offset[a]! < offset[b]!)));
  for (let e = 0; e < input.entities; e++) {
    const start = groupStart[e]!;
    const end = groupStart[e + 1]!;
    let budget = 8 * (end - start) + 64;
    for (let j = start + 1; j < end && budget >= 0; j++) {
      const row = perm[j]!;
      let k = j;
      while (k > start && before(row, perm[k - 1]!)) {
        perm[k] = perm[k - 1]!;
        k--;
        budget--;
      }
      perm[k] = row;
    }
    if (budget < 0) {
      const group = Array.from(perm.subarray(start, end)).sort((a, b) =>
        before(a, b) ? -1 : before(b, a) ? 1 : 0,
      );
      perm.set(group, start);
    }
  }
  return { perm, groupStart };
}

/**
 * One feature's window sliding forward over one entity's time-ordered log: [lo, hi) is the window.
 * Reads must come at non-decreasing times; the log may grow at its end (`extend`).
 */
export class Slider implements WindowSpec {
  readonly windowMs: number;
  readonly tileMs: number;
  private lo = 0;
  private hi = 0;
  private end = 0;
  private n = 0;
  private readonly sum = new ExactAccumulator();
  private sums: number[] = [];
  private squares: number[] = [];
  /** min/max: monotonic deque of log positions (values non-increasing for max, non-decreasing for min). */
  private deque: number[] = [];
  private head = 0;
  /** count_distinct over a string column: occurrences per dictionary id, and how many are > 0. */
  private idCounts: Int32Array | null;
  private distinct = 0;
  /** count_distinct over numbers, and approx_count_distinct: occurrences per value. */
  private readonly valueCounts = new Map<Value, number>();
  private readonly nums: Float64Array | null;
  private readonly ids: Int32Array | null;
  private readonly dict: string[];

  /** Where values go: numbers unboxed into a Float64Array when the feature is always a number. */
  private readonly numOut: Float64Array | null;
  private readonly anyOut: FeatureValue[] | null;
  private readonly isCount: boolean;

  constructor(
    private readonly feature: FeaturePlan,
    private readonly ts: Float64Array,
    column: ColumnData | null,
    out: FeatureColumn,
  ) {
    this.windowMs = feature.windowMs;
    this.tileMs = feature.tileMs;
    this.numOut = out instanceof Float64Array ? out : null;
    this.anyOut = out instanceof Float64Array ? null : out;
    this.isCount = feature.acc === 'count';
    this.nums = column?.kind === 'num' ? column.values : null;
    this.ids = column?.kind === 'str' ? column.ids : null;
    this.dict = column?.kind === 'str' ? column.dict : [];
    this.idCounts = feature.acc === 'distinct' && this.ids ? new Int32Array(this.dict.length) : null;
  }

  reset(start: number, end: number): void {
    // Forget the previous entity's window (idCounts is shared across entities, so zero it by hand).
    if (this.idCounts && this.ids)
      for (let i = this.lo; i < this.hi; i++) if (this.ids[i]! >= 0) this.idCounts[this.ids[i]!] = 0;
    this.lo = start;
    this.hi = start;
    this.end = end;
    this.n = 0;
    this.sum.clear();
    this.sums = [];
    this.squares = [];
    this.deque = [];
    this.head = 0;
    this.distinct = 0;
    this.valueCounts.clear();
  }

  /** The log now ends at `end` (events appended after the last one). */
  extend(end: number): void {
    this.end = end;
  }

  /** Moves the window to [start(t), t) and writes the feature value of output row `row`. */
  emit(t: number, row: number): void {
    const ts = this.ts;
    const counted = !this.isCount;
    while (this.hi < this.end && ts[this.hi]! < t) {
      if (counted) this.add(this.hi);
      this.hi++;
    }
    const start = windowStart(t, this);
    while (this.lo < this.hi && ts[this.lo]! < start) {
      if (counted) this.remove(this.lo);
      this.lo++;
    }
    if (this.numOut) {
      if (this.isCount) this.numOut[row] = this.hi - this.lo;
      else this.numOut[row] = this.result() as number;
    } else {
      (this.anyOut as FeatureValue[])[row] = this.result();
    }
  }

  /** The column value at log position i, null when missing. */
  private value(i: number): Value | null {
    if (this.nums) {
      const v = this.nums[i]!;
      return Number.isNaN(v) ? null : v;
    }
    const id = (this.ids as Int32Array)[i]!;
    return id < 0 ? null : (this.dict[id] as string);
  }

  private add(i: number): void {
    const f = this.feature;
    switch (f.acc) {
      case 'sum': {
        const v = (this.nums as Float64Array)[i]!;
        if (Number.isNaN(v)) return;
        this.n++;
        this.sum.add(v);
        return;
      }
      case 'moments': {
        const v = (this.nums as Float64Array)[i]!;
        if (Number.isNaN(v)) return;
        this.n++;
        addExact(this.sums, v);
        addExactSquare(this.squares, v);
        return;
      }
      case 'min':
      case 'max': {
        const nums = this.nums as Float64Array;
        const v = nums[i]!;
        if (Number.isNaN(v)) return;
        this.n++;
        const dq = this.deque;
        while (dq.length > this.head) {
          const back = nums[dq[dq.length - 1]!]!;
          if (f.acc === 'max' ? back <= v : back >= v) dq.pop();
          else break;
        }
        dq.push(i);
        return;
      }
      case 'distinct':
        if (this.idCounts) {
          const id = (this.ids as Int32Array)[i]!;
          if (id >= this.idCounts.length) {
            // The dictionary grew (online reader): widen the counts.
            const wider = new Int32Array(Math.max(id + 1, this.idCounts.length * 2));
            wider.set(this.idCounts);
            this.idCounts = wider;
          }
          if (id >= 0 && this.idCounts[id]!++ === 0) this.distinct++;
          return;
        }
        this.countValue(i, 1);
        return;
      case 'hll':
        this.countValue(i, 1);
        return;
      default:
        return; // count moves pointers only; first/last/last_n read the log directly
    }
  }

  private remove(i: number): void {
    const f = this.feature;
    switch (f.acc) {
      case 'sum': {
        const v = (this.nums as Float64Array)[i]!;
        if (Number.isNaN(v)) return;
        this.n--;
        this.sum.add(-v);
        return;
      }
      case 'moments': {
        const v = (this.nums as Float64Array)[i]!;
        if (Number.isNaN(v)) return;
        this.n--;
        addExact(this.sums, -v);
        addExactSquare(this.squares, v, -1);
        return;
      }
      case 'min':
      case 'max':
        if (Number.isNaN((this.nums as Float64Array)[i]!)) return;
        this.n--;
        if (this.deque[this.head] === i) this.head++;
        if (this.head > 1024 && this.head * 2 > this.deque.length) {
          this.deque.splice(0, this.head);
          this.head = 0;
        }
        return;
      case 'distinct':
        if (this.idCounts) {
          const id = (this.ids as Int32Array)[i]!;
          if (id >= 0 && --this.idCounts[id]! === 0) this.distinct--;
          return;
        }
        this.countValue(i, -1);
        return;
      case 'hll':
        this.countValue(i, -1);
        return;
      default:
        return;
    }
  }

  private countValue(i: number, delta: 1 | -1): void {
    const v = this.value(i);
    if (v === null) return;
    const left = (this.valueCounts.get(v) ?? 0) + delta;
    if (left > 0) this.valueCounts.set(v, left);
    else this.valueCounts.delete(v);
  }

  private result(): FeatureValue {
    const f = this.feature;
    switch (f.acc) {
      case 'count':
        return this.hi - this.lo;
      case 'sum':
        return sumResult(f, this.n, this.sum.value());
      case 'moments':
        return momentsResult(f, this.n, this.sums, this.squares);
      case 'min':
      case 'max':
        return extremeResult(
          f,
          this.n,
          this.n > 0 ? (this.nums as Float64Array)[this.deque[this.head]!]! : 0,
        );
      case 'distinct':
        return this.idCounts ? this.distinct : this.valueCounts.size;
      case 'hll': {
        const registers = new Map<number, number>();
        for (const v of this.valueCounts.keys()) hllAdd(registers, v, f.precision);
        return hllEstimate(registers, f.precision);
      }
      case 'first':
        for (let i = this.lo; i < this.hi; i++) {
          const v = this.value(i);
          if (v !== null) return v;
        }
        return f.def.default;
      case 'last':
        for (let i = this.hi - 1; i >= this.lo; i--) {
          const v = this.value(i);
          if (v !== null) return v;
        }
        return f.def.default;
      case 'last_n': {
        const items: Value[] = [];
        for (let i = this.hi - 1; i >= this.lo && items.length < f.n; i--) {
          const v = this.value(i);
          if (v !== null) items.unshift(v);
        }
        return items;
      }
    }
  }
}
