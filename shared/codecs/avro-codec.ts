// Avro bodies through avsc: one writer schema -> a codec that reads and writes record bodies.
// Longs use our own long type: avsc's built-in one goes through floating point for the zigzag
// step and silently corrupts negative values below -2^52 (found by the property test), and it
// refuses anything beyond 2^53. Ours reads the varint's own bytes and keeps such values as exact
// strings.
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import type { SourceDef } from '../definitions/schema.ts';
import { TesseraError } from '../errors.ts';
import { blockProblem, hasCollections, invalidUtf8Field } from './avro-blocks.ts';
import { DecimalType } from './avro-decimal.ts';
import { int64Value, toInt64BigInt } from './int64.ts';
import { describe, formatTimestamp, type TimestampUnit } from './timestamp.ts';
import { type DecodeError, type EncodableRecord, failure } from './types.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type AvroRead = { ok: true; raw: Record<string, unknown> } | DecodeError;

export interface AvroCodec {
  /** Where the schema came from (file path or `schema id 7`), for messages. */
  origin: string;
  /** How the writer stores each of the source's timestamp columns (the event time among them). */
  timestampUnits: Readonly<Record<string, TimestampUnit>>;
  /** Decodes one body that must fill `bytes` from `start` to the end exactly. */
  read(bytes: Buffer, start: number): AvroRead;
  /** Encodes a record given in the decoded shape (timestamps in epoch ms). */
  write(record: EncodableRecord): Buffer;
  /** Field names of the writer schema. */
  fields: readonly string[];
}

// Read as numbers while exact, canonical strings beyond; written from bigint, safe integers or
// canonical strings. avsc hands over each long's zigzag varint as it is in the body (its unpacking
// kept only the low 64 bits of a varint over 10 bytes: garbage read as another value).
export const preciseLong = avro.types.LongType.__with(
  {
    fromBuffer: readVarintLong,
    toBuffer: (value: unknown) => {
      if (typeof value === 'number' && Number.isInteger(value) && Math.abs(value) < 2 ** 50) {
        // Exact in a double all the way (times in ms, most ids): no BigInt.
        let u = value >= 0 ? value * 2 : -value * 2 - 1;
        const bytes: number[] = [];
        while (u >= 0x80) {
          bytes.push((u % 0x80) | 0x80);
          u = Math.floor(u / 0x80);
        }
        bytes.push(u);
        return Buffer.from(bytes);
      }
      const v = toInt64BigInt(value) ?? 0n;
      let u = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
      const bytes: number[] = [];
      while (u >= 0x80n) {
        bytes.push(Number(u & 0x7fn) | 0x80);
        u >>= 7n;
      }
      bytes.push(Number(u));
      return Buffer.from(bytes);
    },
    fromJSON: (value: unknown) =>
      typeof value === 'number' || typeof value === 'string' ? value : String(value),
    toJSON: (value: unknown) => (typeof value === 'string' ? Number(value) : value),
    isValid: (value: unknown) => toInt64BigInt(value) !== undefined,
    compare: (a: unknown, b: unknown) => {
      const x = toInt64BigInt(a) ?? 0n;
      const y = toInt64BigInt(b) ?? 0n;
      return x < y ? -1 : x > y ? 1 : 0;
    },
  },
  true, // no unpacking: fromBuffer gets the varint's own bytes, toBuffer gives them
);

/**
 * A long's zigzag varint, exactly: a number while safe, a canonical string beyond. Throws (the body
 * is then undecodable) for a varint over 64 bits: more than 10 bytes, or a 10th byte above 1.
 */
export function readVarintLong(buf: Buffer): number | string {
  const n = buf.length;
  if (n <= 7) {
    // Under 2^49: exact in a double.
    let u = 0;
    let scale = 1;
    for (let i = 0; i < n; i++) {
      u += (buf[i]! & 0x7f) * scale;
      scale *= 128;
    }
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }
  if (n > 10 || (n === 10 && buf[9]! > 1))
    throw new Error(`a long written in ${n} varint bytes is wider than 64 bits`);
  let u = 0n;
  for (let i = n - 1; i >= 0; i--) u = (u << 7n) | BigInt(buf[i]! & 0x7f);
  return int64Value((u >> 1n) ^ -(u & 1n));
}

/**
 * The registry entry above only answers the name "long". A long written as a schema object
 * (`{"type": "long", "logicalType": "timestamp-millis"}`, Kafka Connect's `connect.name` int64)
 * is built by avsc from its own type: a user id of -(2^52 + 3) was read as 2^52 + 2, another
 * entity, without a word. Every long gets ours; the logical type is read from the schema
 * (unitOf), not from avsc.
 */
function longHook(schema: avro.Schema): avro.Type | undefined {
  return typeof schema === 'object' && schema !== null && (schema as { type?: unknown }).type === 'long'
    ? preciseLong
    : undefined;
}

