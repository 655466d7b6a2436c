// "Features before this event", online: the ingestor reads every event's features as of its own
// time just before applying it. A plain read scans the window (O(events in it)), which is
// quadratic for a busy entity in exact mode; this reader keeps the offline sweep's sliders over a
// typed mirror of the entity's events, so in-order events cost O(1) amortized. An event inserted
// out of order (within the allowed lateness) is read by probing the sliders back in time and then
// inserted into the mirror in place: O(events between it and the newest) for count, sums,
// moments and distinct counts, O(window) for min, max and the ordered aggregations. Only a
// compaction of the state's array, or a mirror grown full, rebuilds the mirror.
import type { FeatureValue, StoredEvent, Value } from './acc.ts';
import type { ViewPlan } from './plan.ts';
import { type ColumnData, newColumns, Slider, setColumnValue } from './sliding.ts';
import { assertReadable, type EntityState, readFeatures } from './state.ts';

export class BeforeEventReader {
  private ts = new Float64Array(0);
  private columns: ColumnData[] = [];
  private dicts: Map<Value, number>[] = [];
  private sliders: { slider: Slider; index: number; out: Float64Array | FeatureValue[] }[] = [];
  /** Index in state.events of mirror position 0, the array mirrored, and how many are mirrored. */
  private base = 0;
  private array: StoredEvent[] | null = null;
  private length = 0;
  private lastMirrored: StoredEvent | undefined;
  private lastT = Number.NEGATIVE_INFINITY;
  private dirty = true;
  /** Mirror positions below this are no longer in the state (its head moved past them). */
  private dropped = 0;

  constructor(
    private readonly plan: ViewPlan,
    private readonly state: EntityState,
    /** Room for this many appended events before the mirror is rebuilt bigger. */
    private readonly extra: number,
  ) {}

  /** How many features this reader keeps a slider for (its memory grows with them). */
  get exactFeatures(): number {
    return this.plan.exactFeatures.length;
  }

  /** Feature values as of t, before any event at t: the same values as readFeatures(plan, state, t). */
  read(t: number): FeatureValue[] {
    let values: FeatureValue[];
    if (this.plan.tileGroups.length > 0) values = readFeatures(this.plan, this.state, t, 'tiled');
    else {
      // Below the read floor the state's events may be pruned: refused as readFeatures refuses it
      // (a plan of exact features only once answered from what was left).
      assertReadable(this.plan, this.state, t);
      values = new Array<FeatureValue>(this.plan.features.length);
    }
    if (this.plan.exactFeatures.length === 0) return values;
    if (this.dirty) this.rebuild();
    this.dropFront();
    const back = t < this.lastT;
    if (!back) this.lastT = t;
    for (const { slider, index, out } of this.sliders) {
      if (back) slider.probe(t, 0);
      else slider.emit(t, 0);
      values[index] = out[0] as FeatureValue;
    }
    return values;
  }

  /**
   * Call after every applyEvent on the state, with the event applied: mirrors it when it was
   * appended or inserted among the mirrored events, else marks a rebuild.
   */
  synced(event: { ts: number; partition: number; offset: number }): void {
    if (this.dirty) return;
    const events = this.state.events;
    const end = this.base + this.length;
    if (events === this.array && events.length === end) return; // nothing applied (duplicate)
    if (events !== this.array || events.length !== end + 1 || this.length >= this.ts.length) {
      this.dirty = true;
      return;
    }
    if (events[end - 1] === this.lastMirrored) {
      this.mirror(events[end]!, this.length);
      this.length++;
      this.lastMirrored = events[end];
      // Usually after every read (a no-op for the window); one read later in time may have come first.
      for (const { slider } of this.sliders) slider.inserted(this.length - 1, event.ts);
      return;
    }
    const at = insertedAt(events, this.base, end + 1, event, this.plan.needsOrder);
    if (at < 0 || events[end] !== this.lastMirrored) {
      this.dirty = true;
      return;
    }
    const k = at - this.base;
    this.ts.copyWithin(k + 1, k, this.length);
    for (const column of this.columns) {
      if (column.kind === 'num') column.values.copyWithin(k + 1, k, this.length);
      else column.ids.copyWithin(k + 1, k, this.length);
    }
    this.mirror(events[at]!, k);
    this.length++;
    for (const { slider } of this.sliders) slider.inserted(k, event.ts);
  }

  /**
   * The state's head moved past mirrored events: pruned ones (older than any window) or ones
   * max_events_per_entity dropped, which can still be inside a window. The sliders leave them out.
   * Done before each read only: between reads, inserts shift mirror positions and the sliders'
   * windows alike, so the floor (the head's current position in the mirror) stays right to apply late.
   */
  private dropFront(): void {
    const floor = this.state.head - this.base;
    if (floor <= this.dropped) return;
    this.dropped = floor;
    for (const { slider } of this.sliders) slider.dropBefore(floor);
  }

  private rebuild(): void {
    const events = this.state.events;
    this.array = events;
    this.base = this.state.head;
    this.length = events.length - this.base;
    // Room to grow by at least its own size: a mirror that fills up is rebuilt, so growing by a
    // constant would rebuild a busy entity's whole mirror every few events.
    const capacity = this.length + Math.max(this.extra, this.length) + 16;
    this.ts = new Float64Array(capacity);
    this.dicts = this.plan.columns.map(() => new Map());
    this.columns = newColumns(this.plan, capacity);
    for (let i = 0; i < this.length; i++) this.mirror(events[this.base + i]!, i);
    this.lastMirrored = events[events.length - 1];
    this.sliders = this.plan.exactFeatures.map((feature) => {
      const out = new Array<FeatureValue>(1);
      const slider = new Slider(
        feature,
        this.ts,
        feature.column >= 0 ? this.columns[feature.column]! : null,
        out,
      );
      slider.reset(0, this.length);
      return { slider, index: feature.index, out };
    });
    this.lastT = Number.NEGATIVE_INFINITY;
    this.dropped = 0;
    this.dirty = false;
  }

  private mirror(event: StoredEvent, i: number): void {
    this.ts[i] = event.ts;
    for (let c = 0; c < this.columns.length; c++)
      setColumnValue(this.columns[c]!, this.dicts[c]!, i, event.values[c]);
  }
}

/**
 * Position in events[from, to) of the stored event with this (ts, partition, offset), or -1. Ties
 * in time are in (partition, offset) order when `byPosition`, else in the order applied, the event
 * just applied last among them (state.ts insertSorted).
 */
function insertedAt(
  events: readonly StoredEvent[],
  from: number,
  to: number,
  event: { ts: number; partition: number; offset: number },
  byPosition: boolean,
): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = events[mid]!;
    const before = byPosition
      ? e.ts < event.ts ||
        (e.ts === event.ts &&
          (e.partition < event.partition || (e.partition === event.partition && e.offset < event.offset)))
      : e.ts <= event.ts;
    if (before) lo = mid + 1;
    else hi = mid;
  }
  if (!byPosition) lo--; // the last event not after it in time
  const e = events[lo];
  return e !== undefined &&
    lo >= from &&
    lo < to &&
    e.ts === event.ts &&
    e.partition === event.partition &&
    e.offset === event.offset
    ? lo
    : -1;
}
