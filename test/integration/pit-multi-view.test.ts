// `tessera historical` with features of several views, as Feast's get_historical_features: a user
// view and a merchant view (another entity, join key and source) answered in one training set,
// every value checked against the seed's naive oracle (test/oracle/oracle.py), the columns named
// and ordered with and without --full-feature-names, a feature service, each refusal (exit 2 and
// its message), two views on one source reading its raw log once (S3 reads counted), and the
// hidden output of a run killed outright removed by the next run.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { s3Options } from '../../shared/config/clients.ts';
import { loadConfig } from '../../shared/config/index.ts';
import { loadDefinitionsFile } from '../../shared/definitions/load.ts';
import type { Definitions, ViewDef } from '../../shared/definitions/schema.ts';
import { type ObjectStore, openObjectStore } from '../../shared/offline/object-store.ts';
import { readParquet } from '../../shared/offline/parquet.ts';
import { rawBatchFromRecords, writeRawLog } from '../../shared/offline/raw-log.ts';
import { retrieveHistorical } from '../../shared/pit/retrieve.ts';
import { type FraudEvent, generateFraudEvents } from '../../shared/synth/fraud-events.ts';
import { pythonBin } from '../support/oracle.ts';

const run = promisify(execFile);
const USER_VIEW = 'user_transaction_features';
const MERCHANT_VIEW = 'merchant_features';
/** A second view on the user view's source (transactions), in the definitions of sharedSource(). */
const AMOUNTS_VIEW = 'user_amounts';
const DAY = 86_400_000;

/** The definitions of writeDefinitions plus a second user view on the transactions source. */
function sharedSourceDefinitions(dir: string, twoViews: string): string {
  const amountsView = `
  - name: ${AMOUNTS_VIEW}
    entity: user
    source: transactions
    mode: exact
    features:
      - name: sum_amount_1d
        aggregation: sum
        column: amount
        window: 1d
      - name: min_amount_6h
        aggregation: min
        column: amount
        window: 6h
      - name: distinct_merchant_count_1d
        aggregation: count_distinct
        column: merchant_id
        window: 1d
      - name: transaction_count_2h
        aggregation: count
        window: 2h
`;
  const text = readFileSync(twoViews, 'utf8').replace(
    /\nfeature_services:/,
    `${amountsView}\nfeature_services:`,
  );
  const file = join(dir, 'shared-source.yaml');
  writeFileSync(file, text);
  return file;
}

/** definitions/fraud.yaml plus a merchant entity (string key), a source keyed by merchant_id and a
 * view on it, one feature named like a user feature, and two feature services. */
function writeDefinitions(dir: string): string {
  const reference = readFileSync('definitions/fraud.yaml', 'utf8');
  const merchantEntity = `
  - name: merchant
    join_key: merchant_id
    type: string
`;
  const merchantSource = `
  - name: merchant_transactions
    topic: merchant_transactions
    format: json
    key_field: merchant_id
    timestamp_field: event_timestamp
    timestamp_format: iso8601
    schema:
      user_id: int64
      event_timestamp: timestamp
      amount: double
      merchant_id: string
`;
  const merchantView = `
  - name: ${MERCHANT_VIEW}
    entity: merchant
    source: merchant_transactions
    mode: exact
    allowed_lateness: 1h
    max_events_per_entity: 100000
    features:
      - name: transaction_count_1h
        aggregation: count
        window: 1h
        tile: 5m
      - name: avg_merchant_amount_24h
        aggregation: avg
        column: amount
        window: 24h
        tile: 1h
        default: 0.0
      - name: distinct_user_count_7d
        aggregation: count_distinct
        column: user_id
        window: 7d
        tile: 1h
`;
  const services = `
  - name: merchant_risk_v1
    features:
      - ${MERCHANT_VIEW}:distinct_user_count_7d
      - ${USER_VIEW}:transaction_count_24h
      - ${MERCHANT_VIEW}:avg_merchant_amount_24h
  - name: both_counts
    features:
      - ${USER_VIEW}:transaction_count_1h
      - ${MERCHANT_VIEW}:transaction_count_1h
`;
  const text = reference
    .replace(/\nsources:/, `${merchantEntity}\nsources:`)
    .replace(/\nviews:/, `${merchantSource}\nviews:`)
    .replace(/\nfeature_services:/, `${merchantView}\nfeature_services:`)
    .trimEnd()
    .concat(services);
  const file = join(dir, 'two-views.yaml');
  writeFileSync(file, text);
  return file;
}

