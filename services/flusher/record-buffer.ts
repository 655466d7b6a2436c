// The Kafka records the flusher holds between flushes, per topic-partition in offset order. Keeps
// the raw bytes only (parsing waits for the flush) so a full buffer stays a few hundred bytes per
// record. Records below a partition's position (already written, or already buffered after a
// rebalance re-fetch) are dropped on arrival.
import type { Positions } from './flusher-state.ts';

export interface BufferedRecord {
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  /** Rows the record carries (a `features.rows` record holds several); 1 when absent. */
  rows?: number;
}

const weight = (r: BufferedRecord): number => r.rows ?? 1;
const weightOf = (list: readonly BufferedRecord[], upTo: number): number => {
  let n = 0;
  for (let i = 0; i < upTo; i++) n += weight(list[i]!);
  return n;
};

export class RecordBuffer {
  private readonly parts = new Map<string, Map<number, BufferedRecord[]>>();
  /** Next offset expected per topic-partition (written position, then advanced by buffering). */
  private readonly next = new Map<string, Map<number, number>>();
  private count = 0;

  constructor(private readonly written: () => Positions) {}

  /** Rows buffered: records, with a multi-row record counted as its rows. */
  get size(): number {
    return this.count;
  }

  /** Next offset this buffer expects for the partition: everything below is buffered or written. */
  position(topic: string, partition: number): number {
    return this.next.get(topic)?.get(partition) ?? this.written()[topic]?.[String(partition)] ?? 0;
  }

  /** Appends a fetched batch; returns how many records were new (the rest were duplicates). */
  append(topic: string, partition: number, records: readonly BufferedRecord[]): number {
    let at = this.position(topic, partition);
    let list = this.parts.get(topic)?.get(partition);
    let added = 0;
    for (const r of records) {
      if (r.offset < at) continue;
      if (!list) {
        list = [];
        if (!this.parts.has(topic)) this.parts.set(topic, new Map());
        this.parts.get(topic)!.set(partition, list);
      }
      list.push(r);
      at = r.offset + 1;
      added++;
      this.count += weight(r);
    }
    if (!this.next.has(topic)) this.next.set(topic, new Map());
    this.next.get(topic)!.set(partition, at);
    return added;
  }

  /** The buffered positions of every partition seen: a flush of everything buffered up to now. */
  cut(): Positions {
    const out: Positions = {};
    for (const [topic, parts] of this.next) {
      out[topic] = {};
      for (const [p, at] of parts) out[topic][String(p)] = at;
    }
    return out;
  }

  /** True when every partition of the cut has been buffered up to its end. */
  reaches(cut: Positions): boolean {
    for (const [topic, parts] of Object.entries(cut))
      for (const [p, end] of Object.entries(parts)) if (this.position(topic, Number(p)) < end) return false;
    return true;
  }

  /** Records of one topic below the cut, per partition, in offset order. */
  take(topic: string, cut: Positions): Map<number, BufferedRecord[]> {
    const out = new Map<number, BufferedRecord[]>();
    for (const [p, list] of this.parts.get(topic) ?? []) {
      const end = cut[topic]?.[String(p)] ?? 0;
      const upTo = upperBound(list, end);
      if (upTo > 0) out.set(p, list.slice(0, upTo));
    }
    return out;
  }

  /** Drops every record below the cut (after the flush that wrote them succeeded). */
  release(cut: Positions): void {
    for (const [topic, parts] of Object.entries(cut)) {
      for (const [p, end] of Object.entries(parts)) {
        const list = this.parts.get(topic)?.get(Number(p));
        if (!list) continue;
        const upTo = upperBound(list, end);
        this.count -= weightOf(list, upTo);
        list.splice(0, upTo);
      }
    }
  }

  /** Forgets a partition (revoked in a rebalance): it is re-read from the written position. */
  forget(topic: string, partition: number): void {
    const list = this.parts.get(topic)?.get(partition);
    if (list) this.count -= weightOf(list, list.length);
    this.parts.get(topic)?.delete(partition);
    this.next.get(topic)?.delete(partition);
  }

  topics(): string[] {
    return [...this.parts.keys()];
  }
}

/** Index of the first record with offset >= end. */
function upperBound(list: readonly BufferedRecord[], end: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.offset < end) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
