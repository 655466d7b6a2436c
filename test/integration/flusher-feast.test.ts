// Feast reading the flusher's real output: a real ingestor and flusher (run twice, so the view has
// at least two versions beside latest/ and snapshots/) write the offline store, once a local
// directory and once the stack's S3, and Feast's get_historical_features, through a FileSource whose
// path is the glob docs/offline-store.md documents for that store, answers entity rows taken at the
// training rows' own event times with exactly the values of those rows (on S3 through s3fs, pinned
// in scripts/python-requirements.txt). Also pinned: what Feast does over versions whose definitions
// differ (a feature added: it fails; a feature redefined: it mixes both meanings).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadState } from '../../services/flusher/flusher-state.ts';
import { feastType } from '../../shared/definitions/feast-repo-render.ts';
import type { ViewDef } from '../../shared/definitions/schema.ts';
import { featureColumnType } from '../../shared/offline/feature-columns.ts';
import { openObjectStore } from '../../shared/offline/object-store.ts';
import { generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { changedDefinitions, flushRows, rowTime } from '../support/definitions-change.ts';
import {
  cleanupStore,
  drainThroughIngestorAndFlusher,
  expectedRows,
  type FlusherRun,
  newFlusherRun,
  placeEvents,
  producePlacedEvents,
  readTables,
} from '../support/flusher-process.ts';
import { cleanupRun, createSourceTopic } from '../support/ingestor-process.ts';

const python = process.env.TESSERA_PYTHON;
/** The store root the doc's FileSource example uses; swapped for this run's directory. */
const DOC_ROOT = '/data/offline';

interface FeastAnswer {
  asked: number;
  answered: number;
  rows: ({ user_id: number; event_timestamp_ms: number } & Record<string, unknown>)[];
}

/** The bucket the doc's S3 FileSource path names; swapped for this run's bucket and prefix. */
const DOC_S3_ROOT = 's3://tessera-offline';

/**
 * The path of the doc's FileSource for a local store (the Python block's) or for S3 (the
 * `path="s3://..."` beside it), under `root` instead.
 */
function documentedPath(root: string, on: 'directory' | 's3' = 'directory'): string {
  const doc = readFileSync('docs/offline-store.md', 'utf8');
  const [pattern, docRoot] =
    on === 'directory' ? [/FileSource\(\s*path="([^"]+)"/, DOC_ROOT] : [/path="(s3:\/\/[^"]+)"/, DOC_S3_ROOT];
  const path = pattern.exec(doc)?.[1];
  if (!path?.startsWith(`${docRoot}/`))
    assert.fail(`docs/offline-store.md has no FileSource under ${docRoot}`);
  return root + path.slice(docRoot.length);
}

/** The features asked for, with the Feast type of their parquet column. */
function featureSpecs(view: ViewDef, names = view.features.map((f) => f.name)) {
  return names.map((name) => {
    const f = view.features.find((g) => g.name === name);
    assert.ok(f, `no feature ${name}`);
    return { name, aggregation: f.aggregation, dtype: feastType(featureColumnType(f, view.source)) };
  });
}

/**
 * The environment a Feast user sets for s3fs against the stack's S3: credentials, and the two
 * checksum settings S3-compatible servers need (docs/offline-store.md).
 */
const s3Env = (config: FlusherRun['config']) => ({
  AWS_ACCESS_KEY_ID: config.s3AccessKeyId,
  AWS_SECRET_ACCESS_KEY: config.s3SecretAccessKey,
  AWS_DEFAULT_REGION: config.s3Region,
  AWS_REQUEST_CHECKSUM_CALCULATION: 'when_required',
  AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required',
});

/** test/compat/feast_flusher_versions.py on one request; rejects when Feast fails. */
async function askFeast(
  dir: string,
  request: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<FeastAnswer> {
  assert.ok(python, 'TESSERA_PYTHON is unset: eval "$(scripts/stack env)"');
  const file = join(dir, `request-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(request));
  const { stdout } = await promisify(execFile)(python, ['test/compat/feast_flusher_versions.py', file], {
    timeout: 180_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, ...env },
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

const asNumber = (v: unknown) => (typeof v === 'bigint' ? Number(v) : (v ?? null));

for (const on of ['directory', 's3'] as const)
  describe(`Feast reads the flusher output through the documented FileSource (${on})`, {
    timeout: 300_000,
  }, () => {
    const PARTITIONS = 3;
    const dir = mkdtempSync(join(tmpdir(), 'flusher-feast-'));
    const work = mkdtempSync(join(tmpdir(), 'flusher-feast-requests-'));
    // On S3 the flusher's own default: the stack's bucket, under the run's unique prefix.
    const run = newFlusherRun({
      TESSERA_FLUSH_INTERVAL_MS: '1500',
      ...(on === 'directory' ? { TESSERA_OFFLINE_STORE: dir } : {}),
    });
    const root = on === 'directory' ? dir : run.env.TESSERA_OFFLINE_STORE!;
    const events = placeEvents(
      generateFraudEvents({ events: 3000, seed: 19, partitions: PARTITIONS }),
      PARTITIONS,
    );
    const expected = expectedRows(run.view, events);
    const names = run.view.features.map((f) => f.name);
    let versions: string[] = [];
    const rows: { version: string; user: number; ts: number; values: unknown[] }[] = [];
    let sample: typeof rows = [];
    let answer: FeastAnswer;

    before(async () => {
      await createSourceTopic(run, PARTITIONS);
      // Two runs of the ingestor and the flusher, each stopped with SIGTERM (a final flush): the
      // second half of the events lands in a later version than the first.
      const half = events.length / 2;
      for (const part of [events.slice(0, half), events.slice(half)]) {
        await producePlacedEvents(run, part);
        const { flusher, exits } = await drainThroughIngestorAndFlusher(run, 60_000);
        assert.deepEqual(exits, [0, 0], flusher.output().slice(-3000));
      }
      for (const table of await readTables(run.store, `${run.view.name}/v_`, (k) =>
        k.endsWith('/features.parquet'),
      )) {
        const version = table.key.split('/')[1]!;
        versions.push(version);
        for (let i = 0; i < table.rows; i++)
          rows.push({
            version,
            user: Number(table.columns[run.view.entity.joinKey]![i]),
            ts: Number(table.columns.event_timestamp![i]),
            values: names.map((n) => asNumber(table.columns[n]![i])),
          });
      }
      versions = [...new Set(versions)].sort();
      // Feast keeps one row per (entity, time): rows sharing theirs with another row would be
      // ambiguous, so they are left out. Every third of the others, in each version.
      const shared = new Map<string, number>();
      for (const r of rows) shared.set(`${r.user}@${r.ts}`, (shared.get(`${r.user}@${r.ts}`) ?? 0) + 1);
      sample = rows.filter((r, i) => shared.get(`${r.user}@${r.ts}`) === 1 && i % 3 === 0);
      answer = await askFeast(
        work,
        {
          path: documentedPath(root, on),
          s3_endpoint: on === 's3' ? run.config.s3Endpoint : null,
          features: featureSpecs(run.view),
          entities: { user_id: sample.map((r) => r.user), event_timestamp_ms: sample.map((r) => r.ts) },
        },
        on === 's3' ? s3Env(run.config) : {},
      );
    });
    after(async () => {
      await cleanupStore(run);
      await cleanupRun(run);
      await rm(dir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    });

    it('has written every training row once, in two or more versions beside latest/ and snapshots/', async () => {
      assert.ok(versions.length >= 2, `versions: ${versions.join(', ')}`);
      assert.equal(rows.length, expected.size);
      const keys = (await run.store.list(`${run.view.name}/`)).map((o) => o.key);
      assert.ok(keys.includes(`${run.view.name}/latest/features.parquet`));
      assert.ok(keys.some((k) => k.startsWith(`${run.view.name}/snapshots/`)));
    });

    it('answers every sampled entity row with the values of its own parquet row', (t) => {
      t.diagnostic(
        `${versions.length} versions, ${rows.length} rows; Feast asked ${answer.asked}, answered ${answer.answered}`,
      );
      assert.ok(sample.length >= 300, `${sample.length} sampled rows`);
      assert.ok(new Set(sample.map((r) => r.version)).size >= 2, 'the sample spans the versions');
      assert.equal(answer.asked, sample.length);
      assert.equal(answer.answered, sample.length);
      const byKey = new Map(answer.rows.map((r) => [`${r.user_id}@${r.event_timestamp_ms}`, r]));
      assert.equal(byKey.size, sample.length, 'one answer per sampled (user_id, event_timestamp)');
      let mismatches = 0;
      for (const want of sample) {
        const got = byKey.get(`${want.user}@${want.ts}`);
        assert.ok(got, `no answer for user ${want.user} at ${new Date(want.ts).toISOString()}`);
        names.forEach((name, j) => {
          if (got[name] !== want.values[j] && mismatches++ < 5)
            assert.fail(
              `user ${want.user} at ${new Date(want.ts).toISOString()} (${want.version}) ${name}: ` +
                `Feast ${String(got[name])}, parquet ${String(want.values[j])}`,
            );
        });
      }
      // Not only nulls and zeros: the answers carry real feature values.
      assert.ok(answer.rows.some((r) => (r.transaction_count_24h as number) > 1));
    });
  });

describe('Feast over versions whose definitions differ', { timeout: 300_000 }, () => {
  const { before: before1, after: after1 } = changedDefinitions();
  const view = after1.views[0]!;
  const root = mkdtempSync(join(tmpdir(), 'flusher-feast-defs-'));
  const store = openObjectStore(root, {});
  // Offsets 0-2 flushed under the old definitions, 3-4 under the new; user 100 + offset.
  const entities = { user_id: [100, 101, 102, 103, 104], event_timestamp_ms: [0, 1, 2, 3, 4].map(rowTime) };

  before(async () => {
    const state = await loadState(store);
    await flushRows(store, state, before1, 'v_20260105T100000', 0, [0, 1, 2]);
    await flushRows(store, state, after1, 'v_20260105T110000', 1, [3, 4]);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('fails on a feature added since the oldest version (its columns come from the oldest file)', async () => {
    const failure = await askFeast(root, {
      path: documentedPath(root),
      features: featureSpecs(view, ['transaction_count_24h', 'max_transaction_amount_1h']),
      entities,
    }).then(
      () => '',
      (error: { stderr?: string }) => error.stderr ?? String(error),
    );
    assert.match(failure, /KeyError: "\['max_transaction_amount_1h'\] not in index"/);
  });

  it('drops an entity row older than every row of its entity, and answers null for an entity without rows', async () => {
    const answer = await askFeast(root, {
      path: documentedPath(root),
      features: featureSpecs(view, ['transaction_count_24h']),
      entities: { user_id: [100, 999, 101], event_timestamp_ms: [rowTime(0) - 1, rowTime(9), rowTime(9)] },
    });
    assert.equal(answer.asked, 3);
    assert.deepEqual(
      answer.rows.toSorted((a, b) => a.user_id - b.user_id).map((r) => [r.user_id, r.transaction_count_24h]),
      [
        [101, 2],
        [999, null],
      ],
    );
  });

  it('mixes the old and new meanings of a redefined feature without a word, and keeps unchanged ones', async () => {
    const answer = await askFeast(root, {
      path: documentedPath(root),
      features: featureSpecs(view, ['transaction_count_24h', 'transaction_count_1h']),
      entities,
    });
    const got = answer.rows.toSorted((a, b) => a.user_id - b.user_id);
    assert.deepEqual(
      got.map((r) => r.transaction_count_24h),
      [1, 2, 3, 4, 5],
    );
    // Offsets 0-2: the count of the hour (offset + 1); 3-4: the sum of its amounts (offset + 0.5).
    assert.deepEqual(
      got.map((r) => r.transaction_count_1h),
      [1, 2, 3, 3.5, 4.5],
    );
  });
});
