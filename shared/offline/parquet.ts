// The one parquet writer and reader of Tessera (apache-arrow tables encoded by parquet-wasm): typed
// columns in, parquet bytes out with real logical types, so pandas, pyarrow and Feast read the files
// without casts (TIMESTAMP(ms, UTC), DOUBLE, INT64, UTF8).
import * as arrow from 'apache-arrow';
import * as wasm from 'parquet-wasm';
import { TesseraError } from '../errors.ts';

/** Types a list column's items can have (a last_n feature's values: those of its column). */
export type ListItemType = 'int64' | 'double' | 'string' | 'timestamp_ms' | 'bool';

/**
 * Column types of the offline store, each mapped to one parquet logical type; a list is parquet's
 * LIST of its items (pyarrow `list<item: double>`, pandas an array per cell).
 */
export type ColumnType = ScalarColumnType | ListColumnType;

export type ScalarColumnType = 'int64' | 'int32' | 'double' | 'string' | 'timestamp_ms' | 'bool' | 'binary';

export type ListColumnType = `list<${ListItemType}>`;

export function isListType(type: ColumnType): type is ListColumnType {
  return type.startsWith('list<');
}

/** The item type of a list column type; undefined for the others. */
export function listItemType(type: ColumnType): ListItemType | undefined {
  return isListType(type) ? (type.slice(5, -1) as ListItemType) : undefined;
}

export interface ColumnSpec {
  name: string;
  type: ColumnType;
}

/**
 * One column's values. Numbers may be given as plain arrays (with null for missing) or as typed
 * arrays (no nulls, unless `valid` marks them: 1 = present, 0 = null). int64 and timestamp_ms
 * accept numbers (safe integers; timestamps in epoch milliseconds) or a BigInt64Array.
 */
export type ColumnValues =
  | Float64Array
  | Int32Array
  | BigInt64Array
  | readonly (number | null)[]
  | readonly (string | null)[]
  | readonly (boolean | null)[]
  | readonly (Uint8Array | null)[]
  /** A list column's cells: int64 and timestamp items as bigint, the others as for their type. */
  | readonly (readonly unknown[] | null)[];

export interface ColumnInput {
  values: ColumnValues;
  /** Optional validity per row for typed-array values (1 = present, 0 = null). */
  valid?: Uint8Array;
}

export interface WriteOptions {
  /** Rows per row group; readers parallelize and skip by row group. Default 128k. */
  rowGroupSize?: number;
  /** Default zstd: small files, fast to read. */
  compression?: 'zstd' | 'snappy' | 'none';
  /**
   * Key-value metadata stored in the file footer (e.g. the definitions hash). With several keys
   * their order in the footer varies from run to run (a hash map in parquet-wasm): use one key
   * when the bytes must be reproducible.
   */
  metadata?: Readonly<Record<string, string>>;
}

/** Builds an Arrow table with the declared logical types from typed columns. */
/** Rows per row group unless WriteOptions say otherwise (parquet-chunks.ts writes the same). */
export const DEFAULT_ROW_GROUP_ROWS = 128 * 1024;

export function toArrowTable(
  specs: readonly ColumnSpec[],
  columns: Readonly<Record<string, ColumnInput>>,
  rows: number,
): arrow.Table {
  const vectors: Record<string, arrow.Vector> = {};
  for (const spec of specs) {
    const input = columns[spec.name];
    if (!input)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `parquet column ${spec.name} has no values; pass every declared column`,
      );
    if (input.values.length !== rows)
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `parquet column ${spec.name} has ${input.values.length} values for ${rows} rows; every column needs one value per row`,
      );
    vectors[spec.name] = toVector(spec, input, rows);
  }
  return new arrow.Table(vectors);
}

/** Encodes a table as parquet bytes. */
export function writeParquet(
  specs: readonly ColumnSpec[],
  columns: Readonly<Record<string, ColumnInput>>,
  rows: number,
  options: WriteOptions = {},
): Uint8Array {
  return encodeTable(toArrowTable(specs, columns, rows), options);
}

export function encodeTable(table: arrow.Table, options: WriteOptions = {}): Uint8Array {
  const compression = {
    zstd: wasm.Compression.ZSTD,
    snappy: wasm.Compression.SNAPPY,
    none: wasm.Compression.UNCOMPRESSED,
  }[options.compression ?? 'zstd'];
  let builder = new wasm.WriterPropertiesBuilder()
    .setCompression(compression)
    .setMaxRowGroupSize(options.rowGroupSize ?? DEFAULT_ROW_GROUP_ROWS);
  if (options.metadata) {
    const kv = new Map(Object.entries(options.metadata));
    builder = builder.setKeyValueMetadata(kv);
  }
  const ipc = arrow.tableToIPC(table, 'stream');
  return wasm.writeParquet(wasm.Table.fromIPCStream(ipc), builder.build());
}

