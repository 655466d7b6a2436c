// Creates the topics of an integration test and returns only once the broker serves them: the
// services' own createServedTopics (shared/kafka-topics.ts), with an admin client of its own.
import type { Kafka } from 'kafkajs';
import { createServedTopics, type TopicSpec } from '../../shared/kafka-topics.ts';

export type { TopicSpec } from '../../shared/kafka-topics.ts';

/**
 * Creates `topics` (an existing one is left as it is) and waits, up to `timeoutMs`, until every
 * partition has a leader that answers for it. kafkajs' `waitForLeaders` is not enough on a KRaft
 * broker: see createServedTopics.
 */
export async function createReadyTopics(
  kafka: Kafka,
  topics: readonly TopicSpec[],
  timeoutMs = 30_000,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createServedTopics(admin, topics, timeoutMs);
  } finally {
    await admin.disconnect();
  }
}
