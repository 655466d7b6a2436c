// Choosing the features of a point-in-time run over several views (selectFeatures): groups by view,
// output names plain or view__feature, a feature service's order, and each refusal; and the hidden
// outputs of dead runs beside --out (removeStaleOutputTemps).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseDefinitions } from '../../../shared/definitions/load.ts';
import { isTesseraError } from '../../../shared/errors.ts';
import { LocalObjectStore } from '../../../shared/offline/object-store.ts';
import { retrieveHistorical, selectFeatures } from '../../../shared/pit/retrieve.ts';
import { removeStaleOutputTemps } from '../../../shared/pit/training-output.ts';

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
