// A compact set of Kafka offsets as sorted, disjoint, non-adjacent closed intervals [first, last].
// The flusher keeps one per source partition to know which training rows it has already written:
// rows are dense per partition except for dead-lettered events, so the set stays a few intervals.

export type Range = readonly [first: number, last: number];

export class OffsetRanges {
  private ranges: [number, number][];

  constructor(ranges: readonly Range[] = []) {
    this.ranges = [];
    for (const [a, b] of ranges) this.addRange(a, b);
  }

  /** True when `offset` is in the set: O(log n). */
  has(offset: number): boolean {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [a, b] = this.ranges[mid]!;
      if (offset < a) hi = mid - 1;
      else if (offset > b) lo = mid + 1;
      else return true;
    }
    return false;
  }

  add(offset: number): void {
    this.addRange(offset, offset);
  }

  /** Adds [first, last], merging with overlapping or adjacent intervals. */
  addRange(first: number, last: number): void {
    if (last < first) return;
    const out: [number, number][] = [];
    let a = first;
    let b = last;
    let placed = false;
    for (const r of this.ranges) {
      if (r[1] < a - 1) out.push(r);
      else if (r[0] > b + 1) {
        if (!placed) {
          out.push([a, b]);
          placed = true;
        }
        out.push(r);
      } else {
        a = Math.min(a, r[0]);
        b = Math.max(b, r[1]);
      }
    }
    if (!placed) out.push([a, b]);
    this.ranges = out;
  }

  /** Adds many offsets in one pass (sorted first): cheaper than add() per offset for a flush. */
  addAll(offsets: Iterable<number>): void {
    const sorted = Float64Array.from(offsets).sort();
    let i = 0;
    const merged: [number, number][] = [];
    while (i < sorted.length) {
      const a = sorted[i]!;
      let b = a;
      while (i + 1 < sorted.length && sorted[i + 1]! <= b + 1) b = Math.max(b, sorted[++i]!);
      merged.push([a, b]);
      i++;
    }
    if (this.ranges.length === 0) this.ranges = merged;
    else for (const [a, b] of merged) this.addRange(a, b);
  }

  /** Number of offsets in the set. */
  get size(): number {
    return this.ranges.reduce((n, [a, b]) => n + b - a + 1, 0);
  }

  toJSON(): Range[] {
    return this.ranges.map(([a, b]) => [a, b] as const);
  }
}