interface LabelRow {
  user: number;
  merchant: string;
  t: number;
  /** The event whose (partition, offset) the oracle's probe row repeats; -1: an unknown entity. */
  event: number;
}

/**
 * The oracle's answer at each label row, for one view: the events (re-keyed by `key`), then one
 * probe row per label that repeats the (partition, offset) of an event of the same entity. The
 * oracle counts a repeated record once (its first row), so a probe adds no event, but gets its
 * own line: the features as of the label's time. An unknown entity's probe is its only row.
 */
function oracleAnswers(
  dir: string,
  view: ViewDef,
  events: readonly FraudEvent[],
  labels: readonly LabelRow[],
  byMerchant: boolean,
  tag = byMerchant ? 'merchant' : 'user',
): Map<string, (number | null)[]> {
  const merchantNumber = new Map<string, number>();
  const key = (user: number, merchant: string) => {
    if (!byMerchant) return user;
    let n = merchantNumber.get(merchant);
    if (n === undefined) {
      n = merchantNumber.size + 1;
      merchantNumber.set(merchant, n);
    }
    return n;
  };
  // The oracle's fixed columns: by merchant, its user_id column holds the merchant's number and
  // its merchant_id column the user (for the distinct users).
  const other = (user: number, merchant: string) => (byMerchant ? `u${user}` : merchant);
  const lines = ['user_id,event_timestamp,amount,merchant_id,partition,offset'];
  for (const e of events)
    lines.push(
      `${key(e.user_id, e.merchant_id)},${e.event_timestamp},${e.amount},${other(e.user_id, e.merchant_id)},${e.partition},${e.offset}`,
    );
  labels.forEach((l, i) => {
    const position = l.event >= 0 ? `${events[l.event]!.partition},${events[l.event]!.offset}` : `99,${i}`;
    lines.push(`${key(l.user, l.merchant)},${l.t},0,probe,${position}`);
  });
  const column = (c: string | null) =>
    c === null ? null : byMerchant && c === 'user_id' ? 'merchant_id' : c;
  const spec = {
    features: view.features.map((f) => ({
      name: f.name,
      aggregation: f.aggregation,
      column: column(f.column),
      window_ms: f.windowMs,
      tile_ms: null,
      default: f.default,
    })),
  };
  writeFileSync(join(dir, `oracle-${tag}-events.csv`), `${lines.join('\n')}\n`);
  writeFileSync(join(dir, `oracle-${tag}-spec.json`), JSON.stringify(spec));
  const outPath = join(dir, `oracle-${tag}-out.csv`);
  const r = spawnSync(
    pythonBin(),
    [
      'test/oracle/oracle.py',
      '--events',
      join(dir, `oracle-${tag}-events.csv`),
      '--spec',
      join(dir, `oracle-${tag}-spec.json`),
      '--out',
      outPath,
      '--quiet',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `oracle: ${r.stderr}`);
  const out = readFileSync(outPath, 'utf8').trimEnd().split('\n');
  const header = out[0]!.split(',');
  const rows = out.slice(1).map((line) => line.split(',').map((c) => (c === '' ? null : Number(c))));
  const answers = new Map<string, (number | null)[]>();
  for (const f of view.features) {
    const at = header.indexOf(f.name);
    assert.ok(at > 0, `oracle column ${f.name}`);
    answers.set(
      f.name,
      labels.map((_, i) => rows[events.length + i]![at]!),
    );
  }
  return answers;
}

describe('tessera historical: features of several views (S3)', { timeout: 300_000 }, () => {
  const config = loadConfig({ argv: [] });
  const prefix = `test-pit-views-${process.pid}-${Date.now().toString(36)}`;
  const storeUri = `s3://${config.s3Bucket}/${prefix}`;
  let store: ObjectStore;
  let dir: string;
  let defsFile: string;
  let definitions: Definitions;
  let sharedFile: string;
  let events: FraudEvent[];
  let labels: LabelRow[];
  let entities: string;
  /** Oracle answers by `view:feature`, per label row. */
  const oracle = new Map<string, (number | null)[]>();

  const cli = (...argv: string[]) => cliWith(defsFile, ...argv);
  const cliWith = async (definitionsFile: string, ...argv: string[]) => {
    try {
      const { stdout, stderr } = await run(
        process.execPath,
        [
          '--import',
          'tsx',
          'services/historical/main.ts',
          '--store',
          storeUri,
          '--definitions',
          definitionsFile,
          ...argv,
        ],
        { timeout: 120_000 },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  /** The parquet at `out`: column names in order, and each column's values as numbers. */
  const readOut = (out: string) => {
    const table = readParquet(new Uint8Array(readFileSync(out)));
    const value = (name: string, row: number) => {
      const v = table.getChild(name)!.get(row) as number | bigint | string | null;
      return typeof v === 'bigint' ? Number(v) : v;
    };
    return { names: table.schema.fields.map((f) => f.name), rows: table.numRows, value };
  };

  /** The raw-log objects of `source` whose day can hold an event of a window of `windowMs` before
   * some label: the days overlapping [first label time - windowMs, last label time). */
  const neededObjects = async (source: string, windowMs: number) => {
    const first = Math.min(...labels.map((l) => l.t));
    const last = Math.max(...labels.map((l) => l.t));
    const all = (await store.list(`raw/${source}/`)).map((o) => o.key);
    const needed = all.filter((key) => {
      const day = Date.parse(`${/date=(\d{4}-\d{2}-\d{2})\//.exec(key)![1]}T00:00:00Z`);
      return day + DAY > first - windowMs && day < last;
    });
    return { all, needed };
  };

  /** Every row's value of `column` equals the oracle's for `ref`; returns the rows compared. */
  const assertOracle = (out: ReturnType<typeof readOut>, column: string, ref: string) => {
    const want = oracle.get(ref)!;
    assert.equal(out.rows, labels.length);
    let differ = 0;
    const examples: string[] = [];
    for (let i = 0; i < labels.length; i++) {
      const got = out.value(column, i);
      if (got !== want[i]) {
        differ++;
        if (examples.length < 3) examples.push(`row ${i}: ${got} vs oracle ${want[i]}`);
      }
    }
    assert.equal(
      differ,
      0,
      `${column} (${ref}): ${differ} values differ from the oracle: ${examples.join('; ')}`,
    );
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-views-'));
    defsFile = writeDefinitions(dir);
    sharedFile = sharedSourceDefinitions(dir, defsFile);
    definitions = loadDefinitionsFile(defsFile);
    store = openObjectStore(storeUri, s3Options(config));
    events = generateFraudEvents({ events: 3000, seed: 21, users: 120, merchants: 25 });
    const position = (r: FraudEvent) => ({ partition: r.partition, offset: r.offset });
    const view = (name: string) => definitions.views.find((v) => v.name === name)!;
    // The same transactions in two sources: by user and by merchant.
    for (const name of [USER_VIEW, MERCHANT_VIEW]) {
      const source = view(name).source;
      await writeRawLog(store, source, rawBatchFromRecords(source, events, position), 'part-0');
    }
    // Labels at transaction times (ties excluded) and 17 minutes 3 ms later (between events),
    // and one row whose user and merchant have no event at all.
    labels = [];
    for (let i = 0; i < events.length; i += 15) {
      const e = events[i]!;
      labels.push({ user: e.user_id, merchant: e.merchant_id, t: e.event_timestamp, event: i });
      labels.push({
        user: e.user_id,
        merchant: e.merchant_id,
        t: e.event_timestamp + 17 * 60_000 + 3,
        event: i,
      });
    }
    labels.push({ user: 999_999, merchant: 'm_nowhere', t: events[1500]!.event_timestamp, event: -1 });
    // The join keys are not first in the input: the output puts them first.
    entities = join(dir, 'labels.csv');
    writeFileSync(
      entities,
      `is_fraud,merchant_id,event_timestamp,user_id,note\n${labels
        .map((l, i) => `${i % 2},${l.merchant},${new Date(l.t).toISOString()},${l.user},row ${i}`)
        .join('\n')}\n`,
    );
    for (const [name, byMerchant] of [
      [USER_VIEW, false],
      [MERCHANT_VIEW, true],
    ] as const)
      for (const [feature, values] of oracleAnswers(dir, view(name), events, labels, byMerchant))
        oracle.set(`${name}:${feature}`, values);
  });

  after(async () => {
    if (store) await store.delete((await store.list('')).map((o) => o.key));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers features of two views with their own join keys, every value equal to the oracle', async () => {
    const refs = [
      `${MERCHANT_VIEW}:distinct_user_count_7d`,
      `${USER_VIEW}:avg_transaction_amount_7d`,
      `${MERCHANT_VIEW}:avg_merchant_amount_24h`,
      `${USER_VIEW}:transaction_count_24h`,
      `${USER_VIEW}:distinct_merchant_count_7d`,
    ];
    const out = join(dir, 'two.parquet');
    const r = await cli('--entities', entities, '--out', out, '--features', refs.join(','));
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as {
      views: { view: string; entities: number }[];
      features: string[];
    };
    assert.deepEqual(
      summary.views.map((v) => v.view),
      [MERCHANT_VIEW, USER_VIEW],
    );
    assert.match(
      r.stderr,
      new RegExp(`answering ${MERCHANT_VIEW} \\[#+\\] ${labels.length}/${labels.length} rows`),
    );
    const got = readOut(out);
    // Join keys in the order of the views, event_timestamp, pass-through in input order, features
    // in the order asked for.
    assert.deepEqual(got.names, [
      'merchant_id',
      'user_id',
      'event_timestamp',
      'is_fraud',
      'note',
      'distinct_user_count_7d',
      'avg_transaction_amount_7d',
      'avg_merchant_amount_24h',
      'transaction_count_24h',
      'distinct_merchant_count_7d',
    ]);
    for (const ref of refs) assertOracle(got, ref.slice(ref.indexOf(':') + 1), ref);
    // The oracle is not trivially zero: the views differ and the windows hold events.
    const distinctUsers = oracle.get(`${MERCHANT_VIEW}:distinct_user_count_7d`)!;
    assert.ok(distinctUsers.filter((v) => (v ?? 0) > 1).length > labels.length / 2);
    assert.equal(got.value('merchant_id', labels.length - 1), 'm_nowhere');
    assert.equal(got.value('user_id', 0), labels[0]!.user);
    assert.equal(got.value('note', 5), 'row 5');
  });

  it('names the columns view__feature with --full-feature-names, and refuses a shared name without it', async () => {
    const refs = [`${USER_VIEW}:transaction_count_1h`, `${MERCHANT_VIEW}:transaction_count_1h`];
    const clash = await cli(
      '--entities',
      entities,
      '--out',
      join(dir, 'clash.csv'),
      '--features',
      refs.join(','),
    );
    assert.equal(clash.code, 2, clash.stderr);
    assert.match(
      clash.stderr,
      /INVALID_ARGUMENT: user_transaction_features:transaction_count_1h and merchant_features:transaction_count_1h would both be the column transaction_count_1h; pass --full-feature-names/,
    );
    const out = join(dir, 'full.parquet');
    const r = await cli(
      '--entities',
      entities,
      '--out',
      out,
      '--features',
      refs.join(','),
      '--full-feature-names',
    );
    assert.equal(r.code, 0, r.stderr);
    const got = readOut(out);
    assert.deepEqual(got.names.slice(-2), [
      'user_transaction_features__transaction_count_1h',
      'merchant_features__transaction_count_1h',
    ]);
    assertOracle(got, 'user_transaction_features__transaction_count_1h', refs[0]!);
    assertOracle(got, 'merchant_features__transaction_count_1h', refs[1]!);
    // CSV: the same header.
    const csv = join(dir, 'full.csv');
    assert.equal(
      (
        await cli(
          '--entities',
          entities,
          '--out',
          csv,
          '--features',
          refs.join(','),
          '--full-feature-names',
          '--quiet',
        )
      ).code,
      0,
    );
    assert.equal(
      readFileSync(csv, 'utf8').split('\n')[0],
      'user_id,merchant_id,event_timestamp,is_fraud,note,user_transaction_features__transaction_count_1h,merchant_features__transaction_count_1h',
    );
  });

  it('takes a feature service: its features in its declared order, plain or full names', async () => {
    const out = join(dir, 'service.parquet');
    const r = await cli(
      '--entities',
      entities,
      '--out',
      out,
      '--feature-service',
      'merchant_risk_v1',
      '--quiet',
    );
    assert.equal(r.code, 0, r.stderr);
    const got = readOut(out);
    assert.deepEqual(got.names, [
      'merchant_id',
      'user_id',
      'event_timestamp',
      'is_fraud',
      'note',
      'distinct_user_count_7d',
      'transaction_count_24h',
      'avg_merchant_amount_24h',
    ]);
    for (const ref of definitions.featureServices.get('merchant_risk_v1')!)
      assertOracle(got, ref.slice(ref.indexOf(':') + 1), ref);
    const full = join(dir, 'service-full.parquet');
    const f = await cli(
      '--entities',
      entities,
      '--out',
      full,
      '--feature-service',
      'both_counts',
      '--full-feature-names',
      '--quiet',
    );
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(readOut(full).names.slice(-2), [
      'user_transaction_features__transaction_count_1h',
      'merchant_features__transaction_count_1h',
    ]);
    const plain = await cli('--entities', entities, '--out', full, '--feature-service', 'both_counts');
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /would both be the column transaction_count_1h; pass --full-feature-names/);
  });

  it('refuses, with exit code 2 and a message naming what to fix', async () => {
    const out = join(dir, 'refused.parquet');
    const cases: [string[], RegExp][] = [
      [
        ['--feature-service', 'nope'],
        /INVALID_ARGUMENT: unknown feature service nope; known feature services: fraud_model_v1, merchant_risk_v1, both_counts/,
      ],
      [
        ['--feature-service', 'merchant_risk_v1', '--features', `${USER_VIEW}:transaction_count_1h`],
        /INVALID_ARGUMENT: --feature-service cannot be combined with --features/,
      ],
      [
        ['--feature-service', 'merchant_risk_v1', '--view', USER_VIEW],
        /INVALID_ARGUMENT: --feature-service cannot be combined with --view/,
      ],
      [
        ['--features', 'transaction_count_1h'],
        /INVALID_ARGUMENT: --features transaction_count_1h names no view, and the definitions have 2 views: write view:feature/,
      ],
      [[], /INVALID_ARGUMENT: the definitions have 2 views; pass --view/],
      [
        ['--features', `${USER_VIEW}:transaction_count_1h,${USER_VIEW}:transaction_count_1h`],
        /asks for user_transaction_features:transaction_count_1h twice/,
      ],
      [
        ['--features', 'no_view:x'],
        /unknown view no_view; known views: user_transaction_features, merchant_features/,
      ],
    ];
    for (const [argv, message] of cases) {
      const r = await cli('--entities', entities, '--out', out, ...argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, argv.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    // The entity dataframe lacks the merchant view's join key: the column and the view are named.
    const usersOnly = join(dir, 'users-only.csv');
    writeFileSync(usersOnly, `user_id,event_timestamp\n${labels[0]!.user},${labels[0]!.t}\n`);
    const missing = await cli('--entities', usersOnly, '--out', out, '--feature-service', 'merchant_risk_v1');
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(
      missing.stderr,
      /INVALID_ARGUMENT: .*users-only\.csv has no column merchant_id \(columns: user_id, event_timestamp\) \(merchant_id is the join key of view merchant_features\)/,
    );
    assert.throws(() => readFileSync(out), /ENOENT/, 'nothing written');
  });

  it('reads the raw log of a source once for two views on it (S3 reads counted), every value equal to the oracle', async () => {
    const shared = loadDefinitionsFile(sharedFile);
    const amounts = shared.views.find((v) => v.name === AMOUNTS_VIEW)!;
    for (const [feature, values] of oracleAnswers(dir, amounts, events, labels, false, 'amounts'))
      oracle.set(`${AMOUNTS_VIEW}:${feature}`, values);
    // Fetches per object key, of the real S3 store.
    const gets = new Map<string, number>();
    const counted: ObjectStore = {
      location: store.location,
      put: (key, body, contentType) => store.put(key, body, contentType),
      get: (key) => {
        gets.set(key, (gets.get(key) ?? 0) + 1);
        return store.get(key);
      },
      list: (prefix) => store.list(prefix),
      delete: (keys) => store.delete(keys),
    };
    // Three views, two on transactions, their features interleaved.
    const refs = [
      `${USER_VIEW}:transaction_count_24h`,
      `${AMOUNTS_VIEW}:sum_amount_1d`,
      `${MERCHANT_VIEW}:distinct_user_count_7d`,
      `${AMOUNTS_VIEW}:min_amount_6h`,
      `${USER_VIEW}:distinct_merchant_count_7d`,
      `${AMOUNTS_VIEW}:distinct_merchant_count_1d`,
      `${AMOUNTS_VIEW}:transaction_count_2h`,
    ];
    const out = join(dir, 'shared-source.parquet');
    const summary = await retrieveHistorical({
      store: counted,
      definitions: shared,
      entities,
      out,
      features: refs,
      progress: false,
    });
    // Days needed: the 7-day windows of the user and merchant views cover the 1-day ones.
    const user = await neededObjects('transactions', 7 * DAY);
    const merchant = await neededObjects('merchant_transactions', 7 * DAY);
    assert.ok(user.needed.length > 30, `${user.needed.length} objects of transactions needed`);
    // Each needed object fetched once (the old code fetched those of transactions once per view
    // on it: twice), and no other.
    assert.deepEqual(gets, new Map([...user.needed, ...merchant.needed].map((key) => [key, 1])));
    // Rows of the objects read: the events of those days.
    const rowsOf = (keys: readonly string[]) =>
      events.filter((e) =>
        keys.some((key) => key.includes(`date=${new Date(e.event_timestamp).toISOString().slice(0, 10)}/`)),
      ).length;
    assert.deepEqual(
      summary.sources.map((p) => [p.source, p.views, p.objectsRead, p.objectsSkipped, p.eventsRead]),
      [
        [
          'transactions',
          [USER_VIEW, AMOUNTS_VIEW],
          user.needed.length,
          user.all.length - user.needed.length,
          rowsOf(user.needed),
        ],
        [
          'merchant_transactions',
          [MERCHANT_VIEW],
          merchant.needed.length,
          merchant.all.length - merchant.needed.length,
          rowsOf(merchant.needed),
        ],
      ],
    );
    assert.equal(summary.objectsRead, user.needed.length + merchant.needed.length);
    assert.equal(summary.eventsRead, rowsOf(user.needed) + rowsOf(merchant.needed));
    // Per view: the objects of its own days (the user views' shared with each other).
    const amountsDays = await neededObjects('transactions', DAY);
    assert.deepEqual(
      summary.views.map((v) => [v.view, v.source, v.objectsRead]),
      [
        [USER_VIEW, 'transactions', user.needed.length],
        [AMOUNTS_VIEW, 'transactions', amountsDays.needed.length],
        [MERCHANT_VIEW, 'merchant_transactions', merchant.needed.length],
      ],
    );
    const got = readOut(out);
    assert.deepEqual(
      got.names.slice(-refs.length),
      refs.map((r) => r.slice(r.indexOf(':') + 1)),
    );
    for (const ref of refs) assertOracle(got, ref.slice(ref.indexOf(':') + 1), ref);
    const sums = oracle.get(`${AMOUNTS_VIEW}:sum_amount_1d`)!;
    assert.ok(sums.filter((v) => (v ?? 0) > 0).length > labels.length / 2, 'the oracle is not all zeros');
  });

  it('says which views share a source, and reads it with one progress bar', async () => {
    const r = await cliWith(
      sharedFile,
      '--entities',
      entities,
      '--out',
      join(dir, 'shared-cli.parquet'),
      '--features',
      `${USER_VIEW}:transaction_count_1h,${AMOUNTS_VIEW}:sum_amount_1d`,
    );
    assert.equal(r.code, 0, r.stderr);
    // The 1-day window of user_amounts is the longer one.
    const days = await neededObjects('transactions', DAY);
    const objects = days.needed.length;
    assert.match(
      r.stderr,
      new RegExp(
        `historical: views ${USER_VIEW}, ${AMOUNTS_VIEW} share source transactions: ${objects} objects \\([0-9.]+ MB\\) read once for all of them, 1 shard\\(s\\) each`,
      ),
    );
    const bars = r.stderr.match(/^reading raw log of transactions \[#+\] (\d+)\/(\d+) objects/gm) ?? [];
    assert.equal(bars.length, 1, r.stderr);
    assert.match(bars[0]!, new RegExp(` ${objects}/${objects} objects`));
    for (const view of [USER_VIEW, AMOUNTS_VIEW])
      assert.match(r.stderr, new RegExp(`answering ${view} \\[#+\\] ${labels.length}/${labels.length} rows`));
    const summary = JSON.parse(r.stdout) as { sources: unknown[] };
    assert.deepEqual(summary.sources, [
      {
        source: 'transactions',
        views: [USER_VIEW, AMOUNTS_VIEW],
        objectsRead: objects,
        objectsSkipped: days.all.length - objects,
        eventsRead: events.filter((e) =>
          days.needed.some((key) =>
            key.includes(`date=${new Date(e.event_timestamp).toISOString().slice(0, 10)}/`),
          ),
        ).length,
      },
    ]);
  });

  it('removes the hidden output of a run killed outright (SIGKILL) writing the same --out, only that', async () => {
    // A SIGKILLed run left `.<out>.tmp-<pid>` beside --out for good (not removed yet, the docs said).
    const victim = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    await new Promise((r) => victim.on('spawn', r));
    const dead = victim.pid!;
    victim.kill('SIGKILL');
    await new Promise((r) => victim.on('exit', r));
    const outDir = mkdtempSync(join(dir, 'out-'));
    const left = `.train.csv.tmp-${dead}`;
    const live = `.train.csv.tmp-${process.pid}`; // a run of a live process: kept
    const otherOut = `.other.csv.tmp-${dead}`; // another --out's: not this run's to judge
    for (const name of [left, live, otherOut]) writeFileSync(join(outDir, name), 'half a training set');
    const r = await cli(
      '--entities',
      entities,
      '--out',
      join(outDir, 'train.csv'),
      '--features',
      `${USER_VIEW}:transaction_count_1h`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`historical: removed .*/\\.train\\.csv\\.tmp-${dead}, left by a run that died`),
    );
    assert.deepEqual(readdirSync(outDir).sort(), [live, otherOut, 'train.csv'].sort());
  });
});
