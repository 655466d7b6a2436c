// Pusher over a stand-in producer (a pure unit; /push through real Kafka is in server.test.ts and
// server-push-limits.test.ts): a large push goes out in requests under the broker's batch limit and
// the topic's own, a row over the topic's limit refuses the push before anything is sent, and a
// refusal a retry cannot change is not answered as a retriable 503.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Message, Producer } from 'kafkajs';
import { Pusher, type PusherOptions } from '../../../services/server/push.ts';
import { loadConfig } from '../../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../../shared/definitions/load.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { MAX_SEND_BYTES, messageBytes } from '../../../shared/send-chunked.ts';

const definitions = loadDefinitionsFile('definitions/fraud.yaml');
// The event clock, as for a replay: these pushes are of January's rows. The record and wall
// clocks' checks are in their own describe below.
const config = loadConfig({ argv: [], env: { TESSERA_INGEST_CLOCK: 'event' } });

function producer(fail?: Error | (() => Error | undefined)): Producer & { sends: Message[][] } {
  const sends: Message[][] = [];
  return {
    sends,
    events: { DISCONNECT: 'producer.disconnect' },
    on() {},
    async connect() {},
    async send({ messages }: { messages: Message[] }) {
      const error = typeof fail === 'function' ? fail() : fail;
      if (error) throw error;
      sends.push(messages);
      return [];
    },
  } as unknown as Producer & { sends: Message[][] };
}

/** `rows` rows of one user (one key, so one partition): ~90 bytes each, or more with `merchant`. */
function body(rows: number, merchant = (i: number) => `m_${i % 100}`) {
  return {
    push_source_name: 'transactions',
    df: {
      user_id: Array.from({ length: rows }, () => 1001),
      event_timestamp: Array.from({ length: rows }, (_, i) =>
        new Date(Date.UTC(2026, 0, 1) + i).toISOString(),
      ),
      amount: Array.from({ length: rows }, () => 12.5),
      merchant_id: Array.from({ length: rows }, (_, i) => merchant(i)),
    },
  };
}

/** A broker's refusal as kafkajs throws it (brokerErrorType reads its type). */
function protocolError(type: string): Error {
  return Object.assign(new Error(type), { name: 'KafkaJSProtocolError', type, retriable: false });
}

/** A topic-limit lookup that answers `answer` and counts its calls. */
function lookup(answer: () => Promise<number | undefined>): PusherOptions & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    topicLimit: (topic) => {
      calls.push(topic);
      return answer();
    },
  };
}

const bytesOf = (sent: Message[]) => sent.reduce((n, m) => n + messageBytes(m), 0);

