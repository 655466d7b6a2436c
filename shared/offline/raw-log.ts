// The raw event log in the offline store: `raw/<source>/date=YYYY-MM-DD/<name>.parquet`, one
// folder per UTC day of event time, columns = rawEventColumns(source). Backfills and point-in-time
// retrieval read it; the day folders let a reader skip every day outside the time range it needs.
import type * as arrow from 'apache-arrow';
import { int64Value } from '../codecs/int64.ts';
import type { SourceDef } from '../definitions/schema.ts';
import type { Value } from '../engine/index.ts';
import { TesseraError } from '../errors.ts';
import { rawEventColumns, SOURCE_OFFSET, SOURCE_PARTITION } from './feature-columns.ts';
import type { ObjectStore } from './object-store.ts';
import {
  type ColumnInput,
  type ColumnValues,
  readParquet,
  type WriteOptions,
  writeParquet,
} from './parquet.ts';

const DAY_MS = 86_400_000;

/** `raw/<source>/`: every object of a source's raw log is under it. */
export function rawLogPrefix(source: string): string {
  return `raw/${source}/`;
}

/** Object key of a raw-log file: `raw/<source>/date=<day>/<name>.parquet` (the one place of this layout). */
export function rawObjectKey(source: string, day: string, name: string): string {
  return `${rawLogPrefix(source)}date=${day}/${name}.parquet`;
}

/** The UTC day (YYYY-MM-DD) an epoch-millisecond time falls in. */
export function utcDay(ms: number): string {
  return new Date(Math.floor(ms / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
}

/** Rows of a source's raw log as columns: the source's fields (its timestamp field in epoch ms),
 * source_partition and source_offset, one value per row each. */
export interface RawLogBatch {
  rows: number;
  columns: Readonly<Record<string, ColumnInput>>;
}

/**
 * Writes a batch as one parquet object per UTC day of its timestamps, named `<name>.parquet` in
 * that day's folder (an object with the same name is replaced). Returns the keys written.
 */
export async function writeRawLog(
  store: ObjectStore,
  source: SourceDef,
  batch: RawLogBatch,
  name: string,
  options: WriteOptions = {},
): Promise<string[]> {
  const specs = rawEventColumns(source);
  for (const spec of specs)
    if (!batch.columns[spec.name])
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `raw log batch of source ${source.name} lacks column ${spec.name}; it needs ${specs.map((s) => s.name).join(', ')}`,
      );
  const ts = batch.columns[source.timestampField]!.values;
  const byDay = new Map<string, number[]>();
  for (let i = 0; i < batch.rows; i++) {
    const t = Number(ts[i]);
    if (!Number.isFinite(t))
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `raw log batch row ${i}: ${source.timestampField} is ${String(ts[i])}, not an epoch-ms time`,
      );
    const day = utcDay(t);
    let rows = byDay.get(day);
    if (!rows) {
      rows = [];
      byDay.set(day, rows);
    }
    rows.push(i);
  }
  const keys: string[] = [];
  for (const [day, rows] of [...byDay].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const columns: Record<string, ColumnInput> = {};
    for (const spec of specs) columns[spec.name] = pick(batch.columns[spec.name]!, rows);
    const key = rawObjectKey(source.name, day, name);
    await store.put(
      key,
      writeParquet(specs, columns, rows.length, options),
      'application/vnd.apache.parquet',
    );
    keys.push(key);
  }
  return keys;
}

/** One object of the raw log with the UTC day its folder names. */
export interface RawLogObject {
  key: string;
  size: number;
  day: string;
  /** Epoch ms of the day's start: the object holds events in [dayStart, dayStart + 1 day). */
  dayStart: number;
}

const DAY_FOLDER = /\/date=(\d{4}-\d{2}-\d{2})\/[^/]+\.parquet$/;

/**
 * The UTC day of an object filed in a `date=YYYY-MM-DD/<name>.parquet` folder (the raw log, the late
 * marks) and the epoch ms of its start; null for a key outside such a folder.
 */
export function dayFolder(key: string): { day: string; dayStart: number } | null {
  const m = DAY_FOLDER.exec(key);
  if (!m) return null;
  const dayStart = Date.parse(`${m[1]}T00:00:00Z`);
  return Number.isNaN(dayStart) ? null : { day: m[1]!, dayStart };
}

/** Whether a day folder starting at `dayStart` can hold events in [from, to). */
export function dayOverlaps(dayStart: number, from: number, to: number): boolean {
  return dayStart + DAY_MS > from && dayStart < to;
}

/**
 * The parquet objects of a source's raw log whose day can hold events in [from, to), sorted by
 * key (so by day). Objects outside a `date=` folder are ignored.
 */
