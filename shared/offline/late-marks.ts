// The late marks of a view in the offline store: the source records the ingestor refused as `late`
// for that view, so never applied online. The raw log holds them all the same (the flusher cannot
// judge lateness: that takes the entity's state at the time), so point-in-time retrieval drops the
// records named here to answer what online served (docs/offline-retrieval.md).
//
// `<view>/late/date=YYYY-MM-DD/<version>.parquet`: one object per flush version and UTC day of the
// late events' own times (the day of their raw-log folder), so a reader fetches only the days it
// reads raw events of. Columns: source_topic, source_partition, source_offset, event_timestamp.
import { TesseraError } from '../errors.ts';
import { EVENT_TIMESTAMP, SOURCE_OFFSET, SOURCE_PARTITION } from './feature-columns.ts';
import type { ObjectStore } from './object-store.ts';
import { type ColumnSpec, readParquet, type WriteOptions, writeParquet } from './parquet.ts';
import { dayFolder, numericColumn, utcDay } from './raw-log.ts';

export const SOURCE_TOPIC = 'source_topic';

export const LATE_MARK_COLUMNS: readonly ColumnSpec[] = [
  { name: SOURCE_TOPIC, type: 'string' },
  { name: SOURCE_PARTITION, type: 'int32' },
  { name: SOURCE_OFFSET, type: 'int64' },
  { name: EVENT_TIMESTAMP, type: 'timestamp_ms' },
];

/** One source record a view refused as late. */
export interface LateMark {
  sourceTopic: string;
  partition: number;
  offset: number;
  /** The event's own time, epoch ms (a fraction is dropped in the file). */
  ts: number;
}

/** `<view>/late/`: every late-mark object of a view is under it. */
export function lateMarksPrefix(view: string): string {
  return `${view}/late/`;
}

/** Object key of the late marks a flush version wrote for one day. */
export function lateMarksKey(view: string, day: string, version: string): string {
  return `${lateMarksPrefix(view)}date=${day}/${version}.parquet`;
}

/**
 * The objects holding `marks` for a flush version, one per UTC day of their events, rows sorted by
 * topic, partition and offset: the same marks give the same keys and bytes (a redone flush
 * rewrites the same objects).
 */
export function lateMarkFiles(
  view: string,
  version: string,
  marks: readonly LateMark[],
  options: WriteOptions = {},
): { key: string; body: Uint8Array; rows: number }[] {
  const byDay = new Map<string, LateMark[]>();
  for (const mark of marks) {
    const day = utcDay(mark.ts);
    const list = byDay.get(day);
    if (list) list.push(mark);
    else byDay.set(day, [mark]);
  }
  return [...byDay]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([day, list]) => {
      list.sort(
        (a, b) =>
          (a.sourceTopic < b.sourceTopic ? -1 : a.sourceTopic > b.sourceTopic ? 1 : 0) ||
          a.partition - b.partition ||
          a.offset - b.offset,
      );
      const body = writeParquet(
        LATE_MARK_COLUMNS,
        {
          [SOURCE_TOPIC]: { values: list.map((m) => m.sourceTopic) },
          [SOURCE_PARTITION]: { values: Int32Array.from(list, (m) => m.partition) },
          [SOURCE_OFFSET]: { values: list.map((m) => m.offset) },
          [EVENT_TIMESTAMP]: { values: list.map((m) => Math.floor(m.ts)) },
        },
        list.length,
        options,
      );
      return { key: lateMarksKey(view, day, version), body, rows: list.length };
    });
}

/** Late-mark objects fetched at once: S3 latency overlaps, memory stays a few objects. */
const FETCHES = 8;

/**
 * The source records a view refused as late, per partition: offsets sorted, each with its event's
 * time (whole ms), so a raw event is matched by position AND time. A position alone could name
 * another event: a source moved to another topic, or a topic deleted and made again, restarts its
 * offsets. Typed arrays, not Sets: 16 bytes a mark, and no Set's 2^24 entry limit.
 */