/** The text of a source's .avsc file; one that cannot be read is a TesseraError naming it. */
export function readAvroSchemaFile(file: string, source: SourceDef): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `cannot read Avro schema file ${file} (source ${source.name})`,
      {
        cause,
        context: { file, source: source.name },
      },
    );
  }
}

/** Reads and compiles an .avsc file; a missing or invalid file is a TesseraError naming it. */
export function loadAvroSchemaFile(file: string, source: SourceDef): AvroCodec {
  return compileAvroSchema(readAvroSchemaFile(file, source), file, source);
}

/** Compiles schema text (JSON); throws a DEFINITIONS_INVALID TesseraError naming `origin` when invalid. */
export function compileAvroSchema(text: string, origin: string, source: SourceDef): AvroCodec {
  let schema: Json;
  let type: avro.Type;
  try {
    schema = JSON.parse(text) as Json;
    type = avro.Type.forSchema(schema as avro.Schema, {
      registry: { long: preciseLong },
      typeHook: longHook,
      // Read as numbers (avro-decimal.ts). A decimal whose precision or scale is malformed refuses
      // the schema, rather than falling back to bytes as the spec allows: every event would be
      // refused then, one by one.
      logicalTypes: { decimal: DecimalType },
      assertLogicalTypes: true,
    });
  } catch (cause) {
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `${origin}: not a valid Avro schema: ${(cause as Error).message}`,
      {
        cause,
        context: { origin, source: source.name },
      },
    );
  }
  if (!(type instanceof avro.types.RecordType)) {
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `${origin}: the Avro schema must be a record, got ${type.typeName}`,
      {
        context: { origin, source: source.name },
      },
    );
  }
  const fields = type.fields.map((f) => f.name);
  const timestampUnits: Record<string, TimestampUnit> = {};
  for (const [column, columnType] of Object.entries(source.schema))
    if (columnType === 'timestamp') timestampUnits[column] = unitOf(schema, column, source, origin);
  // Unions avsc cannot tell apart by a JS value's type (["null", "float", "double"]) come as
  // {branch: value}: unwrapped on reading, wrapped on writing, so the validator sees the value.
  const wrapped = type.fields.filter((f) => f.type instanceof avro.types.WrappedUnionType);
  // Block counts held to the bytes first (avro-blocks.ts): only a schema with an array or map pays.
  const collections = hasCollections(type);
  // avsc reads an int as any varint up to 2^53: held to 32 bits here, as Avro's other readers do.
  const ints = type.fields
    .filter((f) => isIntType(f.type) || ((f.type as { types?: avro.Type[] }).types ?? []).some(isIntType))
    .map((f) => f.name);
  return {
    origin,
    timestampUnits,
    fields,
    read: collections
      ? (bytes, start) => {
          const problem = blockProblem(type, bytes, start);
          return problem === undefined
            ? readBody(type, wrapped, ints, bytes, start)
            : failure('undecodable', problem);
        }
      : (bytes, start) => readBody(type, wrapped, ints, bytes, start),
    write: (record) => writeBody(type, wrapped, source, timestampUnits, record),
  };
}

type AvroField = avro.types.RecordType['fields'][number];

const isIntType = (t: avro.Type) => t.typeName === 'int';

function readBody(
  type: avro.Type,
  wrapped: readonly AvroField[],
  ints: readonly string[],
  bytes: Buffer,
  start: number,
): AvroRead {
  let decoded: { value: unknown; offset: number };
  try {
    decoded = type.decode(bytes, start);
  } catch (error) {
    return failure('undecodable', `not an Avro body of this schema: ${(error as Error).message}`);
  }
  if (decoded.offset < 0) {
    return failure(
      'undecodable',
      `Avro body truncated: ${bytes.length - start} bytes are too few for the schema`,
    );
  }
  if (decoded.offset !== bytes.length) {
    return failure(
      'undecodable',
      `Avro body has ${bytes.length - decoded.offset} trailing bytes after the record: wrong schema?`,
    );
  }
  const raw = decoded.value as Record<string, unknown>;
  for (const name of ints) {
    const v = raw[name];
    const n = typeof v === 'object' && v !== null && 'int' in v ? (v as { int: unknown }).int : v;
    // Read past 32 bits, -(2^52 + 3) came back as key 2^52 + 2: another entity's.
    if (typeof n === 'number' && (n < -2147483648 || n > 2147483647))
      return failure(
        'undecodable',
        `field ${name}: ${n} does not fit the 32 bits of an Avro int; the writer's schema says int, its bytes say otherwise (a long?)`,
        name,
      );
  }
  for (const { name } of wrapped) {
    const v = raw[name];
    if (typeof v === 'object' && v !== null) raw[name] = Object.values(v)[0];
  }
  // avsc decodes invalid UTF-8 as U+FFFD, merging strings that differ there. Only when a field
  // holds one are the body's string bytes checked (a real U+FFFD is valid UTF-8).
  for (const name in raw) {
    const v = raw[name];
    if (typeof v !== 'string' || !v.includes('\uFFFD')) continue;
    const bad = invalidUtf8Field(type, bytes, start);
    if (bad !== undefined)
      return failure(
        'undecodable',
        `field ${bad}: the string is not valid UTF-8; Avro strings must be UTF-8`,
        bad,
      );
    break;
  }
  return { ok: true, raw };
}

