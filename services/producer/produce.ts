// The producer's core, callable from the CLI, tests and benchmarks: synthetic fraud events ->
// encoded Kafka messages keyed by user_id -> the topic, at a chosen rate, with optional bad
// messages mixed in.
import { type Admin, Kafka, logLevel, type Message, type Producer } from 'kafkajs';
import { pino } from 'pino';
import { createEncoder, type Encoder } from '../../shared/codecs/index.ts';
import { kafkaOptions } from '../../shared/config/clients.ts';
import type { Config } from '../../shared/config/index.ts';
import { refusedLoginHint, tlsFailureHint } from '../../shared/config/kafka-security.ts';
import type { SourceDef } from '../../shared/definitions/schema.ts';
import { TesseraError } from '../../shared/errors.ts';
import { keyHashPartitioner } from '../../shared/kafka-partitioner.ts';
import { createServedTopics } from '../../shared/kafka-topics.ts';
import { type FraudEvent, streamFraudEvents } from '../../shared/synth/fraud-events.ts';
import { seededRng } from '../../shared/synth/random.ts';
import {
  type BadKind,
  badKindsFor,
  badMessage,
  type EventRecord,
  EXPECTED_REASON,
  type ExpectedReason,
  type OutgoingMessage,
} from './bad-messages.ts';
import { createTokenBucket } from './token-bucket.ts';

const FRAUD_COLUMNS = ['user_id', 'event_timestamp', 'amount', 'merchant_id'];
const DAY = 86_400_000;
/** Events built at a time from the generator's columns. */
const EVENT_CHUNK = 10_000;

export interface MessagePlanOptions {
  /** The source to write, with the format to use (the CLI's --format overrides the file's). */
  source: SourceDef;
  /** Directory of the definitions file (avro_schema paths are relative to it). */
  definitionsDir: string;
  /** avro-confluent: schema id written in each frame. Default 1. */
  schemaId?: number;
  /** avro-confluent: directory of <id>.avsc files; the id's file is used when present. */
  schemaDir?: string;
  events: number;
  seed: number;
  /** Fraction of extra bad messages mixed in (0..1). Default 0. */
  badFraction?: number;
  /** Shift every event time so the stream ends at the wall clock. Default false. */
  nowBased?: boolean;
  /** How much older than its neighbours a `late` bad message is, ms. Default 7 days. */
  lateByMs?: number;
  /** Wall clock for nowBased (tests). */
  now?: () => number;
}

export interface MessagePlan {
  /** The good events, timestamps already shifted when nowBased: built as iterated, never all held. */
  events: Iterable<FraudEvent>;
  /** How many good events. */
  count: number;
  shiftMs: number;
  /** Messages in send order: good ones and bad ones interleaved. */
  messages(): Generator<OutgoingMessage & { bad?: ExpectedReason }>;
}

/** Generates the events and the (lazy) message sequence; no I/O. */
export function planMessages(options: MessagePlanOptions): MessagePlan {
  const { source } = options;
  const missing = FRAUD_COLUMNS.filter((c) => source.schema[c] === undefined);
  const extra = Object.keys(source.schema).filter((c) => !FRAUD_COLUMNS.includes(c));
  if (
    missing.length > 0 ||
    extra.length > 0 ||
    source.keyField !== 'user_id' ||
    source.timestampField !== 'event_timestamp'
  ) {
    throw new TesseraError(
      'CONFIG_INVALID',
      `source ${source.name} does not have the fraud generator's columns (${FRAUD_COLUMNS.join(', ')}, keyed by user_id); pick another --source`,
      { context: { source: source.name, missing, extra } },
    );
  }
  const badFraction = options.badFraction ?? 0;
  if (!(badFraction >= 0 && badFraction <= 1)) {
    throw new TesseraError('CONFIG_INVALID', `--bad-fraction must be between 0 and 1, got ${badFraction}`);
  }
  const encoder: Encoder = createEncoder(source, {
    definitionsDir: options.definitionsDir,
    schemaId: options.schemaId ?? 1,
    ...(options.schemaDir === undefined ? {} : { schemaDir: options.schemaDir }),
  });
  // Streamed: the events are built a chunk at a time as messages are sent. Built all at once they
  // took ~400 bytes each (785 MB of RSS for 2M events) before the first message went out.
  const generated = streamFraudEvents({ events: options.events, seed: options.seed });
  const shiftMs =
    options.nowBased && generated.count > 0 ? (options.now ?? Date.now)() - generated.lastTimestamp : 0;
  const events: Iterable<FraudEvent> = {
    *[Symbol.iterator]() {
      for (const chunk of generated.chunks(EVENT_CHUNK))
        for (const e of chunk)
          yield shiftMs === 0 ? e : { ...e, event_timestamp: e.event_timestamp + shiftMs };
    },
  };
  const kinds = badKindsFor(source.format);
  const lateByMs = options.lateByMs ?? 7 * DAY;

  function* messages(): Generator<OutgoingMessage & { bad?: ExpectedReason }> {
    // Its own stream of randomness so the good events do not depend on --bad-fraction.
    const rng = seededRng((options.seed ^ 0x5bd1e995) >>> 0);
    let badCount = 0;
    for (const e of events) {
      const record: EventRecord = {
        user_id: e.user_id,
        event_timestamp: e.event_timestamp,
        amount: e.amount,
        merchant_id: e.merchant_id,
      };
      const good = { key: Buffer.from(String(e.user_id)), value: encoder.encode(record) };
      if (badFraction > 0 && rng.next() < badFraction) {
        const kind = kinds[badCount % kinds.length] as BadKind;
        badCount++;
        const bad = { ...badMessage(kind, record, encoder, lateByMs), bad: EXPECTED_REASON[kind] };
        // A late copy goes after its own event: sent first, to a user with no earlier event, the
        // event clock had nothing to be late against, and it was applied as an extra transaction.
        if (kind === 'late') {
          yield good;
          yield bad;
          continue;
        }
        yield bad;
      }
      yield good;
    }
  }
  return { events, count: generated.count, shiftMs, messages };
}

