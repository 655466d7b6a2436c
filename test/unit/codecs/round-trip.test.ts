import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compileAvroSchema } from '../../../shared/codecs/avro-codec.ts';
import { createDecoder, createEncoder, type DecodeResult } from '../../../shared/codecs/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import {
  DEFINITIONS_DIR,
  type FakeRegistry,
  KNOWN_RECORD,
  SCHEMA_DIR,
  startRegistry,
  TRANSACTION_SCHEMA,
  transactions,
} from './support.ts';

const expected: DecodeResult = {
  ok: true,
  key: '1042',
  ts: KNOWN_RECORD.event_timestamp,
  record: KNOWN_RECORD,
  messageKey: '1042',
};

describe('codec round trips', () => {
  it('json: a record encodes to JSON with an ISO-8601 UTC time and decodes back', () => {
    const source = transactions('json');
    const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR }).encode(KNOWN_RECORD);
    assert.equal(
      bytes.toString('utf8'),
      '{"user_id":1042,"event_timestamp":"2026-01-01T12:30:00.250Z","amount":12.34,"merchant_id":"m_7"}',
    );
    const decoder = createDecoder(source, { definitionsDir: DEFINITIONS_DIR });
    assert.deepEqual(decoder.decode({ key: Buffer.from('1042'), value: bytes }), expected);
  });

  it('json: epoch_s and epoch_ms sources write numbers and read them back to ms', () => {
    for (const timestampFormat of ['epoch_s', 'epoch_ms'] as const) {
      const source = transactions('json', { timestampFormat });
      const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR }).encode(KNOWN_RECORD);
      const json = JSON.parse(bytes.toString('utf8')) as { event_timestamp: number };
      assert.equal(json.event_timestamp, timestampFormat === 'epoch_s' ? 1767270600.25 : 1767270600250);
      const out = createDecoder(source, { definitionsDir: DEFINITIONS_DIR }).decode({
        key: null,
        value: bytes,
      });
      assert.deepEqual(out, { ...expected, messageKey: null });
    }
  });

  it('raw avro: decodes synchronously (no promise) and equals the input', () => {
    const source = transactions('avro');
    const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR }).encode(KNOWN_RECORD);
    const out = createDecoder(source, { definitionsDir: DEFINITIONS_DIR }).decode({
      key: Buffer.from('1042'),
      value: bytes,
    });
    assert.ok(!(out instanceof Promise));
    assert.deepEqual(out, expected);
  });

  it('confluent: resolves the schema id from a schema directory', async () => {
    const source = transactions('avro-confluent');
    const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR, schemaId: 7 }).encode(
      KNOWN_RECORD,
    );
    assert.deepEqual([...bytes.subarray(0, 5)], [0, 0, 0, 0, 7]);
    const decoder = createDecoder(source, { definitionsDir: DEFINITIONS_DIR, schemaDir: SCHEMA_DIR });
    assert.deepEqual(await decoder.decode({ key: Buffer.from('1042'), value: bytes }), expected);
    // Cached now: the second decode is synchronous.
    const again = decoder.decode({ key: Buffer.from('1042'), value: bytes });
    assert.ok(!(again instanceof Promise));
    assert.deepEqual(again, expected);
  });

  it('avro int64 ids beyond 2^53 survive every format as exact decimal strings', async () => {
    const big = { ...KNOWN_RECORD, user_id: '9007199254740993' };
    for (const format of ['json', 'avro', 'avro-confluent'] as const) {
      const source = transactions(format);
      const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR, schemaId: 7 }).encode(big);
      const out = await createDecoder(source, {
        definitionsDir: DEFINITIONS_DIR,
        schemaDir: SCHEMA_DIR,
      }).decode({
        key: null,
        value: bytes,
      });
      assert.deepEqual(out, {
        ok: true,
        key: '9007199254740993',
        ts: big.event_timestamp,
        record: big,
        messageKey: null,
      });
    }
  });

  it('avro: int64 values between 2^52 and 2^53 in magnitude, negative ones included, stay exact', () => {
    // avsc's built-in long does the zigzag step in floating point and turned -(2^52 + 1) into 2^52.
    const source = transactions('avro');
    const encoder = createEncoder(source, { definitionsDir: DEFINITIONS_DIR });
    const decoder = createDecoder(source, { definitionsDir: DEFINITIONS_DIR });
    for (const id of [
      -4503599627370497,
      4503599627370497,
      -9007199254740991,
      9007199254740991,
      '-9007199254740992',
    ]) {
      const out = decoder.decode({
        key: null,
        value: encoder.encode({ ...KNOWN_RECORD, user_id: id }),
      }) as DecodeResult;
      assert.ok(out.ok);
      assert.equal(out.record.user_id, id);
      assert.equal(out.key, String(id));
    }
  });

  it('avro: a long written as a schema object ({"type": "long", ...}) is read exactly too', () => {
    // avsc builds an object-form long (every logical type, Kafka Connect's int64) from its own
    // type, not the registry's: -(2^52 + 3) came out as the key "4503599627370498", and ids
    // beyond 2^53 were refused as a "potential precision loss".
    const schema = JSON.stringify({
      type: 'record',
      name: 'T',
      fields: [
        { name: 'user_id', type: { type: 'long', 'connect.name': 'int64' } },
        { name: 'event_timestamp', type: { type: 'long', logicalType: 'timestamp-millis' } },
      ],
    });
    const codec = compileAvroSchema(schema, 'inline', transactions('avro'));
    // Avro's long, written here independently of avsc: zigzag, then base-128 varint.
    const long = (v: bigint) => {
      let z = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
      const out: number[] = [];
      while (z >= 0x80n) {
        out.push(Number((z & 0x7fn) | 0x80n));
        z >>= 7n;
      }
      out.push(Number(z));
      return out;
    };
    for (const [id, want] of [
      [-4503599627370499n, -4503599627370499],
      [9007199254740993n, '9007199254740993'],
      [2n ** 63n - 1n, '9223372036854775807'],
      [-(2n ** 63n), '-9223372036854775808'],
    ] as const) {
      const read = codec.read(Buffer.from([...long(id), ...long(-4503599627370499n)]), 0);
      assert.ok(read.ok, JSON.stringify(read));
      assert.equal(read.raw.user_id, want);
      assert.equal(read.raw.event_timestamp, -4503599627370499, 'the timestamp-millis long, exact');
    }
  });

  it('avro: an event time in timestamp-nanos round-trips to the millisecond', () => {
    const schema = JSON.parse(TRANSACTION_SCHEMA) as { fields: { name: string; type: unknown }[] };
    schema.fields[1]!.type = { type: 'long', logicalType: 'timestamp-nanos' };
    const codec = compileAvroSchema(JSON.stringify(schema), 'inline', transactions('avro'));
    const ts = Date.UTC(2026, 0, 1, 12, 0, 0, 250);
    const read = codec.read(codec.write({ ...KNOWN_RECORD, event_timestamp: ts }), 0);
    assert.ok(read.ok);
    assert.equal(read.raw.event_timestamp, `${BigInt(ts) * 1_000_000n}`, 'written in nanoseconds');
  });

  it('refuses to build an Avro decoder whose schema file is missing, naming the file', () => {
    assert.throws(
      () =>
        createDecoder(transactions('avro', { avroSchema: 'schemas/nope.avsc' }), {
          definitionsDir: DEFINITIONS_DIR,
        }),
      (e: unknown) => isTesseraError(e, 'DEFINITIONS_INVALID') && /schemas\/nope\.avsc/.test(e.message),
    );
  });

  it('refuses an Avro schema that lacks a column of the source', () => {
    assert.throws(
      () =>
        createDecoder(transactions('avro', { schema: { ...transactions().schema, country: 'string' } }), {
          definitionsDir: DEFINITIONS_DIR,
        }),
      (e: unknown) => isTesseraError(e, 'DEFINITIONS_INVALID') && /no field country/.test(e.message),
    );
  });

  it('refuses a confluent decoder with neither registry nor schema directory', () => {
    assert.throws(
      () => createDecoder(transactions('avro-confluent'), { definitionsDir: DEFINITIONS_DIR }),
      (e: unknown) => isTesseraError(e, 'CONFIG_INVALID') && /schemaRegistryUrl or schemaDir/.test(e.message),
    );
  });
});

