// int64 values as JavaScript sees them: numbers while they are exact (|n| <= 2^53 - 1), canonical
// decimal strings beyond, so an id like 9007199254740993 is never rounded to its neighbour.

const CANONICAL_INT = /^(0|-?[1-9][0-9]*)$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** True for a decimal string in canonical form (no '+', no leading zeros, no '-0') inside int64. */
export function isCanonicalInt64String(text: string): boolean {
  if (text.length > 20 || !CANONICAL_INT.test(text)) return false;
  const n = BigInt(text);
  return n >= INT64_MIN && n <= INT64_MAX;
}

/** True for any string of digits with an optional sign (canonical or not), whatever its size. */
export function looksLikeInteger(text: string): boolean {
  return /^[+-]?[0-9]+$/.test(text);
}

/** The int64 as a number when exact, else as its canonical decimal string. */
export function int64Value(n: bigint): number | string {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(n)
    : n.toString();
}

/** Canonical int64 string -> number when exact, else the string itself. */
export function int64FromCanonical(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

/** A bigint, safe integer or canonical string as a bigint; undefined for anything else. */
export function toInt64BigInt(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value >= INT64_MIN && value <= INT64_MAX ? value : undefined;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : undefined;
  if (typeof value === 'string') return isCanonicalInt64String(value) ? BigInt(value) : undefined;
  return undefined;
}
