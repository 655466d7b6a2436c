import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createDecoder,
  createEncoder,
  DECODE_FAILURES,
  type DecodeFailure,
  type DecodeResult,
} from '../../../shared/codecs/index.ts';
import { parseIsoTimestamp } from '../../../shared/codecs/timestamp.ts';
import { createValidator } from '../../../shared/codecs/validate.ts';
import { parseDefinitions } from '../../../shared/definitions/load.ts';
import { DEFINITIONS_DIR, KNOWN_RECORD, SCHEMA_DIR, transactions } from './support.ts';

const json = createDecoder(transactions('json'), { definitionsDir: DEFINITIONS_DIR });
const good = {
  user_id: 1042,
  event_timestamp: '2026-01-01T12:30:00.250Z',
  amount: 12.34,
  merchant_id: 'm_7',
};
const decodeJson = (value: unknown): DecodeResult =>
  json.decode({
    key: null,
    value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
  }) as DecodeResult;

function refused(result: DecodeResult, reason: DecodeFailure, message?: RegExp): void {
  assert.equal(result.ok, false, `expected a refusal (${reason}), got ${JSON.stringify(result)}`);
  if (result.ok) return;
  assert.equal(result.reason, reason, result.message);
  if (message) assert.match(result.message, message);
}

describe('decode failures', () => {
  it('undecodable: bytes that are not JSON', () => {
    refused(decodeJson('{"user_id": 1042, "amount":'), 'undecodable', /not JSON/);
    refused(json.decode({ key: null, value: null }) as DecodeResult, 'undecodable', /no value/);
  });

  it('undecodable: text that is not UTF-8, which would decode as U+FFFD and merge with other values', () => {
    // Latin-1 "café" and "cafè": as UTF-8 both read as "caf\uFFFD".
    for (const byte of [0xe9, 0xe8]) {
      const text = Buffer.from(JSON.stringify({ ...good, merchant_id: 'caf_' }));
      text[text.indexOf('caf_') + 3] = byte;
      refused(json.decode({ key: null, value: text }) as DecodeResult, 'undecodable', /not valid UTF-8/);
    }
    const source = transactions('avro');
    const encoder = createEncoder(source, { definitionsDir: DEFINITIONS_DIR });
    const decoder = createDecoder(source, { definitionsDir: DEFINITIONS_DIR });
    const bytes = Buffer.from(encoder.encode({ ...KNOWN_RECORD, merchant_id: 'caf_' }));
    bytes[bytes.indexOf('caf_') + 3] = 0xe9;
    refused(
      decoder.decode({ key: null, value: bytes }) as DecodeResult,
      'undecodable',
      /field merchant_id: the string is not valid UTF-8/,
    );
    // A real U+FFFD, sent as UTF-8, is a value like any other, in both formats.
    const real = decoder.decode({
      key: null,
      value: encoder.encode({ ...KNOWN_RECORD, merchant_id: 'caf\uFFFD' }),
    }) as DecodeResult;
    assert.ok(real.ok);
    assert.equal(real.record.merchant_id, 'caf\uFFFD');
    const realJson = decodeJson({ ...good, merchant_id: 'caf\uFFFD' });
    assert.ok(realJson.ok);
  });

  it('refuses an Avro event time that is not an instant: date, time of day, local timestamp', async () => {
    const { compileAvroSchema } = await import('../../../shared/codecs/avro-codec.ts');
    const schema = (logicalType: string, type = 'long') =>
      JSON.stringify({
        type: 'record',
        name: 'tx',
        fields: [
          { name: 'user_id', type: 'long' },
          { name: 'event_timestamp', type: { type, logicalType } },
          { name: 'amount', type: 'double' },
          { name: 'merchant_id', type: 'string' },
        ],
      });
    const source = transactions('avro');
    for (const [logical, type] of [
      ['date', 'int'],
      ['time-millis', 'int'],
      ['time-micros', 'long'],
      ['local-timestamp-millis', 'long'],
      ['local-timestamp-micros', 'long'],
      ['local-timestamp-nanos', 'long'],
    ] as const)
      assert.throws(
        () => compileAvroSchema(schema(logical, type), 'tx.avsc', source),
        new RegExp(`tx\\.avsc: field event_timestamp has logicalType ${logical}, which is not an instant`),
      );
    assert.equal(
      compileAvroSchema(schema('timestamp-micros'), 'tx.avsc', source).timestampUnits.event_timestamp,
      'micros',
    );
    assert.equal(
      compileAvroSchema(schema('timestamp-nanos'), 'tx.avsc', source).timestampUnits.event_timestamp,
      'nanos',
    );
  });

  it("reads and writes every timestamp column by its own Avro type, not the event time's alone", async () => {
    const { compileAvroSchema } = await import('../../../shared/codecs/avro-codec.ts');
    // A second timestamp column, in microseconds; the event time in milliseconds. The second was
    // parsed by timestamp_format (iso8601 here): every record was refused as bad_timestamp.
    const schema = (created: unknown) =>
      JSON.stringify({
        type: 'record',
        name: 'tx',
        fields: [
          { name: 'user_id', type: 'long' },
          { name: 'event_timestamp', type: { type: 'long', logicalType: 'timestamp-millis' } },
          { name: 'amount', type: 'double' },
          { name: 'merchant_id', type: 'string' },
          { name: 'created_at', type: created },
        ],
      });
    const source = transactions('avro', {
      schema: { ...transactions('avro').schema, created_at: 'timestamp' },
    });
    const validate = createValidator(source);
    const created = Date.UTC(2025, 11, 31, 8, 0, 0, 125);
    for (const [type, stored] of [
      [{ type: 'long', logicalType: 'timestamp-micros' }, created * 1000],
      [['null', { type: 'long', logicalType: 'timestamp-nanos' }], `${BigInt(created) * 1_000_000n}`],
      ['long', created],
      ['string', new Date(created).toISOString()],
    ] as const) {
      const codec = compileAvroSchema(schema(type), 'tx.avsc', source);
      const bytes = codec.write({ ...KNOWN_RECORD, created_at: created });
      const read = codec.read(bytes, 0);
      assert.ok(read.ok, JSON.stringify(read));
      assert.equal(String(read.raw.created_at), String(stored), `${JSON.stringify(type)} as stored`);
      const result = validate(read.raw, null, codec.timestampUnits);
      assert.ok(result.ok, `${JSON.stringify(type)}: ${JSON.stringify(result)}`);
      assert.equal(result.record.created_at, created, JSON.stringify(type));
      assert.equal(result.ts, KNOWN_RECORD.event_timestamp);
    }
    assert.throws(
      () => compileAvroSchema(schema({ type: 'int', logicalType: 'date' }), 'tx.avsc', source),
      /tx\.avsc: field created_at has logicalType date, which is not an instant; timestamp columns must be/,
    );
  });

  it('reads a union avsc wraps, ["null", "float", "double"], as its value, and writes it back', async () => {
    const { compileAvroSchema } = await import('../../../shared/codecs/avro-codec.ts');
    const schema = JSON.stringify({
      type: 'record',
      name: 'tx',
      fields: [
        { name: 'user_id', type: 'long' },
        { name: 'event_timestamp', type: { type: 'long', logicalType: 'timestamp-millis' } },
        { name: 'amount', type: ['null', 'float', 'double'] },
        { name: 'merchant_id', type: 'string' },
      ],
    });
    const codec = compileAvroSchema(schema, 'tx.avsc', transactions('avro'));
    const bytes = codec.write({ ...KNOWN_RECORD, amount: 0.1 });
    const read = codec.read(bytes, 0);
    assert.ok(read.ok);
    // Once {double: 0.1}, which the validator refused (schema_mismatch) for every record; written
    // as the double branch, not the float one (0.1 would come back as 0.10000000149011612).
    assert.equal(read.raw.amount, 0.1);
  });

  it('undecodable: a truncated raw Avro body', () => {
    const source = transactions('avro');
    const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR }).encode(KNOWN_RECORD);
    const decoder = createDecoder(source, { definitionsDir: DEFINITIONS_DIR });
    refused(
      decoder.decode({ key: null, value: bytes.subarray(0, bytes.length - 3) }) as DecodeResult,
      'undecodable',
      /truncated/,
    );
    refused(
      decoder.decode({ key: null, value: Buffer.concat([bytes, Buffer.from([1, 2])]) }) as DecodeResult,
      'undecodable',
      /2 trailing bytes/,
    );
  });

  it('undecodable: a Confluent frame with a wrong magic byte or an unknown schema id', async () => {
    const source = transactions('avro-confluent');
    const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR, schemaId: 7 }).encode(
      KNOWN_RECORD,
    );
    const decoder = createDecoder(source, { definitionsDir: DEFINITIONS_DIR, schemaDir: SCHEMA_DIR });
    const wrongMagic = Buffer.from(bytes);
    wrongMagic[0] = 1;
    refused(await decoder.decode({ key: null, value: wrongMagic }), 'undecodable', /first byte is 0x01/);
    const unknownId = Buffer.from(bytes);
    unknownId.writeUInt32BE(12345, 1);
    refused(await decoder.decode({ key: null, value: unknownId }), 'undecodable', /unknown schema id 12345/);
    refused(await decoder.decode({ key: null, value: Buffer.from([0, 0, 0]) }), 'undecodable', /truncated/);
  });

  it('non_numeric: amount "abc", "12,5", NaN and Infinity', async () => {
    refused(
      decodeJson({ ...good, amount: 'abc' }),
      'non_numeric',
      /^field amount: expected a finite number, got "abc"$/,
    );
    refused(decodeJson({ ...good, amount: '12,5' }), 'non_numeric', /field amount/);
    refused(decodeJson({ ...good, amount: 'NaN' }), 'non_numeric', /field amount/);
    refused(decodeJson({ ...good, amount: 'Infinity' }), 'non_numeric', /field amount/);
    refused(decodeJson({ ...good, user_id: 'abc' }), 'non_numeric', /field user_id/);
    // Avro doubles can carry NaN itself.
    const source = transactions('avro');
    const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR }).encode({
      ...KNOWN_RECORD,
      amount: Number.NaN,
    });
    refused(
      createDecoder(source, { definitionsDir: DEFINITIONS_DIR }).decode({
        key: null,
        value: bytes,
      }) as DecodeResult,
      'non_numeric',
      /field amount: expected a finite number, got NaN/,
    );
  });

  it('non_numeric: a double beyond ±1e100, whose sums and deviations would overflow to NaN', () => {
    refused(decodeJson({ ...good, amount: 1e308 }), 'non_numeric', /field amount: 1e\+308 is beyond ±1e100/);
    refused(decodeJson({ ...good, amount: '-2e101' }), 'non_numeric', /field amount: "-2e101" is beyond/);
    const edge = decodeJson({ ...good, amount: -1e100 });
    assert.ok(edge.ok);
    assert.equal(edge.record.amount, -1e100);
  });

  it('takes -0 as 0: min and max of 0 and -0 once differed between online and offline', () => {
    for (const amount of [-0, '-0', '-0.0']) {
      const out = decodeJson(
        typeof amount === 'number'
          ? `{"user_id":1,"event_timestamp":"2026-01-01T00:00:00Z","amount":-0,"merchant_id":"m"}`
          : { ...good, amount },
      );
      assert.ok(out.ok);
      assert.ok(
        Object.is(out.record.amount, 0),
        `${amount} -> ${Object.is(out.record.amount, -0) ? '-0' : out.record.amount}`,
      );
    }
  });

  it('accepts a numeric string amount and drops extra fields', () => {
    const out = decodeJson({ ...good, amount: '12.5', country: 'FR' });
    assert.ok(out.ok);
    assert.deepEqual(out.record, { ...KNOWN_RECORD, amount: 12.5 });
  });

  it('schema_mismatch: a field of the wrong type', () => {
    refused(
      decodeJson({ ...good, merchant_id: 42 }),
      'schema_mismatch',
      /field merchant_id: expected a string, got 42/,
    );
    refused(
      decodeJson({ ...good, amount: true }),
      'schema_mismatch',
      /field amount: expected a number, got true/,
    );
    refused(decodeJson([good]), 'schema_mismatch', /not an object/);
  });

  it('schema_mismatch: a string with an unpaired surrogate, which has no UTF-8 form', () => {
    // JSON can escape half a pair; stored as UTF-8 it would become U+FFFD and merge with others.
    for (const merchant of ['m\ud800', '\udc00m', 'a\udbff\ud83d']) {
      const text = JSON.stringify({ ...good, merchant_id: merchant });
      assert.match(text, /\\ud[89a-f]/, 'sent as a JSON escape');
      refused(
        decodeJson(text),
        'schema_mismatch',
        /field merchant_id: the string has an unpaired UTF-16 surrogate \(\\ud[89a-f]\w\w at index \d\)/,
      );
    }
    // Whole pairs, escaped or not, are fine.
    for (const merchant of ['m\ud83d\ude00', 'm😀', 'é']) {
      const out = decodeJson({ ...good, merchant_id: merchant });
      assert.ok(out.ok);
      assert.equal(out.record.merchant_id, merchant);
    }
  });

  it('schema_mismatch: user_id 1.5 is not an int64', () => {
    refused(
      decodeJson({ ...good, user_id: 1.5 }),
      'schema_mismatch',
      /field user_id: expected an integer \(int64\), got 1.5/,
    );
    refused(decodeJson({ ...good, user_id: '1.5' }), 'schema_mismatch', /field user_id/);
  });

  it('schema_mismatch: int64 strings that are not canonical, and JSON integers that lost digits', () => {
    refused(decodeJson({ ...good, user_id: '01042' }), 'schema_mismatch', /leading zeros/);
    refused(decodeJson({ ...good, user_id: '+1042' }), 'schema_mismatch');
    refused(decodeJson({ ...good, user_id: '9223372036854775808' }), 'schema_mismatch');
    refused(
      decodeJson(
        '{"user_id": 9007199254740993, "event_timestamp": "2026-01-01T00:00:00Z", "amount": 1, "merchant_id": "m"}',
      ),
      'schema_mismatch',
      /beyond 2\^53/,
    );
  });

  it('keeps 9007199254740993 given as a string key exact', () => {
    const out = decodeJson({ ...good, user_id: '9007199254740993' });
    assert.ok(out.ok);
    assert.equal(out.key, '9007199254740993');
    assert.equal(out.record.user_id, '9007199254740993');
    const min = decodeJson({ ...good, user_id: '-9223372036854775808' });
    assert.ok(min.ok);
    assert.equal(min.key, '-9223372036854775808');
  });

  it('schema_mismatch: an int64 beyond 2^53 in a column that sum/avg/min/max read, kept exact elsewhere', () => {
    // Beyond 2^53 an int64 is a decimal string, which numeric aggregations cannot take.
    const defs = parseDefinitions(`
version: 1
project: q
entities: [{ name: order, join_key: order_id, type: int64 }]
sources:
  - { name: orders, topic: orders, format: json, key_field: order_id, timestamp_field: ts,
      schema: { order_id: int64, ts: timestamp, qty: int64, ref: int64 } }
views:
  - name: v
    entity: order
    source: orders
    features:
      - { name: total_qty, aggregation: sum, column: qty, window: 1h }
      - { name: last_ref, aggregation: last, column: ref, window: 1h }
`);
    assert.deepEqual(defs.sources[0]!.numericInt64Columns, ['qty']);
    const decoder = createDecoder(defs.sources[0]!, { definitionsDir: DEFINITIONS_DIR });
    const decode = (qty: unknown, ref: unknown) =>
      decoder.decode({
        key: null,
        value: Buffer.from(JSON.stringify({ order_id: 1, ts: '2026-01-01T00:00:00Z', qty, ref })),
      }) as DecodeResult;
    refused(decode('9007199254740993', 1), 'schema_mismatch', /field qty: 9007199254740993 is beyond 2\^53/);
    const kept = decode(9007199254740991, '9007199254740993');
    assert.ok(kept.ok, JSON.stringify(kept));
    assert.deepEqual([kept.record.qty, kept.record.ref], [9007199254740991, '9007199254740993']);
  });

  it('missing_key: user_id absent, null or an empty string key', () => {
    const { user_id: _, ...noKey } = good;
    refused(decodeJson(noKey), 'missing_key', /field user_id/);
    refused(decodeJson({ ...good, user_id: null }), 'missing_key', /field user_id/);
    const stringKeyed = createDecoder(
      transactions('json', { schema: { ...transactions().schema, user_id: 'string' } }),
      {
        definitionsDir: DEFINITIONS_DIR,
      },
    );
    refused(
      stringKeyed.decode({
        key: null,
        value: Buffer.from(JSON.stringify({ ...good, user_id: '' })),
      }) as DecodeResult,
      'missing_key',
    );
  });

  it('missing_timestamp: event_timestamp absent or null', () => {
    const { event_timestamp: _, ...noTime } = good;
    refused(decodeJson(noTime), 'missing_timestamp', /field event_timestamp/);
    refused(decodeJson({ ...good, event_timestamp: null }), 'missing_timestamp');
  });

  it('bad_timestamp: a zone-less ISO time is ambiguous and refused', () => {
    refused(
      decodeJson({ ...good, event_timestamp: '2026-01-01T12:30:00' }),
      'bad_timestamp',
      /field event_timestamp: expected an ISO-8601 time with a zone/,
    );
    refused(decodeJson({ ...good, event_timestamp: 'yesterday' }), 'bad_timestamp');
    refused(
      decodeJson({ ...good, event_timestamp: '2026-02-30T00:00:00Z' }),
      'bad_timestamp',
      /not a valid date-time/,
    );
    refused(decodeJson({ ...good, event_timestamp: 1767270600250 }), 'bad_timestamp', /ISO-8601 string/);
  });

  it('bad_timestamp: epoch numbers that are not finite or out of range', () => {
    const epoch = createDecoder(transactions('json', { timestampFormat: 'epoch_ms' }), {
      definitionsDir: DEFINITIONS_DIR,
    });
    const at = (t: unknown) =>
      epoch.decode({
        key: null,
        value: Buffer.from(JSON.stringify({ ...good, event_timestamp: t })),
      }) as DecodeResult;
    refused(at('Infinity'), 'bad_timestamp');
    refused(at('soon'), 'bad_timestamp');
    refused(at(1e300), 'bad_timestamp', /outside the representable time range/);
    // Within Date's range but past what the state's delta records hold (2^52 ms): the save failed.
    refused(at(5e15), 'bad_timestamp', /after 9999-12-31T23:59:59.999Z/);
    refused(at(253402300800000), 'bad_timestamp', /after 9999-12-31/);
    assert.ok(at(253402300799999).ok, 'the last millisecond of 9999 is a time');
    const ok = at('1767270600250');
    assert.ok(at(0).ok, '1970-01-01T00:00:00Z itself is a time');
    assert.ok(ok.ok);
    assert.equal(ok.ts, 1767270600250);
  });

  it('bad_timestamp: an event time before 1970 (the stored state counts time from 1970)', () => {
    // Stored, such a time was written as a corrupt state: two events at 1969-12-31T23:00Z decoded
    // as a count of 0.
    refused(
      decodeJson({ ...good, event_timestamp: '1969-12-31T23:00:00Z' }),
      'bad_timestamp',
      /field event_timestamp: 1969-12-31T23:00:00.000Z is before 1970-01-01/,
    );
  });

  it('missing_field: a column of the source schema is absent', () => {
    const { merchant_id: _, ...noMerchant } = good;
    refused(decodeJson(noMerchant), 'missing_field', /^field merchant_id: missing/);
    refused(decodeJson({ ...good, amount: null }), 'missing_field', /field amount/);
  });

  it('the tests above cover every failure reason', () => {
    // Keeps this file honest when a reason is added to the list.
    assert.deepEqual([...DECODE_FAILURES].sort(), [
      'bad_timestamp',
      'missing_field',
      'missing_key',
      'missing_timestamp',
      'non_numeric',
      'schema_mismatch',
      'undecodable',
    ]);
  });
});

