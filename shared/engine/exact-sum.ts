// Exactly rounded floating-point sums (Shewchuk's non-overlapping partials, as in Python's
// math.fsum). The rounded total depends only on the multiset of values added, never on their
// order or grouping, so a sum computed event by event online, tile by tile, or by a sliding
// window offline is bit-identical. Removing a value (adding its negation) is exact too.

/**
 * The core step: adds `x` to the first `count` partials of `p` in place and returns the new count
 * (at most count + 1). Works on plain arrays and on typed buffers alike.
 */
function accumulate(p: { [i: number]: number }, count: number, value: number): number {
  let x = value;
  let k = 0;
  for (let j = 0; j < count; j++) {
    let y = p[j] as number;
    if (Math.abs(x) < Math.abs(y)) {
      const swap = x;
      x = y;
      y = swap;
    }
    const hi = x + y;
    const lo = y - (hi - x);
    if (lo !== 0) p[k++] = lo;
    x = hi;
  }
  p[k] = x;
  return k + 1;
}

/** Adds `x` to the partials in place; returns the same array. */
export function addExact(partials: number[], x: number): number[] {
  const count = accumulate(partials, partials.length, x);
  if (count < partials.length) partials.length = count; // partials cancelled out (rare)
  return partials;
}

/** Merges `other` into `into` (exact). */
export function mergeExact(into: number[], other: readonly number[]): number[] {
  for (const x of other) addExact(into, x);
  return into;
}

/** The correctly rounded (half-even) value of the exact sum held in `partials` (its first `count`). */
export function roundExact(partials: ArrayLike<number>, count = partials.length): number {
  let n = count;
  if (n === 0) return 0;
  n -= 1;
  let hi = partials[n] as number;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    n -= 1;
    const y = partials[n] as number;
    hi = x + y;
    const yr = hi - x;
    lo = y - yr;
    if (lo !== 0) break;
  }
  // If the rest of the partials push the total across a rounding boundary that `hi + lo` sits
  // exactly on (a tie), correct the rounding of hi in lo's direction.
  if (n > 0) {
    const next = partials[n - 1] as number;
    if ((lo < 0 && next < 0) || (lo > 0 && next > 0)) {
      const y = lo * 2;
      const x = hi + y;
      const yr = x - hi;
      if (y === yr) hi = x;
    }
  }
  return hi;
}

const SPLITTER = 134217729; // 2^27 + 1: splits a double into two 26-bit halves (Veltkamp)

/** a * b as hi + lo exactly (Dekker's product; JS has no fused multiply-add). */
function twoProduct(a: number, b: number): [number, number] {
  const p = a * b;
  const ca = SPLITTER * a;
  const ah = ca - (ca - a);
  const al = a - ah;
  const cb = SPLITTER * b;
  const bh = cb - (cb - b);
  const bl = b - bh;
  return [p, al * bl - (p - ah * bh - al * bh - ah * bl)];
}

/** Adds sign * a * b to the partials in place, exactly (both halves of the product). */
function addExactProduct(partials: number[], a: number, b: number, sign: 1 | -1): number[] {
  const [hi, lo] = twoProduct(a, b);
  addExact(partials, sign * hi);
  if (lo !== 0) addExact(partials, sign * lo);
  return partials;
}

/** Adds sign * x^2 exactly (both halves of the product). */
export function addExactSquare(partials: number[], x: number, sign: 1 | -1 = 1): number[] {
  return addExactProduct(partials, x, x, sign);
}

const BITS = new Float64Array(1);
const WORD = new BigUint64Array(BITS.buffer);

/** The next double up (`direction` 1) or down (-1) from a non-negative finite `q`. */
function nextDouble(q: number, direction: 1 | -1): number {
  if (q === 0) return direction > 0 ? Number.MIN_VALUE : -Number.MIN_VALUE;
  BITS[0] = q;
  WORD[0] = WORD[0]! + (direction > 0 ? 1n : -1n);
  return BITS[0]!;
}

/** Whether the last bit of `q`'s significand is 0 (the even neighbour of a tie). */
function evenSignificand(q: number): boolean {
  BITS[0] = q;
  return (WORD[0]! & 1n) === 0n;
}

