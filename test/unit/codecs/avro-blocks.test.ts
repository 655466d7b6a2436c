// Avro array and map block counts held to the bytes a body has (shared/codecs/avro-blocks.ts), and
// ints to 32 bits (avro-codec.ts). Found by an audit: a ~30-byte Confluent frame whose map declared
// 1e8 items took avsc over a second to refuse (an array of 1e8 exhausted the heap), the event loop
// blocked all the while.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type avroTypes from 'avsc';
import { blockProblem, hasCollections, MAX_EMPTY_ITEMS } from '../../../shared/codecs/avro-blocks.ts';
import { createDecoder } from '../../../shared/codecs/decode.ts';
import { transactions, avroLong as varint } from './support.ts';

const avro = createRequire(import.meta.url)('avsc') as typeof avroTypes;

const FIELDS = [
  { name: 'user_id', type: 'long' },
  { name: 'event_timestamp', type: { type: 'long', logicalType: 'timestamp-millis' } },
  { name: 'amount', type: 'double' },
  { name: 'merchant_id', type: 'string' },
];
const withField = (type: unknown) =>
  avro.Type.forSchema({
    type: 'record',
    name: 'Transaction',
    fields: [...FIELDS, { name: 'extra', type }],
  } as avroTypes.Schema);
const RECORD = { user_id: 1042, event_timestamp: 1767270600250, amount: 12.34, merchant_id: 'm_7' };
/** The reference record without its user_id: a body is `user_id`'s bytes, then these. */
const REST = avro.Type.forSchema({
  type: 'record',
  name: 'Rest',
  fields: FIELDS.slice(1),
} as avroTypes.Schema);

const schemaDir = mkdtempSync(join(tmpdir(), 'tessera-avro-schemas-'));
after(() => rmSync(schemaDir, { recursive: true, force: true }));

/** A decoder of the reference source in the Confluent format, schema `id` being a record of `fields`. */
function confluentDecoder(id: number, fields: unknown[]) {
  writeFileSync(
    join(schemaDir, `${id}.avsc`),
    JSON.stringify({ type: 'record', name: 'Transaction', fields }),
  );
  return createDecoder(transactions('avro-confluent'), { definitionsDir: 'definitions', schemaDir });
}

/** A Confluent frame of schema `id` (below 256) around `body`. */
const framed = (id: number, body: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 0, id]), body]);

/** The record with its empty trailing collection replaced by one block declaring `count` items. */
function declaring(type: avroTypes.Type, empty: unknown, count: bigint): Buffer {
  const good = type.toBuffer({ ...RECORD, extra: empty });
  return Buffer.concat([good.subarray(0, good.length - 1), varint(count), Buffer.from([0])]);
}

