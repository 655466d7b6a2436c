// What kafkajs' producing path costs the ingestor's process, with and without
// shared/kafkajs-fast-paths.ts (its CRC-32C and per-partition grouping replaced), side by side:
// child processes alternate (the replacement must be installed before kafkajs loads, so each
// variant runs in a process of its own), each producing the ingestor's two kinds of traffic to the
// local broker: one record per pushed vector (idempotent producer, ~250-byte JSON keyed by entity,
// sent in requests of up to 512 KiB) and training rows packed as 64 KiB JSON Lines records.
//
//   eval "$(scripts/stack env)"; npx tsx loadtest/kafkajs-produce-bench.ts [--messages 200000] [--rounds 3]
//     [--baseline DIR]
// Prints per variant the median CPU per message and messages per second over the rounds, and
// their ratios (fast / plain). --baseline DIR adds a third variant, the fast paths of another
// checkout (e.g. `git worktree add --detach /tmp/wt-base HEAD`, node_modules linked in): before
// and after a change to them, in the same run.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '3' },
    child: { type: 'string' },
    topic: { type: 'string' },
    baseline: { type: 'string' },
  },
});
const MESSAGES = Number(args.messages);

interface Figures {
  cpuUsPerMessage: number;
  messagesPerSecond: number;
}