/**
 * The double nearest (ties to even) to the exact sum in `numerator`, which is non-negative,
 * divided by the positive integer `d` (below 2^53). Rounding the numerator and then dividing
 * rounds twice, and was 1 ulp off the correctly rounded quotient in some reads.
 */
function roundedQuotient(numerator: readonly number[], d: number): number {
  let q = roundExact(numerator) / d;
  // Within an ulp or so of the quotient: at most two steps to the nearest double.
  for (let step = 0; step < 3 && Number.isFinite(q); step++) {
    // numerator − q·d, exact. A sum of doubles is a multiple of the least subnormal: a non-zero
    // one never rounds to 0, so the signs below are exact too.
    const remainder = addExactProduct(numerator.slice(), q, d, -1);
    const side = Math.sign(roundExact(remainder));
    if (side === 0) return q;
    const next = nextDouble(q, side > 0 ? 1 : -1);
    // Where the exact quotient sits against the midpoint of q and next: the remainder less half
    // their exact difference times d (the midpoint itself is no double).
    const past = Math.sign(roundExact(addExactProduct(remainder, (next - q) / 2, d, -1)));
    if (past === 0) return evenSignificand(q) ? q : next;
    if (past !== side) return q;
    q = next;
  }
  return q;
}

/**
 * Sample variance from exact sums: (n * sum(x^2) - (sum x)^2) / (n (n - 1)), with the numerator
 * computed exactly and divided with one rounding, so there is no cancellation, the result is
 * order-independent, and it is the correctly rounded variance (and Math.sqrt of it the stddev a
 * reference computing with exact fractions gives).
 */
export function exactVariance(n: number, sum: readonly number[], sumSquares: readonly number[]): number {
  const numerator: number[] = [];
  for (const q of sumSquares) addExactProduct(numerator, q, n, 1);
  for (const a of sum) for (const b of sum) addExactProduct(numerator, a, b, -1);
  return Math.max(0, roundedQuotient(numerator, n * (n - 1)));
}

/**
 * The same exact sum in a typed buffer, for the offline sweep's hot loop (no array growth or
 * shrinking per value). The buffer starts with room for 48 partials, which ordinary amounts never
 * come near, and doubles whenever it is full: non-overlapping partials need not be dense (each may
 * hold a single bit), so their number is bounded only by the width of the exponent range, about
 * 2100, and a few hundred amounts of widely spread magnitudes already need more than 48.
 *
 * The steps repeat `accumulate` and `roundExact` on purpose, written for a Float64Array only: one
 * function shared by plain arrays (of several element kinds) and typed arrays gets polymorphic
 * element accesses and a boxed result, which made each of the sweep's sums about 2x slower.
 * The unit tests check both against each other.
 */
export class ExactAccumulator {
  partials = new Float64Array(48);
  count = 0;

  add(value: number): void {
    // add writes at most one partial past the current ones, so one free slot is enough.
    if (this.count === this.partials.length) this.grow();
    const p = this.partials;
    const count = this.count;
    let x = value;
    let k = 0;
    for (let j = 0; j < count; j++) {
      let y = p[j]!;
      if (Math.abs(x) < Math.abs(y)) {
        const swap = x;
        x = y;
        y = swap;
      }
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) p[k++] = lo;
      x = hi;
    }
    p[k] = x;
    this.count = k + 1;
  }

  /** The correctly rounded sum (half-even), as roundExact. */
  value(): number {
    const p = this.partials;
    let n = this.count;
    if (n === 0) return 0;
    n -= 1;
    let hi = p[n]!;
    let lo = 0;
    while (n > 0) {
      const x = hi;
      n -= 1;
      const y = p[n]!;
      hi = x + y;
      lo = y - (hi - x);
      if (lo !== 0) break;
    }
    if (n > 0) {
      const next = p[n - 1]!;
      if ((lo < 0 && next < 0) || (lo > 0 && next > 0)) {
        const y = lo * 2;
        const x = hi + y;
        if (y === x - hi) hi = x;
      }
    }
    return hi;
  }

  clear(): void {
    this.count = 0;
  }

  /** Out of the hot path: a new buffer of twice the size, still a Float64Array (one element kind). */
  private grow(): void {
    const next = new Float64Array(this.partials.length * 2);
    next.set(this.partials.subarray(0, this.count));
    this.partials = next;
  }
}
