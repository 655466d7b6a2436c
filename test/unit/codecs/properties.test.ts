// Property: every record the producer can send decodes back to itself, in all three formats.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createDecoder, createEncoder } from '../../../shared/codecs/index.ts';
import { generateFraudEvents } from '../../../shared/synth/fraud-events.ts';
import { DEFINITIONS_DIR, SCHEMA_DIR, transactions } from './support.ts';

const FORMATS = ['json', 'avro', 'avro-confluent'] as const;
const codecs = FORMATS.map((format) => {
  const source = transactions(format);
  return {
    format,
    encoder: createEncoder(source, { definitionsDir: DEFINITIONS_DIR, schemaId: 7 }),
    decoder: createDecoder(source, { definitionsDir: DEFINITIONS_DIR, schemaDir: SCHEMA_DIR }),
  };
});

const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const record = fc
  .record({
    // Exact numbers while safe, decimal strings beyond: the decoded shape of an int64.
    user_id: fc.oneof(
      fc.integer({ min: 0, max: 10_000_000 }),
      fc.bigInt(INT64).map((n) => (Number.isSafeInteger(Number(n)) ? Number(n) : n.toString())),
    ),
    // 1970..9999: event times before 1970 are refused (failures.test.ts); the timestamp parser
    // itself is checked over years 0001..9999 in timestamp.test.ts.
    event_timestamp: fc.integer({ min: 0, max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) }),
    // Doubles within ±1e100 (larger ones are refused: failures.test.ts); -0 is read as 0.
    amount: fc.double({ noNaN: true, min: -1e100, max: 1e100 }).map((x) => (x === 0 ? 0 : x)),
    merchant_id: fc.string({ unit: 'grapheme', maxLength: 40 }),
  })
  .map((r) => ({ ...r })); // fast-check builds null-prototype objects; decoded records are plain

describe('codec properties', () => {
  for (const { format, encoder, decoder } of codecs) {
    it(`${format}: any record encodes and decodes back to the same record`, async () => {
      await fc.assert(
        fc.asyncProperty(record, async (r) => {
          const out = await decoder.decode({ key: null, value: encoder.encode(r) });
          assert.deepEqual(out, {
            ok: true,
            key: String(r.user_id),
            ts: r.event_timestamp,
            record: r,
            messageKey: null,
          });
        }),
        { numRuns: 500 },
      );
    });

    it(`${format}: any generated FraudEvent stream round-trips`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 }), async (seed) => {
          for (const e of generateFraudEvents({ events: 200, seed })) {
            const r = {
              user_id: e.user_id,
              event_timestamp: e.event_timestamp,
              amount: e.amount,
              merchant_id: e.merchant_id,
            };
            const out = await decoder.decode({
              key: Buffer.from(String(e.user_id)),
              value: encoder.encode(r),
            });
            assert.deepEqual(out, {
              ok: true,
              key: String(e.user_id),
              ts: e.event_timestamp,
              record: r,
              messageKey: String(e.user_id),
            });
          }
        }),
        { numRuns: 20 },
      );
    });
  }
});