describe('Avro bodies held to what their bytes can be', () => {
  it('refuses a map or array declaring more items than its bytes can hold, before any item is read', () => {
    for (const [schema, empty] of [
      [{ type: 'map', values: 'string' }, {}],
      [{ type: 'array', items: 'long' }, []],
      [{ type: 'array', items: ['null', { type: 'array', items: 'int' }] }, []],
    ] as const) {
      const type = withField(schema);
      assert.ok(hasCollections(type));
      const problem = blockProblem(type, declaring(type, empty, 100_000_000n), 0);
      assert.match(
        String(problem),
        /block declares 100000000 items, more than its \d+ remaining bytes can hold/,
      );
    }
  });

  it('passes what avsc reads, and leaves truncated bodies to avsc', () => {
    const type = withField({ type: 'map', values: { type: 'array', items: ['null', 'double'] } });
    const body = type.toBuffer({ ...RECORD, extra: { a: [1.5, null], b: [] } });
    assert.equal(blockProblem(type, body, 0), undefined);
    assert.equal(blockProblem(type, body.subarray(0, body.length - 3), 0), undefined);
    assert.equal(
      hasCollections(avro.Type.forSchema({ type: 'record', name: 'r', fields: FIELDS } as avroTypes.Schema)),
      false,
    );
  });

  it('bounds items of zero bytes, which no byte count does', () => {
    const type = withField({ type: 'array', items: 'null' });
    assert.equal(blockProblem(type, declaring(type, [], BigInt(MAX_EMPTY_ITEMS)), 0), undefined);
    assert.match(
      String(blockProblem(type, declaring(type, [], BigInt(MAX_EMPTY_ITEMS) + 1n), 0)),
      /over 1000000 items of zero bytes/,
    );
  });

  it('dead-letters such a Confluent frame as undecodable instead of stalling the decoder', async () => {
    const schema = { type: 'map', values: 'string' };
    const decoder = confluentDecoder(7, [...FIELDS, { name: 'tags', type: schema }]);
    const type = withField(schema);
    const result = await decoder.decode({ key: null, value: framed(7, declaring(type, {}, 100_000_000n)) });
    assert.ok(!result.ok && result.reason === 'undecodable', JSON.stringify(result));
    assert.match(result.message, /map block declares 100000000 items/);
    const fine = framed(7, type.toBuffer({ ...RECORD, extra: { k: 'v' } }));
    assert.ok((await decoder.decode({ key: null, value: fine })).ok);
  });

  it("holds an Avro int to 32 bits: a wider varint is undecodable, not another entity's key", async () => {
    // Found by the same audit: avsc read an int field as any varint up to 2^53, so user_id written
    // as -(2^52 + 3) came back as key 2^52 + 2, and 3,000,000,000 was taken as an int.
    const decoder = confluentDecoder(10, [{ name: 'user_id', type: 'int' }, ...FIELDS.slice(1)]);
    const frame = (user: bigint) => framed(10, Buffer.concat([varint(user), REST.toBuffer(RECORD)]));
    for (const user of [-(2n ** 52n + 3n), 3_000_000_000n, 2n ** 31n]) {
      const result = await decoder.decode({ key: null, value: frame(user) });
      assert.ok(!result.ok && result.reason === 'undecodable', `${user}: ${JSON.stringify(result)}`);
      assert.match(result.message, /user_id: -?\d+ does not fit the 32 bits of an Avro int/);
    }
    for (const user of [2n ** 31n - 1n, -(2n ** 31n)]) {
      const result = await decoder.decode({ key: null, value: frame(user) });
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.key, String(user));
    }
  });

  it('reads a long from its own varint bytes: exact to 64 bits, and wider varints undecodable', async () => {
    // Found by the same audit: avsc kept the low 64 bits of a longer varint, so eleven bytes of
    // user_id that Avro forbids were read as user 0.
    const decoder = createDecoder(transactions('avro'), { definitionsDir: 'definitions' });
    const decode = (user: Buffer) =>
      decoder.decode({ key: null, value: Buffer.concat([user, REST.toBuffer(RECORD)]) });
    const eleven = Buffer.from([...Array(10).fill(0x80), 0x00]);
    const tenTooWide = Buffer.from([...Array(9).fill(0xff), 0x02]);
    for (const user of [eleven, tenTooWide]) {
      const result = await decode(user);
      assert.ok(!result.ok && result.reason === 'undecodable', JSON.stringify(result));
      assert.match(result.message, /a long written in (11|10) varint bytes is wider than 64 bits/);
    }
    const edges = [
      0n,
      1n,
      -1n,
      2n ** 48n,
      -(2n ** 48n) - 1n,
      2n ** 53n + 1n,
      -(2n ** 53n) - 1n,
      2n ** 63n - 1n,
      -(2n ** 63n),
    ];
    let x = 0x9e3779b97f4a7c15n;
    for (let i = 0; i < 200; i++) {
      x = BigInt.asUintN(64, x * 6364136223846793005n + 1442695040888963407n);
      edges.push(BigInt.asIntN(64, x) >> BigInt(i % 64));
    }
    for (const v of edges) {
      const result = await decode(varint(v));
      assert.ok(result.ok, `${v}: ${JSON.stringify(result)}`);
      assert.equal(result.key, v.toString());
      assert.equal(
        typeof result.record.user_id,
        Number.isSafeInteger(Number(v)) && BigInt(Number(v)) === v ? 'number' : 'string',
      );
    }
  });

  it('finds a string that is not UTF-8 by its own bytes, though a real U+FFFD elsewhere has the same decoded form', async () => {
    // Found by the same audit: the check looked for the decoded string's UTF-8 form anywhere in
    // the message, so a valid "caf\uFFFD" in another field hid merchant_id's Latin-1 "café".
    const decoder = confluentDecoder(11, [...FIELDS, { name: 'extra', type: ['null', 'string'] }]);
    const type = withField(['null', 'string']);
    const body = type.toBuffer({ ...RECORD, merchant_id: 'caf_', extra: 'caf\uFFFD' });
    body[body.indexOf('caf_') + 3] = 0xe9;
    const hidden = await decoder.decode({ key: null, value: framed(11, body) });
    assert.ok(!hidden.ok && hidden.reason === 'undecodable', JSON.stringify(hidden));
    assert.match(hidden.message, /field merchant_id: the string is not valid UTF-8/);
    // Real U+FFFDs in both are values like any other.
    const real = await decoder.decode({
      key: null,
      value: framed(11, type.toBuffer({ ...RECORD, merchant_id: 'caf\uFFFD', extra: 'caf\uFFFD' })),
    });
    assert.ok(real.ok, JSON.stringify(real));
    assert.equal(real.record.merchant_id, 'caf\uFFFD');
  });
});
