// Features as of arbitrary query times, computed with the engine's public API only: per entity,
// its events are applied in time order (applyEvent) and each query time t is read (a
// BeforeEventReader, the engine's O(1)-amortized "before" read) once every event before t is in
// and none at or after t is. The window arithmetic stays in shared/engine.
import {
  applyEvent,
  BeforeEventReader,
  type EngineEvent,
  emptyState,
  type FeatureValue,
  type Value,
  type ViewPlan,
  windowStart,
} from '../engine/index.ts';
import type { ShardEvents } from './event-shards.ts';

/** Where answers go: feature values of one query row. */
export type AnswerSink = (row: number, values: readonly FeatureValue[]) => void;

/** Queries of one shard: row numbers (of the output), their entity ids and times. */
export interface ShardQueries {
  rows: Int32Array;
  entity: Int32Array;
  ts: Float64Array;
}

/** The earliest event time any read of `plan` as of t can see: min over features of start(t). */
export function earliestNeeded(plan: ViewPlan, t: number): number {
  let min = t;
  for (const f of plan.features) min = Math.min(min, windowStart(t, f));
  return min;
}

/** How long answering runs before it lets the event loop in (a Ctrl-C handler, progress). */
const YIELD_EVERY_MS = 100;

/**
 * Answers every query of a shard. `plan` must not cap events per entity (offline reads see the
 * whole log). Events repeated with the same (partition, offset) count once. `dicts[c]` decodes the
 * ids of dictionary column c. Calls `onEntity` with the number of queries answered, per entity.
 * Between entities it yields about every 100 ms and stops with `signal`'s reason once aborted: a
 * shard takes seconds, and Ctrl-C could not be handled (the spill files removed) before its end.
 */
export async function answerShard(
  plan: ViewPlan,
  events: ShardEvents,
  dicts: readonly (readonly Value[] | null)[],
  queries: ShardQueries,
  sink: AnswerSink,
  onEntity?: (answered: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  const ev = groupByEntity(events.entity, events.n, (a, b) => {
    const { ts, partition, offset } = events;
    return ts[a]! - ts[b]! || partition[a]! - partition[b]! || offset[a]! - offset[b]!;
  });
  const q = groupByEntity(queries.entity, queries.rows.length, (a, b) => queries.ts[a]! - queries.ts[b]!);
  const { ts, partition, offset, columns } = events;
  const values = (i: number): (Value | null)[] =>
    columns.map((col, c) => {
      const v = col[i]!;
      if (col instanceof Float64Array) return Number.isNaN(v) ? null : v;
      return v < 0 ? null : dicts[c]![v]!;
    });

  let yielded = performance.now();
  for (const [entity, qStart, qEnd] of q.groups) {
    if (performance.now() - yielded > YIELD_EVERY_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      signal?.throwIfAborted();
      yielded = performance.now();
    }
    const group = ev.index.get(entity);
    const eStart = group === undefined ? 0 : ev.start[group]!;
    const eEnd = group === undefined ? 0 : ev.start[group + 1]!;
    const state = emptyState(plan);
    const reader = new BeforeEventReader(plan, state, eEnd - eStart);
    let j = eStart;
    let prev = -1;
    let seq = 0;
    for (let k = qStart; k < qEnd; k++) {
      const query = q.perm[k]!;
      const t = queries.ts[query]!;
      // Events before every window of this read (and of the later, later-in-time reads) are never
      // read: skip them instead of applying them, e.g. across a long gap between two labels.
      const floor = earliestNeeded(plan, t);
      while (j < eEnd && ts[ev.perm[j]!]! < floor) j++;
      for (; j < eEnd && ts[ev.perm[j]!]! < t; j++) {
        const i = ev.perm[j]!;
        // The same Kafka record twice (a redelivery written twice): sorted next to each other.
        if (prev >= 0 && partition[prev] === partition[i] && offset[prev] === offset[i] && ts[prev] === ts[i])
          continue;
        prev = i;
        // Events go in in time order, so the engine's own per-partition offset check must not
        // judge them: a sequence number keeps (ts, partition, offset) order and never repeats.
        const event: EngineEvent = { ts: ts[i]!, partition: 0, offset: seq++, values: values(i) };
        applyEvent(plan, state, event);
        reader.synced(event);
      }
      sink(queries.rows[query]!, reader.read(t));
    }
    onEntity?.(qEnd - qStart);
  }
}

interface Groups {
  /** Row numbers sorted by (entity, comparator). */
  perm: Int32Array;
  /** [entity, start, end) ranges of perm, in order of first appearance. */
  groups: [number, number, number][];
  /** Group number of an entity; `start[g]..start[g + 1]` is its range. */
  index: Map<number, number>;
  start: Int32Array;
}

/**
 * Groups rows by entity (a counting sort, stable), then orders each group with `compare`. Input
 * that is nearly sorted (a raw log read day by day) costs O(n + displacement) by insertion sort;
 * a group past its budget falls back to the general sort, so bad input stays O(n log n).
 */
function groupByEntity(entity: Int32Array, n: number, compare: (a: number, b: number) => number): Groups {
  const index = new Map<number, number>();
  const sizes: number[] = [];
  for (let i = 0; i < n; i++) {
    const e = entity[i]!;
    const g = index.get(e);
    if (g === undefined) {
      index.set(e, sizes.length);
      sizes.push(1);
    } else sizes[g]!++;
  }
  const start = new Int32Array(sizes.length + 1);
  for (let g = 0; g < sizes.length; g++) start[g + 1] = start[g]! + sizes[g]!;
  const fill = start.slice(0, sizes.length);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[fill[index.get(entity[i]!)!]!++] = i;
  const groups: [number, number, number][] = [];
  for (const [e, g] of index) {
    const lo = start[g]!;
    const hi = start[g + 1]!;
    let budget = 8 * (hi - lo) + 64;
    for (let j = lo + 1; j < hi && budget >= 0; j++) {
      const row = perm[j]!;
      let k = j;
      while (k > lo && compare(row, perm[k - 1]!) < 0) {
        perm[k] = perm[k - 1]!;
        k--;
        budget--;
      }
      perm[k] = row;
    }
    if (budget < 0) perm.subarray(lo, hi).sort(compare);
    groups.push([e, lo, hi]);
  }
  return { perm, groups, index, start };
}
