import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_DOUBLE_MAGNITUDE } from '../../../shared/codecs/validate.ts';
import {
  addExact,
  addExactSquare,
  ExactAccumulator,
  exactVariance,
  mergeExact,
  roundExact,
} from '../../../shared/engine/exact-sum.ts';
import { stateBytesReader } from '../../../shared/engine/fast-read.ts';
import {
  applyEvent,
  emptyState,
  encodeState,
  featuresBeforeEach,
  readFeatures,
} from '../../../shared/engine/index.ts';
import { ev, HOUR, planOf, T0 } from '../../support/engine-fixtures.ts';

/** x * 2^1074 as a BigInt: exact for every finite double. */
function scaled(x: number): bigint {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const magnitude = mantissa << BigInt(Math.max(biased, 1) - 1);
  return bits >> 63n ? -magnitude : magnitude;
}

/**
 * The exactly rounded (half-even) sum, computed independently with BigInt: every finite double is
 * an integer multiple of 2^-1074, so the sum is one exact integer, rounded once at the end.
 */
function bigIntSum(xs: readonly number[]): number {
  let total = 0n;
  for (const x of xs) total += scaled(x);
  const sign = total < 0n ? -1 : 1;
  const magnitude = total < 0n ? -total : total;
  const shift = Math.max(0, magnitude.toString(2).length - 53);
  if (shift === 0) return sign * Number(magnitude) * 2 ** -1074; // exact: 53 bits or fewer
  let kept = magnitude >> BigInt(shift);
  const rest = magnitude - (kept << BigInt(shift));
  const half = 1n << BigInt(shift - 1);
  if (rest > half || (rest === half && (kept & 1n) === 1n)) kept += 1n;
  return sign * Number(kept) * 2 ** (shift - 1074);
}

/** The double nearest (ties to even) to p / d for p >= 0, d > 0, in the normal range. */
function roundRational(p: bigint, d: bigint): number {
  if (p === 0n) return 0;
  let k = 53 - (p.toString(2).length - d.toString(2).length);
  const at = (shift: number) => (shift >= 0 ? (p << BigInt(shift)) / d : p / (d << BigInt(-shift)));
  let m = at(k);
  while (m >= 1n << 53n) m = at(--k);
  while (m < 1n << 52n) m = at(++k);
  const num = k >= 0 ? p << BigInt(k) : p;
  const den = k >= 0 ? d : d << BigInt(-k);
  const twice = 2n * (num - m * den);
  if (twice > den || (twice === den && (m & 1n) === 1n)) m += 1n;
  return Number(m) * 2 ** -k;
}

/**
 * The sample variance computed independently, with exact fractions: every value scaled to an
 * integer (x * 2^1074), so n * sum(x^2) - (sum x)^2 and n (n - 1) are exact integers, divided and
 * rounded once.
 */
function rationalVariance(xs: readonly number[]): number {
  const n = BigInt(xs.length);
  let s = 0n;
  let q = 0n;
  for (const x of xs) {
    const v = scaled(x);
    s += v;
    q += v * v;
  }
  return roundRational(n * q - s * s, n * (n - 1n) * (1n << 2148n));
}

const sum = (xs: number[]): number => roundExact(xs.reduce((p, x) => addExact(p, x), [] as number[]));

/** The engine's sample variance of `xs`, from its exact sums of values and of squares. */
function variance(xs: readonly number[]): number {
  const s: number[] = [];
  const q: number[] = [];
  for (const x of xs) {
    addExact(s, x);
    addExactSquare(q, x);
  }
  return exactVariance(xs.length, s, q);
}
const finite = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 });

