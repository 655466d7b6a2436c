// Avro's decimal logical type (shared/codecs/avro-decimal.ts): Kafka Connect's and Debezium's money
// columns. avsc left it a Buffer, so a source whose amount was a decimal refused every event as
// schema_mismatch. Bodies here are written byte by byte, not by the codec under test.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { twosComplement, unscaledFrom, unscaledOf } from '../../../shared/codecs/avro-decimal.ts';
import { createDecoder } from '../../../shared/codecs/decode.ts';
import { createEncoder } from '../../../shared/codecs/encode.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { transactions, avroLong as varint } from './support.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-avro-decimal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The reference source in raw Avro, its amount declared as `amount` (a decimal schema). */
function source(amount: unknown, name = 'decimal.avsc') {
  writeFileSync(
    join(dir, name),
    JSON.stringify({
      type: 'record',
      name: 'Transaction',
      fields: [
        { name: 'user_id', type: 'long' },
        { name: 'event_timestamp', type: { type: 'long', logicalType: 'timestamp-millis' } },
        { name: 'amount', type: amount },
        { name: 'merchant_id', type: 'string' },
      ],
    }),
  );
  return transactions('avro', { avroSchema: name });
}

const TS = Date.UTC(2026, 0, 1, 12);

/** A body of user 7 at TS whose amount field is `amount` (already encoded), merchant "m". */
const body = (amount: Buffer) =>
  Buffer.concat([varint(7n), varint(BigInt(TS)), amount, varint(1n), Buffer.from('m')]);
/** A `bytes` decimal: length, then the big-endian two's-complement bytes. */
const asBytes = (...octets: number[]) => Buffer.concat([varint(BigInt(octets.length)), Buffer.from(octets)]);

const BYTES_12_2 = { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 2 };

describe('Avro decimal', () => {
  it('reads a bytes decimal as the nearest double of its exact value', async () => {
    const decoder = createDecoder(source(BYTES_12_2), { definitionsDir: dir });
    const amount = async (encoded: Buffer) => {
      const out = await decoder.decode({ key: null, value: body(encoded) });
      assert.ok(out.ok, JSON.stringify(out));
      return out.record.amount;
    };
    assert.equal(await amount(asBytes(0x04, 0xd2)), 12.34); // 1234
    assert.equal(await amount(asBytes(0xfb)), -0.05); // -5
    assert.equal(await amount(asBytes(0xff, 0x00)), -2.56); // -256: sign from the first byte
    assert.equal(await amount(asBytes(0x00, 0x80)), 1.28); // 128 needs a leading zero byte
    assert.equal(await amount(asBytes()), 0); // no bytes: zero
    // 999,999,999,999 at scale 2: 9999999999.99, as JavaScript parses that text.
    assert.equal(await amount(asBytes(0x00, 0xe8, 0xd4, 0xa5, 0x0f, 0xff)), 9999999999.99);
  });

  it('reads a fixed decimal, and a decimal in a nullable union', async () => {
    const fixed = createDecoder(
      source(
        { type: 'fixed', name: 'Money', size: 4, logicalType: 'decimal', precision: 9, scale: 3 },
        'fixed.avsc',
      ),
      { definitionsDir: dir },
    );
    const out = await fixed.decode({ key: null, value: body(Buffer.from([0xff, 0xff, 0xcf, 0xc7])) });
    assert.ok(out.ok, JSON.stringify(out));
    assert.equal(out.record.amount, -12.345); // -12345
    const nullable = createDecoder(source(['null', BYTES_12_2], 'nullable.avsc'), { definitionsDir: dir });
    const some = await nullable.decode({
      key: null,
      value: body(Buffer.concat([varint(1n), asBytes(0x04, 0xd2)])),
    });
    assert.ok(some.ok, JSON.stringify(some));
    assert.equal(some.record.amount, 12.34);
  });

  it('writes exactly the bytes Avro specifies, and refuses a number the schema cannot hold exactly', () => {
    const encoder = createEncoder(source(BYTES_12_2, 'write.avsc'), { definitionsDir: dir });
    const record = (amount: number) => ({ user_id: 7, event_timestamp: TS, amount, merchant_id: 'm' });
    assert.deepEqual(encoder.encode(record(12.34)), body(asBytes(0x04, 0xd2)));
    assert.deepEqual(encoder.encode(record(-0.05)), body(asBytes(0xfb)));
    assert.deepEqual(encoder.encode(record(1.28)), body(asBytes(0x00, 0x80)));
    for (const bad of [12.345, 1e10 /* 13 digits at scale 2 */, 0.1 + 0.2])
      assert.throws(
        () => encoder.encode(record(bad)),
        (error) => isTesseraError(error, 'EVENT_INVALID') && /amount/.test(error.message),
        String(bad),
      );
  });

  it('refuses a decimal schema whose precision or scale is malformed when it is compiled', () => {
    for (const [amount, problem] of [
      [{ type: 'bytes', logicalType: 'decimal', scale: 2 }, /precision must be a positive integer/],
      [{ type: 'bytes', logicalType: 'decimal', precision: 4, scale: 5 }, /scale must be an integer from 0/],
      [
        { type: 'fixed', name: 'Tiny', size: 2, logicalType: 'decimal', precision: 6 },
        /a fixed of 2 bytes holds at most 4 digits/,
      ],
    ] as const)
      assert.throws(
        () => createDecoder(source(amount, 'bad.avsc'), { definitionsDir: dir }),
        (error) => isTesseraError(error, 'DEFINITIONS_INVALID') && problem.test(error.message),
      );
  });

  it('converts unscaled integers both ways, for every size of two bytes and across the sign', () => {
    for (let n = -40_000n; n <= 40_000n; n += 7n) {
      const bytes = twosComplement(n)!;
      assert.equal(unscaledOf(bytes), n);
      // The fewest bytes: one fewer could not hold n.
      if (bytes.length > 1)
        assert.ok(n < -(1n << BigInt(8 * bytes.length - 9)) || n >= 1n << BigInt(8 * bytes.length - 9));
    }
    assert.equal(twosComplement(128n, 1), undefined);
    assert.deepEqual(twosComplement(-1n, 3), Buffer.from([0xff, 0xff, 0xff]));
    assert.equal(unscaledFrom('1e-2', 2), 1n);
    assert.equal(unscaledFrom('-12.30', 1), -123n);
    assert.equal(unscaledFrom(1.5e21, 0), 1_500_000_000_000_000_000_000n);
    assert.equal(unscaledFrom('12.3.4', 2), undefined);
  });
});
