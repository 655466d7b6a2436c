// The offline store the flusher writes, end to end through the real ingestor: the raw event log
// and each version hold exactly one row per source offset, the rows equal the engine's training
// rows computed offline from the same events, latest/ names the newest complete version, entity
// snapshots exist, and pandas/pyarrow read every file with the right dtypes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import { featureTableColumns, rawEventColumns } from '../../shared/offline/feature-columns.ts';
import { stateKey } from '../../shared/state-store/redis-state-store.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import {
  cleanupStore,
  drainThroughIngestorAndFlusher,
  expectedRows,
  newFlusherRun,
  placeEvents,
  producePlacedEvents,
  readTables,
} from '../support/flusher-process.ts';
import { cleanupRun, createSourceTopic } from '../support/ingestor-process.ts';
import { scrapeMetrics } from '../support/ops-endpoint.ts';

const PARTITIONS = 3;
const run = newFlusherRun({ TESSERA_FLUSH_INTERVAL_MS: '1500' });
const definitions = loadDefinitionsFile(run.config.definitions);
const placed = placeEvents(
  generateFraudEvents({ events: 6000, seed: 11, partitions: PARTITIONS }),
  PARTITIONS,
);
const HALF = placed.length / 2;
// An undecodable record goes to partitions 0 and 1 between the two halves: a dead letter in
// mid-stream, one offset on from there on.
const events = placed.map((e, i) => (i >= HALF && e.partition < 2 ? { ...e, offset: e.offset + 1 } : e));
const expected = expectedRows(run.view, events);
const VERSION_DIR = /^user_transaction_features\/(v_\d{8}T\d{6})\/(.+)$/;

