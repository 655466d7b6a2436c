// Turns a decoded record (plain JS values from JSON or Avro) into the typed record the engine
// takes, or into a refusal with a fixed reason. Format-independent: both codecs end here.
import type { ColumnType, SourceDef } from '../definitions/schema.ts';
import { int64FromCanonical, int64Value, isCanonicalInt64String, looksLikeInteger } from './int64.ts';
import { describe, parseTimestamp, type TimestampUnit } from './timestamp.ts';
import { type ColumnValue, type DecodeResult, failure } from './types.ts';

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

type Checked =
  | { ok: true; value: ColumnValue }
  | { ok: false; reason: 'schema_mismatch' | 'non_numeric' | 'bad_timestamp'; problem: string };

export type RecordValidator = (
  raw: Readonly<Record<string, unknown>>,
  messageKey: string | null,
  /** How an Avro writer stores each timestamp column; a column not named here: timestamp_format. */
  timestampUnits?: Readonly<Record<string, TimestampUnit>>,
) => DecodeResult;

interface Column {
  name: string;
  type: ColumnType;
  role: 'key' | 'time' | 'value';
  /** An int64 column a numeric aggregation reads: its values must be numbers (|n| < 2^53). */
  aggregated: boolean;
}

/** Builds the validator of one source; columns are resolved once, not per message. */
export function createValidator(source: SourceDef): RecordValidator {
  const aggregated = new Set(source.numericInt64Columns ?? []);
  const columns: Column[] = Object.entries(source.schema).map(([name, type]) => ({
    name,
    type,
    role: name === source.keyField ? 'key' : name === source.timestampField ? 'time' : 'value',
    aggregated: aggregated.has(name),
  }));
  // Key first, then time, then the rest: the most specific reason wins when several fields are bad.
  const rank = { key: 0, time: 1, value: 2 } as const;
  columns.sort((a, b) => rank[a.role] - rank[b.role]);
  const format = source.timestampFormat;

  return (raw, messageKey, timestampUnits) => {
    const record: Record<string, ColumnValue> = {};
    let key = '';
    let ts = 0;
    for (const column of columns) {
      const value = raw[column.name];
      const { name } = column;
      // A function can only be inherited (a column named `constructor` that the event lacks): no
      // decoded JSON or Avro value is one, so it is missing, not of the wrong type.
      if (value === undefined || value === null || typeof value === 'function') {
        if (column.role === 'key') return failure('missing_key', `field ${name}: the key is missing`, name);
        if (column.role === 'time') {
          return failure('missing_timestamp', `field ${name}: the event timestamp is missing`, name);
        }
        return failure('missing_field', `field ${name}: missing (${column.type} expected)`, name);
      }
      if (column.type === 'timestamp') {
        const parsed = parseTimestamp(value, format, timestampUnits?.[name] ?? 'format');
        if (!parsed.ok) return failure('bad_timestamp', `field ${name}: ${parsed.problem}`, name);
        // The stored state counts time from 1970 (docs/state-format.md): an event time before it
        // is refused here, not written as a state no reader can decode correctly.
        if (column.role === 'time' && parsed.ms < 0)
          return failure(
            'bad_timestamp',
            `field ${name}: ${new Date(parsed.ms).toISOString()} is before 1970-01-01, which event times cannot be`,
            name,
          );
        if (parsed.ms > LATEST_MS)
          return failure(
            'bad_timestamp',
            `field ${name}: ${parsed.ms} ms since the epoch is after 9999-12-31T23:59:59.999Z, the latest time Tessera stores`,
            name,
          );
        record[name] = parsed.ms;
        if (column.role === 'time') ts = parsed.ms;
        continue;
      }
      const checked = checkColumn(column.type, value);
      if (!checked.ok) return failure(checked.reason, `field ${name}: ${checked.problem}`, name);
      if (column.aggregated && typeof checked.value === 'string') {
        // An int64 beyond 2^53 stays a decimal string, which sum, avg, min and max cannot take:
        // it would be left out of them without a word.
        return failure(
          'schema_mismatch',
          `field ${name}: ${checked.value} is beyond 2^53, too large for the sum, avg, min, max, stddev or variance features over it`,
          name,
        );
      }
      if (column.role === 'key') {
        if (checked.value === '')
          return failure('missing_key', `field ${name}: the key is an empty string`, name);
        key = String(checked.value);
      }
      record[name] = checked.value;
    }
    return { ok: true, key, ts, record, messageKey };
  };
}

function checkColumn(type: Exclude<ColumnType, 'timestamp'>, value: unknown): Checked {
  switch (type) {
    case 'int64':
      return checkInt64(value);
    case 'double':
      return checkDouble(value);
    case 'string': {
      if (typeof value !== 'string')
        return { ok: false, reason: 'schema_mismatch', problem: `expected a string, got ${describe(value)}` };
      const broken = unpairedSurrogate(value);
      return broken === undefined
        ? { ok: true, value }
        : { ok: false, reason: 'schema_mismatch', problem: broken };
    }
    case 'bool':
      return typeof value === 'boolean'
        ? { ok: true, value }
        : { ok: false, reason: 'schema_mismatch', problem: `expected a boolean, got ${describe(value)}` };
  }
}

