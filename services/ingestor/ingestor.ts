// The ingestor process core: a kafkajs consumer group over the definitions' source topics. Per
// batch (one partition): decode and validate every record, apply the good ones with the engine to
// Redis state (apply-batch.ts), send bad and late ones to `<topic>.dlq` with their original bytes,
// push fresh feature vectors and per-event training rows, and only then commit the offsets.
// A failure anywhere before the commit makes kafkajs redeliver the batch; the engine's per-partition
// offsets make the redelivery a no-op for state, so nothing is lost or counted twice.
import { dirname } from 'node:path';
import type { Redis } from 'ioredis';
import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { createDecoder } from '../../shared/codecs/decode.ts';
import type { DecodeResult } from '../../shared/codecs/types.ts';
import { topicName } from '../../shared/config/clients.ts';
import type { Config } from '../../shared/config/index.ts';
import type { Definitions, SourceDef } from '../../shared/definitions/schema.ts';
import { planView } from '../../shared/engine/index.ts';
import { type LoadStats, RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { StateCache } from '../../shared/state-store/state-cache.ts';
import { applyBatch, type IncomingEvent, type TrainingRow, type ViewRuntime } from './apply-batch.ts';
import type { IngestorMetrics } from './metrics.ts';
import { createPushEncoder } from './push-json.ts';

export const UPDATES_TOPIC = 'features.updates';
export const ROWS_TOPIC = 'features.rows';

export interface IngestorDeps {
  config: Config;
  definitions: Definitions;
  kafka: Kafka;
  redis: Redis;
  logger: Logger;
  metrics: IngestorMetrics;
  /** Wall clock (tests may pin it). */
  now?: () => number;
}

interface SourceRuntime {
  source: SourceDef;
  topic: string;
  views: (ViewRuntime & {
    store: RedisStateStore;
    cache: StateCache;
    /** The store's load totals already added to the metric (batches of partitions overlap). */
    reported: LoadStats;
  })[];
  decode: (messages: KafkaMessage[]) => Promise<DecodeResult[]>;
}

export interface Ingestor {
  start(): Promise<void>;
  stop(): Promise<void>;
  readiness(): Promise<string[]>;
}

export function createIngestor(deps: IngestorDeps): Ingestor {
  const { config, definitions, kafka, redis, logger, metrics } = deps;
  const now = deps.now ?? Date.now;
  const sources = new Map<string, SourceRuntime>();
  for (const source of definitions.sources) {
    const views = definitions.views.filter((v) => v.source.name === source.name);
    if (views.length === 0) continue;
    const decoder = createDecoder(source, { definitionsDir: dirname(definitions.file) });
    const topic = topicName(config, source.topic);
    sources.set(topic, {
      source,
      topic,
      views: views.map((view) => {
        const plan = planView(view);
        const cache = new StateCache(config.stateCacheEvents);
        return {
          plan,
          cache,
          store: new RedisStateStore(redis, plan, config.redisKeyPrefix, cache),
          readers: new WeakMap(),
          reported: { cached: 0, fetched: 0 },
        };
      }),
      decode: (messages) =>
        decoder.decodeBatch(messages.map((m) => ({ key: m.key ?? null, value: m.value ?? null }))),
    });
  }
  const consumer: Consumer = kafka.consumer({
    groupId: config.ingestorGroup,
    allowAutoTopicCreation: false,
    sessionTimeout: config.kafkaSessionTimeoutMs,
    heartbeatInterval: config.kafkaHeartbeatMs,
  });
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  const dlqLog = rateLimitedLog(logger, 10_000);
  // Feature names per view, for the JSON vectors pushed after each batch (built once).
  const names = new Map(
    [...sources.values()].flatMap((s) =>
      s.views.map((v) => [v.plan.view.name, v.plan.features.map((f) => f.def.name)] as const),
    ),
  );
  const json = createPushEncoder(names, definitions.hash);
  let running = false;

  async function ensureTopics(): Promise<void> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const wanted = [...sources.keys()].flatMap((t) => [`${t}.dlq`]);
      wanted.push(topicName(config, UPDATES_TOPIC), topicName(config, ROWS_TOPIC));
      const missing = wanted.filter((t) => !existing.has(t));
      if (missing.length > 0) {
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((topic) => ({ topic, numPartitions: 6 })),
        });
        logger.info({ topics: missing }, 'created topics');
      }
    } finally {
      await admin.disconnect();
    }
  }

  async function handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    if (batch.messages.length === 0) return;
    const runtime = sources.get(batch.topic);
    if (!runtime) throw new Error(`no source is defined for topic ${batch.topic}`);
    const started = performance.now();
    const stage = (name: string, since: number) => {
      const t = performance.now();
      metrics.stageSeconds.inc({ stage: name }, (t - since) / 1000);
      return t;
    };
    const decoded = await runtime.decode(batch.messages);
    const incoming: IncomingEvent[] = [];
    const dlq: { message: KafkaMessage; reason: string; detail: string }[] = [];
    decoded.forEach((d, i) => {
      const message = batch.messages[i]!;
      if (d.ok) {
        incoming.push({
          index: i,
          partition: batch.partition,
          offset: Number(message.offset),
          entity: d.key,
          ts: d.ts,
          record: d.record,
        });
      } else {
        dlq.push({ message, reason: d.reason, detail: d.message });
      }
    });

    let t = stage('decode', started);
    let result: Awaited<ReturnType<typeof applyBatch>>;
    try {
      // kafkajs heartbeats only between batches unless asked; a catch-up batch on a busy machine can
      // outlast the session timeout, and the group then drops this member (its commits fail, and
      // the consumer was seen to stall). heartbeat() is a no-op until the interval has passed.
      await payload.heartbeat();
      result = await applyBatch(
        runtime.views,
        incoming,
        { mode: config.ingestClock, now: now() },
        async (rows) => {
          await payload.heartbeat();
          await sendChunked(producer, topicName(config, ROWS_TOPIC), rowMessages(batch.topic, rows));
          await payload.heartbeat();
        },
        async () => {
          await new Promise((resolve) => setImmediate(resolve));
          await payload.heartbeat();
        },
      );
    } catch (error) {
      metrics.redisErrors.inc();
      throw error;
    }
    const redisAckedAt = Date.now();
    t = performance.now();
    for (const [name, ms] of Object.entries(result.stageMs))
      metrics.stageSeconds.inc({ stage: name }, ms / 1000);
    for (const r of result.rejected)
      dlq.push({ message: batch.messages[r.index]!, reason: r.reason, detail: r.message });
    dlq.sort((a, b) => Number(BigInt(a.message.offset) - BigInt(b.message.offset))); // source order

    // Dead letters first: if the DLQ is down this throws, nothing is committed, and the batch comes
    // back (the partition waits instead of dropping the event).
    if (dlq.length > 0) {
      await sendChunked(
        producer,
        `${batch.topic}.dlq`,
        dlq.map(({ message, reason, detail }) => ({
          key: message.key ?? null,
          value: message.value ?? null,
          headers: dlqHeaders(message.headers, {
            reason,
            detail,
            topic: batch.topic,
            partition: batch.partition,
            offset: message.offset,
          }),
        })),
      );
      for (const d of dlq) {
        metrics.dlq.inc({ topic: batch.topic, reason: d.reason });
        dlqLog(
          d.reason,
          { topic: batch.topic, partition: batch.partition, offset: d.message.offset, reason: d.reason },
          d.detail,
        );
      }
    }
    t = stage('dlq', t);
    await payload.heartbeat();
    await publish(result);
    t = stage('updates', t);

    const last = batch.messages[batch.messages.length - 1]!;
    await consumer.commitOffsets([
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() },
    ]);
    payload.resolveOffset(last.offset);
    stage('commit', t);

    // Metrics after the commit: what they count has really happened.
    for (const [view, n] of result.applied) metrics.events.inc({ view, outcome: 'applied' }, n);
    for (const [view, n] of result.duplicates) metrics.events.inc({ view, outcome: 'duplicate' }, n);
    for (const [view, n] of result.cappedDrops) metrics.capped.inc({ view }, n);
    for (const view of runtime.views)
      if (dlq.length > 0) metrics.events.inc({ view: view.plan.view.name, outcome: 'dlq' }, dlq.length);
    for (const [view, t] of result.newestEventTime) metrics.freshness.set({ view }, t / 1000);
    metrics.conflicts.inc(result.conflicts);
    for (const v of runtime.views) {
      const view = v.plan.view.name;
      metrics.stateLoads.inc({ view, source: 'cache' }, v.store.stats.cached - v.reported.cached);
      metrics.stateLoads.inc({ view, source: 'redis' }, v.store.stats.fetched - v.reported.fetched);
      v.reported = { ...v.store.stats };
      metrics.stateCacheEvents.set({ view }, v.cache.weight);
    }
    for (const m of batch.messages)
      metrics.eventToRedisSeconds.observe(Math.max(0, redisAckedAt - Number(m.timestamp)) / 1000);
    metrics.lag.set(
      { topic: batch.topic, partition: String(batch.partition) },
      Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1),
    );
    metrics.batchSeconds.observe((performance.now() - started) / 1000);
  }

  /** One `features.rows` record per applied event, keyed by entity; unique by source offset. */
  function rowMessages(sourceTopic: string, rows: readonly TrainingRow[]): Message[] {
    return rows.map((r) => ({ key: r.entity, value: json.row(sourceTopic, r) }));
  }

  async function publish(result: Awaited<ReturnType<typeof applyBatch>>): Promise<void> {
    const updates = result.updates.map((u) => ({ key: u.entity, value: json.update(u) }));
    await sendChunked(producer, topicName(config, UPDATES_TOPIC), updates);
    if (config.publishUpdates && updates.length > 0) {
      const pipeline = redis.pipeline();
      for (const u of result.updates)
        pipeline.publish(
          `${config.redisKeyPrefix}:updates:${u.view}`,
          JSON.stringify({ entity: u.entity, values: u.values }),
        );
      await pipeline.exec();
    }
  }

  return {
    async start() {
      await ensureTopics();
      await producer.connect();
      await consumer.connect();
      for (const topic of sources.keys()) await consumer.subscribe({ topic, fromBeginning: true });
      // Partitions are independent (keyed by entity; the compare-and-set guards the rest), so
      // several batches wait on Redis and Kafka at once instead of one after another.
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 6,
        eachBatch: handleBatch,
      });
      running = true;
      logger.info({ topics: [...sources.keys()], group: config.ingestorGroup }, 'ingestor consuming');
    },
    async stop() {
      running = false;
      // kafkajs lets the batch in progress finish (and commit) before it leaves the group.
      await consumer.disconnect();
      await producer.disconnect();
    },
    async readiness() {
      const problems: string[] = [];
      if (!running) problems.push('consumer not running');
      try {
        await redis.ping();
      } catch (error) {
        problems.push(`redis: ${String(error)}`);
      }
      return problems;
    },
  };
}

