// Feature reads straight from a state's bytes, for the online server: one pass over the encoded
// state (docs/state-format.md) fills typed scratch columns (event times, values, tile fields) that
// are reused from entity to entity, and each feature's window is accumulated from them, as
// readFeatures does over a decoded state. Decoding into EntityState made one object per event and
// tile (a profile of a batch lookup: ~25 % of its CPU, and most of its garbage).
// The delta records stored beside the state (field `d`) are replayed into the same columns as
// raw events, as applyDeltas runs applyEvent on the decoded state (which may fold old ones into
// tiles instead: the same values, every accumulator being exact): the ingestor appends records
// for most active entities, so without them most lookups would decode.
// Answers equal readFeatures(plan, decodeStoredState(plan, key, bytes, delta), t) exactly
// (property-tested in test/unit/engine/fast-read.test.ts). What it does not cover it refuses, and
// the caller decodes: plans with hll, first, last or last_n features (`stateBytesReader` returns
// null), and bytes whose strings sit in a numeric column or whose dictionary repeats a string, or
// an entity with offsets for more than 64 partitions (`load` returns false). Bytes that do not
// decode, and records applyDeltas refuses, make `load` throw; decoding then names the problem.
import type { FeatureValue } from './acc.ts';
import { below, extremeResult, momentsResult, sumResult } from './acc.ts';
import { corrupt } from './bytes.ts';
import { FORMAT_VERSION, TAG_CENTS, TAG_F64, TAG_NEG_INT, TAG_NULL, TAG_STRING, TAG_UINT } from './codec.ts';
import { DELTA_TAG } from './delta.ts';
import { addExact, addExactSquare, ExactAccumulator } from './exact-sum.ts';
import { type AccKind, type FeaturePlan, readsNumbers, type ViewPlan } from './plan.ts';
import { rawKeepFrom, tileCutoff } from './state.ts';
import { floorTo, lowerBound, windowStart } from './window.ts';

/** What a scratch value cell holds: its kind, and the number (or dictionary index) in a parallel array. */
const NULL = 0;
const NUM = 1;
const STR = 2;

const COVERED: ReadonlySet<AccKind> = new Set<AccKind>(['count', 'sum', 'min', 'max', 'distinct', 'moments']);

// ignoreBOM keeps a leading U+FEFF as part of the string, as the decoders in codec.ts do: one
// byte string is always one string, so equal bytes and equal strings are the same test.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Partitions whose last offsets a replay tracks (looked up by a linear scan). An entity's events
 * come from one partition of its source, a few after repartitioning; more are decoded instead.
 */
const MAX_PARTITIONS = 64;

/**
 * A reader for one view, or null when the view has a feature kind the fast path does not cover, or
 * a bool column (booleans are neither numbers nor dictionary strings here: every load would
 * throw on their value tags and fall back to decoding).
 */
export function stateBytesReader(plan: ViewPlan): StateBytesReader | null {
  const covered =
    plan.features.every((f) => COVERED.has(f.acc)) &&
    plan.columns.every((c) => plan.view.source.schema[c] !== 'bool');
  return covered ? new StateBytesReader(plan) : null;
}

/**
 * Reads one view's states from their bytes and delta records. Not reentrant: `load` then
 * `newest`, `floor` and `read` of that state, synchronously, before the next `load` (the scratch
 * columns are shared).
 */
export class StateBytesReader {
  private readonly plan: ViewPlan;
  private readonly columns: number;
  /** Per column: read by a numeric feature (a string there is not covered). */
  private readonly numeric: boolean[];
  private readonly hasDistinct: boolean;
  /** Per feature: its tile group (-1 in exact mode). */
  private readonly groupOf: number[];

  /** The bytes being parsed: the state's, then the delta records'. */
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private stateBuf: Uint8Array = new Uint8Array(0);
  private deltaBuf: Uint8Array = new Uint8Array(0);
  private hasClock = false;
  private clock = 0;
  /**
   * The dictionary: the state's strings, then those of the records that are new to it (so one
   * string has one index across state and records), each in the bytes of `strSrc` (0 the state,
   * 1 the records).
   */
  private nStrings = 0;
  private strStart = new Int32Array(16);
  private strLen = new Int32Array(16);
  private strHash = new Int32Array(16);
  private strSrc = new Uint8Array(16);
  /** Strings a value's index may name: the state's, or the current record's own. */
  private valueStrings = 0;
  /** The current record's string i is dictionary string strMap[i]. */
  private strMap = new Int32Array(16);