function checkInt64(value: unknown): Checked {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      return { ok: false, reason: 'non_numeric', problem: `expected a finite integer, got ${value}` };
    }
    if (!Number.isInteger(value)) {
      return { ok: false, reason: 'schema_mismatch', problem: `expected an integer (int64), got ${value}` };
    }
    if (!Number.isSafeInteger(value)) {
      return {
        ok: false,
        reason: 'schema_mismatch',
        problem: `integer ${value} is beyond 2^53 and may have lost digits; send int64 ids above 2^53 as decimal strings`,
      };
    }
    return { ok: true, value: value === 0 ? 0 : value };
  }
  if (typeof value === 'bigint') {
    if (value < -(2n ** 63n) || value >= 2n ** 63n) {
      return { ok: false, reason: 'schema_mismatch', problem: `${value} is outside the int64 range` };
    }
    return { ok: true, value: int64Value(value) };
  }
  if (typeof value === 'string') {
    if (isCanonicalInt64String(value)) return { ok: true, value: int64FromCanonical(value) };
    if (looksLikeInteger(value)) {
      return {
        ok: false,
        reason: 'schema_mismatch',
        problem: `expected an int64 decimal string without sign '+' or leading zeros, got ${describe(value)}`,
      };
    }
    if (NUMERIC.test(value) && Number.isFinite(Number(value))) {
      return {
        ok: false,
        reason: 'schema_mismatch',
        problem: `expected an integer (int64), got ${describe(value)}`,
      };
    }
    return { ok: false, reason: 'non_numeric', problem: `expected an integer, got ${describe(value)}` };
  }
  return {
    ok: false,
    reason: 'schema_mismatch',
    problem: `expected an integer (int64), got ${describe(value)}`,
  };
}

/**
 * The latest time taken, 9999-12-31T23:59:59.999Z: what ISO-8601's four-digit years reach. The
 * state's delta records store times as 52-bit integers, so an epoch or Avro time past ~year
 * 144,000 (within Date's range) was accepted, then failed every save of its entity, and the batch
 * with it, at every restart.
 */
export const LATEST_MS = 253_402_300_799_999;

/**
 * The largest double magnitude taken. stddev and variance compute n * sum(x^2) exactly, and the
 * exact product splits each operand (Veltkamp), which overflows once an operand passes ~1.3e300:
 * at 1e150, 200 events of 1e149 made a NaN deviation. At 1e100, n * sum(x^2) stays below 1e300
 * for any n under 1e99, and sums far below 1.8e308. A NaN would also stay in the offline sweep's
 * window after the value left. No amount or measure comes near.
 */
export const MAX_DOUBLE_MAGNITUDE = 1e100;

function checkDouble(value: unknown): Checked {
  if (typeof value === 'number') {
    return Number.isFinite(value)
      ? usableDouble(value, value)
      : { ok: false, reason: 'non_numeric', problem: `expected a finite number, got ${value}` };
  }
  if (typeof value === 'bigint') return usableDouble(Number(value), value);
  if (typeof value === 'string') {
    const n = Number(value);
    return NUMERIC.test(value) && Number.isFinite(n)
      ? usableDouble(n, value)
      : { ok: false, reason: 'non_numeric', problem: `expected a finite number, got ${describe(value)}` };
  }
  return { ok: false, reason: 'schema_mismatch', problem: `expected a number, got ${describe(value)}` };
}

/**
 * Within ±MAX_DOUBLE_MAGNITUDE; -0 as 0, so min and max of 0 and -0 agree on every path. `given` is
 * the value as it came, formatted only for a refusal: formatting every accepted amount made the
 * reference source's validation 312 ns an event instead of 222 (a scratch loop over 100k events).
 */
function usableDouble(n: number, given: number | bigint | string): Checked {
  if (Math.abs(n) > MAX_DOUBLE_MAGNITUDE)
    return {
      ok: false,
      reason: 'non_numeric',
      problem: `${describe(given)} is beyond ±1e100, where sums and deviations of it would overflow`,
    };
  return { ok: true, value: n === 0 ? 0 : n };
}

/**
 * Why a string is not valid Unicode, or undefined when it is. JSON can escape half of a surrogate
 * pair ("\\ud800"); such a string has no UTF-8 form. The state, the training rows and parquet hold
 * text as UTF-8, where every unpaired surrogate becomes U+FFFD: two ids differing only there would
 * be one entity in Redis, and one merchant once a state is read back while the ingestor that
 * wrote it counted two. So they are refused where values come in.
 */
export function unpairedSurrogate(s: string): string | undefined {
  if (s.isWellFormed()) return undefined;
  const at = s.search(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
  const unit = s.charCodeAt(at).toString(16);
  return `the string has an unpaired UTF-16 surrogate (\\u${unit} at index ${at}), which is not valid Unicode and has no UTF-8 form; send the text as UTF-8 or escape whole surrogate pairs`;
}