export async function listRawLog(
  store: ObjectStore,
  source: string,
  range: { from: number; to: number } = { from: -Infinity, to: Infinity },
): Promise<RawLogObject[]> {
  const out: RawLogObject[] = [];
  for (const object of await store.list(rawLogPrefix(source))) {
    const folder = dayFolder(object.key);
    if (!folder || !dayOverlaps(folder.dayStart, range.from, range.to)) continue;
    out.push({ key: object.key, size: object.size, ...folder });
  }
  return out;
}

/** A decoded raw-log object: the Kafka position of every row as typed columns, and the table. */
export interface RawEvents {
  rows: number;
  /** Event time, epoch ms (from the source's timestamp field). */
  ts: Float64Array;
  partition: Int32Array;
  offset: Float64Array;
  table: arrow.Table;
}

/** Decodes one raw-log object and checks that it has the columns a reader needs. */
export function readRawLog(bytes: Uint8Array, source: SourceDef, where = 'raw log object'): RawEvents {
  const table = readParquet(bytes);
  for (const spec of rawEventColumns(source))
    if (!table.getChild(spec.name))
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `${where} has no column ${spec.name}; the raw log of source ${source.name} needs ${rawEventColumns(
          source,
        )
          .map((s) => s.name)
          .join(', ')}`,
      );
  const ts = numericColumn(table, source.timestampField);
  const partition = Int32Array.from(numericColumn(table, SOURCE_PARTITION));
  return { rows: table.numRows, ts, partition, offset: numericColumn(table, SOURCE_OFFSET), table };
}

/**
 * A numeric column (int32, int64, double, or a timestamp in epoch ms) as doubles, NaN for null.
 * int64 values are read from their two 32-bit halves (no BigInt per row); they are exact up to 2^53.
 * Micro- and nanosecond timestamps become whole milliseconds exactly, plus the rest as a fraction
 * (msWithFraction): multiplying by 1e-6 landed just below the true millisecond for one time in six,
 * and floored outputs came out 1 ms early.
 */
export function numericColumn(table: arrow.Table, name: string): Float64Array {
  const vector = table.getChild(name);
  if (!vector) throw new TesseraError('INVALID_ARGUMENT', `table has no column ${name}`);
  const out = new Float64Array(table.numRows);
  let at = 0;
  for (const data of vector.data) {
    const values = data.values as ArrayLike<number | bigint> & {
      buffer: ArrayBufferLike;
      byteOffset: number;
    };
    const n = data.length;
    const unit = (data.type as { unit?: number }).unit;
    if (values instanceof BigInt64Array || values instanceof BigUint64Array) {
      // Timestamps: arrow's unit 0 = s, 1 = ms, 2 = us, 3 = ns; plain int64 has no unit.
      const words = new Int32Array(values.buffer, values.byteOffset + data.offset * 8, n * 2);
      if (unit === 2 || unit === 3) {
        const perMs = unit === 2 ? 1e3 : 1e6;
        for (let i = 0; i < n; i++) out[at + i] = unitsToMs(words[2 * i + 1]!, words[2 * i]! >>> 0, perMs);
      } else {
        const scale = unit === 0 ? 1000 : 1;
        for (let i = 0; i < n; i++)
          out[at + i] = (words[2 * i + 1]! * 4294967296 + (words[2 * i]! >>> 0)) * scale;
      }
    } else if (unit !== undefined) {
      for (let i = 0; i < n; i++) out[at + i] = Number(vector.get(at + i));
    } else {
      for (let i = 0; i < n; i++) out[at + i] = Number(values[data.offset + i]);
    }
    if (data.nullCount > 0) for (let i = 0; i < n; i++) if (!data.getValid(i)) out[at + i] = Number.NaN;
    at += n;
  }
  return out;
}

const TWO_32 = 4294967296;

/**
 * The int64 `hi * 2^32 + lo` (lo unsigned) of `perMs` units per millisecond, in epoch ms, in
 * integer steps that stay below 2^53: 2^32 = big * perMs + small, so the value is
 * (hi * big) * perMs + (hi * small + lo), and only the second part is divided. Exact across
 * Date's range, before 1970 too (whole ms floored, the fraction in [0, 1)).
 */
function unitsToMs(hi: number, lo: number, perMs: number): number {
  const big = Math.floor(TWO_32 / perMs);
  const rest = hi * (TWO_32 - big * perMs) + lo;
  let whole = Math.floor(rest / perMs);
  let part = rest - whole * perMs;
  // rest / perMs is rounded: an exact multiple can come out a hair either side.
  if (part < 0) {
    whole -= 1;
    part += perMs;
  } else if (part >= perMs) {
    whole += 1;
    part -= perMs;
  }
  return msWithFraction(hi * big + whole, part / perMs);
}

