// Offline evaluation: for every event, the features as of its own time, before it (window
// [start(ts), ts) over the entity's whole event log). Events are laid out in typed columns and
// sorted by (entity, ts, partition, offset) (row-order.ts); one pass computes every row's window
// bounds, a shared end pointer and one start pointer per distinct window (features with the same
// window share it); then each feature runs its own tight loop over those bounds (window-aggs.ts),
// writing straight to input order. O(n) for in-order input; numeric features use typed arrays
// only, with no per-row allocation. Results come from the same window arithmetic and result functions as online reads,
// and exact sums make them bit-identical. This is the hot loop of training sets, backfills and
// verification.
import type { FeatureValue, Value } from './acc.ts';
import { type FeaturePlan, readsNumbers, type ViewPlan } from './plan.ts';
import { type RowOrderInput, sortRows } from './row-order.ts';
import type { EngineEvent } from './state.ts';
import { type WindowSpec, windowStart } from './window.ts';
import { type ColumnData, type FeatureColumn, type WindowAgg, windowAgg } from './window-aggs.ts';

export type { ColumnData, FeatureColumn } from './window-aggs.ts';

/** Events as typed columns; `columns` follow plan.columns, `entity` holds dense ids < entities. */
export interface EventColumns extends RowOrderInput {
  columns: ColumnData[];
}

/**
 * Per plan column: held as numbers (a Float64Array) or by dictionary. double and timestamp values
 * are always numbers. An int64 value beyond 2^53 is an exact decimal string, so an int64 column is
 * held as numbers only where sum, avg, min, max, stddev or variance read it (the validator refuses
 * such values there); elsewhere (ids counted distinct, last, last_n) by dictionary, which keeps them.
 */
export function numericColumns(plan: ViewPlan): boolean[] {
  return plan.columns.map((name, c) => {
    const type = plan.view.source.schema[name];
    if (type === 'double' || type === 'timestamp') return true;
    if (type !== 'int64') return false;
    return plan.features.some((f) => f.column === c && readsNumbers(f));
  });
}

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
  const dicts = columns.map(() => new Map<Value, number>());
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

/** Empty typed columns for the plan's columns: as numbers or by dictionary (numericColumns). */
export function newColumns(plan: ViewPlan, capacity: number): ColumnData[] {
  return numericColumns(plan).map(
    (numeric): ColumnData =>
      numeric
        ? { kind: 'num', values: new Float64Array(capacity) }
        : { kind: 'str', ids: new Int32Array(capacity), dict: [] },
  );
}

