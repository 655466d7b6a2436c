// Avro array and map block counts held to the bytes a body has (shared/codecs/avro-blocks.ts). Found
// by an audit: a ~30-byte Confluent frame whose map declared 1e8 items took avsc over a second to
// refuse (an array of 1e8 exhausted the heap), the event loop blocked all the while.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type avroTypes from 'avsc';
import { blockProblem, hasCollections, MAX_EMPTY_ITEMS } from '../../../shared/codecs/avro-blocks.ts';
import { createDecoder } from '../../../shared/codecs/decode.ts';
import { transactions } from './support.ts';

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

/** Zigzag varint of a non-negative count. */
function varint(n: bigint): Buffer {
  const bytes: number[] = [];
  let x = n * 2n;
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    bytes.push(b);
  } while (x > 0n);
  return Buffer.from(bytes);
}

/** The record with its empty trailing collection replaced by one block declaring `count` items. */
function declaring(type: avroTypes.Type, empty: unknown, count: bigint): Buffer {
  const good = type.toBuffer({ ...RECORD, extra: empty });
  return Buffer.concat([good.subarray(0, good.length - 1), varint(count), Buffer.from([0])]);
}

describe('Avro block counts', () => {
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
    const dir = mkdtempSync(join(tmpdir(), 'tessera-avro-blocks-'));
    try {
      const schema = { type: 'map', values: 'string' };
      writeFileSync(
        join(dir, '7.avsc'),
        JSON.stringify({
          type: 'record',
          name: 'Transaction',
          fields: [...FIELDS, { name: 'tags', type: schema }],
        }),
      );
      const type = withField(schema);
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), declaring(type, {}, 100_000_000n)]);
      const decoder = createDecoder(transactions('avro-confluent'), {
        definitionsDir: 'definitions',
        schemaDir: dir,
      });
      const result = await decoder.decode({ key: null, value: frame });
      assert.ok(!result.ok && result.reason === 'undecodable', JSON.stringify(result));
      assert.match(result.message, /map block declares 100000000 items/);
      const fine = Buffer.concat([
        Buffer.from([0, 0, 0, 0, 7]),
        type.toBuffer({ ...RECORD, extra: { k: 'v' } }),
      ]);
      assert.ok((await decoder.decode({ key: null, value: fine })).ok);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
