// The Feast repo shared/definitions/feast-repo.ts generates, used as a Feast user would: written
// into a fresh directory, registered with the venv's `feast apply`, then asked through Feast's SDK
// (test/compat/feast_generated_repo.py, which declares nothing itself). Offline, over a real
// ingestor's and flusher's output: get_historical_features answers sampled training rows with
// exactly their parquet values and types. Online, against a real server over the state that ingestor
// wrote: get_online_features (by feature list and by feature service) answers the server's own
// values, typed as their offline columns. The definitions add a string feature to fraud.yaml's.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isDeepStrictEqual, promisify } from 'node:util';
import { featureColumnType } from '../../shared/offline/feature-columns.ts';
import type { ColumnType } from '../../shared/offline/parquet.ts';
import {
  cleanupStore,
  drainThroughIngestorAndFlusher,
  newFlusherRun,
  placeEvents,
  producePlacedEvents,
  readTables,
  waitForGroup,
} from '../support/flusher-process.ts';
import {
  cleanupRun,
  createSourceTopic,
  recentFraudEvents,
  waitForCaughtUp,
} from '../support/ingestor-process.ts';
import { type ServerProcess, startServer } from '../support/server-process.ts';

const execFileAsync = promisify(execFile);
const python = process.env.TESSERA_PYTHON;
const TOKEN = 'fr19-feast-repo-token-0123456789';
const TOKEN_VAR = 'TESSERA_FEAST_REPO_TOKEN';
const SERVICE = 'fraud_model_v1';
/** The Python type Feast's SDK gives a value of each column type. */
const PYTHON_TYPES: Partial<Record<ColumnType, string>> = {
  int64: 'int',
  double: 'float',
  string: 'str',
  bool: 'bool',
  'list<double>': 'list',
  'list<string>': 'list',
};

/**
 * fraud.yaml plus a string feature (last merchant) and two last_n lists (the amounts and the
 * merchants of 7 days), all three in its feature service too.
 */
function definitionsWithString(): string {
  const text = readFileSync('definitions/fraud.yaml', 'utf8');
  const service = '      - user_transaction_features:distinct_merchant_count_7d\n';
  assert.ok(
    text.includes('\nfeature_services:') && text.endsWith(service),
    'fraud.yaml changed: update this test',
  );
  return `${text.replace(
    '\nfeature_services:',
    `      - name: last_merchant_7d
        aggregation: last
        column: merchant_id
        window: 7d
      - { name: recent_amounts_7d, aggregation: last_n, column: amount, window: 7d, n: 3 }
      - { name: recent_merchants_7d, aggregation: last_n, column: merchant_id, window: 7d, n: 2 }

feature_services:`,
  )}      - user_transaction_features:last_merchant_7d\n      - user_transaction_features:recent_amounts_7d\n      - user_transaction_features:recent_merchants_7d\n`;
}

type Answer = Record<string, unknown[]> & { __types__: Record<string, string[]> };
interface HistoricalAnswer {
  asked: number;
  answered: number;
  rows: Record<string, unknown>[];
  __types__: Record<string, string[]>;
}