/** Stores value `v` at row i (NaN / -1 for null or a value of another type); `dict` indexes column.dict. */
export function setColumnValue(
  column: ColumnData,
  dict: Map<Value, number>,
  i: number,
  v: Value | null | undefined,
): void {
  if (column.kind === 'num') {
    column.values[i] = typeof v === 'number' ? v : Number.NaN;
  } else if (v !== null && v !== undefined) {
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
  const { n, entities } = input;
  const out = plan.features.map(
    (f): FeatureColumn => (alwaysNumber(f) ? new Float64Array(n) : new Array<FeatureValue>(n)),
  );
  const { perm, groupStart, rowTs } = sortRows(input);
  const log = dedupLog(input, perm, groupStart, rowTs);
  const logCols = input.columns.map((c) => gatherColumn(c, log.row, log.length));
  const { ts: logTs, start: logStart } = log;

  // Window bounds of every row: [lo, hi) in log positions. hi (the events before t) is the same
  // for every feature; lo depends only on the window, so it is computed once per distinct window
  // and the features of that window sweep it one after the other.
  const hi = new Int32Array(n);
  for (let e = 0; e < entities; e++) {
    const end = logStart[e + 1]!;
    let h = logStart[e]!;
    for (let j = groupStart[e]!; j < groupStart[e + 1]!; j++) {
      const t = rowTs[j]!;
      while (h < end && logTs[h]! < t) h++;
      hi[j] = h;
    }
  }
  const lo = new Int32Array(n);
  const done = new Array<boolean>(plan.features.length).fill(false);
  plan.features.forEach((first, i) => {
    if (done[i]) return;
    const spec: WindowSpec = { windowMs: first.windowMs, tileMs: first.tileMs };
    for (let e = 0; e < entities; e++) {
      let p = logStart[e]!;
      for (let j = groupStart[e]!; j < groupStart[e + 1]!; j++) {
        const from = windowStart(rowTs[j]!, spec);
        const h = hi[j]!;
        while (p < h && logTs[p]! < from) p++;
        lo[j] = p;
      }
    }
    const windows = { rows: n, lo, hi, perm, longest: log.longest };
    plan.features.forEach((f, k) => {
      if (done[k] || f.windowMs !== spec.windowMs || f.tileMs !== spec.tileMs) return;
      done[k] = true;
      windowAgg(f, f.column >= 0 ? logCols[f.column]! : null).sweep(windows, out[k]!);
    });
  });
  return out;
}

interface Log {
  /** Input row of each log position. */
  row: Int32Array;
  ts: Float64Array;
  length: number;
  /** Entity e's events are the log positions [start[e], start[e + 1]). */
  start: Int32Array;
  /** Events of the busiest entity. */
  longest: number;
}

/**
 * The entities' event logs: the sorted rows minus repeated records (adjacent once sorted). Without
 * repeats (the usual case) the log is the sorted rows themselves, and nothing is copied.
 */
function dedupLog(input: EventColumns, perm: Int32Array, groupStart: Int32Array, rowTs: Float64Array): Log {
  const { n, entities, partition, offset } = input;
  const repeated = (j: number, start: number): boolean =>
    j > start &&
    rowTs[j] === rowTs[j - 1] &&
    partition[perm[j]!] === partition[perm[j - 1]!] &&
    offset[perm[j]!] === offset[perm[j - 1]!];
  let repeats = 0;
  let longest = 0;
  for (let e = 0; e < entities; e++) {
    const start = groupStart[e]!;
    const end = groupStart[e + 1]!;
    if (end - start > longest) longest = end - start;
    for (let j = start + 1; j < end; j++) if (rowTs[j] === rowTs[j - 1] && repeated(j, start)) repeats++;
  }
  if (repeats === 0) return { row: perm, ts: rowTs, length: n, start: groupStart, longest };
  const row = new Int32Array(n - repeats);
  const ts = new Float64Array(n - repeats);
  const start = new Int32Array(entities + 1);
  let k = 0;
  for (let e = 0; e < entities; e++) {
    start[e] = k;
    for (let j = groupStart[e]!; j < groupStart[e + 1]!; j++) {
      if (repeated(j, groupStart[e]!)) continue;
      row[k] = perm[j]!;
      ts[k] = rowTs[j]!;
      k++;
    }
  }
  start[entities] = k;
  return { row, ts, length: k, start, longest };
}

/** The values of `column` at rows logRow[0..count), in that order. */
function gatherColumn(column: ColumnData, logRow: Int32Array, count: number): ColumnData {
  if (column.kind === 'num') {
    const values = new Float64Array(count);
    const src = column.values;
    for (let k = 0; k < count; k++) values[k] = src[logRow[k]!]!;
    return { kind: 'num', values };
  }
  const ids = new Int32Array(logRow.length);
  const src = column.ids;
  for (let k = 0; k < count; k++) ids[k] = src[logRow[k]!]!;
  return { kind: 'str', ids, dict: column.dict };
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

/** Aggregations whose window can take or lose an event at any position (no order kept). */
const ORDER_FREE = new Set(['count', 'sum', 'moments', 'distinct', 'hll']);

/**
 * One feature's window sliding forward over one entity's time-ordered log (the online
 * before-event reader): [lo, hi) is the window as of the last emit. Emits come at non-decreasing
 * times; `probe` reads at an earlier time without moving the window, and `inserted` takes an event
 * placed inside the log (an out-of-order arrival) without starting over.
 */
export class Slider implements WindowSpec {
  readonly windowMs: number;
  readonly tileMs: number;
  private lo = 0;
  private hi = 0;
  private end = 0;
  /** Log positions below this were dropped (dropBefore): no window reaches under it. */
  private floor = 0;
  /** Time of the last emit: [lo, hi) holds the events in [start(last), last). */
  private last = Number.NEGATIVE_INFINITY;
  /** An order-keeping aggregate whose indices an insertion shifted: rebuilt at the next emit. */
  private stale = false;
  private readonly agg: WindowAgg;
  private readonly orderFree: boolean;
  /** Order-keeping aggregations answer probes from a second aggregate over the probed window. */
  private scratch: { agg: WindowAgg; lo: number; hi: number } | null = null;

  constructor(
    private readonly feature: FeaturePlan,
    private readonly ts: Float64Array,
    private readonly column: ColumnData | null,
    private readonly out: FeatureColumn,
  ) {
    this.windowMs = feature.windowMs;
    this.tileMs = feature.tileMs;
    this.agg = windowAgg(feature, column);
    this.orderFree = feature.acc === 'count' || column === null || ORDER_FREE.has(feature.acc);
  }

  reset(start: number, end: number): void {
    this.agg.clear(this.lo, this.hi);
    this.lo = start;
    this.hi = start;
    this.end = end;
    this.floor = start;
    this.last = Number.NEGATIVE_INFINITY;
    this.stale = false;
  }

  /** Moves the window to [start(t), t) and writes the feature value of output row `row`; t >= the last emit. */
  emit(t: number, row: number): void {
    const ts = this.ts;
    if (this.stale) {
      this.agg.clear(this.lo, this.hi);
      this.lo = lowerBound(ts, windowStart(t, this), this.floor, this.end);
      this.hi = this.lo;
      this.stale = false;
    }
    while (this.hi < this.end && ts[this.hi]! < t) this.agg.add(this.hi++);
    const start = windowStart(t, this);
    while (this.lo < this.hi && ts[this.lo]! < start) this.agg.remove(this.lo++);
    this.last = t;
    this.out[row] = this.agg.value() as number;
  }

  /**
   * Writes the value as of t, earlier than the last emit, and leaves the window where it was: an
   * order-free aggregate steps back and forth over the events between the two windows (few, when
   * t is within the allowed lateness of the last emit); the others aggregate [start(t), t) afresh.
   */
  probe(t: number, row: number): void {
    const ts = this.ts;
    const lo = lowerBound(ts, windowStart(t, this), this.floor, this.end);
    const hi = lowerBound(ts, t, lo, this.end);
    if (this.orderFree && !this.stale) {
      const agg = this.agg;
      // Adds first: an aggregate never passes through a negative count.
      for (let i = lo; i < this.lo; i++) agg.add(i);
      for (let i = hi; i < this.hi; i++) agg.remove(i);
      this.out[row] = agg.value() as number;
      for (let i = hi; i < this.hi; i++) agg.add(i);
      for (let i = lo; i < this.lo; i++) agg.remove(i);
      return;
    }
    if (this.agg.scans) {
      // min and max: one pass over the probed window, cheaper than a second aggregate's deque.
      this.out[row] = this.agg.scan(lo, hi) as number;
      return;
    }
    let scratch = this.scratch;
    if (scratch === null) {
      scratch = { agg: windowAgg(this.feature, this.column), lo: 0, hi: 0 };
      this.scratch = scratch;
    }
    scratch.agg.clear(scratch.lo, scratch.hi);
    for (let i = lo; i < hi; i++) scratch.agg.add(i);
    scratch.lo = lo;
    scratch.hi = hi;
    this.out[row] = scratch.agg.value() as number;
  }

  /**
   * The log's positions below k are gone (the state dropped its oldest events, e.g. past
   * max_events_per_entity, while they may still be inside the window): they leave the aggregate,
   * oldest first as a forward move would remove them, and no later read reaches under k.
   */
  dropBefore(k: number): void {
    if (k <= this.floor) return;
    this.floor = k;
    if (this.stale) return; // the next emit rebuilds the window from the floor
    while (this.lo < this.hi && this.lo < k) this.agg.remove(this.lo++);
    if (this.lo < k) {
      // The window was empty below k: it starts there.
      this.lo = k;
      this.hi = Math.max(this.hi, k);
    }
  }

  /**
   * An event at time `t` was inserted at log position k (appended when k is the old end; else the
   * log's typed columns already shifted one place right from k). The window keeps meaning [start(last), last): positions from k on
   * moved by one, and the event joins the aggregate when it falls inside.
   */
  inserted(k: number, t: number): void {
    this.end++;
    const scratch = this.scratch;
    if (scratch !== null) {
      // Its indices may point at shifted events: make its next clear() a full one.
      scratch.agg.clear(scratch.lo, Math.min(scratch.hi + 1, this.end));
      scratch.lo = 0;
      scratch.hi = 0;
    }
    if (t >= this.last) return; // at or after hi: the window's positions did not move
    if (t < windowStart(this.last, this)) {
      this.lo++;
      this.hi++;
    } else {
      this.hi++;
      if (this.orderFree) this.agg.add(k);
    }
    if (!this.orderFree) this.stale = true;
  }
}

/** The first position in [from, to) whose time is >= bound (to when none). */
function lowerBound(ts: Float64Array, bound: number, from: number, to: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ts[mid]! < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