function writeBody(
  type: avro.Type,
  wrapped: readonly AvroField[],
  source: SourceDef,
  units: Readonly<Record<string, TimestampUnit>>,
  record: EncodableRecord,
): Buffer {
  const value: Record<string, unknown> = { ...record };
  for (const [column, unit] of Object.entries(units)) {
    const time = record[column];
    if (typeof time !== 'number') continue;
    value[column] =
      unit === 'millis'
        ? time
        : unit === 'micros'
          ? time * 1000
          : unit === 'nanos'
            ? String(BigInt(time) * 1_000_000n) // past 2^53: preciseLong takes the exact string
            : unit === 'seconds'
              ? time / 1000
              : formatTimestamp(time, source.timestampFormat);
  }
  for (const field of wrapped) {
    const v = value[field.name];
    // The last branch that takes it: unions list the narrower types first (float before double).
    const branch = (field.type as avro.types.WrappedUnionType).types.findLast(
      (t) => t.typeName !== 'null' && t.isValid(v),
    );
    if (v !== null && v !== undefined && branch) value[field.name] = { [branch.branchName!]: v };
  }
  if (type.isValid(value)) return type.toBuffer(value);
  const bad: string[] = [];
  type.isValid(value, { errorHook: (path, v) => bad.push(`${path.join('.')} = ${describe(v)}`) });
  throw new TesseraError(
    'EVENT_INVALID',
    `cannot encode record for source ${source.name} as Avro: ${bad.join(', ')}`,
    {
      context: { source: source.name, fields: bad },
    },
  );
}

/** Logical types that are not an instant: a day, a time of day, a wall-clock time without a zone. */
const NOT_INSTANTS = new Set([
  'date',
  'time-millis',
  'time-micros',
  'local-timestamp-millis',
  'local-timestamp-micros',
  'local-timestamp-nanos',
]);

/**
 * How the writer schema stores a timestamp column (the event time or another): its logical type,
 * else the field's Avro type.
 */
function unitOf(schema: Json, column: string, source: SourceDef, origin: string): TimestampUnit {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return 'format';
  const fields = schema.fields;
  if (!Array.isArray(fields)) return 'format';
  const field = fields.find(
    (f): f is { [key: string]: Json } =>
      typeof f === 'object' && f !== null && !Array.isArray(f) && f.name === column,
  );
  if (field === undefined) return 'format';
  let type = field.type;
  // ["null", T] and friends: the non-null branch decides.
  if (Array.isArray(type)) type = type.find((t) => t !== 'null') ?? null;
  const logical =
    typeof type === 'object' && type !== null && !Array.isArray(type) ? type.logicalType : undefined;
  if (typeof logical === 'string' && NOT_INSTANTS.has(logical))
    // Read as epoch milliseconds, a date of 2026-01-01 (day 20454) was 20 seconds after 1970; a
    // local timestamp names different instants in different zones (as a zone-less ISO time).
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `${origin}: field ${column} has logicalType ${logical}, which is not an instant; ${column === source.timestampField ? 'event times' : 'timestamp columns'} must be timestamp-millis, timestamp-micros or timestamp-nanos (UTC)`,
      { context: { origin, source: source.name, logicalType: logical } },
    );
  if (logical === 'timestamp-millis') return 'millis';
  if (logical === 'timestamp-micros') return 'micros';
  if (logical === 'timestamp-nanos') return 'nanos';
  const base = typeof type === 'object' && type !== null && !Array.isArray(type) ? type.type : type;
  if (base === 'long' || base === 'int' || base === 'double' || base === 'float') {
    return source.timestampFormat === 'epoch_s' ? 'seconds' : 'millis';
  }
  return 'format';
}

/** Fails construction when the writer schema lacks a column the source needs. */
export function assertCoversSource(codec: AvroCodec, source: SourceDef): void {
  const missing = Object.keys(source.schema).filter((c) => !codec.fields.includes(c));
  if (missing.length > 0) {
    throw new TesseraError(
      'DEFINITIONS_INVALID',
      `${codec.origin}: Avro schema has no field ${missing.join(', ')} that source ${source.name} declares`,
      { context: { origin: codec.origin, source: source.name, missing } },
    );
  }
}
