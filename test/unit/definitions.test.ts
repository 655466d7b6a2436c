import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadDefinitionsFile, parseDefinitions } from '../../shared/definitions/load.ts';
import { isTesseraError } from '../../shared/errors.ts';

const fraud = readFileSync('definitions/fraud.yaml', 'utf8');
const invalid = (text: string, pattern: RegExp) =>
  assert.throws(
    () => parseDefinitions(text, 'fraud.yaml'),
    (e: unknown) => isTesseraError(e, 'DEFINITIONS_INVALID') && pattern.test(e.message),
  );

describe('feature definitions', () => {
  it('loads the six reference features of the fraud model', () => {
    const defs = loadDefinitionsFile('definitions/fraud.yaml');
    const view = defs.views[0]!;
    assert.equal(view.entity.joinKey, 'user_id');
    assert.equal(view.entity.keyType, 'int64');
    assert.deepEqual(
      view.features.map((f) => [f.name, f.aggregation, f.column, f.windowMs, f.default]),
      [
        ['transaction_count_1h', 'count', null, 3_600_000, null],
        ['transaction_count_24h', 'count', null, 86_400_000, null],
        ['avg_transaction_amount_7d', 'avg', 'amount', 604_800_000, 0],
        ['avg_transaction_amount_30d', 'avg', 'amount', 2_592_000_000, 0],
        ['max_transaction_amount_7d', 'max', 'amount', 604_800_000, 0],
        ['distinct_merchant_count_7d', 'count_distinct', 'merchant_id', 604_800_000, null],
      ],
    );
    assert.equal(view.ttlMs, 30 * 86_400_000 + 3_600_000, 'ttl defaults to the longest window plus lateness');
    assert.deepEqual(defs.featureServices.get('fraud_model_v1')?.length, 6);
  });

  it('identifies a definitions version by a content hash that ignores comments', () => {
    const a = parseDefinitions(fraud).hash;
    assert.equal(parseDefinitions(`# a comment\n${fraud}`).hash, a);
    assert.notEqual(parseDefinitions(fraud.replace('window: 1h\n', 'window: 2h\n')).hash, a);
    assert.match(a, /^[0-9a-f]{16}$/);
  });

  it('names the file, line, field and what is allowed', () => {
    invalid(
      fraud.replace('aggregation: max', 'aggregation: maximum'),
      /fraud\.yaml:\d+: views\[0\]\.features\[4\]\.aggregation: must be one of count, sum/,
    );
    invalid(
      fraud.replace(
        'window: 7d\n        tile: 1h\n        default: 0.0\n      - name: avg',
        'window: 7 days\n        tile: 1h\n        default: 0.0\n      - name: avg',
      ),
      /features\[2\]\.window: must be a duration such as/,
    );
    invalid(
      fraud.replace('column: merchant_id', 'column: merchant'),
      /features\[5\]\.column: unknown column merchant; transactions has user_id, event_timestamp, amount, merchant_id/,
    );
    invalid(fraud.replace('entity: user', 'entity: customer'), /views\[0\]\.entity: unknown entity customer/);
    invalid(
      fraud.replace(
        '- name: transaction_count_24h\n        aggregation: count',
        '- name: transaction_count_24h\n        aggregation: avg\n        column: merchant_id',
      ),
      /avg needs a numeric column/,
    );
    invalid(
      fraud.replace('user_transaction_features:transaction_count_1h', 'user_transaction_features:nope'),
      /feature_services\[0\]\.features\[0\]: unknown feature/,
    );
    invalid(`${fraud}\nextra_field: 1\n`, /unknown field\(s\) extra_field/);
    invalid('version: 1\nproject: [unclosed', /not valid YAML/);
  });

  it('refuses defaults the feature cannot answer, and names the offline tables hold', () => {
    const last = (column: string, value: string) =>
      fraud.replace(
        '      - name: distinct_merchant_count_7d',
        `      - { name: last_x, aggregation: last, column: ${column}, window: 1h, default: ${value} }\n      - name: distinct_merchant_count_7d`,
      );
    // A default of another type was served as is, then stopped every flush that wrote it.
    invalid(
      fraud.replace('default: 0.0\n      - name: avg', 'default: "n/a"\n      - name: avg'),
      /features\[2\]\.default: avg answers a number: default "n\/a"/,
    );
    invalid(last('merchant_id', '0'), /last of a string column answers a string: default 0 is not one/);
    invalid(last('user_id', '-1.5'), /last of a int64 column answers a int64: default -1\.5/);
    invalid(last('event_timestamp', '"yesterday"'), /answers a timestamp \(epoch ms, an integer\)/);
    invalid(
      fraud.replace('tile: 1h\n\nfeature_services', 'tile: 1h\n        default: 3\n\nfeature_services'),
      /count_distinct of an empty window is always 0/,
    );
    invalid(
      fraud
        .replace('column: merchant_id\n', 'column: merchant_id\n        n: 3\n')
        .replace('aggregation: count_distinct', 'aggregation: last_n')
        .replace('tile: 1h\n\nfeature_services', 'tile: 1h\n        default: x\n\nfeature_services'),
      /last_n of an empty window is always \[\]; remove default/,
    );
    assert.equal(parseDefinitions(last('merchant_id', 'none')).views[0]!.features[5]!.default, 'none');
    assert.equal(parseDefinitions(last('user_id', '-1')).views[0]!.features[5]!.default, -1);
    for (const name of ['user_id', 'event_timestamp', 'source_offset', 'source_partition', 'as_of', 'state'])
      invalid(
        fraud
          .replace('name: max_transaction_amount_7d', `name: ${name}`)
          .replace(':max_transaction_amount_7d', `:${name}`),
        new RegExp(
          `features\\[4\\]\\.name: ${name} names a column the offline tables hold beside the features`,
        ),
      );
  });

  it('refuses two sources on one topic, which the ingestor read as one', () => {
    const second = `  - name: by_merchant
    topic: transactions
    format: json
    key_field: merchant_id
    timestamp_field: event_timestamp
    schema: { merchant_id: string, event_timestamp: timestamp, amount: double }
`;
    invalid(
      fraud.replace('\nviews:', `\n${second}\nviews:`),
      /sources\[1\]\.topic: source transactions already reads topic transactions; one source per topic/,
    );
  });

  it('names the default tile when a short tiled window has none', () => {
    invalid(
      fraud.replace('window: 1h\n        tile: 5m\n', 'window: 90s\n        mode: tiled\n'),
      /features\[0\]\.window: a tiled window of 90s needs a tile no longer than it: the default \(5m under 12h\) is longer; declare one, e\.g\. tile: 15s/,
    );
  });

  it('refuses a feature service named twice, or listing a feature twice', () => {
    const service = fraud.slice(fraud.indexOf('  - name: fraud_model_v1'));
    invalid(`${fraud}${service}`, /feature_services\[1\]\.name: duplicate feature service fraud_model_v1/);
    invalid(
      `${fraud}      - user_transaction_features:transaction_count_1h\n`,
      /feature_services\[0\]\.features\[6\]: user_transaction_features:transaction_count_1h is listed twice/,
    );
  });

  it('reports the line of the offending field', () => {
    const text = fraud.replace('aggregation: max', 'aggregation: maximum');
    const line = text.split('\n').findIndex((l) => l.includes('maximum')) + 1;
    assert.throws(() => parseDefinitions(text, 'fraud.yaml'), new RegExp(`fraud\\.yaml:${line}:`));
  });

  it('keeps a max_age above the ttl (docs/definitions.md: live reads then see the key expire first)', () => {
    // Not refused: OUTSIDE_MAX_AGE is still reached by states written long after their events (a
    // restore, a catch-up) and by as_of reads; on live reads of an idle entity NOT_FOUND comes first.
    const view = parseDefinitions(fraud.replace('max_age: 30d', 'max_age: 60d\n    ttl: 31d')).views[0]!;
    assert.equal(view.maxAgeMs, 60 * 86_400_000);
    assert.equal(view.ttlMs, 31 * 86_400_000);
  });

  it('fills tiles like Chronon when a tiled feature declares none', () => {
    const text = fraud.replace(/\n\s+tile: \w+/g, '').replace('mode: exact', 'mode: tiled');
    const tiles = parseDefinitions(text).views[0]!.features.map((f) => f.tileMs / 60_000);
    assert.deepEqual(tiles, [5, 60, 60, 1440, 60, 60]);
  });
});
