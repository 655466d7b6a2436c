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

const sum = (xs: number[]): number => roundExact(xs.reduce((p, x) => addExact(p, x), [] as number[]));
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

  it('the variance stays finite and exact for values up to the largest magnitude the decoders take', () => {
    // At the old bound (1e150), 200 values of 1e149 gave NaN: n * sum(x^2) overflowed the split of
    // the exact product.
    const variance = (xs: number[]) => {
      const s: number[] = [];
      const q: number[] = [];
      for (const x of xs) {
        addExact(s, x);
        addExactSquare(q, x);
      }
      return exactVariance(xs.length, s, q);
    };
    const m = MAX_DOUBLE_MAGNITUDE;
    assert.equal(variance(Array.from({ length: 10_000 }, () => m)), 0);
    assert.equal(variance(Array.from({ length: 10_000 }, () => -m)), 0);
    // Half m, half -m: the mean is 0 and every squared deviation m^2, so n m^2 / (n - 1).
    const n = 10_000;
    const got = variance(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? m : -m)));
    assert.ok(Number.isFinite(got), `variance ${got}`);
    assert.ok(Math.abs(got / ((n * m * m) / (n - 1)) - 1) < 1e-15, `variance ${got}`);
  });
});
