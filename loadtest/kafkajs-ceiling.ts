// What kafkajs itself can consume on this machine: a consumer group with the ingestor's consumer
// settings that only counts the records (`--parse`: and JSON.parses each value, the least any
// JSON ingestor does). Run by ingest-bench.ts in its own process, beside the broker's tool and the
// ingestor, on the same topic: the ingestor cannot beat its Kafka client, so this is its ceiling.
//
//   npx tsx loadtest/kafkajs-ceiling.ts --topic T --messages N [--parse]
// Prints one JSON line: {"rate": records per second from joining the group to the last record,
//   "cpu_us_per_record": the process's CPU over the same span}. Timed from the join, as the
// broker's ConsumerPerformance does: kafkajs fetches and decodes a whole fetch (~1 MiB per
// partition, tens of thousands of records) before the first batch reaches eachBatch, so timing
// from the first batch counted those records without the time to fetch them (10-20 % too high).
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaOptions } from '../shared/config/clients.ts';
import { loadConfig } from '../shared/config/index.ts';

const { values: args } = parseArgs({
  options: {
    topic: { type: 'string' },
    messages: { type: 'string' },
    parse: { type: 'boolean', default: false },
  },
});
if (!args.topic || !args.messages)
  throw new Error('usage: kafkajs-ceiling.ts --topic T --messages N [--parse]');
const total = Number(args.messages);
const config = loadConfig({ argv: [] });
const kafka = new Kafka({ ...kafkaOptions(config, 'tessera-kafkajs-ceiling'), logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({
  groupId: `tessera-ceiling-${randomUUID()}`,
  sessionTimeout: config.kafkaSessionTimeoutMs,
  heartbeatInterval: config.kafkaHeartbeatMs,
});
await consumer.connect();
await consumer.subscribe({ topic: args.topic, fromBeginning: true });
let seen = 0;
let first = 0;
let cpuFirst = 0;
let parsed = 0;
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
consumer.on(consumer.events.GROUP_JOIN, () => {
  first = performance.now();
  cpuFirst = cpu();
});

const done = new Promise<{ rate: number; cpu_us_per_record: number }>((resolve) => {
  void consumer.run({
    partitionsConsumedConcurrently: 6,
    eachBatch: async ({ batch }) => {
      if (args.parse) for (const m of batch.messages) if (m.value && JSON.parse(m.value.toString())) parsed++;
      seen += batch.messages.length;
      if (seen >= total) {
        const seconds = (performance.now() - first) / 1000;
        resolve({ rate: Math.round(seen / seconds), cpu_us_per_record: ((cpu() - cpuFirst) / seen) * 1e6 });
      }
    },
  });
});
const result = await done;
await consumer.disconnect();
process.stdout.write(`${JSON.stringify({ ...result, parsed })}\n`);
