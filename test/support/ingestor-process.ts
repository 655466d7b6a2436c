// Runs real ingestor processes (node services/ingestor/main.ts) for integration tests, each run
// isolated by its own topic prefix, consumer group and Redis key prefix.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { type Admin, Kafka, type KafkaMessage, logLevel } from 'kafkajs';
import { kafkaOptions } from '../../shared/config/clients.ts';
import { type Config, loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import {
  applyEvent,
  type EntityState,
  emptyState,
  type FeatureValue,
  planView,
  readFeatures,
  type ViewPlan,
} from '../../shared/engine/index.ts';
import { offsetEntries } from '../../shared/engine/state.ts';
import { connectRedis, keyNodes, type RedisClient, sendAll } from '../../shared/state-store/redis-client.ts';
import { RedisStateStore } from '../../shared/state-store/redis-state-store.ts';
import { type FraudEvent, fraudEngineEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { scrapeMetrics } from './ops-endpoint.ts';
import { trackChild } from './process-guard.ts';
import { stopProcess } from './stop-after.ts';
import { createReadyTopics } from './topics.ts';

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

/** A run named `<name>-<time>-<random>` (`it-` by default), with `extraEnv` over the defaults. */
export function newTestRun(extraEnv: Record<string, string> = {}, name = 'it'): TestRun {
  const id = `${name}-${Date.now().toString(36)}-${randomUUID().slice(0, 6)}`;
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

/** Starts the run's ingestor; `env` is added to the run's own (e.g. one run's commit interval). */
export function startIngestor(run: TestRun, env: Record<string, string> = {}): IngestorProcess {
  // TESSERA_INGESTOR_NODE_ARGS: extra node flags for the child, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'
  // (node refuses --cpu-prof in NODE_OPTIONS).
  const extra = (process.env.TESSERA_INGESTOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...extra, '--import', 'tsx', 'services/ingestor/main.ts'], {
    env: { ...process.env, ...run.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child, `ingestor of run ${run.id} (startIngestor)`);
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

async function endsOf(admin: Admin, topic: string): Promise<Map<number, number>> {
  return new Map((await admin.fetchTopicOffsets(topic)).map((e) => [e.partition, Number(e.high)]));
}

/** Messages of `topic` in the log now that the run's group has not committed, over all partitions. */
export async function groupLag(run: TestRun, topic: string): Promise<number> {
  const admin = run.kafka.admin();
  await admin.connect();
  try {
    return await lagOf(admin, run, topic);
  } finally {
    await admin.disconnect();
  }
}

async function lagOf(admin: Admin, run: TestRun, topic: string): Promise<number> {
  const until = await endsOf(admin, topic);
  const [committed] = await admin.fetchOffsets({ groupId: run.config.ingestorGroup, topics: [topic] });
  let lag = 0;
  for (const [partition, end] of until) {
    const c = committed?.partitions.find((p) => p.partition === partition);
    lag += Math.max(0, end - (c && c.offset !== '-1' ? Number(c.offset) : 0));
  }
  return lag;
}

/** Source records an ingestor process has counted, by outcome (applied, duplicate, dlq), from its /metrics. */
export async function recordOutcomes(ingestor: IngestorProcess): Promise<Record<string, number>> {
  const text = await scrapeMetrics(ingestor.output());
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^tessera_ingestor_events_total\{[^}]*outcome="(\w+)"[^}]*\} (\d+)/gm))
    out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  return out;
}

/** Source records handled, whatever their outcome. */
export const recordsHandled = (outcomes: Record<string, number>): number =>
  Object.values(outcomes).reduce((a, b) => a + b, 0);

/**
 * Polls the process's /metrics until it has counted at least `records` source records, or
 * `timeoutMs` passed, and returns the count: on the timeout it is lower, and a caller that needs
 * the records asserts it.
 */
export async function waitForRecords(
  ingestor: IngestorProcess,
  records: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const handled = recordsHandled(await recordOutcomes(ingestor));
    if (handled >= records || Date.now() > deadline) return handled;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Records on a topic now (high minus low watermark, summed over partitions); 0 when it does not exist. */
export async function topicRecords(run: TestRun, topic: string): Promise<number> {
  const admin = run.kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return 0;
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Waits until the group has committed every offset of `topic` (lag 0), or throws after `timeoutMs`. */
export async function waitForCaughtUp(run: TestRun, topic: string, timeoutMs: number): Promise<void> {
  const admin = run.kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lag = await lagOf(admin, run, topic);
      if (lag === 0) return;
      if (Date.now() > deadline)
        throw new Error(`ingestor still ${lag} messages behind on ${topic} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await admin.disconnect();
  }
}

/**
 * Deletes this run's topics and Redis keys. The Redis client is closed whatever fails: left open
 * (a run whose Kafka login is refused on purpose cannot delete its topics), it kept the test
 * file's process alive after its last test, and the runner waited for it for ever.
 */
export async function cleanupRun(run: TestRun): Promise<void> {
  try {
    const admin = run.kafka.admin();
    try {
      await admin.connect();
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${run.id}.`));
      if (topics.length > 0) await admin.deleteTopics({ topics });
    } finally {
      await admin.disconnect();
    }
  } finally {
    try {
      await deleteRunKeys(run);
    } finally {
      run.redis.disconnect();
    }
  }
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

/** Creates this run's source topic and waits until the broker serves all its partitions. */
/**
 * The run's source topic. `keepOldRecords`: no time retention, for records stamped days back (the
 * broker's 7-day default deletes segments by their records' timestamps, maybe before they are read).
 */
export async function createSourceTopic(
  run: TestRun,
  partitions: number,
  options: { keepOldRecords?: boolean } = {},
): Promise<void> {
  await createReadyTopics(run.kafka, [
    {
      topic: run.topic,
      numPartitions: partitions,
      ...(options.keepOldRecords ? { configEntries: [{ name: 'retention.ms', value: '-1' }] } : {}),
    },
  ]);
}

/**
 * Fraud events of about `users` users over the 20 days before `now` on 3 partitions, moved so the
 * newest is a minute ago (the window-edge events the generator puts after its span left out), and
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
  // The generator's window-edge events chain past its span (an edge of an edge, months on). Moving
  // the newest of those to a minute ago put most events 40 days back, where the 1 h to 7 d windows
  // of a read at now are empty: only the span's own events are kept (edges within it stay).
  const end = now - 60_000;
  const kept = events.filter((e) => e.event_timestamp <= end);
  const shift = end - Math.max(...kept.map((e) => e.event_timestamp));
  for (const e of kept) e.event_timestamp += shift;
  return { events: kept, users: [...new Set(kept.map((e) => e.user_id))].sort((a, b) => a - b) };
}

/**
 * The generated events as JSON Kafka messages of the reference source, keyed by user_id; with
 * `stamps` (one per event, liveStamps), each message carries its own Kafka timestamp.
 */
export function fraudMessages(
  events: readonly FraudEvent[],
  stamps?: readonly number[],
): { key: string; value: string; timestamp?: string }[] {
  return events.map((e, i) => ({
    ...(stamps ? { timestamp: String(stamps[i]) } : {}),
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
 * Kafka timestamps for `events` as if each were produced live (the newest event time so far plus
 * half a second), except every 500th, stamped exactly `latenessMs` after its event (in time on the
 * record clock), and every 500th + 250, 1 ms past that (late); and the indexes of the records the
 * record clock makes late.
 */
export function liveStamps(
  events: readonly FraudEvent[],
  latenessMs: number,
): { stamps: number[]; late: Set<number> } {
  const stamps: number[] = [];
  const late = new Set<number>();
  let newest = Number.NEGATIVE_INFINITY;
  events.forEach((e, i) => {
    newest = Math.max(newest, e.event_timestamp);
    const stamp =
      i % 500 === 0
        ? e.event_timestamp + latenessMs
        : i % 500 === 250
          ? e.event_timestamp + latenessMs + 1
          : newest + 500;
    stamps.push(stamp);
    if (e.event_timestamp < stamp - latenessMs) late.add(i);
  });
  return { stamps, late };
}

/** Where each message of a topic sits: per message key, its [partition, offset]s in log order. */
export type LogPositions = Map<string, [partition: number, offset: number][]>;

/**
 * Reads `topic` from its beginning up to the ends it has now and returns where each key's messages
 * sit. The offline run takes each event's real position from here (the producer's partitioner and
 * any other record in the topic decide it), so the applied offsets it expects are Kafka's own.
 */
export async function logPositions(run: TestRun, topic: string, timeoutMs = 120_000): Promise<LogPositions> {
  const out: LogPositions = new Map();
  await readToEnds(run, topic, timeoutMs, (partition, m) => {
    const key = m.key?.toString() ?? '';
    let list = out.get(key);
    if (!list) {
      list = [];
      out.set(key, list);
    }
    list.push([partition, Number(m.offset)]);
  });
  return out;
}

/**
 * Every message of `topic`, from its beginning up to the ends it has now, in log order per
 * partition. Unlike readTopic, which stops at the count it is told to wait for, it finds a record
 * too many (a duplicate) or too few: call it once whatever writes the topic has caught up.
 */
export async function readTopicToEnd(
  run: TestRun,
  topic: string,
  timeoutMs = 60_000,
): Promise<KafkaMessage[]> {
  const out: KafkaMessage[] = [];
  await readToEnds(run, topic, timeoutMs, (_partition, m) => {
    out.push(m);
  });
  return out;
}

/** Calls `each` for every message of `topic` from its beginning up to the ends it has now. */
async function readToEnds(
  run: TestRun,
  topic: string,
  timeoutMs: number,
  each: (partition: number, message: KafkaMessage) => void,
): Promise<void> {
  const admin = run.kafka.admin();
  await admin.connect();
  let ends: { partition: number; high: string; low: string }[];
  try {
    ends = await admin.fetchTopicOffsets(topic);
  } finally {
    await admin.disconnect();
  }
  /** Per partition still to read, the offset of the next message expected (a refetch is skipped). */
  const next = new Map<number, number>();
  const end = new Map<number, number>();
  for (const e of ends)
    if (Number(e.high) > Number(e.low)) {
      next.set(e.partition, Number(e.low));
      end.set(e.partition, Number(e.high));
    }
  if (next.size === 0) return;
  const consumer = run.kafka.consumer({ groupId: `${run.id}-positions-${randomUUID().slice(0, 6)}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${topic} not read to its end in ${timeoutMs} ms: ${[...next].join(' ')}`)),
        timeoutMs,
      );
      // No commit: the group is of this call alone, and one without offsets leaves nothing behind.
      void consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const p = batch.partition;
          for (const m of batch.messages) {
            const offset = Number(m.offset);
            const want = next.get(p);
            if (want === undefined || offset < want) continue;
            next.set(p, offset + 1);
            each(p, m);
          }
          // lastOffset(): also past a trailing record that is no message (a transaction marker).
          if (next.has(p) && Number(batch.lastOffset()) + 1 >= end.get(p)!) next.delete(p);
          if (next.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
}

/** What the engine run offline over the generated events gives: the oracle of the ingestor tests. */
export interface OfflineRun {
  /** Per entity (user_id as text): its state after all its events, in produce order. */
  states: Map<string, EntityState>;
  /** Per entity: the time of its newest event. */
  newest: Map<string, number>;
  /** Entities whose events could not be paired with the log's messages (their counts differ). */
  unpaired: string[];
}

/**
 * Runs the engine over `events` in produce order, each entity in its own state. With `positions`
 * (logPositions) the k-th event of a user is the k-th message of its key in the log and takes that
 * message's partition and offset; without, each event keeps its own (FraudEvent partition/offset).
 */
export function runOffline(
  plan: ViewPlan,
  events: readonly FraudEvent[],
  positions?: LogPositions,
  /** Indexes in `events` of records the ingestor must dead-letter: in the log, never applied. */
  dropped?: ReadonlySet<number>,
): OfflineRun {
  const run: OfflineRun = { states: new Map(), newest: new Map(), unpaired: [] };
  const counts = new Map<string, number>();
  for (const e of events) counts.set(String(e.user_id), (counts.get(String(e.user_id)) ?? 0) + 1);
  if (positions)
    for (const [key, n] of counts) if ((positions.get(key)?.length ?? 0) !== n) run.unpaired.push(key);
  const unpaired = new Set(run.unpaired);
  const seen = new Map<string, number>();
  events.forEach((e, i) => {
    const key = String(e.user_id);
    const k = seen.get(key) ?? 0;
    seen.set(key, k + 1);
    // An unpaired entity is reported as such; its events still run, in produce order, so its
    // features are compared too.
    const at = !positions ? [e.partition, e.offset] : unpaired.has(key) ? [0, i] : positions.get(key)![k]!;
    if (dropped?.has(i)) return;
    let state = run.states.get(key);
    if (!state) {
      state = emptyState(plan);
      run.states.set(key, state);
    }
    applyEvent(plan, state, fraudEngineEvent(plan, e, at[0], at[1]));
    run.newest.set(key, Math.max(run.newest.get(key) ?? Number.NEGATIVE_INFINITY, e.event_timestamp));
  });
  return run;
}

const HOUR_MS = 3_600_000;

/**
 * The times an entity is read at: just after its own newest event, where every window holds all
 * it can (a read at one time for all entities finds most windows of a long stream empty); then
 * 1 h, 24 h and 7 d later, as each window empties; and `t`, the stream's end.
 */
function readTimes(newest: number, t: number): number[] {
  return [...new Set([newest + 1, newest + HOUR_MS, newest + 24 * HOUR_MS, newest + 168 * HOUR_MS, t])];
}

/** Feature values equal as Object.is says (so 0 is not -0 and NaN equals NaN), arrays item by item. */
export function sameFeatureValue(a: FeatureValue, b: FeatureValue): boolean {
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((v, i) => sameFeatureValue(v, b[i]!));
  return Object.is(a, b);
}

function showValue(v: FeatureValue): string {
  if (Array.isArray(v)) return `[${v.map(showValue).join(', ')}]`;
  return typeof v === 'number' ? (Object.is(v, -0) ? '-0' : String(v)) : JSON.stringify(v);
}

function showOffsets(state: EntityState): string {
  const entries = offsetEntries(state).sort((a, b) => a[0] - b[0]);
  return entries.length === 0 ? 'none' : entries.map(([p, o]) => `${p}:${o}`).join(' ');
}

/**
 * One line per entity whose `online` state (null: none) differs from the offline run: its applied
 * offsets, or a feature at one of its read times, or an entity the log could not pair. `t`: the
 * end of the stream (newest event + 1).
 */
export function stateDifferences(
  plan: ViewPlan,
  offline: OfflineRun,
  online: ReadonlyMap<string, EntityState | null>,
  t: number,
): string[] {
  const out = offline.unpaired.map((key) => `user ${key}: the log holds a different number of its messages`);
  for (const [entity, want] of offline.states) {
    const got = online.get(entity) ?? null;
    if (!got) {
      out.push(`user ${entity}: no state online`);
      continue;
    }
    // The applied offsets decide what a redelivery does: one behind, and the next redelivered
    // record is counted again; one ahead, and a record never applied is skipped.
    if (showOffsets(got) !== showOffsets(want)) {
      out.push(`user ${entity}: applied offsets online ${showOffsets(got)}, offline ${showOffsets(want)}`);
      continue;
    }
    const problem = firstFeatureDifference(plan, got, want, readTimes(offline.newest.get(entity)!, t));
    if (problem) out.push(`user ${entity}: ${problem}`);
  }
  return out;
}

function firstFeatureDifference(
  plan: ViewPlan,
  got: EntityState,
  want: EntityState,
  times: number[],
): string | null {
  for (const at of times) {
    const wanted = readFeatures(plan, want, at);
    let have: FeatureValue[];
    try {
      have = readFeatures(plan, got, at);
    } catch (error) {
      return `as of ${new Date(at).toISOString()} online read failed: ${(error as Error).message}`;
    }
    for (let f = 0; f < wanted.length; f++)
      if (!sameFeatureValue(have[f]!, wanted[f]!))
        return (
          `${plan.features[f]!.def.name} as of ${new Date(at).toISOString()}: online ${showValue(have[f]!)}, ` +
          `offline ${showValue(wanted[f]!)}`
        );
  }
  return null;
}

/**
 * Compares every entity's state in Redis with the engine run offline over the same events (in
 * produce order, at the positions the log gives them): its applied offsets, and every feature at
 * several times (readTimes), Object.is-equal. Returns up to 10 differences, and how many entities
 * differ in all.
 */
export async function differencesFromOffline(
  run: TestRun,
  events: readonly FraudEvent[],
  topic = run.topic,
  /** The view compared (default: the definitions' first). */
  viewName?: string,
  /** Indexes in `events` of records dead-lettered, not applied (runOffline). */
  dropped?: ReadonlySet<number>,
): Promise<{ entities: number; differing: number; differences: string[] }> {
  const views = loadDefinitionsFile(run.config.definitions).views;
  const view = viewName === undefined ? views[0] : views.find((v) => v.name === viewName);
  if (!view) throw new Error(`no view ${viewName} in ${run.config.definitions}`);
  const plan = planView(view);
  const offline = runOffline(plan, events, await logPositions(run, topic), dropped);
  const t = events.reduce((m, e) => Math.max(m, e.event_timestamp), 0) + 1;
  const store = new RedisStateStore(run.redis, plan, run.config.redisKeyPrefix);
  const entities = [...offline.states.keys()];
  const online = new Map<string, EntityState | null>();
  for (let i = 0; i < entities.length; i += 1000) {
    const chunk = entities.slice(i, i + 1000);
    const loaded = await store.loadMany(chunk);
    for (const entity of chunk) {
      const got = loaded.get(entity)!;
      online.set(entity, got.version === 0 ? null : got.state);
    }
  }
  const all = stateDifferences(plan, offline, online, t);
  return { entities: entities.length, differing: all.length, differences: all.slice(0, 10) };
}

/**
 * Reads `topic` from its beginning until `count` items arrived (or fails after `timeoutMs`). It
 * stops there: what it returns cannot show a record too many, readTopicToEnd can. An error thrown
 * by `items` (an assertion on a message) fails the call with that error.
 */
export async function readTopic(
  run: TestRun,
  topic: string,
  count: number,
  timeoutMs = 30_000,
  /** Items a message holds (a features.rows record packs several rows). */
  items: (m: KafkaMessage) => number = () => 1,
): Promise<KafkaMessage[]> {
  // A group of this call alone, committing nothing: a second call reads from the beginning again
  // (a group of the run's and the topic's, committing, resumed where the first one stopped).
  const consumer = run.kafka.consumer({ groupId: `${run.id}-reader-${topic}-${randomUUID().slice(0, 6)}` });
  const got: KafkaMessage[] = [];
  let total = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${total} of ${count} items on ${topic}`)),
        timeoutMs,
      );
      void consumer.run({
        autoCommit: false,
        eachMessage: async ({ message }) => {
          got.push(message);
          let n: number;
          try {
            n = items(message);
          } catch (error) {
            // Thrown back to kafkajs, it would only be logged and the message fetched again: the
            // test saw a timeout instead of its failed assertion.
            clearTimeout(timer);
            reject(error);
            return;
          }
          total += n;
          if (total >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    // Also on a timeout or a failed assertion: a connected consumer kept the test file running.
    await consumer.disconnect();
  }
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
  try {
    await ingestor.ready;
    await waitForCaughtUp(run, run.topic, timeoutMs);
  } catch (error) {
    // Not left running for a caller that never gets it to stop.
    await stopProcess(ingestor);
    throw error;
  }
  ingestor.child.kill('SIGTERM');
  const code = await ingestor.exited;
  if (code !== 0) throw new Error(`the ingestor exited ${code}:\n${ingestor.output()}`);
  return ingestor.output();
}
