// Compact binary form of an entity's state (what the ingestor stores in Redis). Times are
// delta-encoded varints, numbers use the shortest exact form (integer, cents, or float64), and
// strings go through a per-state dictionary. The header carries the plan fingerprint, so state
// written under other definitions is refused instead of misread. Layout: docs/state-format.md.
import type { Acc, Positioned, StoredEvent, Value } from './acc.ts';
import { ByteReader, ByteWriter, corrupt, ZIGZAG_LIMIT } from './bytes.ts';
import type { FeaturePlan, ViewPlan } from './plan.ts';
import { type EntityState, newState, offsetEntries, setLastOffset } from './state.ts';
import { TileSeries } from './tile-series.ts';
import { floorTo } from './window.ts';

/**
 * Format version and value tags of the bytes (docs/state-format.md); fast-read.ts reads them too.
 * Version 2: raw events and tiles hold disjoint sets of events (in version 1 every event was also
 * in the tiles); a version-1 state would count some events twice, so it is refused.
 */
export const FORMAT_VERSION = 2;
export const TAG_NULL = 0;
export const TAG_UINT = 1;
export const TAG_NEG_INT = 2;
export const TAG_CENTS = 3;
export const TAG_F64 = 4;
export const TAG_STRING = 5;
/** Booleans (bool columns), added within version 2: older readers refuse them as unknown tags. */
export const TAG_FALSE = 6;
export const TAG_TRUE = 7;

/** Strings of one encoded unit, each written once; values refer to them by index. */
export class Dictionary {
  readonly index = new Map<string, number>();
  readonly strings: string[] = [];
  id(s: string): number {
    let i = this.index.get(s);
    if (i === undefined) {
      i = this.strings.push(s) - 1;
      this.index.set(s, i);
    }
    return i;
  }
}

export function writeValue(w: ByteWriter, dict: Dictionary, v: Value | null): void {
  if (v === null) {
    w.u8(TAG_NULL);
    return;
  }
  if (typeof v === 'string') {
    w.u8(TAG_STRING);
    w.varint(dict.id(v));
    return;
  }
  if (typeof v === 'boolean') {
    w.u8(v ? TAG_TRUE : TAG_FALSE);
    return;
  }
  if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
    w.u8(v >= 0 ? TAG_UINT : TAG_NEG_INT);
    w.varint(Math.abs(v));
    return;
  }
  const cents = Math.round(v * 100);
  // Zigzag doubles the magnitude: beyond 2^52 a negative one would round and come back positive.
  if (Math.abs(cents) < ZIGZAG_LIMIT && cents / 100 === v && !Object.is(v, -0)) {
    w.u8(TAG_CENTS);
    w.zigzag(cents);
    return;
  }
  w.u8(TAG_F64);
  w.f64(v);
}

export function readValue(r: ByteReader, strings: string[]): Value | null {
  const tag = r.u8();
  switch (tag) {
    case TAG_NULL:
      return null;
    case TAG_UINT:
      return r.varint();
    case TAG_NEG_INT:
      return -r.varint();
    case TAG_CENTS:
      return r.zigzag() / 100;
    case TAG_F64:
      return r.f64();
    case TAG_STRING: {
      const s = strings[r.varint()];
      if (s === undefined) throw corrupt('string index out of range');
      return s;
    }
    case TAG_FALSE:
      return false;
    case TAG_TRUE:
      return true;
    default:
      throw corrupt(`unknown value tag ${tag}`);
  }
}

function readNumber(r: ByteReader, strings: string[]): number {
  const v = readValue(r, strings);
  if (typeof v !== 'number') throw corrupt('expected a number');
  return v;
}

