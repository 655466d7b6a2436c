// Start-up probe for scripts/stack: proves each service answers a real round trip through the
// libraries Tessera uses. Prints `ok <service> ...` or `FAIL <service>: <reason>` per service.
// Usage: node --import tsx scripts/probe.ts [redis] [kafka] [s3]   (default: all three)

import { randomUUID } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { kafkaOptions, redisOptions, s3Options } from '../shared/config/clients.ts';
import { type Config, loadConfig } from '../shared/config/index.ts';

const TIMEOUT_MS = 60_000;

async function probeRedis(config: Config): Promise<string> {
  const redis = new Redis({ ...redisOptions(config), lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const key = `tessera:probe:${randomUUID()}`;
    await redis.set(key, 'ok', 'EX', 60);
    const got = await redis.get(key);
    await redis.del(key);
    if (got !== 'ok') throw new Error(`GET returned ${String(got)}`);
    const policy = await redis.config('GET', 'maxmemory-policy');
    return `PING/SET/GET ok, maxmemory-policy ${String(policy[1])}`;
  } finally {
    redis.disconnect();
  }
}

async function probeKafka(config: Config): Promise<string> {
  // A fresh broker answers 'group coordinator not available' for a second: kafkajs retries and
  // logs it at ERROR. The probe's verdict is what counts, so keep its logs quiet.
  const kafka = new Kafka({ ...kafkaOptions(config, 'tessera-probe'), logLevel: logLevel.NOTHING });
  const topic = `${config.topicPrefix}tessera-probe-${randomUUID()}`;
  const groupId = `tessera-probe-${randomUUID()}`;
  const admin = kafka.admin();
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  const consumer = kafka.consumer({ groupId });
  const value = randomUUID();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'probe', value }] });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got = await new Promise<string>((resolve, reject) => {
      consumer
        .run({ eachMessage: async ({ message }) => resolve(message.value?.toString() ?? '') })
        .catch(reject);
    });
    if (got !== value) throw new Error(`consumed ${got}, produced ${value}`);
    return 'produce/consume round trip ok';
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}

async function probeS3(config: Config): Promise<string> {
  const s3 = new S3Client(s3Options(config));
  const Bucket = config.s3Bucket;
  try {
    // The probe also makes sure the offline store's bucket exists for the demo and services.
    try {
      await s3.send(new HeadBucketCommand({ Bucket }));
    } catch {
      await s3.send(new CreateBucketCommand({ Bucket }));
    }
    const Key = `_probe/${randomUUID()}.txt`;
    await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'ok', ContentType: 'text/plain' }));
    const got = await (await s3.send(new GetObjectCommand({ Bucket, Key }))).Body?.transformToString();
    await s3.send(new DeleteObjectCommand({ Bucket, Key }));
    if (got !== 'ok') throw new Error(`GET returned ${String(got)}`);
    return `bucket ${Bucket} put/get ok`;
  } finally {
    s3.destroy();
  }
}

const PROBES: Record<string, (config: Config) => Promise<string>> = {
  redis: probeRedis,
  kafka: probeKafka,
  s3: probeS3,
};

function withTimeout<T>(name: string, p: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${TIMEOUT_MS / 1000}s`)), TIMEOUT_MS);
    p.then(resolve, reject).finally(() => clearTimeout(t));
  }).catch((e: unknown) => {
    throw new Error(`${name}: ${e instanceof Error ? e.message : String(e)}`);
  });
}

async function main(): Promise<number> {
  const config = loadConfig({ argv: [] });
  const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(PROBES);
  let failed = 0;
  await Promise.all(
    names.map(async (name) => {
      const probe = PROBES[name];
      if (probe === undefined)
        throw new Error(`unknown service ${name}; known: ${Object.keys(PROBES).join(' ')}`);
      const t0 = Date.now();
      try {
        const what = await withTimeout(name, probe(config));
        console.log(`ok ${name}: ${what} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${e instanceof Error ? e.message : String(e)}`);
      }
    }),
  );
  return failed === 0 ? 0 : 2;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
