// Integer literals beyond 2^53 in a request body become exact decimal strings; nothing else in the
// text changes (numbers in strings, fractions, exponents, safe integers), checked against
// JSON.parse of the result.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { quoteBigIntegers } from '../../../services/server/big-integers.ts';

describe('quoteBigIntegers', () => {
  it('quotes only integer values beyond 2^53 in magnitude', () => {
    const text =
      '{"a": [9007199254740993, -9007199254740993, 9007199254740991, -9007199254740991, 12345678901234567890123],' +
      ' "s": "9007199254740993 \\" 9007199254740995", "f": 1234567890123456.5, "e": 12345678901234567e3,' +
      ' "n": -1.5e-300, "t": true, "z": null, "k": {"9007199254740993": 9007199254740994}}';
    assert.deepEqual(JSON.parse(quoteBigIntegers(text)), {
      a: [
        '9007199254740993',
        '-9007199254740993',
        9007199254740991,
        -9007199254740991,
        '12345678901234567890123',
      ],
      s: '9007199254740993 " 9007199254740995',
      f: 1234567890123456.5,
      e: 12345678901234567e3,
      n: -1.5e-300,
      t: true,
      z: null,
      k: { '9007199254740993': '9007199254740994' },
    });
  });

  it('returns the very text when there is nothing to quote', () => {
    for (const text of [
      '{"a": [1, 2, 1767225600000]}',
      '{"a": "90071992547409930000"}',
      '[9007199254740992.0]',
    ])
      assert.equal(JSON.parse(quoteBigIntegers(text)).toString(), JSON.parse(text).toString());
    const plain = '{"entities": {"user_id": [1, 2]}}';
    assert.equal(quoteBigIntegers(plain), plain);
  });
});