if (args.child) {
  // Before kafkajs loads (every kafkajs import below is dynamic, after this).
  if (args.child !== 'plain') {
    const module =
      args.child === 'fast'
        ? '../shared/kafkajs-fast-paths.ts'
        : pathToFileURL(join(resolve(args.child), 'shared/kafkajs-fast-paths.ts')).href;
    const { fastPaths } = (await import(module)) as typeof import('../shared/kafkajs-fast-paths.ts');
    if (!fastPaths.active) throw new Error(`fast paths inactive (${args.child}): ${fastPaths.reason}`);
  }
  const { Kafka, logLevel } = await import('kafkajs');
  const { kafkaOptions } = await import('../shared/config/clients.ts');
  const { loadConfig } = await import('../shared/config/index.ts');
  const { keyHashPartitioner } = await import('../shared/kafka-partitioner.ts');
  const { sendChunked } = await import('../shared/send-chunked.ts');
  const topic = args.topic!;
  const kafka = new Kafka({
    ...kafkaOptions(loadConfig({ argv: [] }), 'produce-bench'),
    logLevel: logLevel.NOTHING,
  });
  const vectors = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: keyHashPartitioner,
  });
  const rows = kafka.producer({ createPartitioner: keyHashPartitioner });
  await Promise.all([vectors.connect(), rows.connect()]);
  const vector = (i: number) =>
    `{"view":"user_transaction_features","entity":"${i % 50_000}","as_of":"2026-11-27T03:00:00.${String(i % 1000).padStart(3, '0')}Z","features":{"transaction_count_1h":${i % 7},"transaction_count_24h":${i % 31},"avg_transaction_amount_7d":${(i * 1.37) % 500},"avg_transaction_amount_30d":${(i * 0.91) % 400},"max_transaction_amount_7d":${i % 900},"distinct_merchant_count_7d":${i % 13}},"definitions_hash":"0123456789abcdef"}`;
  const run = async (n: number) => {
    for (let from = 0; from < n; from += 10_000) {
      const batch = Array.from({ length: Math.min(10_000, n - from) }, (_, k) => from + k);
      const vectorMessages = batch.map((i) => ({ key: String(i % 50_000), value: vector(i) }));
      // Rows: the same lines packed into 64 KiB records, one key per source partition.
      const records: { key: string; value: string }[] = [];
      let lines: string[] = [];
      let bytes = 0;
      for (const m of vectorMessages) {
        if (bytes + m.value.length > 64 * 1024) {
          records.push({ key: `source/${records.length % 6}`, value: lines.join('\n') });
          lines = [];
          bytes = 0;
        }
        lines.push(m.value);
        bytes += m.value.length + 1;
      }
      if (lines.length > 0) records.push({ key: `source/${records.length % 6}`, value: lines.join('\n') });
      await Promise.all([
        sendChunked(vectors, `${topic}.vectors`, vectorMessages),
        sendChunked(rows, `${topic}.rows`, records),
      ]);
    }
  };
  await run(Math.min(20_000, MESSAGES)); // warm-up: JIT, connections, metadata
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await run(MESSAGES);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all([vectors.disconnect(), rows.disconnect()]);
  const figures: Figures = {
    cpuUsPerMessage: (cpu.user + cpu.system) / MESSAGES,
    messagesPerSecond: MESSAGES / seconds,
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const { Kafka, logLevel } = await import('kafkajs');
  const { kafkaOptions } = await import('../shared/config/clients.ts');
  const { loadConfig } = await import('../shared/config/index.ts');
  const kafka = new Kafka({
    ...kafkaOptions(loadConfig({ argv: [] }), 'produce-bench'),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `produce-bench-${randomUUID().slice(0, 8)}`;
  const { createServedTopics } = await import('../shared/kafka-topics.ts');
  await createServedTopics(admin, [
    { topic: `${topic}.vectors`, numPartitions: 6 },
    { topic: `${topic}.rows`, numPartitions: 6 },
  ]);
  // A variant is what the child is told: plain, fast, or the baseline checkout's directory.
  const variants = ['plain', 'fast', ...(args.baseline === undefined ? [] : [resolve(args.baseline)])];
  const results = new Map<string, Figures[]>(variants.map((v) => [v, []]));
  try {
    for (let round = 1; round <= Number(args.rounds); round++)
      for (const variant of round % 2 === 1 ? variants : [...variants].reverse()) {
        process.stderr.write(`round ${round}: ${variant} ...\n`);
        const out = execFileSync(
          process.execPath,
          [
            '--import',
            'tsx',
            'loadtest/kafkajs-produce-bench.ts',
            '--child',
            variant,
            '--topic',
            topic,
            '--messages',
            String(MESSAGES),
          ],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
        );
        results.get(variant)!.push(JSON.parse(out.trim().split('\n').pop()!) as Figures);
      }
  } finally {
    await admin.deleteTopics({ topics: [`${topic}.vectors`, `${topic}.rows`] }).catch(() => {});
    await admin.disconnect();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const cpu = (v: string) => median(results.get(v)!.map((r) => r.cpuUsPerMessage));
  const rate = (v: string) => median(results.get(v)!.map((r) => r.messagesPerSecond));
  const each = (v: string) =>
    results
      .get(v)!
      .map((r) => r.cpuUsPerMessage.toFixed(2))
      .join(' / ');
  const line = (label: string, v: string) =>
    `  ${label.padEnd(23)} ${cpu(v).toFixed(2)} µs CPU per message (rounds ${each(v)}), ${Math.round(rate(v)).toLocaleString('en-US')} messages/s`;
  const ratio = (label: string, v: string, base: string) =>
    `  ${label.padEnd(23)} CPU ${(cpu(v) / cpu(base)).toFixed(2)}, rate ${(rate(v) / rate(base)).toFixed(2)}`;
  console.log(
    `kafkajs producing ${MESSAGES.toLocaleString('en-US')} vectors (one record each) and the same as 64 KiB row records, ${args.rounds} rounds alternating`,
  );
  console.log(line('kafkajs as shipped:', 'plain'));
  console.log(line('with the fast paths:', 'fast'));
  console.log(ratio('ratio fast / plain:', 'fast', 'plain'));
  if (args.baseline !== undefined) {
    const base = variants[2]!;
    console.log(line(`baseline's fast paths (${args.baseline}):`, base));
    console.log(ratio('ratio fast / baseline:', 'fast', base));
  }
}
