// Avro array and map block counts held to the bytes a body has, before avsc reads it. avsc loops
// once per declared item before it finds a body too short: a ~30-byte Confluent frame declaring
// 1e8 items stalled the ingestor's event loop for seconds (a map) or exhausted its heap (an
// array), and the record came back at every restart. Only schemas with an array or map are walked.
import { isUtf8 } from 'node:buffer';
import type avro from 'avsc';

/** Items of zero bytes (nulls, empty records) one body may declare in all: no byte bounds them. */
export const MAX_EMPTY_ITEMS = 1_000_000;

class BlockProblem extends Error {}

/** Whether a schema holds an array or a map anywhere (recursive records included once). */
export function hasCollections(type: avro.Type): boolean {
  const seen = new Set<AnyType>();
  const holds = (t: AnyType): boolean => {
    if (seen.has(t)) return false;
    seen.add(t);
    return t.typeName === 'array' || t.typeName === 'map' || children(t).some(holds);
  };
  return holds(type as unknown as AnyType);
}

/**
 * Why a body's array or map blocks cannot be what they declare (more items than bytes left for
 * them, or more zero-byte items than MAX_EMPTY_ITEMS), or undefined. Other defects (a truncated
 * body, trailing bytes) are left to avsc's reading, which reports them.
 */
export function blockProblem(type: avro.Type, bytes: Buffer, start: number): string | undefined {
  const walk = { bytes, pos: start, empty: MAX_EMPTY_ITEMS };
  try {
    skip(type as unknown as AnyType, walk);
  } catch (error) {
    // Anything else (a schema nested past the stack's depth) is left to avsc's reading, whose
    // failures make the record undecodable.
    if (error instanceof BlockProblem) return error.message;
  }
  return undefined;
}

interface AnyType {
  typeName: string;
  fields?: { type: AnyType }[];
  itemsType?: AnyType;
  valuesType?: AnyType;
  types?: AnyType[];
  size?: number;
  underlyingType?: AnyType;
}

interface Walk {
  bytes: Buffer;
  pos: number;
  empty: number;
  /** Called with each string's bytes (field values and map keys), when given. */
  onString?: (from: number, to: number) => void;
}

/**
 * The first top-level field of a record body (already read by avsc) that holds a string whose bytes
 * are not UTF-8, or undefined. avsc decodes each bad byte as U+FFFD, merging strings that differ
 * there; looking for a decoded string's U+FFFD form in the message could be fooled by a real
 * U+FFFD elsewhere, so the body's own string bytes are checked.
 */
export function invalidUtf8Field(type: avro.Type, bytes: Buffer, start: number): string | undefined {
  const record = type as unknown as AnyType;
  let bad = false;
  const walk: Walk = {
    bytes,
    pos: start,
    empty: Number.POSITIVE_INFINITY,
    onString: (from, to) => {
      if (!bad && !isUtf8(bytes.subarray(from, to))) bad = true;
    },
  };
  try {
    for (const field of (record.fields ?? []) as { name?: string; type: AnyType }[]) {
      skipValue(field.type, walk);
      if (bad) return field.name;
    }
  } catch {
    // A body avsc read is whole; anything else is left to what avsc made of it.
  }
  return undefined;
}

/** Each type's fewest bytes, worked out once: a compiled schema's types do not change. */
const minimum = new WeakMap<AnyType, number>();

function children(t: AnyType): AnyType[] {
  if (t.fields) return t.fields.map((f) => f.type);
  if (t.itemsType) return [t.itemsType];
  if (t.valuesType) return [t.valuesType];
  if (t.types) return t.types;
  if (t.underlyingType) return [t.underlyingType];
  return [];
}

/** A varint's zigzag value as a double (exact enough to compare with a byte count), or past the end: done. */
function varint(walk: Walk): number {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (walk.pos >= walk.bytes.length) throw new Truncated();
    const b = walk.bytes[walk.pos++]!;
    n += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }
  throw new Truncated();
}

/** The body ends early: avsc's own reading reports that. */
class Truncated extends Error {}

function skipString(walk: Walk): void {
  const length = varint(walk);
  const from = walk.pos;
  advance(walk, length);
  walk.onString?.(from, walk.pos);
}

function advance(walk: Walk, n: number): void {
  if (n < 0 || walk.pos + n > walk.bytes.length) throw new Truncated();
  walk.pos += n;
}

/** The fewest bytes a value of the type takes (0 for null, empty records and unions with null). */
function minBytes(type: AnyType): number {
  const known = minimum.get(type);
  if (known !== undefined) return known;
  minimum.set(type, 0); // a recursive record: its own size counts as 0
  let n: number;
  switch (type.typeName) {
    case 'null':
      n = 0;
      break;
    case 'float':
      n = 4;
      break;
    case 'double':
      n = 8;
      break;
    case 'fixed':
      n = type.size ?? 0;
      break;
    case 'record':
    case 'error':
      n = (type.fields ?? []).reduce((sum, f) => sum + minBytes(f.type), 0);
      break;
    default:
      if (type.types) n = 1 + Math.min(...type.types.map((b) => minBytes(b)));
      else if (type.underlyingType) n = minBytes(type.underlyingType);
      else n = 1; // boolean, int, long, enum, bytes, string, array, map: at least one byte
  }
  minimum.set(type, n);
  return n;
}

function skip(type: AnyType, walk: Walk): void {
  try {
    skipValue(type, walk);
  } catch (error) {
    if (!(error instanceof Truncated)) throw error;
  }
}

function skipValue(type: AnyType, walk: Walk): void {
  switch (type.typeName) {
    case 'null':
      return;
    case 'boolean':
      advance(walk, 1);
      return;
    case 'float':
      advance(walk, 4);
      return;
    case 'double':
      advance(walk, 8);
      return;
    case 'fixed':
      advance(walk, type.size ?? 0);
      return;
    case 'bytes':
      advance(walk, varint(walk));
      return;
    case 'string':
      skipString(walk);
      return;
    case 'record':
    case 'error':
      for (const f of type.fields ?? []) skipValue(f.type, walk);
      return;
    case 'array':
      skipBlocks(type.itemsType!, null, walk);
      return;
    case 'map':
      skipBlocks(type.valuesType!, 'key', walk);
      return;
  }
  if (type.types) {
    const branch = type.types[varint(walk)];
    if (branch === undefined) throw new Truncated(); // a bad index: avsc reports it
    skipValue(branch, walk);
    return;
  }
  if (type.underlyingType) {
    skipValue(type.underlyingType, walk);
    return;
  }
  varint(walk); // int, long (avsc's or ours), enum
}

function skipBlocks(items: AnyType, key: 'key' | null, walk: Walk): void {
  const each = minBytes(items) + (key === null ? 0 : 1);
  for (;;) {
    let count = varint(walk);
    if (count === 0) return;
    if (count < 0) {
      count = -count;
      varint(walk); // the block's size in bytes
    }
    const left = walk.bytes.length - walk.pos;
    if (each > 0 && count * each > left)
      throw new BlockProblem(
        `an Avro ${key === null ? 'array' : 'map'} block declares ${count} items, more than its ${left} remaining bytes can hold`,
      );
    if (each === 0) {
      walk.empty -= count;
      if (walk.empty < 0)
        throw new BlockProblem(
          `an Avro array declares over ${MAX_EMPTY_ITEMS} items of zero bytes in one body, more than Tessera reads`,
        );
    }
    for (let i = 0; i < count; i++) {
      if (key !== null) skipString(walk);
      skipValue(items, walk);
    }
  }
}
