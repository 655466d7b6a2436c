// Produce requests stay under the broker's limit: the size estimate counts headers (a dead
// letter's reason and message outweigh its value), and chunks keep every message, in order.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message } from 'kafkajs';
import { chunkMessages, MAX_SEND_BYTES, messageBytes } from '../../shared/send-chunked.ts';

/** A dead letter as the ingestor builds one: small value, large headers. */
function deadLetter(i: number): Message {
  return {
    key: `user-${i}`,
    value: `{"user_id":${i},"event_timestamp":"2026-01-01T00:00:00Z","amount":1}`,
    headers: {
      'tessera-reason': 'late',
      'tessera-message': 'x'.repeat(1000),
      'tessera-source-topic': 'transactions',
      'tessera-source-partition': '3',
      'tessera-source-offset': String(1_000_000 + i),
      traceparent: [Buffer.from('00-abc-def-01'), 'second'],
    },
  };
}

/** The bytes a record carries, without framing: what the estimate must never fall below. */
function payloadBytes(m: Message): number {
  let bytes = Buffer.byteLength(String(m.key ?? '')) + Buffer.byteLength(String(m.value ?? ''));
  for (const [name, value] of Object.entries(m.headers ?? {}))
    for (const v of Array.isArray(value) ? value : [value])
      bytes += Buffer.byteLength(name) + (typeof v === 'string' ? Buffer.byteLength(v) : (v?.length ?? 0));
  return bytes;
}

test('the estimate counts every header name and value (a dead letter is mostly headers)', () => {
  const m = deadLetter(7);
  assert.ok(messageBytes(m) >= payloadBytes(m));
  assert.ok(payloadBytes(m) > 1000, 'the fixture carries its 1,000-character message');
  assert.equal(messageBytes({ key: null, value: null }), 64);
});

test('a burst of dead letters is cut into requests whose bytes stay under the limit', () => {
  const messages = Array.from({ length: 5000 }, (_, i) => deadLetter(i));
  const chunks = chunkMessages(messages);
  assert.ok(chunks.length > 1);
  for (const chunk of chunks) {
    const payload = chunk.reduce((sum, m) => sum + payloadBytes(m), 0);
    assert.ok(payload <= MAX_SEND_BYTES, `a request carries ${payload} bytes`);
  }
  assert.deepEqual(chunks.flat(), messages, 'every message once, in order');
});

test('a message larger than the limit goes alone, and nothing is dropped', () => {
  const big: Message = { key: 'k', value: 'v'.repeat(MAX_SEND_BYTES + 10) };
  const chunks = chunkMessages([deadLetter(1), big, deadLetter(2)]);
  assert.deepEqual(
    chunks.map((c) => c.length),
    [1, 1, 1],
  );
  assert.equal(chunkMessages([]).length, 0);
});