describe('confluent schema registry over HTTP', () => {
  let registry: FakeRegistry;
  before(async () => {
    registry = await startRegistry({ 7: TRANSACTION_SCHEMA, 9: '{"type": "nonsense"}' });
  });
  after(() => registry.close());

  it('fetches a schema id once and decodes every message written with it', async () => {
    const source = transactions('avro-confluent');
    const encoder = createEncoder(source, { definitionsDir: DEFINITIONS_DIR, schemaId: 7 });
    const decoder = createDecoder(source, {
      definitionsDir: DEFINITIONS_DIR,
      schemaRegistryUrl: registry.url,
    });
    const records = [1, 2, 3].map((i) => ({ ...KNOWN_RECORD, user_id: 1000 + i, amount: i * 1.5 }));
    // Concurrent first decodes share one request.
    const outs = await Promise.all(
      records.map((r) => decoder.decode({ key: null, value: encoder.encode(r) })),
    );
    assert.deepEqual(
      outs.map((o) => (o.ok ? o.record : o.reason)),
      records,
    );
    assert.deepEqual(registry.requests, [7]);
  });

  it('decodeBatch resolves the unseen ids of a batch once and keeps message order', async () => {
    const source = transactions('avro-confluent');
    const encoder = createEncoder(source, { definitionsDir: DEFINITIONS_DIR, schemaId: 7 });
    const decoder = createDecoder(source, {
      definitionsDir: DEFINITIONS_DIR,
      schemaRegistryUrl: registry.url,
    });
    registry.requests.length = 0;
    const good = encoder.encode(KNOWN_RECORD);
    const unknown = Buffer.from(good);
    unknown.writeUInt32BE(8, 1);
    const invalid = Buffer.from(good);
    invalid.writeUInt32BE(9, 1);
    const outs = await decoder.decodeBatch(
      [good, unknown, good, invalid, unknown].map((value) => ({ key: null, value })),
    );
    assert.deepEqual(
      outs.map((o) => (o.ok ? 'ok' : o.reason)),
      ['ok', 'undecodable', 'ok', 'undecodable', 'undecodable'],
    );
    assert.match((outs[1] as { message: string }).message, /unknown schema id 8/);
    assert.match((outs[3] as { message: string }).message, /schema id 9: not a valid Avro schema/);
    assert.deepEqual([...registry.requests].sort(), [7, 8, 9]);
  });

  it('junk frames with random ids: a few lookups at a time, and a bounded memory of unknown ids', async () => {
    const source = transactions('avro-confluent');
    const decoder = createDecoder(source, {
      definitionsDir: DEFINITIONS_DIR,
      schemaRegistryUrl: registry.url,
      maxUnusableIds: 100,
    });
    registry.requests.length = 0;
    const frame = (id: number) => {
      const value = Buffer.alloc(9);
      value.writeUInt32BE(id, 1);
      return { key: null, value };
    };
    const n = 100 + 5;
    const ids = Array.from({ length: n }, (_, i) => 100_000 + i);
    let rounds = 0;
    const outs = await decoder.decodeBatch(ids.map(frame), async () => {
      rounds++;
    });
    assert.equal(rounds, Math.ceil(n / 8) - 1, 'the caller can heartbeat between rounds of lookups');
    assert.ok(outs.every((o) => !o.ok && o.reason === 'undecodable'));
    assert.ok(
      outs.every((o) => !o.ok && o.unsettled === true),
      'an unknown id may be known on another delivery: the verdict is not the bytes alone',
    );
    const garbage = await decoder.decodeBatch([{ key: null, value: Buffer.from('{') }]);
    assert.ok(!garbage[0]!.ok && garbage[0]!.unsettled === undefined, 'bytes that are no frame are settled');
    assert.equal(registry.requests.length, n, 'each unknown id asked once');
    assert.ok(registry.maxInFlight <= 8, `lookups in flight at once: ${registry.maxInFlight}`);
    // The newest unknown ids are remembered; the oldest were let go (asked again).
    await decoder.decodeBatch([frame(ids[n - 1]!)]);
    assert.equal(registry.requests.length, n);
    await decoder.decodeBatch([frame(ids[0]!)]);
    assert.equal(registry.requests.length, n + 1);
  });

  it('an unreachable registry rejects with a retriable error instead of refusing the message', async () => {
    const dead = await startRegistry({});
    const url = dead.url;
    await dead.close();
    const source = transactions('avro-confluent');
    const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR, schemaId: 7 }).encode(
      KNOWN_RECORD,
    );
    const decoder = createDecoder(source, { definitionsDir: DEFINITIONS_DIR, schemaRegistryUrl: url });
    await assert.rejects(
      async () => decoder.decode({ key: null, value: bytes }),
      (e: unknown) => isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable,
    );
  });
});