/** Decodes parquet bytes into an Arrow table (all row groups). */
export function readParquet(bytes: Uint8Array): arrow.Table {
  try {
    return arrow.tableFromIPC(wasm.readParquet(bytes).intoIPCStream());
  } catch (error) {
    throw new TesseraError('INVALID_ARGUMENT', `not a readable parquet file: ${String(error)}`, {
      cause: error,
    });
  }
}

function toVector(spec: ColumnSpec, input: ColumnInput, rows: number): arrow.Vector {
  const { values } = input;
  if (isListType(spec.type)) {
    const item = listItemType(spec.type)!;
    if (!Array.isArray(values))
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `parquet column ${spec.name} (${spec.type}) needs a plain array of arrays`,
      );
    const type = new arrow.List(new arrow.Field('item', ARROW_ITEM_TYPES[item](), true));
    return arrow.vectorFromArray(values as unknown[], type as arrow.DataType);
  }
  switch (spec.type) {
    case 'string':
    case 'bool': {
      if (!Array.isArray(values))
        throw new TesseraError(
          'INVALID_ARGUMENT',
          `parquet column ${spec.name} (${spec.type}) needs a plain array`,
        );
      const type = spec.type === 'string' ? new arrow.Utf8() : new arrow.Bool();
      return arrow.vectorFromArray(values as unknown[], type as arrow.DataType);
    }
    case 'binary': {
      // Opaque bytes (e.g. encoded entity state in snapshots): parquet BYTE_ARRAY, no logical type.
      if (!Array.isArray(values))
        throw new TesseraError(
          'INVALID_ARGUMENT',
          `parquet column ${spec.name} (binary) needs a plain array`,
        );
      return arrow.vectorFromArray(values as (Uint8Array | null)[], new arrow.Binary());
    }
    case 'double':
      return numeric(spec, input, rows, new arrow.Float64(), Float64Array, (v) => v);
    case 'int32':
      return numeric(spec, input, rows, new arrow.Int32(), Int32Array, (v) => v);
    case 'int64':
      return numeric(spec, input, rows, new arrow.Int64(), BigInt64Array, toBigInt(spec));
    case 'timestamp_ms':
      return numeric(spec, input, rows, new arrow.TimestampMillisecond('UTC'), BigInt64Array, toBigInt(spec));
  }
}

/** Arrow's type for each list item type (the same logical types as the scalar columns). */
const ARROW_ITEM_TYPES: Readonly<Record<ListItemType, () => arrow.DataType>> = {
  int64: () => new arrow.Int64(),
  double: () => new arrow.Float64(),
  string: () => new arrow.Utf8(),
  timestamp_ms: () => new arrow.TimestampMillisecond('UTC'),
  bool: () => new arrow.Bool(),
};

type TypedCtor = Float64ArrayConstructor | Int32ArrayConstructor | BigInt64ArrayConstructor;

function numeric<T extends arrow.Float64 | arrow.Int32 | arrow.Int64 | arrow.TimestampMillisecond>(
  spec: ColumnSpec,
  input: ColumnInput,
  rows: number,
  type: T,
  Ctor: TypedCtor,
  convert: (v: number) => number | bigint,
): arrow.Vector {
  let data: Float64Array | Int32Array | BigInt64Array;
  let valid = input.valid;
  const { values } = input;
  if (values instanceof Ctor) {
    data = values;
  } else if (Array.isArray(values)) {
    data = new Ctor(rows);
    let nulls = false;
    const present = new Uint8Array(rows);
    for (let i = 0; i < rows; i++) {
      const v = values[i] as number | null;
      if (v === null || v === undefined) {
        nulls = true;
        continue;
      }
      if (typeof v !== 'number')
        throw new TesseraError(
          'INVALID_ARGUMENT',
          `parquet column ${spec.name} row ${i}: ${String(v)} is not a number`,
        );
      present[i] = 1;
      (data as unknown as (number | bigint)[])[i] = convert(v);
    }
    if (nulls) valid = present;
  } else {
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `parquet column ${spec.name} (${spec.type}) got a ${values.constructor.name}; pass a plain array or a ${Ctor.name}`,
    );
  }
  let nullCount = 0;
  let nullBitmap: Uint8Array | undefined;
  if (valid) {
    nullBitmap = new Uint8Array((rows + 7) >> 3);
    for (let i = 0; i < rows; i++) {
      if (valid[i]) nullBitmap[i >> 3]! |= 1 << (i & 7);
      else nullCount++;
    }
    if (nullCount === 0) nullBitmap = undefined;
  }
  // makeData's overloads are keyed by type; this one generic path covers the four numeric types.
  const props = { type, length: rows, nullCount, data, nullBitmap };
  return arrow.makeVector(arrow.makeData(props as never) as unknown as arrow.Data<T>);
}

function toBigInt(spec: ColumnSpec): (v: number) => bigint {
  return (v) => {
    if (!Number.isSafeInteger(v))
      throw new TesseraError(
        'INVALID_ARGUMENT',
        `parquet column ${spec.name} (${spec.type}): ${v} is not a safe integer; pass a BigInt64Array for larger values`,
      );
    return BigInt(v);
  };
}
