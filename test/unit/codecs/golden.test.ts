// The exact bytes of one known record in each format. A change to any encoder (field order, time
// format, framing) fails here; regenerate deliberately with UPDATE_GOLDEN=1 and review the diff.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createDecoder, createEncoder } from '../../../shared/codecs/index.ts';
import type { SourceDef } from '../../../shared/definitions/schema.ts';
import { DEFINITIONS_DIR, FIXTURES, KNOWN_RECORD, SCHEMA_DIR, transactions } from './support.ts';

const cases: { file: string; format: SourceDef['format'] }[] = [
  { file: 'transaction.json', format: 'json' },
  { file: 'transaction.avro', format: 'avro' },
  { file: 'transaction.confluent-7.bin', format: 'avro-confluent' },
];

describe('codec golden files', () => {
  for (const { file, format } of cases) {
    it(`${format}: encodes the known record to exactly ${file} and decodes it back`, async () => {
      const source = transactions(format);
      const bytes = createEncoder(source, { definitionsDir: DEFINITIONS_DIR, schemaId: 7 }).encode(
        KNOWN_RECORD,
      );
      const path = `${FIXTURES}/${file}`;
      if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, bytes);
      const golden = readFileSync(path);
      assert.equal(bytes.toString('hex'), golden.toString('hex'));
      const decoder = createDecoder(source, { definitionsDir: DEFINITIONS_DIR, schemaDir: SCHEMA_DIR });
      const out = await decoder.decode({ key: null, value: golden });
      assert.deepEqual(out, {
        ok: true,
        key: '1042',
        ts: KNOWN_RECORD.event_timestamp,
        record: KNOWN_RECORD,
        messageKey: null,
      });
    });
  }

  it('the golden JSON is readable text with an ISO-8601 UTC time', () => {
    assert.equal(
      readFileSync(`${FIXTURES}/transaction.json`, 'utf8'),
      '{"user_id":1042,"event_timestamp":"2026-01-01T12:30:00.250Z","amount":12.34,"merchant_id":"m_7"}',
    );
  });

  it('the golden Confluent frame is magic 0, id 7, then the raw Avro body', () => {
    const frame = readFileSync(`${FIXTURES}/transaction.confluent-7.bin`);
    assert.deepEqual([...frame.subarray(0, 5)], [0, 0, 0, 0, 7]);
    assert.deepEqual(frame.subarray(5), readFileSync(`${FIXTURES}/transaction.avro`));
  });
});