// Reused by every encodeState call (encoding is synchronous): the output is copied out once, at
// the end, instead of growing two fresh buffers per state and copying the body into the header's.
const BODY = new ByteWriter();
const OUT = new ByteWriter();
// ignoreBOM: without it the decoder strips a leading U+FEFF, so a string value starting with one
// (a merchant id "\uFEFFm1") came back as another string ("m1") after a trip through Redis.
export const UTF8_DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function encodeState(plan: ViewPlan, state: EntityState): Uint8Array {
  const dict = new Dictionary();
  const body = BODY;
  body.reset();
  const clock = state.clock ?? 0;
  body.varint(state.dropped);
  const offsets = offsetEntries(state);
  body.varint(offsets.length);
  for (const [partition, offset] of offsets) {
    body.varint(partition);
    body.varint(offset);
  }
  body.varint(state.events.length - state.head);
  let prevTs = clock;
  let prevOffset = 0;
  const events = state.events;
  const columns = plan.columns.length;
  for (let i = state.head; i < events.length; i++) {
    const e = events[i]!;
    body.varint(i === state.head ? clock - e.ts : e.ts - prevTs);
    prevTs = e.ts;
    if (plan.needsOrder) {
      body.varint(e.partition);
      body.zigzag(e.offset - prevOffset);
      prevOffset = e.offset;
    }
    for (let c = 0; c < columns; c++) writeValue(body, dict, e.values[c] ?? null);
  }
  plan.tileGroups.forEach((group, g) => {
    const tiles = state.tiles[g]!;
    body.varint(tiles.length);
    let prev = floorTo(clock, group.tileMs);
    for (let i = 0; i < tiles.length; i++) {
      const start = tiles.startOf(i);
      body.varint(Math.abs(start - prev) / group.tileMs);
      if (i === 0 && start > prev) throw corrupt('tile after the state clock');
      prev = start;
      for (let slot = 0; slot < group.features.length; slot++)
        writeAcc(body, dict, tiles.accOf(i, slot), clock);
    }
  });

  const out = OUT;
  out.reset();
  out.u8(FORMAT_VERSION);
  out.u32(plan.fingerprint);
  out.u8(state.clock === null ? 0 : 1);
  out.varint(clock);
  out.varint(dict.strings.length);
  for (const s of dict.strings) out.utf8(s);
  out.bytes(body.written());
  return out.finish();
}

function writePositioned(w: ByteWriter, dict: Dictionary, item: Positioned, clock: number): void {
  w.zigzag(clock - item.ts);
  w.varint(item.partition);
  w.varint(item.offset);
  writeValue(w, dict, item.val);
}

function writeAcc(w: ByteWriter, dict: Dictionary, acc: Acc, clock: number): void {
  switch (acc.k) {
    case 'count':
      w.varint(acc.n);
      return;
    case 'sum':
      w.varint(acc.n);
      writeNumbers(w, dict, acc.s);
      return;
    case 'moments':
      w.varint(acc.n);
      writeNumbers(w, dict, acc.s);
      writeNumbers(w, dict, acc.q);
      return;
    case 'min':
    case 'max':
      w.varint(acc.n);
      if (acc.n > 0) writeValue(w, dict, acc.v);
      return;
    case 'distinct':
      w.varint(acc.set.size);
      for (const v of acc.set.keys()) writeValue(w, dict, v);
      return;
    case 'hll':
      w.varint(acc.regs.size);
      for (const [index, rank] of acc.regs) {
        w.varint(index);
        w.u8(rank);
      }
      return;
    case 'first':
    case 'last':
      w.u8(acc.e ? 1 : 0);
      if (acc.e) writePositioned(w, dict, acc.e, clock);
      return;
    case 'last_n':
      w.varint(acc.items.length);
      for (const item of acc.items) writePositioned(w, dict, item, clock);
      return;
  }
}

function writeNumbers(w: ByteWriter, dict: Dictionary, values: number[]): void {
  w.varint(values.length);
  for (const v of values) writeValue(w, dict, v);
}

/**
 * The format version and plan fingerprint a state's bytes start with, or null when there are
 * fewer than five bytes: what decides whether the current definitions can read it, without
 * decoding the rest (`tessera keys` sorts stored states by it).
 */
export function stateHeader(bytes: Uint8Array): { version: number; fingerprint: number } | null {
  if (bytes.length < 5) return null;
  const r = new ByteReader(bytes);
  return { version: r.u8(), fingerprint: r.u32() };
}