describe('ISO-8601 parsing', () => {
  it('honours explicit offsets and fractional seconds', () => {
    assert.deepEqual(parseIsoTimestamp('2026-01-01T13:30:00.250+01:00'), {
      ok: true,
      ms: Date.UTC(2026, 0, 1, 12, 30, 0, 250),
    });
    assert.deepEqual(parseIsoTimestamp('2026-01-01 12:30:00.250123Z'), {
      ok: true,
      ms: Date.UTC(2026, 0, 1, 12, 30, 0, 250),
    });
    assert.deepEqual(parseIsoTimestamp('0050-06-01T00:00:00-0530'), {
      ok: true,
      ms: Date.parse('0050-06-01T05:30:00Z'),
    });
  });
});

describe('columns named as Object.prototype members', () => {
  it('refuses an event without its constructor column as missing_field, not as a function of the wrong type', () => {
    // Found by an audit: raw.constructor is inherited, so the message read "got a function".
    const source = transactions('json');
    const validate = createValidator({
      ...source,
      schema: { ...source.schema, constructor: 'string' as const },
    });
    const result = validate({ ...good }, null);
    assert.ok(!result.ok);
    assert.equal(result.reason, 'missing_field');
    assert.equal(result.field, 'constructor');
    assert.ok(validate({ ...good, constructor: 'c' }, null).ok);
  });
});