export class LateSet {
  private readonly parts = new Map<number, { offsets: Float64Array; ts: Float64Array }>();
  /** Objects read and marks in them (a mark kept twice counts twice). */
  objects = 0;
  marks = 0;

  /** `marks`: per partition, offsets and their events' times (whole ms), in any order. */
  constructor(marks: Map<number, { offsets: number[]; ts: number[] }> = new Map()) {
    for (const [partition, { offsets, ts }] of marks) {
      const order = Uint32Array.from(offsets.keys()).sort(
        (a, b) => offsets[a]! - offsets[b]! || ts[a]! - ts[b]!,
      );
      this.parts.set(partition, {
        offsets: Float64Array.from(order, (i) => offsets[i]!),
        ts: Float64Array.from(order, (i) => ts[i]!),
      });
    }
  }

  /** Whether the raw event at (partition, offset) with event time `ts` (epoch ms) was refused as late. */
  has(partition: number, offset: number, ts: number): boolean {
    const part = this.parts.get(partition);
    if (!part) return false;
    const { offsets } = part;
    let lo = 0;
    let hi = offsets.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (offsets[mid]! < offset) lo = mid + 1;
      else hi = mid;
    }
    const whole = Math.floor(ts);
    for (let i = lo; i < offsets.length && offsets[i] === offset; i++) if (part.ts[i] === whole) return true;
    return false;
  }

  /** Every mark as `partition/offset`, sorted (tests, diagnostics). */
  positions(): string[] {
    const out: string[] = [];
    for (const [p, { offsets }] of this.parts) for (const o of offsets) out.push(`${p}/${o}`);
    return [...new Set(out)].sort();
  }
}

/**
 * Reads the late marks of `view` for the days `needsDay` accepts (given the day's start, epoch ms):
 * the same test that picks the raw-log objects, so every raw event read can be checked. Objects
 * outside a `date=` folder are ignored, as in the raw log.
 */
export async function readLateMarks(
  store: ObjectStore,
  view: string,
  needsDay: (dayStart: number) => boolean,
  signal?: AbortSignal,
): Promise<LateSet> {
  const keys: string[] = [];
  for (const object of await store.list(lateMarksPrefix(view))) {
    const folder = dayFolder(object.key);
    if (folder && needsDay(folder.dayStart)) keys.push(object.key);
  }
  const byPartition = new Map<number, { offsets: number[]; ts: number[] }>();
  let marks = 0;
  const readOne = (key: string, bytes: Uint8Array) => {
    const where = `${store.location}/${key}`;
    const table = readParquet(bytes);
    for (const spec of LATE_MARK_COLUMNS.slice(1))
      if (!table.getChild(spec.name))
        throw new TesseraError(
          'INVALID_ARGUMENT',
          `${where} has no column ${spec.name}; late marks need ${LATE_MARK_COLUMNS.slice(1)
            .map((c) => c.name)
            .join(', ')}`,
        );
    const partition = numericColumn(table, SOURCE_PARTITION);
    const offset = numericColumn(table, SOURCE_OFFSET);
    const ts = numericColumn(table, EVENT_TIMESTAMP);
    for (let i = 0; i < table.numRows; i++) {
      let part = byPartition.get(partition[i]!);
      if (!part) {
        part = { offsets: [], ts: [] };
        byPartition.set(partition[i]!, part);
      }
      part.offsets.push(offset[i]!);
      part.ts.push(Math.floor(ts[i]!));
    }
    marks += table.numRows;
  };
  for (let k = 0; k < keys.length; k += FETCHES) {
    signal?.throwIfAborted();
    const batch = keys.slice(k, k + FETCHES);
    const bodies = await Promise.all(batch.map((key) => store.get(key)));
    for (const [i, key] of batch.entries()) readOne(key, bodies[i]!);
  }
  const set = new LateSet(byPartition);
  set.objects = keys.length;
  set.marks = marks;
  return set;
}