  /** Events evHead..nEvents are live (a replay prunes and caps the front, as dropFront does). */
  private nEvents = 0;
  private evHead = 0;
  private evTs = new Float64Array(64);
  /** Event i's value of column c at i * columns + c: kind, and number or dictionary index. */
  private evKind = new Uint8Array(64);
  private evNum = new Float64Array(64);
  /** The event a replay is applying: its values, as an event row. */
  private readonly rowKind: Uint8Array;
  private readonly rowNum: Float64Array;

  /** Last applied offset per partition (a replay refuses a duplicate, as applyDeltas does). */
  private nOffsets = 0;
  private offPartition = new Float64Array(4);
  private offOffset = new Float64Array(4);

  /**
   * Per tile group: tiles (tileHead..tileCount live), their starts, and where each (tile, slot)
   * accumulator sits in `pool`.
   */
  private readonly tileCount: number[];
  private readonly tileHead: number[];
  private readonly tileStart: Float64Array[];
  private readonly accAt: Int32Array[];
  /** Tile accumulators' fields, one after another (layouts in `readAcc`). */
  private pool = new Float64Array(256);
  private poolLen = 0;

  // Accumulation scratch.
  private readonly exact = new ExactAccumulator();
  private readonly sums: number[] = [];
  private readonly squares: number[] = [];
  private seen = new Int32Array(16);
  private seenMark = 0;
  private readonly seenNumbers = new Set<number>();
  private readonly dupes = new Map<number, number>();

  constructor(plan: ViewPlan) {
    this.plan = plan;
    this.columns = plan.columns.length;
    this.numeric = plan.columns.map(() => false);
    for (const f of plan.features) if (readsNumbers(f)) this.numeric[f.column] = true;
    this.hasDistinct = plan.features.some((f) => f.acc === 'distinct');
    this.groupOf = plan.features.map((f) => plan.tileGroups.findIndex((g) => g.features.includes(f)));
    this.rowKind = new Uint8Array(this.columns);
    this.rowNum = new Float64Array(this.columns);
    this.tileCount = plan.tileGroups.map(() => 0);
    this.tileHead = plan.tileGroups.map(() => 0);
    this.tileStart = plan.tileGroups.map(() => new Float64Array(16));
    this.accAt = plan.tileGroups.map((g) => new Int32Array(16 * g.features.length));
  }

  /**
   * Parses a state's bytes, then replays its delta records (`delta`, concatenated; null or empty
   * when none), into the scratch columns. False when they hold something this reader does not
   * cover (decode them instead); throws STATE_CORRUPT on bytes that do not decode and on records
   * applyDeltas refuses (another layout, a late or repeated event).
   */
  load(bytes: Uint8Array, delta: Uint8Array | null = null): boolean {
    this.buf = bytes;
    this.stateBuf = bytes;
    this.pos = 0;
    this.poolLen = 0;
    this.evHead = 0;
    this.nOffsets = 0;
    for (let g = 0; g < this.tileHead.length; g++) this.tileHead[g] = 0;
    const withDelta = delta !== null && delta.length > 0;
    const version = this.u8();
    if (version !== FORMAT_VERSION) throw corrupt(`format version ${version}, expected ${FORMAT_VERSION}`);
    if (this.u32() !== this.plan.fingerprint) throw corrupt('written for another layout');
    this.hasClock = this.u8() === 1;
    const clock = this.varint();
    this.clock = clock;
    if (!this.strings()) return false;
    this.varint(); // dropped: reads do not use it
    const nOffsets = this.varint();
    // Only a replay needs the offsets (to refuse a repeated event).
    if (withDelta && nOffsets > MAX_PARTITIONS) return false;
    for (let i = 0; i < nOffsets; i++) {
      const partition = this.varint();
      const offset = this.varint();
      if (withDelta) this.setOffset(this.offsetAt(partition), partition, offset);
    }

    if (!this.events(clock) || !this.tiles(clock)) return false;
    return withDelta ? this.replay(delta) : true;
  }