describe('flusher writes the offline store layout', { timeout: 150_000 }, () => {
  let metricsText = '';
  let exitCode: number | null = null;
  let output = '';

  before(async () => {
    await createSourceTopic(run, PARTITIONS);
    await producePlacedEvents(run, events.slice(0, HALF));
    const producer = run.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    // Two records that do not decode: dead letters, never in the raw log, no training row.
    await producer.send({
      topic: run.topic,
      messages: [{ key: 'x', partition: 0, value: '{"user_id": "nope"}' }],
    });
    await producer.send({ topic: run.topic, messages: [{ key: 'y', partition: 1, value: 'not json' }] });
    await producer.disconnect();
    await producePlacedEvents(run, events.slice(HALF));

    // A state that does not decode (another layout, or corrupt): every snapshot leaves it out,
    // and says so in its metadata and a metric, for the restore and the operator.
    await run.redis.hset(
      stateKey(run.config.redisKeyPrefix, run.view.name, '999999999'),
      'v',
      '1',
      's',
      Buffer.from('not a state'),
    );
    const { flusher, exits } = await drainThroughIngestorAndFlusher(run, 60_000, async (f) => {
      metricsText = await scrapeMetrics(f.output());
    });
    exitCode = exits[1];
    output = flusher.output();
  });
  after(async () => {
    await cleanupStore(run);
    await cleanupRun(run);
  });

  it('stops gracefully on SIGTERM and exposes its metrics', () => {
    assert.equal(exitCode, 0, output.slice(-3000));
    assert.doesNotMatch(output, /runs without Tessera's faster/);
    const last = /^tessera_flusher_last_success_timestamp_seconds (\S+)$/m.exec(metricsText)?.[1];
    assert.ok(Number(last) > Date.now() / 1000 - 60, `last success ${last}`);
    assert.match(
      metricsText,
      new RegExp(`tessera_flusher_rows_written_total\\{view="${run.view.name}"\\} ${expected.size}`),
    );
  });

  it('writes every valid source event once to raw/<source>/date=YYYY-MM-DD/part-p<P>-<first>-<last>.parquet', async () => {
    const files = await readTables(run.store, 'raw/', (k) => k.endsWith('.parquet'));
    assert.ok(files.length > 0);
    const seen = new Map<string, Record<string, unknown>>();
    for (const f of files) {
      const m = /^raw\/transactions\/date=(\d{4}-\d{2}-\d{2})\/part-p(\d+)-(\d+)-(\d+)\.parquet$/.exec(f.key);
      assert.ok(m, `raw file name ${f.key}`);
      assert.deepEqual(
        Object.keys(f.columns),
        rawEventColumns(definitions.sources[0]!).map((c) => c.name),
      );
      for (let i = 0; i < f.rows; i++) {
        const row = Object.fromEntries(Object.entries(f.columns).map(([k, v]) => [k, v[i]]));
        assert.equal(row.source_partition, Number(m[2]));
        assert.ok(Number(row.source_offset) >= Number(m[3]) && Number(row.source_offset) <= Number(m[4]));
        assert.equal(new Date(Number(row.event_timestamp)).toISOString().slice(0, 10), m[1]);
        const id = `${row.source_partition}:${row.source_offset}`;
        assert.ok(!seen.has(id), `source offset ${id} written twice`);
        seen.set(id, row);
      }
    }
    assert.equal(seen.size, events.length);
    for (const e of events) {
      const row = seen.get(`${e.partition}:${e.offset}`);
      assert.ok(row, `event ${e.partition}:${e.offset} missing from the raw log`);
      assert.equal(row.user_id, BigInt(e.user_id));
      assert.equal(Number(row.event_timestamp), e.event_timestamp);
      assert.equal(row.amount, e.amount);
      assert.equal(row.merchant_id, e.merchant_id);
    }
  });

  it("writes one training row per applied event, equal to the engine's rows computed offline", async () => {
    const files = await readTables(run.store, `${run.view.name}/v_`, (k) => k.endsWith('/features.parquet'));
    assert.ok(files.length >= 1);
    const names = featureTableColumns(run.view).map((c) => c.name);
    const seen = new Set<string>();
    let mismatches = 0;
    for (const f of files) {
      assert.deepEqual(Object.keys(f.columns), names);
      for (let i = 0; i < f.rows; i++) {
        const id = `${f.columns.source_partition![i]}:${f.columns.source_offset![i]}`;
        assert.ok(!seen.has(id), `row of source offset ${id} written twice`);
        seen.add(id);
        const want = expected.get(id);
        assert.ok(want, `row ${id} is not an expected training row`);
        assert.equal(f.columns.user_id![i], BigInt(want.entity));
        assert.equal(Number(f.columns.event_timestamp![i]), want.ts);
        run.view.features.forEach((feat, j) => {
          const got = f.columns[feat.name]![i];
          const value = typeof got === 'bigint' ? Number(got) : got;
          if (value !== want.values[j] && mismatches++ < 5)
            assert.fail(`${id} ${feat.name}: flushed ${String(value)}, engine ${String(want.values[j])}`);
        });
      }
    }
    assert.equal(seen.size, expected.size);
  });

  it("closes the dead letters' offsets: one written interval per partition, not one per gap", async () => {
    const state = JSON.parse(Buffer.from(await run.store.get('_flusher/state.json')).toString('utf8'));
    const written = state.written[`${run.view.name}/${run.topic}`];
    for (let p = 0; p < PARTITIONS; p++) {
      const last = Math.max(...events.filter((e) => e.partition === p).map((e) => e.offset));
      assert.deepEqual(written[String(p)], [[0, last]], `written offsets of partition ${p}`);
    }
  });

  it('writes features.csv, schema.json and metadata.json beside each features.parquet', async () => {
    const objects = await run.store.list(`${run.view.name}/v_`);
    const byVersion = new Map<string, string[]>();
    for (const o of objects) {
      const m = VERSION_DIR.exec(o.key);
      assert.ok(m, o.key);
      byVersion.set(m[1]!, [...(byVersion.get(m[1]!) ?? []), m[2]!]);
    }
    for (const [version, files] of byVersion) {
      assert.deepEqual(files.sort(), ['features.csv', 'features.parquet', 'metadata.json', 'schema.json']);
      const meta = JSON.parse(
        Buffer.from(await run.store.get(`${run.view.name}/${version}/metadata.json`)).toString(),
      );
      const [table] = await readTables(run.store, `${run.view.name}/${version}/features.parquet`, () => true);
      assert.equal(meta.row_count, table!.rows);
      assert.equal(meta.version, version);
      assert.equal(meta.definitions_hash, definitions.hash);
      assert.ok(meta.feature_stats.transaction_count_1h.max >= 0);
      const csv = Buffer.from(await run.store.get(`${run.view.name}/${version}/features.csv`)).toString();
      assert.equal(csv.trimEnd().split('\n').length, table!.rows + 1);
      const schema = JSON.parse(
        Buffer.from(await run.store.get(`${run.view.name}/${version}/schema.json`)).toString(),
      );
      assert.deepEqual(
        schema.columns.map((c: { name: string; type: string }) => [c.name, c.type]),
        featureTableColumns(run.view).map((c) => [c.name, c.type]),
      );
    }
  });

  it('points latest/_VERSION at the newest version, with its files copied to latest/', async () => {
    const versions = [
      ...new Set((await run.store.list(`${run.view.name}/v_`)).map((o) => VERSION_DIR.exec(o.key)![1]!)),
    ].sort();
    const marker = Buffer.from(await run.store.get(`${run.view.name}/latest/_VERSION`))
      .toString()
      .trim();
    assert.equal(marker, versions.at(-1));
    for (const name of ['metadata.json', 'features.parquet'])
      assert.deepEqual(
        await run.store.get(`${run.view.name}/latest/${name}`),
        await run.store.get(`${run.view.name}/${marker}/${name}`),
      );
  });

  it('writes an entity snapshot holding every entity state', async () => {
    const marker = Buffer.from(await run.store.get(`${run.view.name}/latest/_VERSION`))
      .toString()
      .trim();
    const [snap] = await readTables(
      run.store,
      `${run.view.name}/snapshots/${marker}/entities.parquet`,
      () => true,
    );
    assert.ok(snap);
    // Taken at the last version's flush: entities whose state the ingestor saved by then.
    const users = new Set(events.map((e) => e.user_id)).size;
    assert.ok(snap.rows > users / 2 && snap.rows <= users, `${snap.rows} of ${users} entities`);
    assert.ok((snap.columns.state![0] as Uint8Array).length > 0);
    const meta = JSON.parse(
      Buffer.from(await run.store.get(`${run.view.name}/snapshots/${marker}/metadata.json`)).toString(),
    ) as { entities: number; states_left_out: number };
    assert.equal(meta.entities, snap.rows);
    assert.equal(meta.states_left_out, 1, 'the undecodable state, counted');
    assert.match(
      metricsText,
      new RegExp(`tessera_flusher_snapshot_states_left_out_total\\{view="${run.view.name}"\\} [1-9]`),
    );
  });

  it('rebuilds Redis from the newest snapshot with restore.ts', async () => {
    const marker = Buffer.from(await run.store.get(`${run.view.name}/latest/_VERSION`))
      .toString()
      .trim();
    const [snap] = await readTables(
      run.store,
      `${run.view.name}/snapshots/${marker}/entities.parquet`,
      () => true,
    );
    const keys = await run.redis.keys(`${run.id}:*`);
    await run.redis.del(...keys);
    // A key the restore replaces: its delta records (and anything else) must not outlive it.
    const replaced = stateKey(run.config.redisKeyPrefix, run.view.name, String(snap!.columns.user_id![0]));
    await run.redis.hset(replaced, 'v', '5', 's', 'old', 'd', 'old delta records', 'x', '1');
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'services/flusher/restore.ts', '--view', run.view.name],
      { env: { ...process.env, ...run.env }, timeout: 60_000 },
    );
    assert.match(stdout, new RegExp(`restored ${snap!.rows} entities`));
    assert.match(stderr, /warning: the snapshot left out 1 states that did not decode/);
    assert.deepEqual((await run.redis.hkeys(replaced)).sort(), ['s', 'v']);
    for (let i = 0; i < snap!.rows; i += 97) {
      const key = stateKey(run.config.redisKeyPrefix, run.view.name, String(snap!.columns.user_id![i]));
      const stored = await run.redis.hgetBuffer(key, 's');
      assert.deepEqual(new Uint8Array(stored!), snap!.columns.state![i]);
      assert.ok((await run.redis.pttl(key)) > 0, 'restored keys carry the view TTL');
    }
    // The commands it prints are one per partition, each with its own offset (the form Kafka's
    // tool accepts: `--topic t:p --to-offset n`; no commit at the snapshot: the earliest record).
    const meta = JSON.parse(
      Buffer.from(await run.store.get(`${run.view.name}/snapshots/${marker}/metadata.json`)).toString(),
    ) as { ingestor_offsets: Record<string, string> };
    const admin = run.kafka.admin();
    await admin.connect();
    const low = new Map((await admin.fetchTopicOffsets(run.topic)).map((p) => [String(p.partition), p.low]));
    await admin.disconnect();
    for (const [p, offset] of Object.entries(meta.ingestor_offsets))
      assert.match(
        stdout,
        new RegExp(
          `--reset-offsets --topic ${run.topic}:${p} --to-offset ${offset === '-1' ? low.get(p) : offset} --execute`,
        ),
      );
  });

  it('sets the ingestor group to the snapshot offsets with --reset-offsets, never under a live member', async () => {
    const marker = Buffer.from(await run.store.get(`${run.view.name}/latest/_VERSION`))
      .toString()
      .trim();
    const meta = JSON.parse(
      Buffer.from(await run.store.get(`${run.view.name}/snapshots/${marker}/metadata.json`)).toString(),
    ) as { ingestor_offsets: Record<string, string> };
    const admin = run.kafka.admin();
    await admin.connect();
    // The group's offsets now: the ingestor committed past the snapshot before it stopped.
    const moved = (await admin.fetchOffsets({ groupId: run.config.ingestorGroup, topics: [run.topic] }))[0]!
      .partitions;
    const restore = (...flags: string[]) =>
      promisify(execFile)(
        process.execPath,
        [
          '--import',
          'tsx',
          'services/flusher/restore.ts',
          '--view',
          run.view.name,
          '--reset-offsets',
          ...flags,
        ],
        { env: { ...process.env, ...run.env }, timeout: 60_000 },
      );
    const failure = (running: Promise<unknown>) =>
      running.then(
        () => '',
        (error: { code?: number; stderr?: string }) => `${error.code}: ${error.stderr}`,
      );
    const groupOffsets = async () =>
      (await admin.fetchOffsets({ groupId: run.config.ingestorGroup, topics: [run.topic] }))[0]!.partitions;
    // A member in the group would commit over the reset: refused, offsets untouched.
    const member = run.kafka.consumer({ groupId: run.config.ingestorGroup });
    await member.connect();
    await member.subscribe({ topic: run.topic });
    let joined!: () => void;
    const hasJoined = new Promise<void>((resolve) => {
      joined = resolve;
    });
    member.on(member.events.GROUP_JOIN, () => joined());
    await member.run({ autoCommit: false, eachBatch: async () => {} });
    await hasJoined;
    await member.pause([{ topic: run.topic }]);
    assert.match(await failure(restore()), /^1: .*has 1 member\(s\): stop the ingestors/s);
    assert.deepEqual(await groupOffsets(), moved);
    await member.disconnect();

    // Since the snapshot: the topic gained a partition, and retention deleted a partition's
    // records after the snapshot's offset (one record more, then everything up to its end).
    assert.equal(Object.keys(meta.ingestor_offsets).length, PARTITIONS);
    const trimmed = Number(Object.entries(meta.ingestor_offsets).find(([, o]) => o !== '-1')?.[0]);
    assert.ok(Number.isInteger(trimmed), `the snapshot has committed offsets: ${JSON.stringify(meta)}`);
    await admin.createPartitions({ topicPartitions: [{ topic: run.topic, count: PARTITIONS + 1 }] });
    const producer = run.kafka.producer();
    await producer.connect();
    await producer.send({ topic: run.topic, messages: [{ partition: trimmed, value: '{}' }] });
    await producer.disconnect();
    await admin.deleteTopicRecords({ topic: run.topic, partitions: [{ partition: trimmed, offset: '-1' }] });
    // Restored states would miss the deleted records: refused before anything is written.
    assert.match(
      await failure(restore()),
      new RegExp(
        `^1: .*partition ${trimmed}: the snapshot's offset \\d+, the earliest record left \\d+.*--allow-gap`,
        's',
      ),
    );
    // Untouched (the new partition has no commit yet).
    assert.deepEqual(await groupOffsets(), [
      ...moved,
      { partition: PARTITIONS, offset: '-1', metadata: null },
    ]);

    const { stdout } = await restore('--allow-gap');
    assert.match(stdout, /now starts from the snapshot's offsets/);
    const earliest = new Map((await admin.fetchTopicOffsets(run.topic)).map((p) => [p.partition, p.low]));
    const now = await groupOffsets();
    await admin.disconnect();
    const expected: Record<string, string | undefined> = {};
    for (let p = 0; p <= PARTITIONS; p++) {
      const o = meta.ingestor_offsets[String(p)];
      expected[String(p)] = o === undefined || o === '-1' || p === trimmed ? earliest.get(p) : o;
    }
    assert.deepEqual(Object.fromEntries(now.map((p) => [String(p.partition), p.offset])), expected);
  });

  it('is read by pandas and pyarrow with tz-aware UTC timestamps and numeric dtypes', async () => {
    const python = process.env.TESSERA_PYTHON;
    assert.ok(python, 'TESSERA_PYTHON is unset: eval "$(scripts/stack env)"');
    const dir = await mkdtemp(join(tmpdir(), 'flusher-compat-'));
    try {
      for (const o of await run.store.list('')) {
        if (!/\.(parquet|csv)$/.test(o.key)) continue;
        await mkdir(dirname(join(dir, o.key)), { recursive: true });
        await writeFile(join(dir, o.key), await run.store.get(o.key));
      }
      const { stdout } = await promisify(execFile)(python, ['test/compat/flusher_dtypes.py', dir], {
        timeout: 60_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      const files = stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const features = files.filter((f) => /\/features\.parquet$/.test(f.file));
      const raw = files.filter((f) => f.file.startsWith('raw/'));
      assert.ok(features.length > 0 && raw.length > 0);
      for (const f of features) {
        assert.deepEqual(f.pandas, {
          user_id: 'int64',
          event_timestamp: 'datetime64[ms, UTC]',
          transaction_count_1h: 'int64',
          transaction_count_24h: 'int64',
          avg_transaction_amount_7d: 'float64',
          avg_transaction_amount_30d: 'float64',
          max_transaction_amount_7d: 'float64',
          distinct_merchant_count_7d: 'int64',
          source_partition: 'int32',
          source_offset: 'int64',
        });
        assert.equal(f.arrow.event_timestamp, 'timestamp[ms, tz=UTC]');
      }
      for (const f of raw)
        assert.deepEqual(f.pandas, {
          user_id: 'int64',
          event_timestamp: 'datetime64[ms, UTC]',
          amount: 'float64',
          merchant_id: 'object',
          source_partition: 'int32',
          source_offset: 'int64',
        });
      const csvRows = files
        .filter((f) => f.csv && !f.file.includes('/latest/'))
        .reduce((n, f) => n + f.rows, 0);
      assert.equal(csvRows, expected.size);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
