// A dead letter's headers must be something kafkajs can send, whatever the source record carried:
// its own record encoder (the one the produce path falls back to) is the judge.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import type { IHeaders } from 'kafkajs';
import { dlqHeaders } from '../../../services/ingestor/ingestor.ts';

const require = createRequire(import.meta.url);
const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (args: {
  offsetDelta: number;
  timestampDelta: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
}) => { buffer: Buffer };
const Decoder = require('kafkajs/src/protocol/decoder') as new (
  buffer: Buffer,
) => { readVarIntBuffer(): Buffer; readVarInt(): number };
const decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder') as (
  decoder: unknown,
  batch: { firstOffset: string; firstTimestamp: string },
) => { headers: Record<string, Buffer | Buffer[]> };

const info = { reason: 'undecodable', detail: 'not JSON', topic: 't', partition: 2, offset: '41' };

test('a header without a value (null, as kafkajs reads it) is sent empty and named, not thrown on', () => {
  // kafkajs decodes a header whose value length is -1 as null.
  const original = {
    trace: Buffer.from('abc'),
    nothing: null,
    repeated: [Buffer.from('x'), null],
  } as unknown as IHeaders;
  const headers = dlqHeaders(original, info);
  const encode = (h: IHeaders) =>
    Record({ offsetDelta: 0, timestampDelta: 0, key: null, value: Buffer.from('v'), headers: h });
  assert.throws(() => encode(original), 'kafkajs itself cannot encode a null header value');
  const bytes = encode(headers).buffer;
  const decoder = new Decoder(bytes);
  decoder.readVarInt(); // the record's length
  const decoded = decodeRecord(decoder, { firstOffset: '0', firstTimestamp: '0' });
  assert.equal(decoded.headers.trace?.toString(), 'abc');
  assert.equal(decoded.headers.nothing?.toString(), '');
  assert.deepEqual(
    (decoded.headers.repeated as Buffer[]).map((b) => b.toString()),
    ['x', ''],
  );
  assert.equal(decoded.headers['tessera-null-headers']?.toString(), 'nothing,repeated');
  assert.equal(decoded.headers['tessera-reason']?.toString(), 'undecodable');
  assert.equal(decoded.headers['tessera-source-offset']?.toString(), '41');
});

test('headers with values are kept as they are, and no null list is added', () => {
  const headers = dlqHeaders({ a: 'b', 'tessera-reason': 'spoofed' }, info);
  assert.equal(headers.a, 'b');
  assert.equal(headers['tessera-reason'], 'undecodable');
  assert.equal(headers['tessera-null-headers'], undefined);
});

test('a header named toString or constructor, which kafkajs reads with an inherited function, is sent as the record had it', () => {
  // Found by an audit: the dead letter of such a record failed every send, stalling its partition.
  const encode = (h: IHeaders) =>
    Record({ offsetDelta: 0, timestampDelta: 0, key: null, value: Buffer.from('v'), headers: h });
  const decode = (bytes: Buffer) => {
    const decoder = new Decoder(bytes);
    decoder.readVarInt(); // the record's length
    return decodeRecord(decoder, { firstOffset: '0', firstTimestamp: '0' }).headers;
  };
  const fetched = decode(encode({ toString: 'a', constructor: ['b', 'c'] }).buffer);
  assert.equal(typeof (fetched.toString as unknown as unknown[])[0], 'function', 'the kafkajs quirk itself');
  const headers = dlqHeaders(fetched as unknown as IHeaders, info);
  const resent = decode(encode(headers).buffer);
  assert.deepEqual(
    (resent.toString as unknown as unknown[]).filter((v) => typeof v !== 'function').map(String),
    ['a'],
  );
  assert.deepEqual(
    (resent.constructor as unknown as unknown[]).filter((v) => typeof v !== 'function').map(String),
    ['b', 'c'],
  );
  assert.equal(String(resent['tessera-reason']), 'undecodable');
});