  /** The events section into the event columns; false on a string in a numeric column. */
  private events(clock: number): boolean {
    const n = this.varint();
    this.fits(n);
    this.nEvents = n;
    const columns = this.columns;
    if (this.evTs.length < n) this.evTs = new Float64Array(grow(this.evTs.length, n));
    if (this.evKind.length < n * columns) {
      this.evKind = new Uint8Array(grow(this.evKind.length, n * columns));
      this.evNum = new Float64Array(this.evKind.length);
    }
    const ts = this.evTs;
    const kinds = this.evKind;
    const nums = this.evNum;
    const numeric = this.numeric;
    const needsOrder = this.plan.needsOrder;
    let prevTs = clock;
    for (let i = 0; i < n; i++) {
      const t = i === 0 ? clock - this.varint() : prevTs + this.varint();
      prevTs = t;
      ts[i] = t;
      if (needsOrder) {
        this.varint();
        this.varint();
      }
      for (let c = 0, at = i * columns; c < columns; c++, at++) {
        const kind = this.value();
        if (kind === STR && numeric[c]) return false;
        kinds[at] = kind;
        nums[at] = this.num;
      }
    }
    return true;
  }

  /** The tiles sections into the tile columns and the pool, then the end of the bytes. */
  private tiles(clock: number): boolean {
    const groups = this.plan.tileGroups;
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g]!;
      const slots = group.features.length;
      const count = this.varint();
      this.fits(count);
      if (this.tileStart[g]!.length < count) {
        this.tileStart[g] = new Float64Array(grow(this.tileStart[g]!.length, count));
        this.accAt[g] = new Int32Array(this.tileStart[g]!.length * slots);
      }
      this.tileCount[g] = count;
      const starts = this.tileStart[g]!;
      const accAt = this.accAt[g]!;
      let prev = floorTo(clock, group.tileMs);
      for (let k = 0; k < count; k++) {
        const step = this.varint() * group.tileMs;
        const start = k === 0 ? prev - step : prev + step;
        prev = start;
        starts[k] = start;
        for (let slot = 0; slot < slots; slot++) {
          accAt[k * slots + slot] = this.poolLen;
          this.readAcc(group.features[slot]!.acc);
        }
      }
    }
    if (this.pos !== this.buf.length) throw corrupt('trailing bytes');
    return true;
  }

  /** The loaded entity's newest event time, as newestEventTime gives it for the decoded state. */
  newest(): number | null {
    if (this.nEvents > this.evHead) return this.evTs[this.nEvents - 1]!;
    let newest: number | null = null;
    for (let g = 0; g < this.tileCount.length; g++) {
      const count = this.tileCount[g]!;
      if (count === this.tileHead[g]) continue;
      const start = this.tileStart[g]![count - 1]!;
      if (newest === null || start > newest) newest = start;
    }
    return newest;
  }

  /** readFloor of the loaded entity. */
  floor(): number {
    return this.hasClock ? this.clock - this.plan.latenessMs : Number.NEGATIVE_INFINITY;
  }

  /**
   * Feature values as of t (>= floor()), in plan order, as readFeatures gives them; with
   * `features`, only those are computed and the others left undefined.
   */
  read(t: number, features: readonly { index: number }[] = this.plan.features): FeatureValue[] {
    if (t < this.floor()) throw new RangeError(`read at ${t} is before the state's floor ${this.floor()}`);
    const out = new Array<FeatureValue>(this.plan.features.length);
    for (let i = 0; i < features.length; i++) {
      const f = this.plan.features[features[i]!.index]!;
      out[f.index] = this.feature(f, t);
    }
    return out;
  }

  private feature(f: FeaturePlan, t: number): FeatureValue {
    const n = this.nEvents;
    const ts = this.evTs;
    let lo = 0;
    let hi = 0;
    let kFrom = 0;
    let kTo = 0;
    let slot = 0;
    let slots = 0;
    let accAt: Int32Array | null = null;
    const g = this.groupOf[f.index]!;
    const head = this.evHead;
    if (g < 0) {
      lo = lowerBound(ts, windowStart(t, f), head, n);
      hi = lowerBound(ts, t, lo, n);
    } else {
      // The tiles from the window's start on (their events are all older than the floor, so
      // before t), and the raw events of [start, t) (state.ts readTiled).
      const start = windowStart(t, f);
      const count = this.tileCount[g]!;
      kFrom = lowerBound(this.tileStart[g]!, start, this.tileHead[g]!, count);
      kTo = count;
      lo = lowerBound(ts, start, head, n);
      hi = lowerBound(ts, t, lo, n);
      slot = f.slot;
      slots = this.plan.tileGroups[g]!.features.length;
      accAt = this.accAt[g]!;
    }
    const pool = this.pool;
    const columns = this.columns;
    const kinds = this.evKind;
    const nums = this.evNum;
    const c = f.column;
    switch (f.acc) {
      case 'count': {
        let count = hi - lo;
        for (let k = kFrom; k < kTo; k++) count += pool[accAt![k * slots + slot]!]!;
        return count;
      }
      case 'sum': {
        // Tiles: [n, partials..., as count then list]; the same exact additions, in the same order.
        const exact = this.exact;
        exact.clear();
        let count = 0;
        for (let k = kFrom; k < kTo; k++) {
          const at = accAt![k * slots + slot]!;
          const tn = pool[at]!;
          if (tn === 0) continue;
          count += tn;
          const len = pool[at + 1]!;
          for (let j = 0; j < len; j++) exact.add(pool[at + 2 + j]!);
        }
        for (let i = lo, at = lo * columns + c; i < hi; i++, at += columns) {
          if (kinds[at] === NULL) continue;
          count++;
          exact.add(nums[at]!);
        }
        return sumResult(f, count, exact.value());
      }
      case 'min':
      case 'max': {
        const isMax = f.acc === 'max';
        let count = 0;
        let v = 0;
        for (let k = kFrom; k < kTo; k++) {
          const at = accAt![k * slots + slot]!;
          const tn = pool[at]!;
          if (tn === 0) continue;
          const x = pool[at + 1]!;
          if (count === 0 || (isMax ? below(v, x) : below(x, v))) v = x;
          count += tn;
        }
        for (let i = lo, at = lo * columns + c; i < hi; i++, at += columns) {
          if (kinds[at] === NULL) continue;
          const x = nums[at]!;
          if (count === 0 || (isMax ? below(v, x) : below(x, v))) v = x;
          count++;
        }
        return extremeResult(f, count, v);
      }
      case 'distinct': {
        // Strings by dictionary index (each string is in the dictionary once: checked on load),
        // numbers in a set; a string never equals a number, as in the decoded path's Map.
        const mark = this.nextMark();
        const seen = this.seen;
        // Cleared only when used: clear() on an empty set still allocates a new table.
        const numbers = this.seenNumbers;
        if (numbers.size > 0) numbers.clear();
        let strings = 0;
        for (let k = kFrom; k < kTo; k++) {
          const at = accAt![k * slots + slot]!;
          const len = pool[at]!;
          for (let j = 0, v = at + 1; j < len; j++, v += 2) {
            if (pool[v] === STR) {
              const id = pool[v + 1]!;
              if (seen[id] !== mark) {
                seen[id] = mark;
                strings++;
              }
            } else numbers.add(pool[v + 1]!);
          }
        }
        for (let i = lo, at = lo * columns + c; i < hi; i++, at += columns) {
          const kind = kinds[at];
          if (kind === STR) {
            const id = nums[at]!;
            if (seen[id] !== mark) {
              seen[id] = mark;
              strings++;
            }
          } else if (kind === NUM) numbers.add(nums[at]!);
        }
        const distinct = strings + numbers.size;
        if (numbers.size > 0) numbers.clear();
        return distinct;
      }
      case 'moments': {
        // Tiles: [n, sums as count then list, squares as count then list].
        const sums = this.sums;
        const squares = this.squares;
        if (sums.length > 0) sums.length = 0;
        if (squares.length > 0) squares.length = 0;
        let count = 0;
        for (let k = kFrom; k < kTo; k++) {
          let at = accAt![k * slots + slot]!;
          count += pool[at++]!;
          for (let j = 0, len = pool[at++]!; j < len; j++) addExact(sums, pool[at++]!);
          for (let j = 0, len = pool[at++]!; j < len; j++) addExact(squares, pool[at++]!);
        }
        for (let i = lo, at = lo * columns + c; i < hi; i++, at += columns) {
          if (kinds[at] === NULL) continue;
          count++;
          addExact(sums, nums[at]!);
          addExactSquare(squares, nums[at]!);
        }
        return momentsResult(f, count, sums, squares);
      }
      default:
        // stateBytesReader refuses plans with other kinds.
        throw new TypeError(`fast read does not cover ${f.acc}`);
    }
  }

  /** A fresh mark for `seen` (cleared when the marks wrap or the dictionary outgrows it). */
  private nextMark(): number {
    if (this.seen.length < this.nStrings) this.seen = new Int32Array(grow(this.seen.length, this.nStrings));
    if (this.seenMark === 0x7fffffff) {
      this.seen.fill(0);
      this.seenMark = 0;
    }
    return ++this.seenMark;
  }

  /**
   * Checks the dictionary (UTF-8, as decodeState's fatal decoder does) without making strings.
   * False when it repeats a string (count_distinct counts dictionary indexes).
   */
  private strings(): boolean {
    const n = this.varint();
    this.fits(n);
    this.nStrings = n;
    this.valueStrings = n;
    if (this.strStart.length < n) {
      this.strStart = new Int32Array(grow(this.strStart.length, n));
      this.strLen = new Int32Array(this.strStart.length);
      this.strHash = new Int32Array(this.strStart.length);
      this.strSrc = new Uint8Array(this.strStart.length);
    }
    for (let i = 0; i < n; i++) {
      const len = this.varint();
      const start = this.pos;
      const h = this.checkString(len);
      this.strStart[i] = start;
      this.strLen[i] = len;
      this.strHash[i] = h;
      this.strSrc[i] = 0;
    }
    return !this.hasDistinct || n < 2 || this.uniqueStrings();
  }

  /**
   * The string of `len` bytes at `pos`, checked as UTF-8 like the decoders' fatal TextDecoder
   * (throws on malformed bytes), and skipped; returns its hash (FNV-1a), as a signed 32-bit
   * integer like the Int32Array it is stored in and compared with.
   */
  private checkString(len: number): number {
    const buf = this.buf;
    const start = this.pos;
    if (start + len > buf.length) throw truncated(start);
    let h = 0x811c9dc5;
    let ascii = true;
    for (let j = start; j < start + len; j++) {
      const b = buf[j]!;
      if (b >= 0x80) ascii = false;
      h = Math.imul(h ^ b, 0x01000193);
    }
    if (!ascii) UTF8.decode(buf.subarray(start, start + len)); // throws on malformed UTF-8
    this.pos = start + len;
    // Math.imul already gives a signed value; only the empty string keeps the unsigned seed, which
    // would never equal its stored copy (so "" got a new dictionary index in every delta record).
    return h | 0;
  }

  private uniqueStrings(): boolean {
    const n = this.nStrings;
    const hash = this.strHash;
    if (n <= 24) {
      for (let i = 1; i < n; i++)
        for (let j = 0; j < i; j++) if (hash[i] === hash[j] && this.sameString(i, j)) return false;
      return true;
    }
    const dupes = this.dupes;
    dupes.clear();
    let unique = true;
    for (let i = 0; i < n && unique; i++) {
      const j = dupes.get(hash[i]!);
      if (j === undefined) dupes.set(hash[i]!, i);
      else if (this.sameString(i, j)) unique = false;
      else {
        // A hash collision: compare against every earlier string (rare).
        for (let k = 0; k < i; k++) if (hash[k] === hash[i] && this.sameString(i, k)) unique = false;
      }
    }
    dupes.clear();
    return unique;
  }

  private sameString(i: number, j: number): boolean {
    const len = this.strLen[i]!;
    if (len !== this.strLen[j]) return false;
    return this.sameBytes(i, this.strSrc[j] === 0 ? this.stateBuf : this.deltaBuf, this.strStart[j]!, len);
  }

  /** Dictionary string i equals the `len` bytes of `buf` at `from` (same length assumed). */
  private sameBytes(i: number, buf: Uint8Array, from: number, len: number): boolean {
    const own = this.strSrc[i] === 0 ? this.stateBuf : this.deltaBuf;
    const a = this.strStart[i]!;
    for (let k = 0; k < len; k++) if (own[a + k] !== buf[from + k]) return false;
    return true;
  }

  /**
   * Replays the delta records onto the loaded state, as applyDeltas does on the decoded one:
   * throws where it throws, false where this reader does not cover what the records hold.
   */
  private replay(delta: Uint8Array): boolean {
    // Covered plans never need tie order: a replayed event goes after the events of its time, as
    // applyEvent inserts it (state.ts insertSorted).
    if (this.plan.needsOrder) return false;
    this.buf = delta;
    this.deltaBuf = delta;
    this.pos = 0;
    const clock0 = this.clock;
    const hadClock = this.hasClock;
    const columns = this.columns;
    const numeric = this.numeric;
    const rowKind = this.rowKind;
    const rowNum = this.rowNum;
    for (let record = 0; this.pos < delta.length; record++) {
      const tag = this.u8();
      if (tag !== DELTA_TAG) throw corrupt(`delta record ${record} starts with byte ${tag}, not a delta`);
      if (this.u32() !== this.plan.fingerprint)
        throw corrupt(`delta record ${record} was written for another layout`);
      // A record without `now` (event time) never moves the clock by it: -Infinity stands for none.
      const now = this.u8() === 1 ? this.zigzag() : Number.NEGATIVE_INFINITY;
      if (!this.recordStrings()) return false;
      const n = this.varint();
      this.fits(n);
      let ts = 0;
      let offset = 0;
      for (let i = 0; i < n; i++) {
        ts += this.zigzag();
        const partition = this.varint();
        offset += this.zigzag();
        for (let c = 0; c < columns; c++) {
          const kind = this.value();
          if (kind === STR) {
            if (numeric[c]) return false;
            // Only count_distinct reads a string, by its dictionary index; without one the index
            // is never read.
            if (this.hasDistinct) this.num = this.strMap[this.num]!;
          }
          rowKind[c] = kind;
          rowNum[c] = this.num;
        }
        if (!this.apply(record, ts, partition, offset, now)) return false;
      }
    }
    if (this.clock !== clock0 || this.hasClock !== hadClock) this.prune();
    this.buf = this.stateBuf;
    return true;
  }

  /** A record's own dictionary: each string checked, and mapped to the loaded dictionary's index. */
  private recordStrings(): boolean {
    const n = this.varint();
    this.fits(n);
    if (this.strMap.length < n) this.strMap = new Int32Array(grow(this.strMap.length, n));
    for (let i = 0; i < n; i++) {
      const len = this.varint();
      const start = this.pos;
      const h = this.checkString(len);
      if (!this.hasDistinct) continue;
      this.strMap[i] = this.intern(start, len, h);
    }
    this.valueStrings = n;
    return true;
  }

  /** The dictionary index of the record string at `start` (added when the dictionary lacks it). */
  private intern(start: number, len: number, h: number): number {
    const n = this.nStrings;
    const hash = this.strHash;
    const lens = this.strLen;
    for (let i = 0; i < n; i++)
      if (hash[i] === h && lens[i] === len && this.sameBytes(i, this.deltaBuf, start, len)) return i;
    if (this.strStart.length <= n) {
      const size = grow(this.strStart.length, n + 1);
      this.strStart = copyInto(new Int32Array(size), this.strStart, n);
      this.strLen = copyInto(new Int32Array(size), this.strLen, n);
      this.strHash = copyInto(new Int32Array(size), this.strHash, n);
      this.strSrc = copyInto(new Uint8Array(size), this.strSrc, n);
    }
    this.strStart[n] = start;
    this.strLen[n] = len;
    this.strHash[n] = h;
    this.strSrc[n] = 1;
    this.nStrings = n + 1;
    return n;
  }

  /**
   * applyEvent of the event whose values are in the row: refused when a duplicate or late (throws,
   * as applyDeltas does); the offset recorded; the event inserted in order; the clock moved; the
   * cap applied. It stays a raw event even where applyEvent would fold older ones into tiles:
   * every accumulator is exact, so where an event is held changes no value. A tiled plan's cap is
   * not replayed (applyEvent caps what remains raw after folding, which the replay does not track):
   * over it, the state is decoded instead. Pruning waits for the end of the replay (`prune`): what
   * applyEvent would have pruned earlier is older than every event applied since (those are not
   * late) and than its own threshold, and the cap drops the oldest first.
   */
  private apply(record: number, ts: number, partition: number, offset: number, now: number): boolean {
    const plan = this.plan;
    const at = this.offsetAt(partition);
    if (at >= 0 && offset <= this.offOffset[at]!)
      throw corrupt(`delta record ${record} repeats partition ${partition} offset ${offset}`);
    let clock = this.hasClock ? this.clock : ts;
    if (now > clock) clock = now;
    if (ts < clock - plan.latenessMs)
      throw corrupt(`delta record ${record} holds an event the state refuses: late at ${ts}`);
    if (at < 0 && this.nOffsets >= MAX_PARTITIONS) return false;
    this.setOffset(at, partition, offset);

    this.insertRow(ts);
    if (ts > clock) clock = ts;
    this.hasClock = true;
    this.clock = clock;
    const live = this.nEvents - this.evHead;
    if (live > plan.maxEvents) {
      if (plan.tileGroups.length > 0) return false;
      this.evHead += live - plan.maxEvents;
    }
    return true;
  }

  /** Index of a partition's last offset, -1 when the entity has none. */
  private offsetAt(partition: number): number {
    for (let i = 0; i < this.nOffsets; i++) if (this.offPartition[i] === partition) return i;
    return -1;
  }

  /** Sets the partition's last offset (at its index `at`, or a new entry when -1), as Map#set. */
  private setOffset(at: number, partition: number, offset: number): void {
    if (at >= 0) {
      this.offOffset[at] = offset;
      return;
    }
    const n = this.nOffsets;
    if (this.offPartition.length <= n) {
      const size = grow(this.offPartition.length, n + 1);
      this.offPartition = copyInto(new Float64Array(size), this.offPartition, n);
      this.offOffset = copyInto(new Float64Array(size), this.offOffset, n);
    }
    this.offPartition[n] = partition;
    this.offOffset[n] = offset;
    this.nOffsets = n + 1;
  }

  /** The row as a live event, after every event not later than it (insertSorted without positions). */
  private insertRow(ts: number): void {
    const n = this.nEvents;
    const columns = this.columns;
    this.ensureEvents(n + 1);
    const times = this.evTs;
    let i = n;
    while (i > this.evHead && times[i - 1]! > ts) i--;
    if (i < n) {
      times.copyWithin(i + 1, i, n);
      this.evKind.copyWithin((i + 1) * columns, i * columns, n * columns);
      this.evNum.copyWithin((i + 1) * columns, i * columns, n * columns);
    }
    times[i] = ts;
    this.evKind.set(this.rowKind, i * columns);
    this.evNum.set(this.rowNum, i * columns);
    this.nEvents = n + 1;
  }

  /** Room for n events, keeping the ones loaded. */
  private ensureEvents(n: number): void {
    const had = this.nEvents;
    if (this.evTs.length < n) {
      const size = grow(this.evTs.length, n);
      this.evTs = copyInto(new Float64Array(size), this.evTs, had);
    }
    const columns = this.columns;
    if (this.evKind.length < n * columns) {
      const size = grow(this.evKind.length, n * columns);
      this.evKind = copyInto(new Uint8Array(size), this.evKind, had * columns);
      this.evNum = copyInto(new Float64Array(size), this.evNum, had * columns);
    }
  }

  /**
   * state.ts prune, once the clock moved: raw events and tiles older than any read can need. Reads
   * at or after the floor never reach what it drops (nor does `newest`: the newest event is never
   * late, so never pruned); it keeps the scratch to the live part, as the decoded state is.
   */
  private prune(): void {
    const plan = this.plan;
    const reachable = this.clock - plan.latenessMs;
    const keepFrom = rawKeepFrom(plan, reachable);
    const groups = plan.tileGroups;
    const n = this.nEvents;
    if (n > this.evHead && this.evTs[this.evHead]! < keepFrom)
      this.evHead = lowerBound(this.evTs, keepFrom, this.evHead, n);
    for (let g = 0; g < groups.length; g++) {
      const cutoff = tileCutoff(groups[g]!, reachable);
      const head = this.tileHead[g]!;
      const count = this.tileCount[g]!;
      if (head < count && this.tileStart[g]![head]! < cutoff)
        this.tileHead[g] = lowerBound(this.tileStart[g]!, cutoff, head, count);
    }
  }

  /** Checks that `n` items (at least a byte each) can follow, before sizing scratch for them. */
  private fits(n: number): void {
    if (n > this.buf.length - this.pos) throw corrupt(`truncated at byte ${this.pos}`);
  }

  private ensurePool(extra: number): void {
    if (this.poolLen + extra <= this.pool.length) return;
    const next = new Float64Array(grow(this.pool.length, this.poolLen + extra));
    next.set(this.pool.subarray(0, this.poolLen));
    this.pool = next;
  }

  /** A tile accumulator into the pool, checked as decodeState's readAcc checks it. */
  private readAcc(kind: AccKind): void {
    switch (kind) {
      case 'count':
        this.ensurePool(1);
        this.pool[this.poolLen++] = this.varint();
        return;
      case 'sum':
        this.ensurePool(1);
        this.pool[this.poolLen++] = this.varint();
        this.numbers();
        return;
      case 'moments':
        this.ensurePool(1);
        this.pool[this.poolLen++] = this.varint();
        this.numbers();
        this.numbers();
        return;
      case 'min':
      case 'max': {
        this.ensurePool(2);
        const n = this.varint();
        this.pool[this.poolLen++] = n;
        this.pool[this.poolLen++] = n > 0 ? this.number() : 0;
        return;
      }
      case 'distinct': {
        const n = this.varint();
        this.fits(n);
        this.ensurePool(1 + 2 * n);
        this.pool[this.poolLen++] = n;
        for (let i = 0; i < n; i++) {
          const kind = this.value();
          if (kind === NULL) throw corrupt('null in distinct set');
          this.pool[this.poolLen++] = kind;
          this.pool[this.poolLen++] = this.num;
        }
        return;
      }
      default:
        throw new TypeError(`fast read does not cover ${kind}`);
    }
  }

  /** A list of numbers (exact partials): its length, then each. */
  private numbers(): void {
    const n = this.varint();
    this.fits(n);
    this.ensurePool(1 + n);
    this.pool[this.poolLen++] = n;
    for (let i = 0; i < n; i++) this.pool[this.poolLen++] = this.number();
  }

  private number(): number {
    if (this.value() !== NUM) throw corrupt('expected a number');
    return this.num;
  }

  /** The value read last: a number, or a dictionary index for a string. */
  private num = 0;

  /** Reads a value (codec.ts readValue): returns its kind and leaves the number in `num`. */
  private value(): number {
    const tag = this.u8();
    switch (tag) {
      case TAG_NULL:
        this.num = 0;
        return NULL;
      case TAG_UINT:
        this.num = this.varint();
        return NUM;
      case TAG_NEG_INT:
        this.num = -this.varint();
        return NUM;
      case TAG_CENTS: {
        const v = this.varint();
        this.num = (v % 2 === 1 ? -(v + 1) / 2 : v / 2) / 100;
        return NUM;
      }
      case TAG_F64: {
        if (this.pos + 8 > this.buf.length) throw corrupt(`truncated at byte ${this.pos}`);
        const buf = this.buf;
        this.num = new DataView(buf.buffer, buf.byteOffset + this.pos, 8).getFloat64(0, true);
        this.pos += 8;
        return NUM;
      }
      case TAG_STRING: {
        const id = this.varint();
        if (id >= this.valueStrings) throw corrupt('string index out of range');
        this.num = id;
        return STR;
      }
      default:
        throw corrupt(`unknown value tag ${tag}`);
    }
  }

  /** ByteReader#zigzag. */
  private zigzag(): number {
    const v = this.varint();
    return v % 2 === 1 ? -(v + 1) / 2 : v / 2;
  }

  private u8(): number {
    const pos = this.pos;
    if (pos >= this.buf.length) throw truncated(pos);
    this.pos = pos + 1;
    return this.buf[pos]!;
  }

  private u32(): number {
    if (this.pos + 4 > this.buf.length) throw corrupt(`truncated at byte ${this.pos}`);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
  }

  /** ByteReader#varint: at most 8 bytes, up to 2^53. */
  private varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    const first = pos < buf.length ? buf[pos]! : -1;
    if (first >= 0 && first < 0x80) {
      this.pos = pos + 1;
      return first;
    }
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (pos >= buf.length) throw corrupt(`truncated at byte ${pos}`);
      const byte = buf[pos++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        this.pos = pos;
        return result;
      }
      scale *= 0x80;
    }
    this.pos = pos;
    throw corrupt(`varint too long at byte ${pos}`);
  }
}

function truncated(pos: number): Error {
  return corrupt(`truncated at byte ${pos}`);
}

function grow(current: number, needed: number): number {
  return Math.max(needed, current * 2);
}

/** `to` with the first n elements of `from` copied in. */
function copyInto<T extends Float64Array | Int32Array | Uint8Array>(to: T, from: T, n: number): T {
  to.set(from.subarray(0, n));
  return to;
}