/**
 * Whole milliseconds `ms` plus `fraction` (in [0, 1)) as one double whose floor is `ms`, and which
 * is above `ms` when the fraction is not 0. A double holds only ~1/4096 ms at today's epoch values:
 * 0.9999 rounds up onto the next millisecond, and 0.0001 onto this one. Everything downstream
 * compares a time with whole milliseconds (event times, window ends, the output floors to ms), so
 * any fraction strictly inside (0, 1) answers alike: one that would round onto a whole is kept as
 * half a millisecond.
 */
export function msWithFraction(ms: number, fraction: number): number {
  if (fraction === 0) return ms;
  const t = ms + fraction;
  return t > ms && t < ms + 1 ? t : ms + 0.5;
}

/** The rows `rows` of one column, in that order. */
function pick(input: ColumnInput, rows: readonly number[]): ColumnInput {
  const values = input.values;
  let out: ColumnValues;
  if (values instanceof Float64Array) out = Float64Array.from(rows, (r) => values[r]!);
  else if (values instanceof Int32Array) out = Int32Array.from(rows, (r) => values[r]!);
  else if (values instanceof BigInt64Array) {
    const picked = new BigInt64Array(rows.length);
    rows.forEach((r, i) => {
      picked[i] = values[r]!;
    });
    out = picked;
  } else out = rows.map((r) => (values as readonly unknown[])[r]) as ColumnValues;
  return input.valid
    ? { values: out, valid: Uint8Array.from(rows, (r) => input.valid![r]!) }
    : { values: out };
}

/**
 * A batch from decoded records (tests, benchmarks, small producers): each record carries the
 * source's fields (the timestamp field in epoch ms) and its Kafka partition and offset.
 */
export function rawBatchFromRecords<R extends object>(
  source: SourceDef,
  records: readonly R[],
  position: (record: R) => { partition: number; offset: number },
): RawLogBatch {
  const columns: Record<string, ColumnInput> = {};
  for (const spec of rawEventColumns(source)) {
    if (spec.name === SOURCE_PARTITION)
      columns[spec.name] = { values: Int32Array.from(records, (r) => position(r).partition) };
    else if (spec.name === SOURCE_OFFSET)
      columns[spec.name] = { values: records.map((r) => position(r).offset) };
    else
      columns[spec.name] = {
        values: records.map((r) => {
          const v = (r as Readonly<Record<string, unknown>>)[spec.name];
          return v === undefined ? null : v;
        }) as ColumnValues,
      };
  }
  return { rows: records.length, columns };
}

/**
 * A string, bool or int64 column as ids into a dictionary shared across objects (`codes` maps a
 * value to its id, `dict` is the inverse; both grow), -1 for null. Values are the engine's:
 * booleans stay booleans, int64 values are numbers while exact and decimal strings beyond 2^53.
 * ASCII data is decoded once per chunk and cut with substring, which is many times faster than
 * decoding each value.
 */
export function stringColumnIds(
  table: arrow.Table,
  name: string,
  codes: Map<Value, number>,
  dict: Value[],
): Int32Array {
  const vector = table.getChild(name);
  if (!vector) throw new TesseraError('INVALID_ARGUMENT', `table has no column ${name}`);
  const out = new Int32Array(table.numRows);
  const idOf = (text: Value): number => {
    let id = codes.get(text);
    if (id === undefined) {
      id = dict.push(text) - 1;
      codes.set(text, id);
    }
    return id;
  };
  let at = 0;
  for (const data of vector.data) {
    const n = data.length;
    const offsets = data.valueOffsets as Int32Array | undefined;
    const bytes = data.values as Uint8Array | undefined;
    if (offsets instanceof Int32Array && bytes instanceof Uint8Array && isAscii(bytes)) {
      const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
      for (let i = 0; i < n; i++) {
        const k = data.offset + i;
        out[at + i] =
          data.nullCount > 0 && !data.getValid(i) ? -1 : idOf(text.substring(offsets[k]!, offsets[k + 1]!));
      }
    } else {
      for (let i = 0; i < n; i++) {
        const v = vector.get(at + i) as unknown;
        out[at + i] =
          v === null || v === undefined
            ? -1
            : idOf(typeof v === 'boolean' ? v : typeof v === 'bigint' ? int64Value(v) : String(v));
      }
    }
    at += n;
  }
  return out;
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i]! >= 0x80) return false;
  return true;
}