describe('a generated Feast repo reads both stores', { timeout: 300_000 }, () => {
  const PARTITIONS = 3;
  const work = mkdtempSync(join(tmpdir(), 'fr19-feast-repo-'));
  const storeDir = join(work, 'offline');
  const repo = join(work, 'repo');
  const definitions = join(work, 'definitions.yaml');
  writeFileSync(definitions, definitionsWithString());
  const run = newFlusherRun({
    TESSERA_OFFLINE_STORE: storeDir,
    TESSERA_DEFINITIONS: definitions,
    TESSERA_FLUSH_INTERVAL_MS: '1500',
  });
  const view = run.view;
  const names = view.features.map((f) => f.name);
  const refs = names.map((n) => `${view.name}:${n}`);
  const types = view.features.map((f) => featureColumnType(f, view.source));
  const now = Date.now();
  const { events, users } = recentFraudEvents(now, { events: 1500, users: 30, seed: 23 });
  const placed = placeEvents(events, PARTITIONS);
  const rows: { version: string; user: number; ts: number; values: unknown[] }[] = [];
  let sample: typeof rows = [];
  let parquetFile = '';
  let server: ServerProcess;
  let url: string;

  const askFeast = async (request: unknown): Promise<unknown> => {
    const file = join(work, `request-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(request));
    const { stdout } = await execFileAsync(python!, ['test/compat/feast_generated_repo.py', repo, file], {
      timeout: 180_000,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, [TOKEN_VAR]: TOKEN },
    });
    return JSON.parse(stdout.trim().split('\n').at(-1)!);
  };

  /** The server's own answer, one column per feature. */
  const serverValues = async (ids: number[]): Promise<unknown[][]> => {
    const res = await fetch(`${url}/get-online-features`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ features: refs, entities: { [view.entity.joinKey]: ids } }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { results: { values: unknown[] }[] };
    return body.results.slice(1).map((r) => r.values); // results[0] is the join key
  };

  before(async () => {
    assert.ok(python, 'TESSERA_PYTHON is unset: eval "$(scripts/stack env)"');
    await createSourceTopic(run, PARTITIONS);
    // One run of the ingestor and the flusher, the second half of the events produced once the
    // first is flushed: two versions, so a glob that missed all but the newest would show.
    const half = placed.length / 2;
    await producePlacedEvents(run, placed.slice(0, half));
    const { flusher, exits } = await drainThroughIngestorAndFlusher(run, 60_000, async () => {
      await producePlacedEvents(run, placed.slice(half));
      await waitForCaughtUp(run, run.topic, 60_000);
      await waitForGroup(run.kafka, run.flusherGroup, [run.topic, run.rowsTopic], 60_000);
    });
    assert.deepEqual(exits, [0, 0], flusher.output().slice(-3000));
    for (const table of await readTables(run.store, `${view.name}/v_`, (k) =>
      k.endsWith('/features.parquet'),
    )) {
      parquetFile = join(storeDir, table.key);
      for (let i = 0; i < table.rows; i++)
        rows.push({
          version: table.key.split('/')[1]!,
          user: Number(table.columns[view.entity.joinKey]![i]),
          ts: Number(table.columns.event_timestamp![i]),
          values: names.map((n) => {
            const v = table.columns[n]![i];
            return typeof v === 'bigint' ? Number(v) : (v ?? null);
          }),
        });
    }
    // Feast keeps one row per (entity, time): rows sharing theirs are ambiguous, so left out.
    const shared = new Map<string, number>();
    for (const r of rows) shared.set(`${r.user}@${r.ts}`, (shared.get(`${r.user}@${r.ts}`) ?? 0) + 1);
    sample = rows.filter((r, i) => shared.get(`${r.user}@${r.ts}`) === 1 && i % 4 === 0);

    server = startServer({ ...run.env, TESSERA_AUTH_TOKEN: TOKEN });
    url = await server.url;
    await execFileAsync(
      process.execPath,
      [
        '--import',
        'tsx',
        'shared/definitions/feast-repo.ts',
        definitions,
        '--out',
        repo,
        '--offline-store',
        storeDir,
        '--server',
        url,
        '--token-env-var',
        TOKEN_VAR,
      ],
      { env: { ...process.env, ...run.env } },
    );
    await execFileAsync(join(dirname(python), 'feast'), ['-c', repo, 'apply'], { timeout: 180_000 });
  });

  after(async () => {
    await server?.stop();
    await cleanupStore(run);
    await cleanupRun(run);
    await rm(work, { recursive: true, force: true });
  });

  it("answers sampled training rows with exactly their parquet values and their columns' types", async (t) => {
    const answer = (await askFeast({
      historical: {
        features: refs,
        entities: {
          [view.entity.joinKey]: sample.map((r) => r.user),
          event_timestamp_ms: sample.map((r) => r.ts),
        },
      },
    })) as HistoricalAnswer;
    t.diagnostic(`${rows.length} rows; Feast asked ${answer.asked}, answered ${answer.answered}`);
    assert.ok(sample.length >= 150, `${sample.length} sampled rows`);
    assert.ok(new Set(sample.map((r) => r.version)).size >= 2, 'the sample spans two versions or more');
    assert.equal(answer.asked, sample.length);
    assert.equal(answer.answered, sample.length);
    const byKey = new Map(answer.rows.map((r) => [`${r[view.entity.joinKey]}@${r.event_timestamp_ms}`, r]));
    assert.equal(byKey.size, sample.length, 'one answer per sampled (user, time)');
    for (const want of sample) {
      const got = byKey.get(`${want.user}@${want.ts}`);
      assert.ok(got, `no answer for user ${want.user} at ${new Date(want.ts).toISOString()}`);
      for (const [j, name] of names.entries())
        assert.deepEqual(
          got[name],
          want.values[j],
          `user ${want.user} at ${new Date(want.ts).toISOString()} ${name}: Feast ${String(got[name])}, parquet ${String(want.values[j])}`,
        );
    }
    for (const [j, name] of names.entries())
      assert.deepEqual(
        answer.__types__[name],
        [PYTHON_TYPES[types[j]!]],
        `${name} (${types[j]}) typed ${answer.__types__[name]}`,
      );
    // Real values, not only zeros and nulls.
    assert.ok(answer.rows.some((r) => (r.transaction_count_24h as number) > 1));
    assert.ok(answer.rows.some((r) => typeof r.last_merchant_7d === 'string'));
    assert.ok(answer.rows.some((r) => (r.recent_amounts_7d as number[]).length === 3));
  });

  it("declares each feature with the Feast type of its parquet column (Feast's own type map)", async () => {
    // Neither store's values show a wrong Field type (offline Feast passes the parquet's types
    // through, online the server's JSON types them), so the declarations are compared directly.
    const declared = (await askFeast({ schema: { view: view.name, parquet: parquetFile } })) as Record<
      string,
      { declared: string; parquet: string }
    >;
    assert.deepEqual(Object.keys(declared), names);
    for (const name of names)
      assert.equal(
        declared[name]!.declared,
        declared[name]!.parquet,
        `${name}: Field dtype vs its parquet column`,
      );
    assert.deepEqual(
      new Set(Object.values(declared).map((d) => d.parquet)),
      new Set(['Int64', 'Float64', 'String', 'Array(Float64)', 'Array(String)']),
    );
  });

  for (const by of ['features', 'feature service'] as const)
    it(`answers the server's own values online, typed as their columns (by ${by})`, async () => {
      // Users whose lists are not empty: Feast 0.67's remote store fails the whole call on an empty
      // list (`[]`, which Feast's own server writes for one too; docs/server.md).
      const all = await serverValues(users);
      const lists = names.flatMap((n, j) => (n.startsWith('recent_') ? [j] : []));
      const ids = users
        .filter((_, i) => lists.every((j) => (all[j]![i] as unknown[]).length > 0))
        .slice(0, 6);
      assert.equal(ids.length, 6, 'six users with full lists');
      const before1 = await serverValues(ids);
      const answer = (await askFeast({
        online: by === 'features' ? { features: refs } : { feature_service: SERVICE },
        entity_rows: ids.map((id) => ({ [view.entity.joinKey]: id })),
      })) as Answer;
      const after1 = await serverValues(ids);
      assert.deepEqual(answer[view.entity.joinKey], ids);
      names.forEach((name, j) => {
        ids.forEach((id, row) => {
          // Feast read the server somewhere between the two reads: either one's value is right.
          const got = answer[name]?.[row];
          assert.ok(
            [before1, after1].some((v) => isDeepStrictEqual(v[j]![row], got)),
            `${name} of user ${id}: Feast ${String(got)}, server ${String(before1[j]![row])}`,
          );
        });
        assert.deepEqual(
          answer.__types__[name],
          [PYTHON_TYPES[types[j]!]],
          `${name} (${types[j]}) typed ${answer.__types__[name]}`,
        );
      });
      assert.ok(
        before1.flat().some((v) => typeof v === 'number' && v > 1),
        'the users have real values',
      );
    });
});
