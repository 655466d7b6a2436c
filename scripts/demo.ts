// The README's demo, for now a round trip through the real stack: JSON transactions to Kafka,
// consumed in batches, a transaction counter per user in Redis, a CSV summary written to S3 and
// read back. Later issues replace the middle with the ingestor, the engine and the flusher.

import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { kafkaOptions, redisOptions, s3Options, topicName } from '../shared/config/clients.ts';
import { loadConfig, renderConfig } from '../shared/config/index.ts';

interface Transaction {
  user_id: number;
  event_timestamp: string;
  amount: number;
  merchant_id: string;
}

const config = loadConfig();
const runId = new Date().toISOString().replace(/[-:]/g, '').slice(0, 15) + '-' + randomUUID().slice(0, 6);
const topic = topicName(config, `tessera-demo-${runId}`);
const say = (msg: string) => console.log(`demo: ${msg}`);

function transactions(): Transaction[] {
  const start = Date.now() - 10 * 60_000;
  return [
    { user_id: 1001, amount: 25.5, merchant_id: 'm-coffee' },
    { user_id: 1002, amount: 310.0, merchant_id: 'm-electronics' },
    { user_id: 1001, amount: 12.0, merchant_id: 'm-bakery' },
    { user_id: 1003, amount: 99.99, merchant_id: 'm-shoes' },
    { user_id: 1001, amount: 7.25, merchant_id: 'm-coffee' },
    { user_id: 1002, amount: 45.0, merchant_id: 'm-grocery' },
  ].map((t, i) => ({ ...t, event_timestamp: new Date(start + i * 60_000).toISOString() }));
}

async function main(): Promise<void> {
  say(`config:\n  ${renderConfig(config).split('\n').join('\n  ')}`);
  const kafka = new Kafka({ ...kafkaOptions(config, 'tessera-demo'), logLevel: logLevel.ERROR });
  const redis = new Redis({ ...redisOptions(config), lazyConnect: true });
  const s3 = new S3Client(s3Options(config));
  const admin = kafka.admin();
  const groupId = `tessera-demo-${runId}`;
  await admin.connect();
  await redis.connect();
  try {
    // 1. Produce: keyed by user_id so one user's events stay ordered in one partition.
    const events = transactions();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({
      topic,
      messages: events.map((e) => ({ key: String(e.user_id), value: JSON.stringify(e) })),
    });
    await producer.disconnect();
    say(`produced ${events.length} transactions to Kafka topic ${topic} (${config.kafkaBrokers.join(',')})`);

    // 2. Consume in batches; one Redis pipeline per batch, offsets resolved after Redis answers.
    const counterKey = (userId: number) => `tessera-demo:${runId}:{user:${userId}}:transaction_count`;
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let consumed = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('demo: consumed too little within 30s')), 30_000);
      consumer
        .run({
          eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
            const decoded = batch.messages.map((m) => JSON.parse(m.value?.toString() ?? '{}') as Transaction);
            const pipeline = redis.pipeline();
            for (const t of decoded) pipeline.incr(counterKey(t.user_id)).expire(counterKey(t.user_id), 3600);
            await pipeline.exec();
            const last = batch.messages.at(-1);
            if (last) resolveOffset(last.offset);
            await heartbeat();
            consumed += decoded.length;
            say(
              `consumed batch of ${decoded.length} from partition ${batch.partition}; updated Redis counters`,
            );
            if (consumed >= events.length) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();

    // 3. Read the counters back from Redis.
    const users = [...new Set(events.map((e) => e.user_id))].sort((a, b) => a - b);
    const counts = await Promise.all(users.map(async (u) => Number(await redis.get(counterKey(u)))));
    for (const [i, u] of users.entries()) say(`redis ${counterKey(u)} = ${counts[i]}`);

    // 4. Write a CSV summary to S3 and read it back.
    const csv = ['user_id,transaction_count', ...users.map((u, i) => `${u},${counts[i]}`)].join('\n') + '\n';
    const Key = `demo/${runId}/transaction_counts.csv`;
    await s3.send(new PutObjectCommand({ Bucket: config.s3Bucket, Key, Body: csv, ContentType: 'text/csv' }));
    const back = await (
      await s3.send(new GetObjectCommand({ Bucket: config.s3Bucket, Key }))
    ).Body?.transformToString();
    if (back !== csv) throw new Error(`S3 read-back differs from what was written: ${JSON.stringify(back)}`);
    say(
      `wrote and read back s3://${config.s3Bucket}/${Key} (${config.s3Endpoint}):\n  ${csv.trim().split('\n').join('\n  ')}`,
    );

    const expected = users.map((u) => events.filter((e) => e.user_id === u).length);
    if (JSON.stringify(expected) !== JSON.stringify(counts)) {
      throw new Error(`counts ${JSON.stringify(counts)} differ from events ${JSON.stringify(expected)}`);
    }
    say('round trip OK: Kafka -> Redis -> S3 (Redis counters expire in 1h; the CSV stays in S3)');
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
    await admin.disconnect();
    redis.disconnect();
    s3.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(`demo FAILED: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
