// Event-time parsing for the three timestamp formats of a source, to integer epoch milliseconds.
// ISO-8601 strings must carry their zone: a zone-less time means different instants on different
// machines, so it is refused rather than guessed.

export type TimestampFormat = 'epoch_ms' | 'epoch_s' | 'iso8601';
/** How an Avro writer schema stores the time; 'format' defers to the source's timestamp_format. */
export type TimestampUnit = 'millis' | 'micros' | 'nanos' | 'seconds' | 'format';

/** The largest |epoch ms| a JavaScript Date holds (±100,000,000 days): its earliest/latest instants. */
export const MAX_DATE_MS = 8.64e15;

const ISO_LOCAL = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?$/;
const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export type TimestampParse = { ok: true; ms: number } | { ok: false; problem: string };

const bad = (problem: string): TimestampParse => ({ ok: false, problem });

const DAY_MS = 86_400_000;

/**
 * Parses an ISO-8601 date-time with an explicit zone (Z or ±hh:mm); field-by-field, no Date.parse
 * guessing. The grammar: `YYYY-MM-DD` then `T`, `t` or a space, `hh:mm`, optionally `:ss` with an
 * optional fraction of 1 to 9 digits after `.` or `,` (cut to whole milliseconds), then `Z`, `z`,
 * `±hh:mm` or `±hhmm`. Scanned by character code: a regular expression allocated a match array and
 * eleven strings per event, a tenth of what the ingestor allocated at 10k events/s.
 */
export function parseIsoTimestamp(text: string): TimestampParse {
  const ms = scanIso(text);
  if (ms === INVALID) return bad(`${JSON.stringify(text)} is not a valid date-time`);
  if (!Number.isNaN(ms)) return { ok: true, ms };
  if (ISO_LOCAL.test(text)) {
    return bad(
      `expected an ISO-8601 time with a zone (Z or ±hh:mm), got ${JSON.stringify(text)} without one`,
    );
  }
  return bad(`expected an ISO-8601 time such as 2026-01-01T12:00:00Z, got ${JSON.stringify(text)}`);
}

/** scanIso's answer for text of the right shape whose fields are out of range (a 30 February). */
const INVALID = Number.NEGATIVE_INFINITY;

/** Epoch ms; NaN when the text is not of the grammar's shape, INVALID when a field is out of range. */
function scanIso(text: string): number {
  const n = text.length;
  if (n < 17) return Number.NaN;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  if (
    year < 0 ||
    month < 0 ||
    day < 0 ||
    hour < 0 ||
    minute < 0 ||
    text.charCodeAt(4) !== 45 || // -
    text.charCodeAt(7) !== 45 ||
    text.charCodeAt(13) !== 58 // :
  )
    return Number.NaN;
  const sep = text.charCodeAt(10);
  if (sep !== 84 && sep !== 116 && sep !== 32) return Number.NaN; // T t space
  let i = 16;
  let second = 0;
  let millis = 0;
  if (text.charCodeAt(i) === 58) {
    second = digits(text, i + 1, 2);
    if (second < 0) return Number.NaN;
    i += 3;
    const mark = text.charCodeAt(i);
    if (mark === 46 || mark === 44) {
      // . or ,: 1 to 9 digits, of which the first three are the milliseconds.
      const from = ++i;
      while (i < n && i - from < 9 && isDigit(text.charCodeAt(i))) {
        if (i - from < 3) millis += (text.charCodeAt(i) - 48) * (i === from ? 100 : i === from + 1 ? 10 : 1);
        i++;
      }
      if (i === from) return Number.NaN;
    }
  }
  let offsetMin = 0;
  let offsetMinutesField = 0;
  const zone = text.charCodeAt(i);
  if (zone === 90 || zone === 122) {
    // Z z
    i++;
  } else if (zone === 43 || zone === 45) {
    // + -: hh:mm or hhmm
    const hh = digits(text, i + 1, 2);
    const colon = text.charCodeAt(i + 3) === 58 ? 1 : 0;
    const mm = digits(text, i + 3 + colon, 2);
    if (hh < 0 || mm < 0) return Number.NaN;
    offsetMinutesField = mm;
    offsetMin = (zone === 45 ? -1 : 1) * (hh * 60 + mm);
    i += 5 + colon;
  } else {
    return Number.NaN;
  }
  if (i !== n) return Number.NaN;
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    Math.abs(offsetMin) > 18 * 60 ||
    offsetMinutesField > 59 // +05:99 is no offset (it was read as +06:39)
  )
    return INVALID;
  return (
    daysFromCivil(year, month, day) * DAY_MS +
    ((hour * 60 + minute - offsetMin) * 60 + second) * 1000 +
    millis
  );
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** The decimal number in text[at, at + count), or -1 when any of those characters is not a digit. */
function digits(text: string, at: number, count: number): number {
  let value = 0;
  for (let i = at; i < at + count; i++) {
    const code = text.charCodeAt(i); // NaN past the end: not a digit
    if (!isDigit(code)) return -1;
    value = value * 10 + code - 48;
  }
  return value;
}

/** Days from 1970-01-01 to a date of the proleptic Gregorian calendar (the calendar of Date.UTC). */
function daysFromCivil(year: number, month: number, day: number): number {
  // Count years from March, so the leap day ends its year; eras of 400 years repeat exactly.
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Parses an epoch number (or numeric string) in `unit` per second scale to integer ms. */
/**
 * `msPerUnit` below 1 (microseconds) truncates to the millisecond, as the ISO parser drops digits
 * past the third and as Java and pyarrow convert: the instant 23:59:59.999999 is .999, not the
 * next day. Seconds are rounded (docs/codecs.md).
 */
function parseEpoch(value: number | string | bigint, msPerUnit: number, unitName: string): TimestampParse {
  let n: number;
  if (typeof value === 'bigint') n = Number(value);
  else if (typeof value === 'number') n = value;
  else if (NUMERIC.test(value.trim())) n = Number(value.trim());
  else return bad(`expected ${unitName} since the epoch, got ${JSON.stringify(value)}`);
  if (!Number.isFinite(n)) return bad(`expected ${unitName} since the epoch, got ${String(value)}`);
  const ms = msPerUnit < 1 ? Math.floor(n / (1 / msPerUnit)) : Math.round(n * msPerUnit);
  if (!Number.isFinite(ms) || Math.abs(ms) > MAX_DATE_MS) {
    return bad(`${String(value)} ${unitName} is outside the representable time range`);
  }
  return { ok: true, ms: ms === 0 ? 0 : ms };
}

/**
 * Nanoseconds since the epoch (Avro's timestamp-nanos) to whole ms, floored like micros. Today's
 * times in ns are past 2^53, so they arrive as exact decimal strings (an int64 beyond 2^53) and are
 * divided as BigInts: through a double, ...250999999 ns rounded up into the next millisecond.
 */
function parseEpochNanos(value: number | string | bigint): TimestampParse {
  let ns: bigint;
  if (typeof value === 'bigint') ns = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) ns = BigInt(value);
  else if (typeof value === 'string' && /^[+-]?\d+$/.test(value.trim())) ns = BigInt(value.trim());
  else return bad(`expected nanoseconds since the epoch as an integer, got ${describe(value)}`);
  let ms = ns / 1_000_000n;
  if (ns % 1_000_000n < 0n) ms -= 1n;
  if (ms > BigInt(MAX_DATE_MS) || ms < -BigInt(MAX_DATE_MS))
    return bad(`${String(value)} nanoseconds is outside the representable time range`);
  return { ok: true, ms: Number(ms) };
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
  if (unit === 'nanos') return parseEpochNanos(value);
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
