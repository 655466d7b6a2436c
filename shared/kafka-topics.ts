// Topic creation that returns only once the broker serves the topics. The ingestor (its DLQ, rows
// and updates topics), the flusher (the rows topic) and the producer CLI (--create-topic) create
// topics at start; kafkajs' own `waitForLeaders` let them crash on a busy KRaft broker.
import type { Admin } from 'kafkajs';
import { TesseraError } from './errors.ts';

export interface TopicSpec {
  topic: string;
  numPartitions: number;
  configEntries?: { name: string; value: string }[];
}

/**
 * The broker's answers for a topic it has not finished setting up: its metadata cache does not
 * have the topic yet, a partition has no leader yet, or the leader has not opened the replica.
 */
const NOT_SERVED_YET = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'REPLICA_NOT_AVAILABLE',
]);

/** The broker error type behind a kafkajs error (its `type`, also when wrapped in `cause`). */
export function brokerErrorType(error: unknown): string | undefined {
  for (let e = error; e instanceof Error; e = e.cause)
    if (e.name === 'KafkaJSProtocolError' && 'type' in e && typeof e.type === 'string') return e.type;
  return undefined;
}

/** Why `topics` cannot be used yet per a fresh metadata fetch and ListOffsets, or null. */
async function notServed(
  admin: Admin,
  topics: readonly TopicSpec[],
  created: boolean,
): Promise<string | null> {
  const { topics: found } = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.topic) });
  for (const spec of topics) {
    const partitions = found.find((t) => t.name === spec.topic)?.partitions ?? [];
    // A topic that existed before keeps its own partition count.
    const want = created ? spec.numPartitions : Math.max(1, partitions.length);
    const led = partitions.filter((p) => p.leader >= 0).length;
    if (led < want) return `${spec.topic}: ${led} of ${want} partitions have a leader`;
  }
  // ListOffsets is answered by each partition's leader replica itself: once it answers for every
  // partition, produce and fetch are served too.
  for (const spec of topics) await admin.fetchTopicOffsets(spec.topic);
  return null;
}

/**
 * Creates `topics` (one that exists, or that another process creates meanwhile, is left as it is)
 * and waits up to `timeoutMs` until every partition has a leader that answers for it. Returns
 * kafkajs' answer: true when it created every topic asked for; false when any of them existed (it
 * may still have created the others). A topic that exists keeps its partition count.
 *
 * Why not `createTopics({ waitForLeaders: true })`: a KRaft broker answers CreateTopics once the
 * controller has committed the topic, before the broker's own metadata cache has it. kafkajs then
 * asks that broker for the topic's metadata and retries only LEADER_NOT_AVAILABLE, so the
 * broker's UNKNOWN_TOPIC_OR_PARTITION ("This server does not host this topic-partition") came out
 * of createTopics, and an ingestor starting against a busy broker exited 1.
 */
export async function createServedTopics(
  admin: Admin,
  topics: readonly TopicSpec[],
  timeoutMs = 30_000,
): Promise<boolean> {
  if (topics.length === 0) return false;
  let created: boolean;
  try {
    created = await admin.createTopics({ waitForLeaders: false, topics: [...topics] });
  } catch (error) {
    // Another process created one of them between our listing and this call.
    if (brokerErrorType(error) !== 'TOPIC_ALREADY_EXISTS' && !String(error).includes('already exists'))
      throw error;
    created = false;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let why: string | null;
    try {
      why = await notServed(admin, topics, created);
    } catch (error) {
      const type = brokerErrorType(error);
      if (type === undefined || !NOT_SERVED_YET.has(type)) throw error;
      why = `${type}: ${(error as Error).message}`;
    }
    if (why === null) return created;
    if (Date.now() > deadline)
      throw new TesseraError(
        'SERVICE_UNAVAILABLE',
        `topics ${topics.map((t) => t.topic).join(', ')} are not served ${timeoutMs / 1000} s after their creation (${why}): check the broker's log`,
        { retriable: true, context: { topics: topics.map((t) => t.topic) } },
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The broker's default message.max.bytes: a topic's limit when it has none of its own. */
export const DEFAULT_MESSAGE_BYTES = 1_048_588;

/**
 * Room for a record's framing, key and headers within a topic's max.message.bytes: a value up to
 * the limit less this is taken, and so is a produce request of that many bytes of messages.
 */
export const RECORD_OVERHEAD_BYTES = 1024;

/**
 * The broker's refusal of an operation this client has no ACL for (TOPIC_AUTHORIZATION_FAILED,
 * CLUSTER_AUTHORIZATION_FAILED, ...), or undefined for any other error.
 */
export function authorizationFailure(error: unknown): string | undefined {
  const type = brokerErrorType(error);
  return type?.endsWith('_AUTHORIZATION_FAILED') ? type : undefined;
}

/**
 * messageLimits, or no limits (every topic at the broker's default) when the broker refuses this
 * client DescribeConfigs on them: a least-privilege ACL (read, write and describe the topics, read
 * the group) has no such grant, and a start that failed on it stopped a process that works without
 * it. `refused` is told the broker's error type.
 */
export async function messageLimitsIfAllowed(
  admin: Admin,
  topics: string[],
  refused: (type: string) => void,
): Promise<Map<string, number>> {
  try {
    return await messageLimits(admin, topics);
  } catch (error) {
    const type = authorizationFailure(error);
    if (type === undefined) throw error;
    refused(type);
    return new Map();
  }
}

/** Kafka's config resource type of a topic (kafkajs' ConfigResourceTypes.TOPIC, not an ESM named export). */
const TOPIC_RESOURCE = 2;

/**
 * max.message.bytes of existing topics. A topic the broker answers without the entry is left out;
 * one it refuses (unknown, not authorized) throws the broker's error.
 */
export async function messageLimits(admin: Admin, topics: string[]): Promise<Map<string, number>> {
  const limits = new Map<string, number>();
  if (topics.length === 0) return limits;
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: topics.map((name) => ({ type: TOPIC_RESOURCE, name, configNames: ['max.message.bytes'] })),
  });
  for (const r of resources) {
    const value = Number(r.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue);
    if (Number.isFinite(value) && value > 0) limits.set(r.resourceName, value);
  }
  return limits;
}
