// Runs real ingestor processes (node services/ingestor/main.ts) for integration tests, each run
// isolated by its own topic prefix, consumer group and Redis key prefix.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Kafka, type KafkaMessage, logLevel } from 'kafkajs';
import { kafkaOptions } from '../../shared/config/clients.ts';
import { type Config, loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import {
  applyEvent,
  type EntityState,
  emptyState,
  planView,
  readFeatures,
} from '../../shared/engine/index.ts';
import { connectRedis, keyNodes, type RedisClient, sendAll } from '../../shared/state-store/redis-client.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { type FraudEvent, fraudEngineEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';

export interface TestRun {
  id: string;
  env: Record<string, string>;
  config: Config;
  kafka: Kafka;
  /** A Cluster client when the run sets TESSERA_REDIS_CLUSTER=true. */
  redis: RedisClient;
  /** The source topic of the reference definitions, with this run's prefix. */
  topic: string;
}

export function newTestRun(extraEnv: Record<string, string> = {}): TestRun {
  const id = `it-${Date.now().toString(36)}-${randomUUID().slice(0, 6)}`;
  const env: Record<string, string> = {
    TESSERA_TOPIC_PREFIX: `${id}.`,
    TESSERA_INGESTOR_GROUP: id,
    TESSERA_REDIS_KEY_PREFIX: id,
    TESSERA_METRICS_PORT: '0',
    TESSERA_HTTP_PORT: '0',
    TESSERA_KAFKA_SESSION_TIMEOUT_MS: '6000',
    TESSERA_KAFKA_HEARTBEAT_MS: '1000',
    TESSERA_LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  const config = loadConfig({ argv: [], env: { ...process.env, ...env } });
  return {
    id,
    env,
    config,
    kafka: new Kafka({ ...kafkaOptions(config, id), logLevel: logLevel.NOTHING }),
    redis: connectRedis(config),
    topic: `${id}.transactions`,
  };
}

export interface IngestorProcess {
  child: ChildProcess;
  ready: Promise<void>;
  exited: Promise<number | null>;
  output(): string;
}

export function startIngestor(run: TestRun): IngestorProcess {
  // TESSERA_INGESTOR_NODE_ARGS: extra node flags for the child, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'
  // (node refuses --cpu-prof in NODE_OPTIONS).
  const extra = (process.env.TESSERA_INGESTOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...extra, '--import', 'tsx', 'services/ingestor/main.ts'], {
    env: { ...process.env, ...run.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('ingestor ready')) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once('exit', (code) => reject(new Error(`ingestor exited (${code}) before ready:\n${out}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  ready.catch(() => undefined);
  return { child, ready, exited, output: () => out };
}

/** Waits until the group has committed every offset of `topic` (lag 0), or throws after `timeoutMs`. */
export async function waitForCaughtUp(run: TestRun, topic: string, timeoutMs: number): Promise<void> {
  const admin = run.kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId: run.config.ingestorGroup, topics: [topic] });
      const lag = ends.reduce((sum, end) => {
        const c = committed?.partitions.find((p) => p.partition === end.partition);
        const at = c && c.offset !== '-1' ? Number(c.offset) : 0;
        return sum + (Number(end.high) - at);
      }, 0);
      if (lag === 0) return;
      if (Date.now() > deadline)
        throw new Error(`ingestor still ${lag} messages behind on ${topic} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await admin.disconnect();
  }
}

/** Deletes this run's topics and Redis keys. */
export async function cleanupRun(run: TestRun): Promise<void> {
  const admin = run.kafka.admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${run.id}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
  await deleteRunKeys(run);
  run.redis.disconnect();
}

/** Deletes the run's Redis keys (its states, on every node of a cluster), leaving its topics. */
export async function deleteRunKeys(run: TestRun): Promise<void> {
  for (const node of keyNodes(run.redis)) {
    const keys = await node.keys(`${run.id}:*`);
    for (let i = 0; i < keys.length; i += 1000)
      await sendAll(
        run.redis,
        keys.slice(i, i + 1000).map((key) => ['del', key] as const),
      );
  }
}

/** Creates this run's source topic. */
export async function createSourceTopic(run: TestRun, partitions: number): Promise<void> {
  const admin = run.kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: run.topic, numPartitions: partitions }],
    });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Fraud events of about `users` users over the 20 days before `now` on 3 partitions, moved so the
 * newest is a minute ago (the generator also puts events at window edges after its span), and
 * the users they hold, ascending.
 */
export function recentFraudEvents(
  now: number,
  options: { events: number; users: number; seed: number },
): { events: FraudEvent[]; users: number[] } {
  const day = 86_400_000;
  const events = generateFraudEvents({
    ...options,
    start: now - 20 * day,
    spanMs: 20 * day - 60_000,
    partitions: 3,
  });
  const shift = now - 60_000 - Math.max(...events.map((e) => e.event_timestamp));
  for (const e of events) e.event_timestamp += shift;
  return { events, users: [...new Set(events.map((e) => e.user_id))].sort((a, b) => a - b) };
}

/** The generated events as JSON Kafka messages of the reference source, keyed by user_id. */
export function fraudMessages(events: readonly FraudEvent[]): { key: string; value: string }[] {
  return events.map((e) => ({
    key: String(e.user_id),
    value: JSON.stringify({
      user_id: e.user_id,
      event_timestamp: new Date(e.event_timestamp).toISOString(),
      amount: e.amount,
      merchant_id: e.merchant_id,
    }),
  }));
}

/**
 * Compares every entity's features in Redis with the engine run offline over the same events (in
 * produce order), as of just after the last event. Returns up to 10 differences, and the count.
 */
export async function differencesFromOffline(
  run: TestRun,
  events: readonly FraudEvent[],
): Promise<{ entities: number; differences: string[] }> {
  const plan = planView(loadDefinitionsFile(run.config.definitions).views[0]!);
  const offline = new Map<string, EntityState>();
  events.forEach((e, i) => {
    const key = String(e.user_id);
    let state = offline.get(key);
    if (!state) {
      state = emptyState(plan);
      offline.set(key, state);
    }
    applyEvent(plan, state, fraudEngineEvent(plan, e, 0, i));
  });
  const t = events.reduce((m, e) => Math.max(m, e.event_timestamp), 0) + 1;
  const store = new RedisStateStore(run.redis, plan, run.config.redisKeyPrefix);
  const entities = [...offline.keys()];
  const differences: string[] = [];
  for (let i = 0; i < entities.length; i += 1000) {
    const chunk = entities.slice(i, i + 1000);
    const online = await store.loadMany(chunk);
    for (const entity of chunk) {
      const got = online.get(entity)!;
      const want = JSON.stringify(readFeatures(plan, offline.get(entity)!, t));
      const have = got.version === 0 ? 'no state' : JSON.stringify(readFeatures(plan, got.state, t));
      if (have !== want && differences.length < 10)
        differences.push(`user ${entity}: online ${have}, offline ${want}`);
    }
  }
  return { entities: entities.length, differences };
}

/** Reads `topic` from its beginning until `count` items arrived (or fails after `timeoutMs`). */
export async function readTopic(
  run: TestRun,
  topic: string,
  count: number,
  timeoutMs = 30_000,
  /** Items a message holds (a features.rows record packs several rows). */
  items: (m: KafkaMessage) => number = () => 1,
): Promise<KafkaMessage[]> {
  const consumer = run.kafka.consumer({ groupId: `${run.id}-reader-${topic}` });
  const got: KafkaMessage[] = [];
  let total = 0;
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${total} of ${count} items on ${topic}`)),
      timeoutMs,
    );
    void consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message);
        total += items(message);
        if (total >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return got;
}

/**
 * Produces `messages` to the run's source topic, runs the ingestor until it has consumed them all,
 * stops it with SIGTERM and checks it exited 0. Returns its output.
 */
export async function ingestThenStop(
  run: TestRun,
  messages: { key: string; value: string }[],
  timeoutMs = 60_000,
): Promise<string> {
  const producer = run.kafka.producer();
  await producer.connect();
  await producer.send({ topic: run.topic, messages });
  await producer.disconnect();
  const ingestor = startIngestor(run);
  await ingestor.ready;
  await waitForCaughtUp(run, run.topic, timeoutMs);
  ingestor.child.kill('SIGTERM');
  const code = await ingestor.exited;
  if (code !== 0) throw new Error(`the ingestor exited ${code}:\n${ingestor.output()}`);
  return ingestor.output();
}
