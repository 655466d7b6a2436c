// Talks to the real local stack (scripts/stack start) through the libraries Tessera uses.
// Every run uses its own topic, key prefix and bucket, and removes them afterwards.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { type Admin, Kafka, logLevel, Partitioners } from 'kafkajs';
import { kafkaOptions, redisOptions, s3Options, topicName } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { createReadyTopics } from '../support/topics.ts';

const config = loadConfig({ argv: [] });
const runId = `${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`;
const TEST_TIMEOUT = 60_000;
// Hooks get their own limit: node:test hooks have none by default, and a hook stuck on a dead
// service would hang the whole run.
const HOOK = { timeout: 30_000 };

/** Fails fast, naming the service and the variable, when nothing listens at host:port. */
async function assertReachable(service: string, variable: string, host: string, port: number): Promise<void> {
  const ok = await new Promise<boolean>((resolve) => {
    const socket = connect({ host, port });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(3000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
  if (!ok) {
    throw new Error(
      `${service} is not reachable at ${host}:${port} (${variable}); start the stack: scripts/stack start`,
    );
  }
}

describe('kafka (kafkajs)', { timeout: TEST_TIMEOUT }, () => {
  // kafkajs logs retriable errors (a fresh broker's 'coordinator is loading') at ERROR; failures
  // still surface as thrown errors, so keep its own logs out of the test output.
  const kafka = new Kafka({ ...kafkaOptions(config, `tessera-test-${runId}`), logLevel: logLevel.NOTHING });
  const topic = topicName(config, `tessera-test-${runId}`);
  const groupId = `tessera-test-${runId}`;
  let admin: Admin | undefined;

  before(async () => {
    const [host, port] = (config.kafkaBrokers[0] ?? '').split(':');
    await assertReachable('Kafka', 'TESSERA_KAFKA_BROKERS', host ?? '', Number(port));
    admin = kafka.admin();
    await admin.connect();
    await createReadyTopics(kafka, [{ topic, numPartitions: 3 }]);
  }, HOOK);

  after(async () => {
    if (admin === undefined) return; // before() failed: nothing was created
    await admin.deleteTopics({ topics: [topic] });
    await admin.deleteGroups([groupId]).catch(() => {});
    const left = await admin.listTopics();
    await admin.disconnect();
    assert.ok(!left.includes(topic), `topic ${topic} was deleted`);
  }, HOOK);

  it('delivers keyed events in order per key across partitions', async () => {
    const events = Array.from({ length: 30 }, (_, i) => ({
      user_id: (i % 5) + 1,
      seq: i,
      amount: 10 + i,
    }));
    const producer = kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    await producer.send({
      topic,
      messages: events.map((e) => ({ key: String(e.user_id), value: JSON.stringify(e) })),
    });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const seen: { partition: number; user_id: number; seq: number }[] = [];
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            const e = JSON.parse(message.value?.toString() ?? '{}') as { user_id: number; seq: number };
            seen.push({ partition, user_id: e.user_id, seq: e.seq });
            if (seen.length === events.length) resolve();
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();

    assert.equal(seen.length, events.length);
    for (let user = 1; user <= 5; user++) {
      const mine = seen.filter((s) => s.user_id === user);
      assert.equal(new Set(mine.map((s) => s.partition)).size, 1, `user ${user} stays on one partition`);
      const seqs = mine.map((s) => s.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        `user ${user} events arrive in order`,
      );
    }
  });
});

describe('redis (ioredis)', { timeout: TEST_TIMEOUT }, () => {
  const prefix = `tessera-test:${runId}:`;
  let redis: Redis;
  let connected = false;

  before(async () => {
    const opts = redisOptions(config);
    await assertReachable('Redis', 'TESSERA_REDIS_URL', opts.host ?? '', opts.port ?? 6379);
    redis = new Redis({ ...opts, keyPrefix: prefix, lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    connected = true;
  }, HOOK);

  after(async () => {
    if (!connected) {
      redis?.disconnect();
      return; // before() failed: nothing was created
    }
    // keyPrefix does not apply to SCAN patterns: scan with a raw client.
    const raw = new Redis({ ...redisOptions(config), lazyConnect: true });
    await raw.connect();
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length > 0) await raw.del(...keys);
    assert.deepEqual(await raw.keys(`${prefix}*`), []);
    raw.disconnect();
    redis.disconnect();
  }, HOOK);

  it("reaches the same Redis over the stack's Unix socket with a unix:// TESSERA_REDIS_URL", async () => {
    // scripts/stack starts Redis with a socket beside its data (scripts/lib/redis.sh); Redis says where.
    const [, path] = (await redis.config('GET', 'unixsocket')) as [string, string];
    assert.ok(path, 'the stack Redis has no Unix socket: is the stack dir path over 100 bytes?');
    await redis.set('via-tcp', 'seen over tcp');
    const overSocket = new Redis({
      ...redisOptions(
        loadConfig({ env: { TESSERA_REDIS_URL: `unix://${path}?db=${redisOptions(config).db}` }, argv: [] }),
      ),
      keyPrefix: prefix,
      lazyConnect: true,
    });
    try {
      await overSocket.connect();
      assert.equal(await overSocket.get('via-tcp'), 'seen over tcp');
      // CLIENT INFO flags a Unix socket connection with U.
      assert.match(String(await overSocket.client('INFO')), /\bflags=\S*U/);
    } finally {
      overSocket.disconnect();
    }
  });

  it('pipelines counter updates per user and reads them back', async () => {
    const pipeline = redis.pipeline();
    for (const user of [1, 1, 2, 1, 3]) pipeline.hincrby('counts', String(user), 1);
    pipeline.expire('counts', 60);
    const results = await pipeline.exec();
    assert.ok(results?.every(([err]) => err === null));
    assert.deepEqual(await redis.hgetall('counts'), { '1': '3', '2': '1', '3': '1' });
    const ttl = await redis.ttl('counts');
    assert.ok(ttl > 0 && ttl <= 60, `ttl ${ttl}`);
  });

  it('runs a Lua script atomically on one hash-tagged key', async () => {
    const script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    assert.equal(await redis.eval(script, 1, '{user:7}:n', 5), 5);
    assert.equal(await redis.eval(script, 1, '{user:7}:n', 2), 7);
  });

  it('runs with AOF on and noeviction, as scripts/stack configures it', async () => {
    assert.deepEqual(await redis.config('GET', 'appendonly'), ['appendonly', 'yes']);
    assert.deepEqual(await redis.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction']);
  });
});

describe('s3 (@aws-sdk/client-s3)', { timeout: TEST_TIMEOUT }, () => {
  const s3 = new S3Client(s3Options(config));
  const Bucket = `tessera-test-${runId}`;
  let created = false;

  before(async () => {
    const url = new URL(config.s3Endpoint);
    await assertReachable('S3', 'TESSERA_S3_ENDPOINT', url.hostname, Number(url.port || 80));
    await s3.send(new CreateBucketCommand({ Bucket }));
    created = true;
  }, HOOK);

  after(async () => {
    if (!created) {
      s3.destroy();
      return;
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket }));
    for (const o of listed.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket, Key: o.Key }));
    await s3.send(new DeleteBucketCommand({ Bucket }));
    await assert.rejects(s3.send(new HeadBucketCommand({ Bucket })), 'bucket was deleted');
    s3.destroy();
  }, HOOK);

  it('puts, lists and gets objects under a version prefix', async () => {
    const body = JSON.stringify({ rows: 2, view: 'user_transactions' });
    await s3.send(new PutObjectCommand({ Bucket, Key: 'view/v_1/metadata.json', Body: body }));
    await s3.send(new PutObjectCommand({ Bucket, Key: 'view/v_1/features.csv', Body: 'user_id,n\n1,3\n' }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'view/v_1/' }));
    assert.deepEqual((listed.Contents ?? []).map((o) => o.Key).sort(), [
      'view/v_1/features.csv',
      'view/v_1/metadata.json',
    ]);
    const got = await s3.send(new GetObjectCommand({ Bucket, Key: 'view/v_1/metadata.json' }));
    assert.equal(await got.Body?.transformToString(), body);
  });

  it('lists only real objects, no directory placeholders', async () => {
    // jclouds' deprecated `filesystem` backend listed `view/` and `view/v_1/` as objects and took
    // 10 s to delete each; scripts/stack runs `filesystem-nio2`, which does not.
    const listed = await s3.send(new ListObjectsV2Command({ Bucket }));
    assert.deepEqual((listed.Contents ?? []).map((o) => o.Key).sort(), [
      'view/v_1/features.csv',
      'view/v_1/metadata.json',
    ]);
  });

  it('answers NoSuchKey for a missing object', async () => {
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket, Key: 'missing' })), { name: 'NoSuchKey' });
  });
});
