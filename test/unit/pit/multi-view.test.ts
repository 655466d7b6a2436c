// Choosing the features of a point-in-time run over several views (selectFeatures): groups by view,
// output names plain or view__feature, a feature service's order, and each refusal; two views on
// one source reading its raw log once, with shards sized for both; and the hidden outputs of dead
// runs beside --out (removeStaleOutputTemps).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDefinitions } from '../../../shared/definitions/load.ts';
import { type FeatureValue, featuresBeforeEachColumns, planView } from '../../../shared/engine/index.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { LocalObjectStore, type ObjectStore } from '../../../shared/offline/object-store.ts';
import { readParquet } from '../../../shared/offline/parquet.ts';
import { rawBatchFromRecords, writeRawLog } from '../../../shared/offline/raw-log.ts';
import { retrieveHistorical, selectFeatures } from '../../../shared/pit/retrieve.ts';
import { removeStaleOutputTemps } from '../../../shared/pit/training-output.ts';
import {
  type FraudEvent,
  fraudEngineEvent,
  generateFraudEvents,
} from '../../../shared/synth/fraud-events.ts';

/** fraud.yaml plus a view on the same source and entity, and one on a second entity whose join key
 * is called user_id too but is a string. */
function definitions(withStringUserKey = false) {
  const reference = readFileSync('definitions/fraud.yaml', 'utf8');
  const second = `
  - name: user_amounts
    entity: user
    source: transactions
    features:
      - name: transaction_count_1h
        aggregation: count
        window: 1h
      - name: sum_amount_1d
        aggregation: sum
        column: amount
        window: 1d
`;
  let text = reference.replace(/\nfeature_services:/, `${second}\nfeature_services:`);
  text += `  - name: amounts_first
    features:
      - user_amounts:sum_amount_1d
      - user_transaction_features:transaction_count_24h
`;
  if (withStringUserKey)
    text = text
      .replace(/\nsources:/, '\n  - name: account\n    join_key: user_id\n    type: string\nsources:')
      .replace(
        /\nviews:/,
        `
  - name: accounts
    topic: accounts
    format: json
    key_field: user_id
    timestamp_field: event_timestamp
    schema:
      user_id: string
      event_timestamp: timestamp
views:`,
      )
      .replace(
        /\nfeature_services:/,
        `
  - name: account_features
    entity: account
    source: accounts
    features:
      - name: account_events_1h
        aggregation: count
        window: 1h
feature_services:`,
      );
  return parseDefinitions(text);
}

const refused = (f: () => unknown, message: RegExp) =>
  assert.throws(f, (e) => isTesseraError(e, 'INVALID_ARGUMENT') && message.test(e.message));

describe('selecting features of several views', () => {
  it('groups by view in order of first feature, output columns in the order asked for', () => {
    const s = selectFeatures(definitions(), {
      features: [
        'user_amounts:sum_amount_1d',
        'user_transaction_features:transaction_count_24h',
        'user_amounts:transaction_count_1h',
      ],
    });
    assert.deepEqual(
      s.groups.map((g) => [g.view.name, g.selected.map((f) => f.name)]),
      [
        ['user_amounts', ['sum_amount_1d', 'transaction_count_1h']],
        ['user_transaction_features', ['transaction_count_24h']],
      ],
    );
    assert.deepEqual(s.columns, [
      { group: 0, index: 0, name: 'sum_amount_1d' },
      { group: 1, index: 0, name: 'transaction_count_24h' },
      { group: 0, index: 1, name: 'transaction_count_1h' },
    ]);
  });

  it("names columns view__feature with fullFeatureNames, Feast's separator, and refuses one name for two features without it", () => {
    const refs = ['user_transaction_features:transaction_count_1h', 'user_amounts:transaction_count_1h'];
    refused(
      () => selectFeatures(definitions(), { features: refs }),
      /user_transaction_features:transaction_count_1h and user_amounts:transaction_count_1h would both be the column transaction_count_1h; pass --full-feature-names/,
    );
    assert.deepEqual(
      selectFeatures(definitions(), { features: refs, fullFeatureNames: true }).columns.map((c) => c.name),
      ['user_transaction_features__transaction_count_1h', 'user_amounts__transaction_count_1h'],
    );
  });

  it('takes a feature service in its declared order; refuses it with --features or --view, and an unknown one', () => {
    const s = selectFeatures(definitions(), { featureService: 'amounts_first' });
    assert.deepEqual(
      s.columns.map((c) => c.name),
      ['sum_amount_1d', 'transaction_count_24h'],
    );
    refused(
      () => selectFeatures(definitions(), { featureService: 'nope' }),
      /unknown feature service nope; known feature services: fraud_model_v1, amounts_first/,
    );
    refused(
      () => selectFeatures(definitions(), { featureService: 'amounts_first', features: ['x'] }),
      /--feature-service cannot be combined with --features/,
    );
    refused(
      () => selectFeatures(definitions(), { featureService: 'amounts_first', view: 'user_amounts' }),
      /--feature-service cannot be combined with --view/,
    );
  });

  it('reads a name without view: as a feature of --view, or of the one view named, else refuses it', () => {
    const s = selectFeatures(definitions(), { view: 'user_amounts', features: ['sum_amount_1d'] });
    assert.equal(s.groups[0]!.view.name, 'user_amounts');
    const one = selectFeatures(definitions(), {
      features: ['user_amounts:transaction_count_1h', 'sum_amount_1d'],
    });
    assert.deepEqual(
      one.columns.map((c) => c.name),
      ['transaction_count_1h', 'sum_amount_1d'],
    );
    refused(
      () => selectFeatures(definitions(), { features: ['sum_amount_1d'] }),
      /--features sum_amount_1d names no view, and the definitions have 2 views: write view:feature/,
    );
    refused(
      () =>
        selectFeatures(definitions(), {
          view: 'user_amounts',
          features: ['user_transaction_features:transaction_count_1h'],
        }),
      /--features names view user_transaction_features but --view is user_amounts/,
    );
    refused(
      () =>
        selectFeatures(definitions(), {
          features: ['user_amounts:sum_amount_1d', 'user_amounts:sum_amount_1d'],
        }),
      /asks for user_amounts:sum_amount_1d twice/,
    );
  });
});