export interface ProduceOptions extends MessagePlanOptions {
  config: Config;
  /** Full topic name (prefix already applied). */
  topic: string;
  /** Messages per second; 0 = as fast as possible. */
  rate: number;
  /** Messages per send request. Default 500 (fewer at low rates so sends stay smooth). */
  batchSize?: number;
  /** Create the topic first (no error if it exists). */
  createTopic?: boolean;
  /** Partitions of a created topic. Default 6. */
  partitions?: number;
  /** Told what the run does not do as asked but goes on with (an existing topic's partitions). */
  warn?: (message: string) => void;
  /** Stops after the batch in flight; what was sent is flushed. */
  signal?: AbortSignal;
  /** Called about every progressIntervalMs and once at the end. */
  onProgress?: (progress: ProduceProgress) => void;
  progressIntervalMs?: number;
  clientId?: string;
}

export interface ProduceProgress {
  sent: number;
  total: number;
  /** Messages per second over the last interval. */
  ratePerSec: number;
  elapsedMs: number;
}

export interface ProduceSummary {
  topic: string;
  format: SourceDef['format'];
  /** Messages acknowledged by Kafka (good + bad). */
  sent: number;
  good: number;
  bad: Partial<Record<ExpectedReason, number>>;
  elapsedMs: number;
  ratePerSec: number;
  shiftMs: number;
  /** True when stopped by the signal before the end. */
  aborted: boolean;
}

/**
 * Connects, saying what to check when the brokers cannot be reached: kafkajs' own last words were
 * only `Connection error: connect ECONNREFUSED 127.0.0.1:9`.
 */
async function reach(config: Config, connect: () => Promise<void>): Promise<void> {
  try {
    await connect();
  } catch (cause) {
    // A refused login is no unreachable broker: pointing at the brokers' address misled.
    if ((cause as Error).name === 'KafkaJSSASLAuthenticationError')
      throw new TesseraError(
        'CONFIG_INVALID',
        `Kafka at ${config.kafkaBrokers.join(',')} refused the login (${(cause as Error).message}); ` +
          refusedLoginHint((cause as Error).message).replace(/^.*?: check/, 'check'),
        { cause, context: { brokers: config.kafkaBrokers } },
      );
    // An untrusted certificate fails every retry alike; the brokers' address is not what to check.
    const tls = tlsFailureHint((cause as Error).message);
    throw new TesseraError(
      'SERVICE_UNAVAILABLE',
      `cannot reach Kafka at ${config.kafkaBrokers.join(',')} (${(cause as Error).message}); ` +
        (tls ?? 'check --kafka-brokers (TESSERA_KAFKA_BROKERS) and that the brokers are up'),
      { retriable: true, cause, context: { brokers: config.kafkaBrokers } },
    );
  }
}

