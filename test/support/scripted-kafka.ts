// The real createIngestor over the stack's real Redis, with a scripted stand-in for kafkajs: the
// test hands eachBatch its payloads itself, so it can hit moments a broker only gives by chance (a
// heartbeat failing right after the save, a batch arriving once stop() has begun, a rejoin).
// Everything Kafka does for real is covered by the other ingestor tests.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { EachBatchPayload, Kafka } from 'kafkajs';
import { pino } from 'pino';
import { createIngestor } from '../../services/ingestor/ingestor.ts';
import { createIngestorMetrics } from '../../services/ingestor/metrics.ts';
import { topicName } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { connectRedis, keyNodes } from '../../shared/state-store/redis-client.ts';

export interface ScriptedMessage {
  offset: number;
  key: string;
  value: string;
}

export function scriptedIngestor() {
  const id = `it-scripted-${Date.now().toString(36)}-${randomUUID().slice(0, 6)}`;
  const config = loadConfig({
    argv: [],
    env: {
      ...process.env,
      TESSERA_REDIS_KEY_PREFIX: id,
      TESSERA_TOPIC_PREFIX: `${id}.`,
      TESSERA_INGEST_CLOCK: 'event',
      TESSERA_INGEST_COMMIT_INTERVAL_MS: '0',
    },
  });
  const definitions = loadDefinitionsFile(config.definitions);
  const redis = connectRedis(config, { maxRetriesPerRequest: 2 });
  const metrics = createIngestorMetrics({ processMetrics: false });
  const events = new EventEmitter();
  const committed: { topic: string; partition: number; offset: string }[] = [];
  const produced: { topic: string; messages: unknown[] }[] = [];
  const control = {
    /** Called by every heartbeat a batch makes. */
    heartbeat: async () => {},
    /** Every produce fails (as with the brokers gone). */
    produceFails: false,
  };
  let eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  const consumer = {
    events: { GROUP_JOIN: 'group_join', CRASH: 'crash' },
    connect: async () => {},
    subscribe: async () => {},
    on: (event: string, listener: (e: unknown) => void) => events.on(event, listener),
    run: async (options: { eachBatch: (payload: EachBatchPayload) => Promise<void> }) => {
      eachBatch = options.eachBatch;
    },
    pause: () => {},
    commitOffsets: async (offsets: typeof committed) => {
      committed.push(...offsets);
    },
    disconnect: async () => {},
  };
  const producer = () => ({
    connect: async () => {},
    disconnect: async () => {},
    send: async (request: { topic: string; messages: unknown[] }) => {
      if (control.produceFails) {
        const error = new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092 (scripted)');
        error.name = 'KafkaJSConnectionError';
        throw error;
      }
      produced.push(request);
    },
  });
  const topic = topicName(config, definitions.sources[0]!.topic);
  const kafka = {
    consumer: () => consumer,
    producer,
    admin: () => ({
      connect: async () => {},
      disconnect: async () => {},
      // The source and every topic the ingestor would create exist already.
      describeConfigs: async () => ({ resources: [] }),
      listTopics: async () => [
        topic,
        `${topic}.dlq`,
        topicName(config, 'features.updates'),
        topicName(config, 'features.rows'),
      ],
    }),
  } as unknown as Kafka;
  const ingestor = createIngestor({
    config,
    definitions,
    kafka,
    redis,
    logger: pino({ level: 'silent' }),
    metrics,
  });
  const resolved: { partition: number; offset: string }[] = [];

  return {
    config,
    redis,
    ingestor,
    metrics,
    committed,
    produced,
    resolved,
    control,
    topic,
    /** A rejoin, as kafkajs reports it. */
    rejoin: () => events.emit('group_join', {}),
    /** Hands one partition's batch to the ingestor's eachBatch, as kafkajs would. */
    deliver(partition: number, messages: readonly ScriptedMessage[], highWatermark?: number): Promise<void> {
      if (!eachBatch) throw new Error('start the ingestor first');
      const payload = {
        batch: {
          topic,
          partition,
          highWatermark: String(highWatermark ?? messages.at(-1)!.offset + 1),
          messages: messages.map((m) => ({
            offset: String(m.offset),
            key: Buffer.from(m.key),
            value: Buffer.from(m.value),
            timestamp: String(Date.now()),
            headers: {},
          })),
        },
        resolveOffset: (offset: string) => resolved.push({ partition, offset }),
        heartbeat: () => control.heartbeat(),
      } as unknown as EachBatchPayload;
      return eachBatch(payload);
    },
    /** The sample lines of one metric, `name{labels} value`. */
    async metric(name: string): Promise<string[]> {
      const text = await metrics.registry.getSingleMetricAsString(name);
      return text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    },
    /** This run's state keys in Redis. */
    async stateKeys(): Promise<string[]> {
      const keys: string[] = [];
      for (const node of keyNodes(redis)) keys.push(...(await node.keys(`${id}:*`)));
      return keys;
    },
    async cleanup(): Promise<void> {
      const keys = await this.stateKeys();
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
  };
}

/** A reference-source event as its JSON record. */
export function fraudRecord(user: number, ts: number, amount = 1): string {
  return JSON.stringify({
    user_id: user,
    event_timestamp: new Date(ts).toISOString(),
    amount,
    merchant_id: 'm',
  });
}
