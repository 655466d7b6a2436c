// The README demo, part 2: the real pipeline so far. Generated fraud-like transactions (shifted so
// the stream ends now) go to Kafka through the producer, a real ingestor process applies them with
// the engine to Redis, a few users' six reference features are read back from Redis, and the online
// server answers the same users over HTTP (curl).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { planMessages, produceEvents } from '../services/producer/produce.ts';
import { kafkaOptions, redisOptions } from '../shared/config/clients.ts';
import { loadConfig } from '../shared/config/index.ts';
import { loadDefinitionsFile } from '../shared/definitions/load.ts';
import { planView, readFeatures } from '../shared/engine/index.ts';
import { RedisStateStore } from '../shared/state-store/redis-state-store.ts';

const EVENTS = 20_000;
const runId = `demo-${Date.now().toString(36)}`;
const env = {
  TESSERA_TOPIC_PREFIX: `${runId}.`,
  TESSERA_INGESTOR_GROUP: runId,
  TESSERA_REDIS_KEY_PREFIX: runId,
  TESSERA_METRICS_PORT: '0',
  TESSERA_INGEST_CLOCK: 'event',
  TESSERA_LOG_LEVEL: 'warn',
};
const config = loadConfig({ argv: [], env: { ...process.env, ...env } });
const say = (msg: string) => console.log(`demo: ${msg}`);

async function main(): Promise<void> {
  const definitions = loadDefinitionsFile(config.definitions);
  const plan = planView(definitions.views[0]!);
  const topic = `${config.topicPrefix}${definitions.sources[0]!.topic}`;
  const stream = {
    source: definitions.sources[0]!,
    definitionsDir: dirname(definitions.file),
    events: EVENTS,
    seed: 7,
    nowBased: true,
  };
  const summary = await produceEvents({
    ...stream,
    config,
    topic,
    rate: 0,
    createTopic: true,
    partitions: 6,
  });
  say(`produced ${summary.sent} generated transactions (JSON, ending now) to ${topic}`);

  const ingestor = spawn(process.execPath, ['--import', 'tsx', 'services/ingestor/main.ts'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  ingestor.stdout.on('data', (b: Buffer) => process.stdout.write(`  [ingestor] ${b}`));
  const kafka = new Kafka({ ...kafkaOptions(config, runId), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const started = Date.now();
  for (;;) {
    const [c] = await admin.fetchOffsets({ groupId: config.ingestorGroup, topics: [topic] });
    const done = (c?.partitions ?? []).reduce((s, p) => s + Math.max(0, Number(p.offset)), 0);
    if (done >= summary.sent) break;
    if (Date.now() - started > 120_000)
      throw new Error(`ingestor applied only ${done} of ${summary.sent} in 2 minutes`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await admin.disconnect();
  say(
    `the ingestor applied all ${summary.sent} events in ${((Date.now() - started) / 1000).toFixed(1)} s (including its start)`,
  );
  ingestor.kill('SIGTERM');
  await new Promise((r) => ingestor.once('exit', r));

  const redis = new Redis(redisOptions(config));
  const store = new RedisStateStore(redis, plan, config.redisKeyPrefix);
  const counts = new Map<number, number>();
  for (const e of planMessages(stream).events) counts.set(e.user_id, (counts.get(e.user_id) ?? 0) + 1);
  const busiest = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([u]) => String(u));
  const states = await store.loadMany(busiest);
  say(
    `the busiest users' features as of just after their last transaction, read from Redis (${store.key(busiest[0]!)} ...):`,
  );
  for (const user of busiest) {
    const state = states.get(user)!.state;
    const last = state.events[state.events.length - 1]!.ts;
    const values = readFeatures(plan, state, last + 1);
    const shown = plan.features.map(
      (f, i) =>
        `${f.def.name}=${typeof values[i] === 'number' ? Number((values[i] as number).toFixed(2)) : values[i]}`,
    );
    say(`  user_id ${user} (last at ${new Date(last).toISOString()}): ${shown.join(', ')}`);
  }
  redis.disconnect();
  await queryServer(busiest);
  say(
    `state stays in Redis under ${runId}:* (TTL ${(plan.view.ttlMs / 86_400_000).toFixed(1)} days); topics ${runId}.*`,
  );
}

/** Starts the online server on the same state and asks it, with curl, what a model would ask. */
async function queryServer(users: string[]): Promise<void> {
  const token = randomBytes(24).toString('hex');
  const server = spawn(process.execPath, ['--import', 'tsx', 'services/server/main.ts'], {
    env: { ...process.env, ...env, TESSERA_HTTP_PORT: '0', TESSERA_AUTH_TOKEN: token },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /server listening on (\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      server.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
    });
    const body = JSON.stringify({
      feature_service: 'fraud_model_v1',
      entities: { user_id: users.map(Number) },
    });
    const args = [
      '-sS',
      '-X',
      'POST',
      `${url}/get-online-features`,
      '-H',
      'content-type: application/json',
      '-H',
      `authorization: Bearer ${token}`,
      '-d',
      body,
    ];
    say(`the online server answers on ${url} (token in TESSERA_AUTH_TOKEN); asking it with curl:`);
    console.log(
      `  $ curl ${args.map((a) => (a === `authorization: Bearer ${token}` ? "'authorization: Bearer $TOKEN'" : /[\s{"]/.test(a) ? `'${a}'` : a)).join(' ')}`,
    );
    const answer = JSON.parse(execFileSync('curl', args, { encoding: 'utf8' })) as {
      metadata: { feature_names: string[] };
      results: { values: unknown[]; statuses: string[] }[];
    };
    console.log(`  ${JSON.stringify(answer).slice(0, 400)}...`);
    say(
      'the same answer as a table (Feast layout: one result per feature, one value per user). Values are as of now: ' +
        "a user whose last transaction is days old has decayed windows, unlike the 'just after' values above",
    );
    answer.metadata.feature_names.forEach((name, i) => {
      const r = answer.results[i]!;
      console.log(
        `  ${name.padEnd(28)} ${r.values.map((v, j) => `${typeof v === 'number' ? Number(v.toFixed(2)) : v} (${r.statuses[j]})`).join('  ')}`,
      );
    });
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
}

main().catch((e: unknown) => {
  console.error(`demo FAILED: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