export function decodeState(plan: ViewPlan, bytes: Uint8Array): EntityState {
  const r = new ByteReader(bytes);
  const version = r.u8();
  if (version !== FORMAT_VERSION) throw corrupt(`format version ${version}, expected ${FORMAT_VERSION}`);
  const fingerprint = r.u32();
  if (fingerprint !== plan.fingerprint) {
    throw corrupt(
      `written for another layout of view ${plan.view.name} (fingerprint ${fingerprint.toString(16)}, now ${plan.fingerprint.toString(16)})`,
    );
  }
  const hasClock = r.u8() === 1;
  const clock = r.varint();
  const strings: string[] = [];
  const nStrings = r.varint();
  for (let i = 0; i < nStrings; i++) strings.push(UTF8_DECODER.decode(r.bytes(r.varint())));

  const dropped = r.varint();
  const offsets: [number, number][] = [];
  const nOffsets = r.varint();
  for (let i = 0; i < nOffsets; i++) offsets.push([r.varint(), r.varint()]);
  const nEvents = r.varint();
  const events: StoredEvent[] = new Array(nEvents);
  let prevTs = clock;
  let prevOffset = 0;
  for (let i = 0; i < nEvents; i++) {
    const ts = i === 0 ? clock - r.varint() : prevTs + r.varint();
    prevTs = ts;
    let p = 0;
    let o = 0;
    if (plan.needsOrder) {
      p = r.varint();
      o = prevOffset + r.zigzag();
      prevOffset = o;
    }
    const values: (Value | null)[] = new Array(plan.columns.length);
    for (let c = 0; c < plan.columns.length; c++) values[c] = readValue(r, strings);
    events[i] = { ts, partition: p, offset: o, values };
  }
  const tiles = plan.tileGroups.map((group): TileSeries => {
    const n = r.varint();
    const series = new TileSeries(group.features);
    let prev = floorTo(clock, group.tileMs);
    for (let i = 0; i < n; i++) {
      const step = r.varint() * group.tileMs;
      const start = i === 0 ? prev - step : prev + step;
      prev = start;
      series.pushTile(
        start,
        group.features.map((f) => readAcc(r, strings, f, clock)),
      );
    }
    return series;
  });
  if (!r.done()) throw corrupt('trailing bytes');
  const state = newState(hasClock ? clock : null, events, tiles, dropped);
  for (const [partition, offset] of offsets) setLastOffset(state, partition, offset);
  return state;
}

function readPositioned(r: ByteReader, strings: string[], clock: number): Positioned {
  const ts = clock - r.zigzag();
  const p = r.varint();
  const o = r.varint();
  const val = readValue(r, strings);
  if (val === null) throw corrupt('null in first/last');
  return { ts, partition: p, offset: o, val };
}

function readNumbers(r: ByteReader, strings: string[]): number[] {
  const n = r.varint();
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = readNumber(r, strings);
  return out;
}

function readAcc(r: ByteReader, strings: string[], feature: FeaturePlan, clock: number): Acc {
  switch (feature.acc) {
    case 'count':
      return { k: 'count', n: r.varint() };
    case 'sum':
      return { k: 'sum', n: r.varint(), s: readNumbers(r, strings) };
    case 'moments':
      return { k: 'moments', n: r.varint(), s: readNumbers(r, strings), q: readNumbers(r, strings) };
    case 'min':
    case 'max': {
      const n = r.varint();
      return { k: feature.acc, n, v: n > 0 ? readNumber(r, strings) : 0 };
    }
    case 'distinct': {
      const set = new Map<Value, number>();
      const n = r.varint();
      for (let i = 0; i < n; i++) {
        const v = readValue(r, strings);
        if (v === null) throw corrupt('null in distinct set');
        set.set(v, 1);
      }
      return { k: 'distinct', set };
    }
    case 'hll': {
      const regs = new Map<number, number>();
      const n = r.varint();
      for (let i = 0; i < n; i++) regs.set(r.varint(), r.u8());
      return { k: 'hll', regs };
    }
    case 'first':
    case 'last':
      return { k: feature.acc, e: r.u8() === 1 ? readPositioned(r, strings, clock) : null };
    case 'last_n': {
      const n = r.varint();
      const items: Positioned[] = [];
      for (let i = 0; i < n; i++) items.push(readPositioned(r, strings, clock));
      return { k: 'last_n', items };
    }
  }
}