export async function produceEvents(options: ProduceOptions): Promise<ProduceSummary> {
  const plan = planMessages(options);
  // Only kafkajs' errors, as JSON lines on stderr (stdout carries the CLI's summary); the broker
  // answers it retries by itself, e.g. a coordinator still loading right after a broker start, are
  // not errors (kafkaLogCreator).
  const logger = pino({ level: 'error', base: { service: 'producer' } }, process.stderr);
  const kafka = new Kafka({
    ...kafkaOptions(options.config, options.clientId ?? 'tessera-producer', logger),
    logLevel: logLevel.ERROR,
  });
  const admin: Admin = kafka.admin();
  await reach(options.config, () => admin.connect());
  try {
    // Only when missing: kafkajs logs a refused CreateTopics (the topic exists) as an ERROR.
    if (!(await admin.listTopics()).includes(options.topic)) {
      // Refused unless asked for: a broker that creates topics on first use made it with its own
      // default partition count (1 on the local stack) without a word, whatever --partitions said.
      if (!options.createTopic)
        throw new TesseraError(
          'NOT_FOUND',
          `topic ${options.topic} does not exist; pass --create-topic to create it ` +
            '(with --partitions partitions, default 6), or create it first',
          { context: { topic: options.topic } },
        );
      await createServedTopics(admin, [{ topic: options.topic, numPartitions: options.partitions ?? 6 }]);
    }
    if (options.createTopic) {
      // One that existed (or another process made first) keeps its partition count.
      const want = options.partitions ?? 6;
      const { topics } = await admin.fetchTopicMetadata({ topics: [options.topic] });
      const have = topics[0]?.partitions.length ?? 0;
      if (have !== want)
        options.warn?.(
          `topic ${options.topic} exists with ${have} partitions, not the ${want} of --partitions: --create-topic leaves an existing topic as it is`,
        );
    }
  } finally {
    await admin.disconnect();
  }
  // Idempotent: broker-side dedup of retried sends, so a retry never writes an event twice.
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    // murmur2 on the key, as the Java client and kafkajs' DefaultPartitioner (without its Long math).
    createPartitioner: keyHashPartitioner,
  });
  await reach(options.config, () => producer.connect());

  const badFraction = options.badFraction ?? 0;
  const total = Math.round(plan.count * (1 + badFraction));
  const batchSize = Math.max(
    1,
    Math.min(options.batchSize ?? 500, options.rate > 0 ? Math.ceil(options.rate / 20) : Infinity),
  );
  const bucket = createTokenBucket(options.rate, Math.max(batchSize, options.rate / 10));
  const started = performance.now();
  let sent = 0;
  let good = 0;
  const bad: Partial<Record<ExpectedReason, number>> = {};
  let lastTick = { at: started, sent: 0 };
  const progress = (): ProduceProgress => {
    const at = performance.now();
    const ratePerSec = at > lastTick.at ? ((sent - lastTick.sent) * 1000) / (at - lastTick.at) : 0;
    lastTick = { at, sent };
    return { sent, total: Math.max(total, sent), ratePerSec, elapsedMs: at - started };
  };
  const timer = options.onProgress
    ? setInterval(() => options.onProgress?.(progress()), options.progressIntervalMs ?? 1000)
    : undefined;
  timer?.unref();

  let aborted = false;
  try {
    let batch: Message[] = [];
    let batchGood = 0;
    let batchBad: ExpectedReason[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      await bucket.take(batch.length, options.signal);
      await producer.send({ topic: options.topic, acks: -1, messages: batch });
      sent += batch.length;
      good += batchGood;
      for (const r of batchBad) bad[r] = (bad[r] ?? 0) + 1;
      batch = [];
      batchGood = 0;
      batchBad = [];
    };
    for (const m of plan.messages()) {
      if (options.signal?.aborted) {
        aborted = true;
        break;
      }
      batch.push({ key: m.key, value: m.value, ...(m.headers ? { headers: m.headers } : {}) });
      if (m.bad === undefined) batchGood++;
      else batchBad.push(m.bad);
      if (batch.length >= batchSize) await flush();
    }
    // Even when aborted, what is already built is sent: Ctrl-C loses at most nothing but time.
    await flush();
  } finally {
    if (timer) clearInterval(timer);
    await producer.disconnect();
  }
  const elapsedMs = performance.now() - started;
  options.onProgress?.({
    sent,
    // The total was an estimate (bad messages are drawn); done, it is what was sent.
    total: aborted ? Math.max(total, sent) : sent,
    ratePerSec: (sent * 1000) / Math.max(elapsedMs, 1),
    elapsedMs,
  });
  return {
    topic: options.topic,
    format: options.source.format,
    sent,
    good,
    bad,
    elapsedMs,
    ratePerSec: (sent * 1000) / Math.max(elapsedMs, 1),
    shiftMs: plan.shiftMs,
    aborted,
  };
}
