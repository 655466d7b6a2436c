// Offline evaluation: for every event of an entity, the features as of its own time, before it
// (window [start(ts), ts), over the entity's whole event log). One sweep in time order with two
// pointers per feature, so a year of history costs O(n log n), not O(n^2). Values go through the
// same accumulators and `finalize` as online reads, and exact sums make the results bit-identical.
import {
  type Acc,
  emptyAcc,
  type FeatureValue,
  finalize,
  type Positioned,
  type StoredEvent,
  type Value,
} from './acc.ts';
import { addExact, addExactSquare } from './exact-sum.ts';
import { hllAdd } from './hll.ts';
import type { FeaturePlan, ViewPlan } from './plan.ts';
import type { EngineEvent } from './state.ts';
import { windowStart } from './window.ts';

/** Features before each event of ONE entity; rows follow the input order. Records repeated with the
 * same (partition, offset) are counted once (a redelivery), but each input row gets its values. */
export function featuresBeforeEach(plan: ViewPlan, events: readonly EngineEvent[]): FeatureValue[][] {
  const order = events.map((_, i) => i);
  order.sort((a, b) => compareEngine(events[a]!, events[b]!));
  const log: StoredEvent[] = [];
  for (const i of order) {
    const e = events[i]!;
    const prev = log[log.length - 1];
    if (prev && prev.ts === e.ts && prev.p === e.partition && prev.o === e.offset) continue;
    log.push({ ts: e.ts, p: e.partition, o: e.offset, v: e.values });
  }
  const sliders = plan.features.map((f) => new Slider(f, log));
  const out = new Array<FeatureValue[]>(events.length);
  for (const i of order) {
    const t = events[i]!.ts;
    const row = new Array<FeatureValue>(sliders.length);
    for (let f = 0; f < sliders.length; f++) row[f] = sliders[f]!.valueAt(t);
    out[i] = row;
  }
  return out;
}

/** Features before each event, for events of many entities (keys[i] is the entity of events[i]). */
export function featuresBeforeEachByEntity(
  plan: ViewPlan,
  keys: readonly string[],
  events: readonly EngineEvent[],
): FeatureValue[][] {
  const groups = new Map<string, number[]>();
  keys.forEach((key, i) => {
    const rows = groups.get(key);
    if (rows) rows.push(i);
    else groups.set(key, [i]);
  });
  const out = new Array<FeatureValue[]>(events.length);
  for (const rows of groups.values()) {
    const values = featuresBeforeEach(
      plan,
      rows.map((i) => events[i]!),
    );
    rows.forEach((row, j) => {
      out[row] = values[j]!;
    });
  }
  return out;
}

function compareEngine(a: EngineEvent, b: EngineEvent): number {
  return a.ts - b.ts || a.partition - b.partition || a.offset - b.offset;
}

/** One feature's window sliding forward over a time-ordered log: [lo, hi) is the window. */
class Slider {
  private lo = 0;
  private hi = 0;
  private readonly acc: Acc;
  /** min/max: monotonic deque of log indices (values non-increasing for max, non-decreasing for min). */
  private readonly deque: number[] = [];
  private head = 0;
  private nonNull = 0;

  constructor(
    private readonly feature: FeaturePlan,
    private readonly log: StoredEvent[],
  ) {
    this.acc = emptyAcc(feature.acc);
  }

  valueAt(t: number): FeatureValue {
    const log = this.log;
    while (this.hi < log.length && log[this.hi]!.ts < t) this.add(this.hi++);
    const start = windowStart(t, this.feature);
    while (this.lo < this.hi && log[this.lo]!.ts < start) this.remove(this.lo++);
    return finalize(this.feature, this.current());
  }

  private value(i: number): Value | null {
    return this.log[i]!.v[this.feature.column] ?? null;
  }

  private add(i: number): void {
    const acc = this.acc;
    if (acc.k === 'count') {
      acc.n++;
      return;
    }
    const val = this.value(i);
    if (val === null) return;
    this.nonNull++;
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
      case 'max': {
        const dq = this.deque;
        const max = acc.k === 'max';
        while (dq.length > this.head) {
          const back = this.value(dq[dq.length - 1]!) as number;
          if (max ? back <= (val as number) : back >= (val as number)) dq.pop();
          else break;
        }
        dq.push(i);
        return;
      }
      case 'distinct':
      case 'hll':
        this.counts.set(val, (this.counts.get(val) ?? 0) + 1);
        return;
      default:
        return; // first/last/last_n read the log directly
    }
  }

  private remove(i: number): void {
    const acc = this.acc;
    if (acc.k === 'count') {
      acc.n--;
      return;
    }
    const val = this.value(i);
    if (val === null) return;
    this.nonNull--;
    switch (acc.k) {
      case 'sum':
        acc.n--;
        addExact(acc.s, -(val as number));
        return;
      case 'moments':
        acc.n--;
        addExact(acc.s, -(val as number));
        addExactSquare(acc.q, val as number, -1);
        return;
      case 'min':
      case 'max':
        if (this.deque[this.head] === i) this.head++;
        if (this.head > 1024 && this.head * 2 > this.deque.length) {
          this.deque.splice(0, this.head);
          this.head = 0;
        }
        return;
      case 'distinct':
      case 'hll': {
        const left = (this.counts.get(val) ?? 0) - 1;
        if (left > 0) this.counts.set(val, left);
        else this.counts.delete(val);
        return;
      }
      default:
        return;
    }
  }

  private readonly counts = new Map<Value, number>();

  /** The accumulator of the current window, in the form `finalize` reads. */
  private current(): Acc {
    const acc = this.acc;
    switch (acc.k) {
      case 'min':
      case 'max':
        acc.n = this.nonNull;
        if (this.nonNull > 0) acc.v = this.value(this.deque[this.head]!) as number;
        return acc;
      case 'distinct':
        acc.set = this.counts;
        return acc;
      case 'hll':
        acc.regs = new Map();
        for (const val of this.counts.keys()) hllAdd(acc.regs, val, this.feature.precision);
        return acc;
      case 'first':
        acc.e = null;
        for (let i = this.lo; i < this.hi && acc.e === null; i++) acc.e = this.positioned(i);
        return acc;
      case 'last':
        acc.e = null;
        for (let i = this.hi - 1; i >= this.lo && acc.e === null; i--) acc.e = this.positioned(i);
        return acc;
      case 'last_n': {
        const items: Positioned[] = [];
        for (let i = this.hi - 1; i >= this.lo && items.length < this.feature.n; i--) {
          const item = this.positioned(i);
          if (item) items.unshift(item);
        }
        acc.items = items;
        return acc;
      }
      default:
        return acc;
    }
  }

  private positioned(i: number): Positioned | null {
    const e = this.log[i]!;
    const val = e.v[this.feature.column];
    return val === null || val === undefined ? null : { ts: e.ts, p: e.p, o: e.o, val };
  }
}
