// The README demo, part 2: the real pipeline so far. Generated fraud-like transactions (shifted so
// the stream ends now) go to Kafka through the producer, a real ingestor process applies them with
// the engine to Redis, a few users' six reference features are read back from Redis, and the online
// server answers the same users over HTTP (curl), and the flusher's offline store is listed on S3
// and read back with pandas.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { planMessages, produceEvents } from '../services/producer/produce.ts';
import { kafkaOptions, redisOptions } from '../shared/config/clients.ts';
import { loadConfig } from '../shared/config/index.ts';
import { loadDefinitionsFile } from '../shared/definitions/load.ts';
import { planView, readFeatures } from '../shared/engine/index.ts';
import { openConfiguredStore } from '../shared/offline/configured-store.ts';
import { RedisStateStore } from '../shared/state-store/redis-state-store.ts';

/** The services the demo started: stopped if it fails, so none is left consuming on its own. */
const children: ChildProcess[] = [];
function service(file: string, env: NodeJS.ProcessEnv): ChildProcess & { stdout: NodeJS.ReadableStream } {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return child as ChildProcess & { stdout: NodeJS.ReadableStream };
}

const EVENTS = 20_000;
const runId = `demo-${Date.now().toString(36)}`;
const env = {
  TESSERA_TOPIC_PREFIX: `${runId}.`,
  TESSERA_INGESTOR_GROUP: runId,
  TESSERA_REDIS_KEY_PREFIX: runId,
  TESSERA_METRICS_PORT: '0',
  TESSERA_INGEST_CLOCK: 'event',
  TESSERA_LOG_LEVEL: 'warn',
  TESSERA_FLUSHER_GROUP: `${runId}-flusher`,
  TESSERA_FLUSH_INTERVAL_MS: '3000',
  TESSERA_OFFLINE_STORE: `s3://${process.env.TESSERA_S3_BUCKET ?? 'tessera-offline'}/${runId}`,
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

  const ingestor = service('services/ingestor/main.ts', env);
  ingestor.stdout.on('data', (b: Buffer) => process.stdout.write(`  [ingestor] ${b}`));
  // The flusher runs beside it: raw events and training rows to the offline store on S3.
  const flusher = service('services/flusher/main.ts', env);
  flusher.stdout.on('data', (b: Buffer) => process.stdout.write(`  [flusher] ${b}`));
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
  await showOfflineStore(flusher, kafka, topic, summary.sent);
  say(
    `state stays in Redis under ${runId}:* (TTL ${(plan.view.ttlMs / 86_400_000).toFixed(1)} days); topics ${runId}.*`,
  );
}

/** Waits for the flusher to pass the last event, stops it (it flushes on SIGTERM), lists S3, reads with pandas. */
async function showOfflineStore(
  flusher: ReturnType<typeof spawn>,
  kafka: Kafka,
  topic: string,
  total: number,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const started = Date.now();
  for (;;) {
    const [c] = await admin.fetchOffsets({ groupId: env.TESSERA_FLUSHER_GROUP, topics: [topic] });
    const done = (c?.partitions ?? []).reduce((s, p) => s + Math.max(0, Number(p.offset)), 0);
    if (done >= total) break;
    if (Date.now() - started > 120_000)
      throw new Error(`the flusher wrote only ${done} of ${total} events in 2 minutes`);
    await new Promise((r) => setTimeout(r, 500));
  }
  await admin.disconnect();
  flusher.kill('SIGTERM');
  await new Promise((r) => flusher.once('exit', r));
  const store = openConfiguredStore(loadConfig({ argv: [], env: { ...process.env, ...env } }));
  const view = 'user_transaction_features';
  const latest = Buffer.from(await store.get(`${view}/latest/_VERSION`))
    .toString()
    .trim();
  const version = latest.split(/\s/)[0]!;
  say(
    `the flusher wrote the offline store ${store.location} (versions are increments; latest/ names the newest):`,
  );
  const show = async (prefix: string) => {
    for (const o of await store.list(prefix))
      console.log(`  ${String(o.size).padStart(9)}  ${store.location}/${o.key}`);
  };
  await show(`${view}/${version}/`);
  await show(`${view}/latest/`);
  const raw = await store.list('raw/');
  say(`and the raw event log: ${raw.length} parquet files under ${store.location}/raw/ (by source and day)`);
  const python = process.env.TESSERA_PYTHON;
  if (!python) throw new Error('TESSERA_PYTHON is not set: run the demo through scripts/demo');
  const local = `/tmp/${runId}-features.parquet`;
  writeFileSync(local, await store.get(`${view}/latest/features.parquet`));
  say(`pandas reads ${view}/latest/features.parquet (a copy of ${version}):`);
  const script = [
    'import sys, pandas as pd',
    'df = pd.read_parquet(sys.argv[1])',
    'print(df.dtypes.to_string())',
    'print(f"{len(df)} rows, event_timestamp {df.event_timestamp.min()} .. {df.event_timestamp.max()}")',
    "print(df.sort_values('event_timestamp').tail(3).to_string(index=False))",
  ].join('\n');
  const out = execFileSync(python, ['-c', script, local], { encoding: 'utf8' });
  for (const line of out.trimEnd().split('\n')) console.log(`  ${line}`);
  rmSync(local, { force: true });
}

/** Starts the online server on the same state and asks it, with curl, what a model would ask. */
async function queryServer(users: string[]): Promise<void> {
  const token = randomBytes(24).toString('hex');
  const server = service('services/server/main.ts', {
    ...env,
    TESSERA_HTTP_PORT: '0',
    TESSERA_AUTH_TOKEN: token,
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
      // A server that neither listens nor exits must not hold the demo for good.
      setTimeout(() => reject(new Error('the server did not listen within 60 s')), 60_000).unref();
    });
    const body = JSON.stringify({
      feature_service: 'fraud_model_v1',
      entities: { user_id: users.map(Number) },
    });
    const args = [
      '-sS',
      '--max-time',
      '30',
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
    // A server that already exited (before listening) has no exit event to come.
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
  }
}

main().catch((e: unknown) => {
  console.error(`demo FAILED: ${e instanceof Error ? e.message : String(e)}`);
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  process.exit(1);
});
