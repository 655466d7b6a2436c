// Turns loosely typed values (decoded JSON, Avro records) into the typed column inputs the parquet
// writer takes, one declared type per column; int64 keeps every digit (decimal strings -> BigInt).
import { MAX_DATE_MS } from '../../shared/codecs/timestamp.ts';
import { TesseraError } from '../../shared/errors.ts';
import { type ColumnInput, type ColumnSpec, isListType, listItemType } from '../../shared/offline/parquet.ts';

export function columnFromValues(spec: ColumnSpec, values: readonly unknown[]): ColumnInput {
  const n = values.length;
  const bad = (i: number, v: unknown): never => {
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `column ${spec.name} (${spec.type}) row ${i}: ${typeof v === 'bigint' ? v : JSON.stringify(v)} does not fit the column type`,
      { context: { column: spec.name } },
    );
  };
  if (isListType(spec.type)) {
    // Items as the writer takes them: int64 and timestamps as bigint (every digit kept).
    const item = listItemType(spec.type)!;
    const wide = item === 'int64' || item === 'timestamp_ms';
    return {
      values: values.map((v, i) => {
        if (v === null || v === undefined) return null;
        if (!fitsColumn(spec.type, v)) return bad(i, v);
        return wide ? (v as unknown[]).map((x) => (x === null ? null : int64Of(x)!)) : (v as unknown[]);
      }),
    };
  }
  const valid = new Uint8Array(n);
  let nulls = 0;
  switch (spec.type) {
    case 'int64':
    case 'timestamp_ms': {
      const out = new BigInt64Array(n);
      // Safe integers are written as two 32-bit halves (little-endian, as every platform Node runs on):
      // no BigInt allocated per value.
      const words = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) {
        let v = values[i];
        if (v === null || v === undefined) {
          nulls++;
          continue;
        }
        valid[i] = 1;
        if (typeof v === 'string' && v.length <= 15 && /^-?\d+$/.test(v)) v = Number(v);
        if (typeof v === 'number' && Number.isSafeInteger(v)) {
          const lo = v % 0x1_0000_0000;
          const hi = Math.floor(v / 0x1_0000_0000);
          words[2 * i] = lo >>> 0;
          words[2 * i + 1] = hi >>> 0;
        } else {
          // A BigInt64Array keeps the low 64 bits of what it is given: out of range, -1 was
          // written for 2^64 - 1.
          const b = int64Of(v);
          if (b === undefined) bad(i, v);
          else out[i] = b;
        }
      }
      return nulls > 0 ? { values: out, valid } : { values: out };
    }
    case 'int32':
    case 'double': {
      const out = spec.type === 'int32' ? new Int32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          nulls++;
          continue;
        }
        valid[i] = 1;
        if (typeof v === 'number') out[i] = v;
        else bad(i, v);
      }
      return nulls > 0 ? { values: out, valid } : { values: out };
    }
    case 'string':
      return {
        values: values.map((v) =>
          v === null || v === undefined ? null : typeof v === 'string' ? v : JSON.stringify(v),
        ),
      };
    case 'bool':
      return {
        values: values.map((v, i) =>
          v === null || v === undefined ? null : typeof v === 'boolean' ? v : bad(i, v),
        ),
      };
    case 'binary':
      return {
        values: values.map((v, i) =>
          v === null || v === undefined ? null : v instanceof Uint8Array ? v : bad(i, v),
        ),
      };
  }
}

/**
 * Whether columnFromValues takes `v` in a column of `type` (nulls always): a value it would refuse
 * fails the whole file, so callers check rows one by one first.
 */
export function fitsColumn(type: ColumnSpec['type'], v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (isListType(type)) {
    const item = listItemType(type)!;
    return Array.isArray(v) && v.every((x) => fitsColumn(item, x));
  }
  switch (type) {
    case 'int64':
      return int64Of(v) !== undefined;
    case 'timestamp_ms': {
      // Within what a Date holds: the file's stats and CSV write the time as ISO text.
      const b = int64Of(v);
      return b !== undefined && b >= -MAX_DATE && b <= MAX_DATE;
    }
    case 'int32':
    case 'double':
      return typeof v === 'number';
    case 'string':
      return true;
    case 'bool':
      return typeof v === 'boolean';
    case 'binary':
      return v instanceof Uint8Array;
  }
}

const MAX_DATE = BigInt(MAX_DATE_MS);

/** `v` (a safe integer, a decimal string or a bigint) as an int64, or undefined outside it. */
function int64Of(v: unknown): bigint | undefined {
  const b =
    typeof v === 'number' && Number.isSafeInteger(v)
      ? BigInt(v)
      : typeof v === 'string' && /^-?\d+$/.test(v)
        ? BigInt(v)
        : typeof v === 'bigint'
          ? v
          : undefined;
  return b !== undefined && b === BigInt.asIntN(64, b) ? b : undefined;
}
