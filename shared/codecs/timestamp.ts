// Event-time parsing for the three timestamp formats of a source, to integer epoch milliseconds.
// ISO-8601 strings must carry their zone: a zone-less time means different instants on different
// machines, so it is refused rather than guessed.

export type TimestampFormat = 'epoch_ms' | 'epoch_s' | 'iso8601';
/** How an Avro writer schema stores the time; 'format' defers to the source's timestamp_format. */
export type TimestampUnit = 'millis' | 'micros' | 'seconds' | 'format';

/** Earliest/latest instants a JavaScript Date can hold. */
const MAX_MS = 8.64e15;

const ISO_WITH_ZONE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;
const ISO_LOCAL = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?$/;
const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export type TimestampParse = { ok: true; ms: number } | { ok: false; problem: string };

const bad = (problem: string): TimestampParse => ({ ok: false, problem });

/** Parses an ISO-8601 date-time with an explicit zone (Z or ±hh:mm); field-by-field, no Date.parse guessing. */
export function parseIsoTimestamp(text: string): TimestampParse {
  const m = ISO_WITH_ZONE.exec(text);
  if (m === null) {
    if (ISO_LOCAL.test(text)) {
      return bad(
        `expected an ISO-8601 time with a zone (Z or ±hh:mm), got ${JSON.stringify(text)} without one`,
      );
    }
    return bad(`expected an ISO-8601 time such as 2026-01-01T12:00:00Z, got ${JSON.stringify(text)}`);
  }
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const millis = m[7] === undefined ? 0 : Math.floor(Number(`0.${m[7]}`) * 1000 + 1e-6);
  const offsetMin = m[8] !== undefined ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11]));
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    Math.abs(offsetMin) > 18 * 60
  ) {
    return bad(`${JSON.stringify(text)} is not a valid date-time`);
  }
  // Date.UTC maps years 0..99 to 1900..1999; setUTCFullYear does not.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, millis));
  date.setUTCFullYear(year);
  return { ok: true, ms: date.getTime() - offsetMin * 60_000 };
}

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] as number;
}

/** Parses an epoch number (or numeric string) in `unit` per second scale to integer ms. */
function parseEpoch(value: number | string | bigint, msPerUnit: number, unitName: string): TimestampParse {
  let n: number;
  if (typeof value === 'bigint') n = Number(value);
  else if (typeof value === 'number') n = value;
  else if (NUMERIC.test(value.trim())) n = Number(value.trim());
  else return bad(`expected ${unitName} since the epoch, got ${JSON.stringify(value)}`);
  if (!Number.isFinite(n)) return bad(`expected ${unitName} since the epoch, got ${String(value)}`);
  const ms = Math.round(n * msPerUnit);
  if (!Number.isFinite(ms) || Math.abs(ms) > MAX_MS) {
    return bad(`${String(value)} ${unitName} is outside the representable time range`);
  }
  return { ok: true, ms: ms === 0 ? 0 : ms };
}

/**
 * Parses a decoded timestamp value. `unit` comes from the Avro writer schema's logical type when
 * there is one; otherwise the source's declared format decides.
 */
export function parseTimestamp(
  value: unknown,
  format: TimestampFormat,
  unit: TimestampUnit = 'format',
): TimestampParse {
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isFinite(ms) ? { ok: true, ms } : bad('got an invalid Date');
  }
  if (typeof value !== 'number' && typeof value !== 'string' && typeof value !== 'bigint') {
    return bad(`expected a ${format === 'iso8601' ? 'ISO-8601 string' : 'number'}, got ${describe(value)}`);
  }
  if (unit === 'millis') return parseEpoch(value, 1, 'milliseconds');
  if (unit === 'micros') return parseEpoch(value, 0.001, 'microseconds');
  if (unit === 'seconds') return parseEpoch(value, 1000, 'seconds');
  if (format === 'iso8601') {
    if (typeof value !== 'string') {
      return bad(`expected an ISO-8601 string (timestamp_format iso8601), got ${describe(value)}`);
    }
    return parseIsoTimestamp(value);
  }
  return format === 'epoch_s' ? parseEpoch(value, 1000, 'seconds') : parseEpoch(value, 1, 'milliseconds');
}

/** Renders epoch ms in a source's timestamp format (the inverse of parseTimestamp). */
export function formatTimestamp(ms: number, format: TimestampFormat): string | number {
  if (format === 'iso8601') return new Date(ms).toISOString();
  if (format === 'epoch_s') return ms / 1000;
  return ms;
}

/** A short description of a value for error messages: strings quoted, long ones cut. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (Array.isArray(value)) return 'an array';
  if (Buffer.isBuffer(value)) return `${value.length} bytes`;
  return `a ${typeof value}`;
}