describe('feature references with an empty part', () => {
  // Once `:x` was an "unknown view " (empty name) and `user_amounts:` an unknown feature `user_amounts:`.
  it('refuses :feature and view: as not view:feature, listing the views', () => {
    for (const ref of [':sum_amount_1d', 'user_amounts:'])
      refused(
        () => selectFeatures(definitions(), { features: [ref] }),
        new RegExp(
          `^--features ${ref} is not a feature reference; write view:feature \\(views: user_transaction_features, user_amounts\\)$`,
        ),
      );
  });
});

describe('join keys of several views', () => {
  it('refuses two views whose join keys share a name but not a type, before reading anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-pit-keys-'));
    try {
      await assert.rejects(
        retrieveHistorical({
          store: new LocalObjectStore(join(dir, 'store')),
          definitions: definitions(true),
          entities: join(dir, 'labels.csv'), // never read
          out: join(dir, 'out.csv'),
          features: ['user_transaction_features:transaction_count_1h', 'account_features:account_events_1h'],
          progress: false,
        }),
        (e) =>
          isTesseraError(e, 'INVALID_ARGUMENT') &&
          /views user_transaction_features and account_features both have the join key user_id, as int64 and as string; .* separate runs/.test(
            e.message,
          ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A store that counts the fetches of each object (the raw-log reads of a run). */
function countingStore(inner: ObjectStore): { store: ObjectStore; gets: Map<string, number> } {
  const gets = new Map<string, number>();
  return {
    gets,
    store: {
      location: inner.location,
      put: (key, body, contentType) => inner.put(key, body, contentType),
      get: (key) => {
        gets.set(key, (gets.get(key) ?? 0) + 1);
        return inner.get(key);
      },
      list: (prefix) => inner.list(prefix),
      delete: (keys) => inner.delete(keys),
    },
  };
}

describe('views on one source', () => {
  let dir: string;
  let inner: LocalObjectStore;
  let events: FraudEvent[];
  let entities: string;
  /** Both views of definitions() on the transactions source, interleaved. */
  const refs = [
    'user_transaction_features:transaction_count_24h',
    'user_amounts:sum_amount_1d',
    'user_transaction_features:distinct_merchant_count_7d',
    'user_amounts:transaction_count_1h',
  ];
  const sample = () => events.filter((_, i) => i % 4 === 0);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-pit-shared-'));
    inner = new LocalObjectStore(join(dir, 'store'));
    events = generateFraudEvents({ events: 3000, seed: 11, users: 150 });
    const source = definitions().views[0]!.source;
    await writeRawLog(
      inner,
      source,
      rawBatchFromRecords(source, events, (r) => ({ partition: r.partition, offset: r.offset })),
      'part-0',
    );
    entities = join(dir, 'labels.csv');
    writeFileSync(
      entities,
      `user_id,event_timestamp\n${sample()
        .map((e) => `${e.user_id},${new Date(e.event_timestamp).toISOString()}`)
        .join('\n')}\n`,
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Every feature of `refs` in the output at `out` equals the engine's features before each
   * labelled transaction (featuresBeforeEachColumns, computed over the whole log per view). */
  const assertEngineValues = (out: string) => {
    const table = readParquet(new Uint8Array(readFileSync(out)));
    const rows = sample();
    const indexOf = new Map(events.map((e, i) => [e, i]));
    for (const view of definitions().views.filter((v) => v.source.name === 'transactions')) {
      const plan = planView({ ...view, maxEventsPerEntity: Number.POSITIVE_INFINITY });
      const expected = featuresBeforeEachColumns(
        plan,
        events.map((e) => String(e.user_id)),
        events.map((e) => fraudEngineEvent(plan, e)),
      );
      plan.features.forEach((f, k) => {
        if (!refs.includes(f.def.ref)) return;
        let differ = 0;
        rows.forEach((e, row) => {
          const got = table.getChild(f.def.name)!.get(row) as FeatureValue | bigint;
          if ((typeof got === 'bigint' ? Number(got) : got) !== expected[k]![indexOf.get(e)!]) differ++;
        });
        assert.equal(differ, 0, `${f.def.ref}: ${differ} of ${rows.length} values differ from the engine`);
      });
    }
  };

  it('reads each raw-log object once for two views on one source, every value equal to the engine', async () => {
    const { store, gets } = countingStore(inner);
    const out = join(dir, 'shared.parquet');
    const summary = await retrieveHistorical({
      store,
      definitions: definitions(),
      entities,
      out,
      features: refs,
      progress: false,
    });
    const objects = (await inner.list('raw/transactions/')).map((o) => o.key);
    assert.ok(objects.length > 30, `${objects.length} raw objects (one per day)`);
    // The labels span the log: both views need the same days (all but the last), each fetched once.
    const read = [...gets.keys()];
    assert.ok(read.length > 30 && read.length >= objects.length - 1, `${read.length} objects read`);
    assert.deepEqual(gets, new Map(read.map((key) => [key, 1])), 'each object fetched once');
    const rows = events.filter((e) =>
      read.some((key) => key.includes(`date=${new Date(e.event_timestamp).toISOString().slice(0, 10)}/`)),
    ).length;
    assert.deepEqual(summary.sources, [
      {
        source: 'transactions',
        views: ['user_transaction_features', 'user_amounts'],
        objectsRead: read.length,
        objectsSkipped: objects.length - read.length,
        eventsRead: rows,
      },
    ]);
    assert.equal(summary.objectsRead, read.length, 'the totals count each object once');
    assert.equal(summary.eventsRead, rows);
    // Each view reports the objects its events came from (shared with the other).
    assert.deepEqual(
      summary.views.map((v) => [v.view, v.source, v.objectsRead, v.eventsRead]),
      [
        ['user_transaction_features', 'transactions', read.length, rows],
        ['user_amounts', 'transactions', read.length, rows],
      ],
    );
    assert.ok(summary.views.every((v) => v.eventsUsed > events.length / 2));
    assertEngineValues(out);
  });

  it("sizes the shards of a shared pass from its views' bytes together, so both fit the memory bound", async () => {
    // The bytes of the objects in range (as the first run reports them), and a bound that one
    // view's estimated events fit in one shard and two views' do not.
    const first = await retrieveHistorical({
      store: inner,
      definitions: definitions(),
      entities,
      out: join(dir, 'first.parquet'),
      features: [refs[0]!],
      progress: false,
    });
    const inRange = (await inner.list('raw/transactions/')).slice(0, first.objectsRead);
    const maxShardEvents = Math.ceil(inRange.reduce((s, o) => s + o.size, 0) / 8);
    const alone = await retrieveHistorical({
      store: inner,
      definitions: definitions(),
      entities,
      out: join(dir, 'alone.parquet'),
      features: [refs[0]!],
      maxShardEvents,
      progress: false,
    });
    assert.equal(alone.shards, 1);
    const out = join(dir, 'sized.parquet');
    const summary = await retrieveHistorical({
      store: inner,
      definitions: definitions(),
      entities,
      out,
      features: refs,
      maxShardEvents,
      progress: false,
    });
    assert.deepEqual(
      summary.views.map((v) => v.shards),
      [2, 2],
    );
    assertEngineValues(out);
  });
});

describe('hidden outputs of runs killed outright', () => {
  it("removes .<out>.tmp-<pid> of dead pids beside --out, not live ones' nor another --out's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-pit-out-'));
    try {
      const names = [
        '.train.parquet.tmp-999999999', // above pid_max: dead
        `.train.parquet.tmp-${process.ppid}`, // live
        `.train.parquet.tmp-${process.pid}`, // this process: another run of it may be writing
        '.other.parquet.tmp-999999999', // another --out
        '.trainXparquet.tmp-999999999', // the dot is not a wildcard
        'train.parquet',
      ];
      for (const name of names) writeFileSync(join(dir, name), 'x');
      const result = removeStaleOutputTemps(join(dir, 'train.parquet'));
      assert.deepEqual(result, { removed: [join(dir, '.train.parquet.tmp-999999999')], failed: [] });
      assert.deepEqual(readdirSync(dir).sort(), names.slice(1).sort());
      // Whether the pid is alive is all that decides.
      assert.deepEqual(removeStaleOutputTemps(join(dir, 'train.parquet'), () => false).removed, [
        join(dir, `.train.parquet.tmp-${process.ppid}`),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
