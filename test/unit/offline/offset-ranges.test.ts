import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { OffsetRanges } from '../../../services/flusher/offset-ranges.ts';

describe('OffsetRanges', () => {
  it('merges adjacent and overlapping offsets into intervals', () => {
    const r = new OffsetRanges();
    r.addAll([5, 1, 2, 3, 9, 10, 4]);
    assert.deepEqual(r.toJSON(), [
      [1, 5],
      [9, 10],
    ]);
    r.addRange(6, 8);
    assert.deepEqual(r.toJSON(), [[1, 10]]);
  });

  it('keeps holes (dead-lettered offsets) as gaps', () => {
    const r = new OffsetRanges([[0, 99]]);
    r.addRange(101, 200);
    assert.equal(r.has(100), false);
    assert.equal(r.has(101), true);
    assert.equal(r.size, 200);
  });

  it('agrees with a plain set for any ranges added in any order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: -2, max: 12 })), {
          maxLength: 60,
        }),
        (ranges) => {
          const r = new OffsetRanges();
          const set = new Set<number>();
          for (const [a, length] of ranges) {
            r.addRange(a, a + length);
            for (let o = a; o <= a + length; o++) set.add(o);
          }
          for (let o = 0; o <= 315; o++) assert.equal(r.has(o), set.has(o), `offset ${o}`);
          assert.equal(r.size, set.size);
          const json = r.toJSON();
          for (let i = 1; i < json.length; i++)
            assert.ok(json[i]![0] > json[i - 1]![1] + 1, 'disjoint, not adjacent');
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('agrees with a plain set for any offsets added in any order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 200 }),
        fc.boolean(),
        (offsets, batch) => {
          const r = new OffsetRanges();
          if (batch) r.addAll(offsets);
          else for (const o of offsets) r.add(o);
          const set = new Set(offsets);
          for (let o = 0; o <= 301; o++) assert.equal(r.has(o), set.has(o));
          assert.equal(r.size, set.size);
          const json = r.toJSON();
          for (let i = 1; i < json.length; i++)
            assert.ok(json[i]![0] > json[i - 1]![1] + 1, 'disjoint, not adjacent');
          assert.deepEqual(new OffsetRanges(json).toJSON(), json);
        },
      ),
    );
  });
});