/** Bytes per produce request: under the broker's default message.max.bytes (1 MiB) with room. */
const MAX_SEND_BYTES = 512 * 1024;

/**
 * Sends messages in requests of at most MAX_SEND_BYTES: kafkajs does not split a large batch, and
 * the broker refuses a record batch over message.max.bytes (a catch-up batch of thousands of rows).
 */
async function sendChunked(producer: Producer, topic: string, messages: Message[]): Promise<void> {
  let chunk: Message[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = byteLength(m.key) + byteLength(m.value) + 64;
    if (chunk.length > 0 && bytes + size > MAX_SEND_BYTES) {
      await producer.send({ topic, messages: chunk });
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += size;
  }
  if (chunk.length > 0) await producer.send({ topic, messages: chunk });
}

function byteLength(v: Message['key'] | Message['value']): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

function dlqHeaders(
  original: IHeaders | undefined,
  info: { reason: string; detail: string; topic: string; partition: number; offset: string },
): IHeaders {
  return {
    ...(original ?? {}),
    'tessera-reason': info.reason,
    'tessera-message': info.detail.slice(0, 1000),
    'tessera-source-topic': info.topic,
    'tessera-source-partition': String(info.partition),
    'tessera-source-offset': info.offset,
  };
}

/** Logs the first event of each kind at once, then at most once per interval with a count. */
function rateLimitedLog(logger: Logger, intervalMs: number) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (kind: string, context: Record<string, unknown>, message: string) => {
    const t = Date.now();
    const entry = last.get(kind);
    if (entry && t - entry.at < intervalMs) {
      entry.suppressed++;
      return;
    }
    logger.warn({ ...context, suppressed: entry?.suppressed ?? 0 }, `dead-lettered: ${message}`);
    last.set(kind, { at: t, suppressed: 0 });
  };
}
