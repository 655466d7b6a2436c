// The hand-built JSON of features.rows / features.updates must be byte-identical to JSON.stringify
// of the documented fields: the offline flusher parses these records.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPushEncoder } from '../../../services/ingestor/push-json.ts';
import type { FeatureValue } from '../../../shared/engine/index.ts';

const names = new Map([['user_transaction_features', ['count_1h', 'avg "7d"', 'last\\n', 'merchants']]]);
const hash = 'sha256:abc"def';
const encoder = createPushEncoder(names, hash);
const samples: FeatureValue[][] = [
  [3, 12.5, null, ['m1', 'm"2']],
  [0, -0, 'x\u2028y', []],
  [Number.NaN, Number.POSITIVE_INFINITY, 1e21, 5e-324],
];

const vector = (values: FeatureValue[]) =>
  Object.fromEntries(names.get('user_transaction_features')!.map((n, i) => [n, values[i]]));

test('training rows are exactly JSON.stringify of view, entity, event_timestamp, source_topic, partition, offset, features, definitions_hash', () => {
  for (const values of samples) {
    const row = {
      view: 'user_transaction_features',
      entity: 'u"1\\',
      ts: Date.UTC(2026, 0, 3, 4, 5, 6, 7),
      partition: 5,
      offset: 123456789,
      values,
    };
    const want = JSON.stringify({
      view: row.view,
      entity: row.entity,
      event_timestamp: new Date(row.ts).toISOString(),
      source_topic: 'it.transactions',
      partition: row.partition,
      offset: row.offset,
      features: vector(values),
      definitions_hash: hash,
    });
    assert.equal(encoder.row('it.transactions', row), want);
    assert.deepEqual(JSON.parse(encoder.row('it.transactions', row)), JSON.parse(want));
  }
});

test('no-row marks are exactly JSON.stringify of view, source_topic, partition, offset, no_row, definitions_hash', () => {
  assert.equal(
    encoder.noRow('it.transactions', 'user_transaction_features', 3, 77, 'late'),
    JSON.stringify({
      view: 'user_transaction_features',
      source_topic: 'it.transactions',
      partition: 3,
      offset: 77,
      no_row: 'late',
      definitions_hash: hash,
    }),
  );
});

test('feature updates are exactly JSON.stringify of view, entity, as_of, state_version, features, definitions_hash', () => {
  for (const values of samples) {
    const update = {
      view: 'user_transaction_features',
      entity: '42',
      asOf: Date.UTC(2026, 0, 31),
      version: 99_999_999_999_999,
      values,
    };
    const want = JSON.stringify({
      view: update.view,
      entity: update.entity,
      as_of: new Date(update.asOf).toISOString(),
      state_version: update.version,
      features: vector(values),
      definitions_hash: hash,
    });
    assert.equal(encoder.update(update), want);
  }
});

test('a missing feature value is left out, as JSON.stringify does', () => {
  const values = [undefined, 1, undefined, 2] as unknown as FeatureValue[];
  const update = { view: 'user_transaction_features', entity: '1', asOf: 0, version: 1, values };
  assert.equal(
    encoder.update(update),
    JSON.stringify({
      view: update.view,
      entity: '1',
      as_of: new Date(0).toISOString(),
      state_version: 1,
      features: vector(values),
      definitions_hash: hash,
    }),
  );
});
