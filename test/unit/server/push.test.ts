// Pusher over a stand-in producer (a pure unit; /push through real Kafka is in server.test.ts): a
// large push goes out in requests under the broker's batch limit, and a refusal a retry cannot
// change is not answered as a retriable 503.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Message, Producer } from 'kafkajs';
import { Pusher } from '../../../services/server/push.ts';
import { loadConfig } from '../../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { MAX_SEND_BYTES, messageBytes } from '../../../shared/send-chunked.ts';

const definitions = loadDefinitionsFile('definitions/fraud.yaml');
const config = loadConfig({ argv: [], env: {} });

function producer(fail?: Error): Producer & { sends: Message[][] } {
  const sends: Message[][] = [];
  return {
    sends,
    events: { DISCONNECT: 'producer.disconnect' },
    on() {},
    async connect() {},
    async send({ messages }: { messages: Message[] }) {
      if (fail) throw fail;
      sends.push(messages);
      return [];
    },
  } as unknown as Producer & { sends: Message[][] };
}

/** `rows` rows of one user (one key, so one partition): ~90 bytes each. */
function body(rows: number) {
  return {
    push_source_name: 'transactions',
    df: {
      user_id: Array.from({ length: rows }, () => 1001),
      event_timestamp: Array.from({ length: rows }, (_, i) =>
        new Date(Date.UTC(2026, 0, 1) + i).toISOString(),
      ),
      amount: Array.from({ length: rows }, () => 12.5),
      merchant_id: Array.from({ length: rows }, (_, i) => `m_${i % 100}`),
    },
  };
}

describe('Pusher', () => {
  it('sends a large push in requests under the batch limit, in order', async () => {
    const p = producer();
    const result = await new Pusher(p, config, definitions, 'definitions').push(body(20_000));
    assert.equal(result.rows, 20_000);
    // Once one send of ~2 MB to one partition: over message.max.bytes, refused for good.
    assert.ok(p.sends.length >= 3, `${p.sends.length} requests`);
    for (const sent of p.sends) assert.ok(sent.reduce((n, m) => n + messageBytes(m), 0) <= MAX_SEND_BYTES);
    const sentTimes = p.sends
      .flat()
      .map((m) => (JSON.parse(String(m.value)) as { event_timestamp: string }).event_timestamp);
    assert.deepEqual(sentTimes, body(20_000).df.event_timestamp);
  });

  it('answers a refusal a retry cannot change with a non-retriable error, others with a 503', async () => {
    const tooLarge = Object.assign(
      new Error('The request included a message larger than the max message size the server will accept'),
      {
        retriable: false,
        type: 'MESSAGE_TOO_LARGE',
      },
    );
    await assert.rejects(
      new Pusher(producer(tooLarge), config, definitions, 'definitions').push(body(1)),
      (e) => isTesseraError(e, 'INVALID_ARGUMENT') && !e.retriable && /MESSAGE_TOO_LARGE/.test(e.message),
    );
    // As kafkajs throws them: a refusal wrapped in a non-retriable error; retries exhausted on a
    // connection error (also "not retriable", but Kafka is down: a 503).
    const wrapped = Object.assign(new Error('wrapped'), { retriable: false, cause: tooLarge });
    await assert.rejects(
      new Pusher(producer(wrapped), config, definitions, 'definitions').push(body(1)),
      (e) => isTesseraError(e, 'INVALID_ARGUMENT') && /MESSAGE_TOO_LARGE/.test(e.message),
    );
    for (const down of [
      Object.assign(new Error('Connection error'), { retriable: true }),
      Object.assign(new Error('Connection error'), {
        name: 'KafkaJSNumberOfRetriesExceeded',
        retriable: false,
        cause: Object.assign(new Error('Connection error'), { retriable: true }),
      }),
    ])
      await assert.rejects(
        new Pusher(producer(down), config, definitions, 'definitions').push(body(1)),
        (e) => isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable,
      );
  });
});
