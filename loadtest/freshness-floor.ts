// The freshness floor of ingest-bench.ts: the least a Kafka -> Redis ingestor in Node can do with
// each event, timed the way the ingestor's event -> Redis histogram times it. It uses the ingestor's
// kafkajs consumer settings (6 partitions consumed concurrently). Per fetched batch it JSON.parses
// every value, writes one Redis key per event in one pipeline (SET with a 10-minute expiry, so
// nothing is left behind), and takes the time from each record's produce timestamp to the
// pipeline's reply. It keeps no state, computes no features, produces nothing and commits no
// offsets. Run by ingest-bench.ts at the same rate, right after the ingestor's freshness run: what
// this machine allows at that moment, beside what the ingestor achieved.
//
//   npx tsx loadtest/freshness-floor.ts --topic T --messages N [--skip S]
// Prints "ready" once its group has partitions, then one JSON line after N records:
//   {"p50": ms, "p99": ms, "within_25ms", "within_50ms": shares, "cpu_us_per_record", "count"},
//   over the records after the first S (the warm-up).
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaOptions, redisOptions } from '../shared/config/clients.ts';
import { loadConfig } from '../shared/config/index.ts';

const { values: args } = parseArgs({
  options: {
    topic: { type: 'string' },
    messages: { type: 'string' },
    skip: { type: 'string', default: '0' },
  },
});
if (!args.topic || !args.messages)
  throw new Error('usage: freshness-floor.ts --topic T --messages N [--skip S]');
const total = Number(args.messages);
const skip = Number(args.skip);
const config = loadConfig({ argv: [] });
const redis = new Redis(redisOptions(config));
const kafka = new Kafka({ ...kafkaOptions(config, 'tessera-freshness-floor'), logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({
  groupId: `tessera-freshness-floor-${randomUUID()}`,
  allowAutoTopicCreation: false,
  sessionTimeout: config.kafkaSessionTimeoutMs,
  heartbeatInterval: config.kafkaHeartbeatMs,
});
const keyPrefix = `${config.redisKeyPrefix}:freshness-floor:`;
await consumer.connect();
await consumer.subscribe({ topic: args.topic, fromBeginning: true });
consumer.on(consumer.events.GROUP_JOIN, () => process.stdout.write('ready\n'));

const latencies = new Float64Array(Math.max(0, total - skip));
let seen = 0;
let cpuAtSkip = 0;
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const done = new Promise<void>((resolve) => {
  void consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: 6,
    eachBatch: async ({ batch }) => {
      const pipeline = redis.pipeline();
      const produced: number[] = [];
      for (const m of batch.messages) {
        if (m.value === null) continue;
        const event = JSON.parse(m.value.toString()) as { user_id?: unknown };
        pipeline.set(`${keyPrefix}${String(event.user_id)}`, m.value, 'EX', 600);
        produced.push(Number(m.timestamp));
      }
      await pipeline.exec();
      const now = Date.now();
      for (const at of produced) {
        if (seen === skip) cpuAtSkip = cpu();
        if (seen >= skip && seen < total) latencies[seen - skip] = now - at;
        seen++;
      }
      if (seen >= total) resolve();
    },
  });
});
await done;
const cpuUs = ((cpu() - cpuAtSkip) / latencies.length) * 1e6;
await consumer.disconnect();
redis.disconnect();
const sorted = latencies.sort();
// Nearest rank, as server-bench.ts.
const at = (q: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
const within = (ms: number) => sorted.filter((x) => x <= ms).length / sorted.length;
process.stdout.write(
  `${JSON.stringify({
    p50: at(0.5),
    p99: at(0.99),
    within_25ms: within(25),
    within_50ms: within(50),
    cpu_us_per_record: cpuUs,
    count: sorted.length,
  })}\n`,
);