describe('Pusher', () => {
  it('sends a large push in requests under the batch limit, in order', async () => {
    const p = producer();
    const result = await new Pusher(p, config, definitions, 'definitions').push(body(20_000));
    assert.equal(result.rows, 20_000);
    // Once one send of ~2 MB to one partition: over message.max.bytes, refused for good.
    assert.ok(p.sends.length >= 3, `${p.sends.length} requests`);
    for (const sent of p.sends) assert.ok(bytesOf(sent) <= MAX_SEND_BYTES);
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

  it("sends in requests under the source topic's own lower limit, read once a minute", async () => {
    const p = producer();
    const limits = lookup(async () => 16_384);
    const pusher = new Pusher(p, config, definitions, 'definitions', limits);
    assert.equal((await pusher.push(body(2_000))).rows, 2_000);
    assert.equal((await pusher.push(body(10))).rows, 10);
    assert.deepEqual(limits.calls, ['transactions'], 'the limit is read once, then reused');
    // 2,000 rows of ~120 bytes: ~240 KB, one 512 KiB request before; now each under 15 KiB.
    assert.ok(p.sends.length >= 16, `${p.sends.length} requests`);
    for (const sent of p.sends)
      assert.ok(bytesOf(sent) <= 16_384 - 1024, `a request of ${bytesOf(sent)} bytes`);
    assert.equal(p.sends.flat().length, 2_010);
  });

  it("refuses a push with a row over the topic's limit before anything is sent", async () => {
    const p = producer();
    const pusher = new Pusher(
      p,
      config,
      definitions,
      'definitions',
      lookup(async () => 16_384),
    );
    const long = (i: number) => (i === 7 ? 'x'.repeat(20_000) : `m_${i}`);
    await assert.rejects(
      pusher.push(body(10, long)),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') &&
        e.context?.field === 'df' &&
        /df row 7: its record is \d+ bytes, over what transactions takes \(max.message.bytes 16384/.test(
          e.message,
        ),
    );
    assert.equal(p.sends.length, 0, 'no row of a refused push is sent');
  });

  it('calls an empty first column beside full ones a length mismatch, and an empty df no rows', async () => {
    const pusher = new Pusher(producer(), config, definitions, 'definitions');
    const { df } = body(1);
    await assert.rejects(
      pusher.push({ push_source_name: 'transactions', df: { ...df, user_id: [] } }),
      (e) =>
        isTesseraError(e, 'INVALID_ARGUMENT') &&
        e.context?.field === 'df.event_timestamp' &&
        e.message === 'df.event_timestamp: has 1 values, the first column has 0',
    );
    await assert.rejects(
      pusher.push({ push_source_name: 'transactions', df: { user_id: [], amount: [] } }),
      (e) => isTesseraError(e, 'INVALID_ARGUMENT') && /df: give at least one row/.test(e.message),
    );
  });

  it('assumes the broker default when not allowed to read the limit, and says so', async () => {
    const p = producer();
    const warnings: string[] = [];
    const limits = lookup(async () => {
      throw protocolError('TOPIC_AUTHORIZATION_FAILED');
    });
    const pusher = new Pusher(p, config, definitions, 'definitions', {
      ...limits,
      warn: (message) => warnings.push(message),
    });
    assert.equal((await pusher.push(body(20_000))).rows, 20_000);
    assert.equal((await pusher.push(body(1))).rows, 1);
    assert.equal(limits.calls.length, 1, 'the fallback is kept for a minute too');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /TOPIC_AUTHORIZATION_FAILED.*DescribeConfigs.*512 KiB/);
    assert.ok(p.sends.length >= 3 && p.sends.every((sent) => bytesOf(sent) <= MAX_SEND_BYTES));
  });

  it('answers 503 with nothing sent when the limit cannot be read, and asks again next time', async () => {
    for (const [error, message] of [
      [protocolError('UNKNOWN_TOPIC_OR_PARTITION'), /no topic transactions: create the source topic/],
      [
        Object.assign(new Error('Connection error'), { retriable: true }),
        /did not answer.*nothing was written/,
      ],
    ] as const) {
      const p = producer();
      let fail = true;
      const limits = lookup(async () => {
        if (fail) throw error;
        return undefined;
      });
      const pusher = new Pusher(p, config, definitions, 'definitions', limits);
      await assert.rejects(
        pusher.push(body(3)),
        (e) => isTesseraError(e, 'SERVICE_UNAVAILABLE') && e.retriable && message.test(e.message),
      );
      assert.equal(p.sends.length, 0);
      fail = false;
      assert.equal((await pusher.push(body(3))).rows, 3);
      assert.equal(limits.calls.length, 2, 'a failed read is not kept');
    }
  });

  it('reads the limit again after the broker refused a request as too large (a lowered limit)', async () => {
    let refuse = true;
    const p = producer(() => (refuse ? protocolError('MESSAGE_TOO_LARGE') : undefined));
    const limits = lookup(async () => 65_536);
    const pusher = new Pusher(p, config, definitions, 'definitions', limits);
    await assert.rejects(pusher.push(body(1)), (e) => isTesseraError(e, 'INVALID_ARGUMENT'));
    refuse = false;
    await pusher.push(body(1));
    assert.equal(limits.calls.length, 2);
  });
});

for (const clock of ['record', 'wall'] as const)
  describe(`Pusher on the ingestors' ${clock} clock`, () => {
    const clockConfig = loadConfig({ argv: [], env: { TESSERA_INGEST_CLOCK: clock } });
    // definitions/fraud.yaml: the transactions source feeds one view, allowed_lateness 1h.
    const now = Date.UTC(2026, 0, 1, 12);
    const at = (...offsetsMs: number[]) => ({
      push_source_name: 'transactions',
      df: {
        user_id: offsetsMs.map(() => 1001),
        event_timestamp: offsetsMs.map((d) => new Date(now + d).toISOString()),
        amount: offsetsMs.map(() => 12.5),
        merchant_id: offsetsMs.map(() => 'm_1'),
      },
    });
    const push = (p: Producer, body: unknown) =>
      new Pusher(p, clockConfig, definitions, 'definitions', { now: () => now }).push(body);

    it('refuses a whole push with a row older than the allowed lateness, naming row, view and lateness', async () => {
      const p = producer();
      await assert.rejects(push(p, at(0, -1000, -3_600_001)), (error) => {
        assert.ok(isTesseraError(error) && error.code === 'INVALID_ARGUMENT');
        assert.equal(error.context.field, 'df.event_timestamp');
        assert.match(
          error.message,
          new RegExp(
            `^df row 2: event time 2026-01-01T10:59:59\\.999Z is older than view user_transaction_features's allowed_lateness \\(1h\\) .*TESSERA_INGEST_CLOCK=${clock}.*nothing was written$`,
          ),
        );
        return true;
      });
      assert.equal(p.sends.length, 0);
    });

    it('refuses a row more than 5 minutes ahead of the clock, and takes one at the edges', async () => {
      const ahead = producer();
      await assert.rejects(
        push(ahead, at(5 * 60_000 + 1)),
        /df row 0: event time .* is more than 5 minutes ahead of the server's clock/,
      );
      assert.equal(ahead.sends.length, 0);
      // Exactly the lateness old, and exactly 5 minutes ahead: the ingestor applies both.
      const edges = producer();
      assert.equal((await push(edges, at(-3_600_000, 5 * 60_000))).rows, 2);
      assert.equal(edges.sends.flat().length, 2);
      // On the record clock the ingestors judge the rows by their records' timestamps: stamped with
      // the time they were judged by here. On the wall clock kafkajs stamps them.
      assert.deepEqual(
        edges.sends.flat().map((m) => m.timestamp),
        clock === 'record' ? [String(now), String(now)] : [undefined, undefined],
      );
    });

    it('judges nothing by time on the event clock', async () => {
      const p = producer();
      const pusher = new Pusher(p, config, definitions, 'definitions', { now: () => now });
      assert.equal((await pusher.push(at(-30 * 86_400_000, 60 * 60_000))).rows, 2);
    });
  });
