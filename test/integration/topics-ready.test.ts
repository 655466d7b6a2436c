// createServedTopics (shared/kafka-topics.ts; the services' topic creation, and through
// test/support/topics.ts the tests') against the real broker: a topic it created is served at
// once. Before, kafkajs' createTopics({ waitForLeaders: true }) on a KRaft broker busy creating
// other topics threw "This server does not host this topic-partition" itself, or returned before
// the leader served the partitions (ingestor-ready failed once in 22 runs; an ingestor starting
// against a busy broker exited 1).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaOptions } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { createReadyTopics } from '../support/topics.ts';

const config = loadConfig({ argv: [] });
const id = `it-topics-${Date.now().toString(36)}-${randomUUID().slice(0, 6)}`;
const kafka = new Kafka({ ...kafkaOptions(config, id), logLevel: logLevel.NOTHING });
const PARTITIONS = 3;
/** Creations at once: several in flight keep the broker's metadata busy, as a loaded CI machine does. */
const AT_ONCE = 8;

describe('createReadyTopics on the real broker', { timeout: 120_000 }, () => {
  after(async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${id}.`));
      if (mine.length > 0) await admin.deleteTopics({ topics: mine });
    } finally {
      await admin.disconnect();
    }
  });

  it('returns only once every partition takes a produce and answers ListOffsets, without retries', async () => {
    const names = Array.from({ length: AT_ONCE }, (_, i) => [`${id}.${i}.a`, `${id}.${i}.b`]);
    // Each creation is its own call, all in flight together, as test files' helpers would be.
    await Promise.all(
      names.map((pair) =>
        createReadyTopics(
          kafka,
          pair.map((topic) => ({ topic, numPartitions: PARTITIONS })),
        ),
      ),
    );
    // No retries: kafkajs' own would hide a partition the broker does not serve yet.
    const producer = kafka.producer({ retry: { retries: 0 } });
    const admin = kafka.admin({ retry: { retries: 0 } });
    await producer.connect();
    await admin.connect();
    try {
      const topics = names.flat();
      const refused: string[] = [];
      await Promise.all(
        topics.map(async (topic) => {
          try {
            await producer.send({
              topic,
              messages: Array.from({ length: PARTITIONS }, (_, partition) => ({ partition, value: topic })),
            });
          } catch (error) {
            refused.push(`${topic}: ${(error as Error).message}`);
          }
        }),
      );
      assert.deepEqual(refused, [], 'sends refused right after createReadyTopics');
      for (const topic of topics) {
        const offsets = await admin.fetchTopicOffsets(topic);
        assert.deepEqual(
          offsets.map((o) => [o.partition, o.high]).sort(([a], [b]) => Number(a) - Number(b)),
          Array.from({ length: PARTITIONS }, (_, p) => [p, '1']),
          `${topic}: one message on each partition`,
        );
      }
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
  });

  it('leaves an existing topic as it is and still waits for it', async () => {
    const topic = `${id}.existing`;
    await createReadyTopics(kafka, [{ topic, numPartitions: 2 }]);
    // Asked again with another count: the topic keeps its 2 partitions and the call does not wait
    // for partitions it will never have.
    await createReadyTopics(kafka, [{ topic, numPartitions: 5 }], 5_000);
    const admin = kafka.admin();
    await admin.connect();
    try {
      assert.equal((await admin.fetchTopicOffsets(topic)).length, 2);
    } finally {
      await admin.disconnect();
    }
  });
});
