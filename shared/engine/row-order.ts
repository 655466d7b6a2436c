// The order the offline sweep visits rows in: by entity, then (ts, partition, offset). A stable
// counting sort by entity (ids are dense), then an insertion sort inside each entity on the
// gathered times, which sit next to each other in memory: rows arrive almost in time order, so
// that is O(n + displacement). Past a budget a group goes to the general sort, so adversarial
// input stays O(n log n).

export interface RowOrderInput {
  n: number;
  entities: number;
  entity: Int32Array;
  ts: Float64Array;
  partition: Int32Array;
  offset: Float64Array;
}

export interface RowOrder {
  /** perm[j] is the input row at sorted position j. */
  perm: Int32Array;
  /** Entity e's rows are the sorted positions [groupStart[e], groupStart[e + 1]). */
  groupStart: Int32Array;
  /** rowTs[j] = ts[perm[j]]. */
  rowTs: Float64Array;
}

export function sortRows(input: RowOrderInput): RowOrder {
  const { n, entities, entity, ts, partition, offset } = input;
  const groupStart = new Int32Array(entities + 1);
  for (let i = 0; i < n; i++) groupStart[entity[i]! + 1]!++;
  for (let e = 0; e < entities; e++) groupStart[e + 1]! += groupStart[e]!;
  const fill = groupStart.slice(0, entities);
  const perm = new Int32Array(n);
  const rowTs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const at = fill[entity[i]!]!++;
    perm[at] = i;
    rowTs[at] = ts[i]!;
  }
  // Ties on time are rare: only they look up partition and offset (random access).
  const before = (t: number, r: number, u: number, s: number): boolean =>
    t < u ||
    (t === u &&
      (partition[r]! < partition[s]! || (partition[r] === partition[s] && offset[r]! < offset[s]!)));
  for (let e = 0; e < entities; e++) {
    const start = groupStart[e]!;
    const end = groupStart[e + 1]!;
    let budget = 8 * (end - start) + 64;
    for (let j = start + 1; j < end && budget >= 0; j++) {
      const t = rowTs[j]!;
      if (t > rowTs[j - 1]!) continue;
      const row = perm[j]!;
      let k = j;
      while (k > start && before(t, row, rowTs[k - 1]!, perm[k - 1]!)) {
        perm[k] = perm[k - 1]!;
        rowTs[k] = rowTs[k - 1]!;
        k--;
        budget--;
      }
      perm[k] = row;
      rowTs[k] = t;
    }
    if (budget < 0) {
      const group = Array.from(perm.subarray(start, end)).sort((a, b) =>
        before(ts[a]!, a, ts[b]!, b) ? -1 : before(ts[b]!, b, ts[a]!, a) ? 1 : 0,
      );
      for (let j = start; j < end; j++) {
        perm[j] = group[j - start]!;
        rowTs[j] = ts[perm[j]!]!;
      }
    }
  }
  return { perm, groupStart, rowTs };
}