describe('exact sums', () => {
  it('keeps what naive summation loses', () => {
    assert.equal(sum([1e100, 1, -1e100]), 1);
    assert.equal(sum(Array.from({ length: 10 }, () => 0.1)), 1);
    assert.notEqual(
      Array.from({ length: 10 }, () => 0.1).reduce((a, b) => a + b),
      1,
      'naive summation is the baseline this fixes',
    );
    assert.equal(sum([]), 0);
  });

  it('rounds half to even at the last bit, like math.fsum', () => {
    // 1 + 2^-53 is exactly half way between 1 and the next double: ties go to the even 1.
    assert.equal(sum([1, 2 ** -53]), 1);
    // ... but a further tiny positive part breaks the tie upwards.
    assert.equal(sum([1, 2 ** -53, 2 ** -80]), 1 + 2 ** -52);
  });

  it('does not depend on the order of the values', () => {
    const withPermutation = fc
      .array(finite, { maxLength: 60 })
      .chain((xs) =>
        fc.tuple(fc.constant(xs), fc.shuffledSubarray(xs, { minLength: xs.length, maxLength: xs.length })),
      );
    fc.assert(
      fc.property(withPermutation, ([xs, permuted]) => {
        // === (not Object.is): +0 and -0 are the same sum.
        assert.ok(sum(xs) === sum(permuted), `${sum(xs)} !== ${sum(permuted)}`);
      }),
    );
  });

  it('removing a value (adding its negation) restores the previous sum exactly', () => {
    fc.assert(
      fc.property(fc.array(finite, { maxLength: 40 }), fc.array(finite, { maxLength: 40 }), (keep, drop) => {
        const partials: number[] = [];
        for (const x of [...keep, ...drop]) addExact(partials, x);
        for (const x of drop) addExact(partials, -x);
        // === (not Object.is): keep [-0] with 0 added and removed sums to +0, the same sum.
        assert.ok(roundExact(partials) === sum(keep), `${roundExact(partials)} !== ${sum(keep)}`);
      }),
    );
  });

  it('merging partial sums equals summing everything', () => {
    fc.assert(
      fc.property(fc.array(finite, { maxLength: 30 }), fc.array(finite, { maxLength: 30 }), (a, b) => {
        const pa = a.reduce((p, x) => addExact(p, x), [] as number[]);
        const pb = b.reduce((p, x) => addExact(p, x), [] as number[]);
        assert.ok(roundExact(mergeExact(pa, pb)) === sum([...a, ...b]));
      }),
    );
  });

  it('the typed accumulator of the offline sweep equals the partials functions, removals included', () => {
    fc.assert(
      fc.property(fc.array(finite, { maxLength: 40 }), fc.array(finite, { maxLength: 40 }), (keep, drop) => {
        const typed = new ExactAccumulator();
        const partials: number[] = [];
        for (const x of [...keep, ...drop]) {
          typed.add(x);
          addExact(partials, x);
          assert.ok(typed.value() === roundExact(partials));
        }
        for (const x of drop) typed.add(-x);
        assert.ok(typed.value() === sum(keep), `${typed.value()} !== ${sum(keep)}`);
      }),
    );
  });

  it('the variance is the correctly rounded one, as exact fractions give it (one rounding, not two)', () => {
    // Squares below the normal range (|x| < ~1e-154) lose bits in the exact product's split, and
    // the reference rounds in the normal range only: such values are left out.
    const value = fc.oneof(
      fc
        .double({ noNaN: true, noDefaultInfinity: true, min: -1e100, max: 1e100 })
        .filter((x) => x === 0 || Math.abs(x) >= 1e-100),
      fc.integer({ min: -1000, max: 1000 }).map((i) => i / 7),
    );
    fc.assert(
      fc.property(fc.array(value, { minLength: 2, maxLength: 30 }), (xs) => {
        const want = rationalVariance(xs);
        const got = variance(xs);
        assert.ok(Object.is(got, want), `${got} !== ${want} for ${JSON.stringify(xs)}`);
        assert.ok(Object.is(Math.sqrt(got), Math.sqrt(want)));
      }),
      { numRuns: 2000 },
    );
  });

  it('the variance stays finite and exact for values up to the largest magnitude the decoders take', () => {
    // At the old bound (1e150), 200 values of 1e149 gave NaN: n * sum(x^2) overflowed the split of
    // the exact product.
    const m = MAX_DOUBLE_MAGNITUDE;
    assert.equal(variance(Array.from({ length: 10_000 }, () => m)), 0);
    assert.equal(variance(Array.from({ length: 10_000 }, () => -m)), 0);
    // Half m, half -m: the mean is 0 and every squared deviation m^2, so n m^2 / (n - 1).
    const n = 10_000;
    const got = variance(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? m : -m)));
    assert.ok(Number.isFinite(got), `variance ${got}`);
    assert.ok(Math.abs(got / ((n * m * m) / (n - 1)) - 1) < 1e-15, `variance ${got}`);
  });

  it("the variance of any values within the decoders' bound is a finite number, never NaN", () => {
    const m = MAX_DOUBLE_MAGNITUDE;
    const value = fc.oneof(
      fc.double({ noNaN: true, min: -m, max: m }),
      fc.constantFrom(m, -m, m / 3, 5e-324, -0),
      fc.integer({ min: -1074, max: 332 }).map((e) => 2 ** e),
    );
    fc.assert(
      fc.property(fc.array(value, { minLength: 2, maxLength: 300 }), (xs) => {
        const s: number[] = [];
        const q: number[] = [];
        for (const x of xs) {
          addExact(s, x);
          addExactSquare(q, x);
        }
        const v = exactVariance(xs.length, s, q);
        assert.ok(Number.isFinite(v) && v >= 0, `variance ${v}`);
      }),
      { numRuns: 500 },
    );
  });

  it('sums needing more than 48 partials stay exact online, in the offline sweep and in the fast reader', () => {
    // Bug fixed: the typed accumulator had a fixed room of 48 partials, and partials written past
    // it were lost, so the offline sweep and the server's reader returned NaN where online was
    // right. Values 2^b + 2^(b - 20), b stepping by 22 over the range the decoders take, cannot
    // share a partial with their neighbours; alternating signs keep the total from being one of them.
    const values: number[] = [];
    for (let b = -1054, i = 0; 2 ** b <= MAX_DOUBLE_MAGNITUDE / 2; b += 22, i++) {
      values.push((i % 3 === 1 ? -1 : 1) * (2 ** b + 2 ** (b - 20)));
    }
    const typed = new ExactAccumulator();
    for (const x of values) typed.add(x);
    assert.ok(typed.count > 48, `only ${typed.count} partials: the test needs more than 48`);
    const want = bigIntSum(values);
    assert.equal(typed.value(), want);
    assert.equal(sum(values), want);

    const plan = planOf(`
      - { name: s, aggregation: sum, column: amount, window: 1h }
      - { name: a, aggregation: avg, column: amount, window: 1h }
      - { name: st, aggregation: sum, column: amount, window: 2h, mode: tiled, tile: 1h }
    `);
    const events = values.map((amount, i) => ev(plan, T0 + i, { amount }, i));
    const state = emptyState(plan);
    for (const e of events) applyEvent(plan, state, e);
    const t = T0 + HOUR;
    const expected = [want, want / values.length, want];
    assert.deepEqual(readFeatures(plan, state, t), expected, 'online');
    const probe = ev(plan, t, { amount: 0 }, values.length);
    assert.deepEqual(featuresBeforeEach(plan, [...events, probe]).at(-1), expected, 'offline sweep');
    const reader = stateBytesReader(plan)!;
    assert.ok(reader.load(encodeState(plan, state)));
    assert.deepEqual(reader.read(t), expected, 'fast reader');
    // A window that has dropped the first half: the sweep removes values by adding their negation.
    const later = T0 + HOUR + Math.floor(values.length / 2);
    const kept = bigIntSum(values.slice(Math.floor(values.length / 2)));
    const late = ev(plan, later, { amount: 0 }, values.length);
    assert.equal(readFeatures(plan, state, later)[0], kept, 'online, half the values');
    assert.equal(featuresBeforeEach(plan, [...events, late]).at(-1)?.[0], kept, 'offline, half the values');
    assert.equal(reader.read(later)[0], kept, 'fast reader, half the values');
  });
});
